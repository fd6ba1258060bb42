// SPDX-License-Identifier: MIT
// Fuzz target: what a hostile guest can send the broker.  The bytes go
// through the broker's line reader, parser, validation and grant logic to a
// device that checks the one thing QMP may ever receive: a size within the
// VM's range, on the device's block.
#include "broker.h"
#include "fuzz.h"
#include "log.h"

using namespace vmrd::vmem;

namespace {

constexpr uint64_t MiB = 1ull << 20;

// The device as the broker's device link would report it.
class CheckingDevice
{
public:
	explicit CheckingDevice(const VmConfig &vm) : vm_(vm) {}
	std::optional<DeviceState> state() const { return state_; }
	void setRequested(uint64_t bytes)
	{
		FUZZ_CHECK(bytes >= vm_.min && bytes <= vm_.max);
		FUZZ_CHECK(bytes % state_.blockSize == 0);
		state_.requested = bytes;
		state_.size = bytes;
	}

private:
	const VmConfig &vm_;
	DeviceState state_{2 * MiB, 0, 0, 1024 * MiB, 1024 * MiB};
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setLogLevel(vmrd::LogLevel::Error);
	const std::string_view bytes = fuzzText(data, size);
	const VmConfig vm{"fuzz", "", "vmem0", "", 512 * MiB, 4096 * MiB};
	CheckingDevice device(vm);
	VmSession session(vm, 1000);
	LineReader reader;
	// Fed in two pieces, as a socket may deliver it.
	reader.feed(bytes.substr(0, bytes.size() / 2));
	reader.feed(bytes.substr(bytes.size() / 2));
	auto t = VmSession::Clock::now();
	while (auto line = reader.next()) {
		FUZZ_CHECK(line->text.size() <= maxLine);
		auto handled = session.handle(line->text, line->tooLong, device.state(), 8192 * MiB, {}, t);
		FUZZ_CHECK(!handled.set || handled.reply.empty());
		if (handled.reply.empty()) {
			if (handled.set)
				device.setRequested(*handled.set);
			handled.reply = session.finish(handled.id, vmrd::Ok{}, device.state(), t);
		}
		const std::string &reply = handled.reply;
		// Every reply is one line the guest's parser reads back.
		FUZZ_CHECK(!reply.empty() && reply.back() == '\n' && reply.size() <= maxLine);
		FUZZ_CHECK(parseReply(std::string_view(reply).substr(0, reply.size() - 1)));
		t += std::chrono::milliseconds(1);
	}
	// The guest side of the protocol reads the broker's replies and size notices.
	if (auto r = parseReply(bytes)) {
		auto again = parseReply(formatReply(*r));
		FUZZ_CHECK(again && again->id == r->id && again->ok == r->ok);
	}
	if (auto m = parseBrokerMessage(bytes); m && m->kind == BrokerMessage::Kind::Size) {
		const std::string line = formatSizeNotice(m->notice);
		FUZZ_CHECK(line.size() <= maxLine);
		auto again = parseBrokerMessage(line);
		FUZZ_CHECK(again && again->kind == BrokerMessage::Kind::Size &&
		           again->notice.state.size == m->notice.state.size &&
		           again->notice.state.requested == m->notice.state.requested);
	}
	// What the broker tells the guest unasked is one line its parser reads back.
	{
		const std::string n = session.notice(device.state(), t);
		FUZZ_CHECK(n.empty() || (n.back() == '\n' && n.size() <= maxLine &&
		                         parseBrokerMessage(std::string_view(n).substr(0, n.size() - 1))));
	}
	if (auto r = parseRequest(bytes)) {
		auto again = parseRequest(formatRequest(*r));
		FUZZ_CHECK(again && again->kind == r->kind && again->id == r->id && again->target == r->target);
	}
	return 0;
}
