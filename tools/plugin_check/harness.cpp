// SPDX-License-Identifier: MIT
// Calls a plugin as vmrd would, with buffers and structs placed to catch a plugin that oversteps.
#include "harness.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <ctime>
#include <sys/mman.h>
#include <unistd.h>

#include "units.h"

namespace vmrd::check {

GuardedBuffer::GuardedBuffer(size_t size)
{
	const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
	const size_t pages = (size + page - 1) / page + 1;
	mapped_ = pages * page;
	void *p = ::mmap(nullptr, mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		throw std::bad_alloc();
	base_ = static_cast<char *>(p);
	::mprotect(base_ + mapped_ - page, page, PROT_NONE);
	data_ = base_ + mapped_ - page - size;
}

GuardedBuffer::~GuardedBuffer()
{
	::munmap(base_, mapped_);
}

MessageBuffer::MessageBuffer(uint32_t size, size_t slack) : size_(size), slack_(slack), buf_(size + slack) {}

char *MessageBuffer::data()
{
	if (size_ + slack_ > 0) {
		std::memset(buf_.data(), 'X', size_ + slack_);
		buf_.data()[0] = '\0';
	}
	return buf_.data();
}

bool MessageBuffer::terminated() const
{
	return size_ == 0 || std::memchr(const_cast<GuardedBuffer &>(buf_).data(), '\0', size_) != nullptr;
}

std::string MessageBuffer::text() const
{
	const char *d = const_cast<GuardedBuffer &>(buf_).data();
	return size_ == 0 ? std::string() : std::string(d, strnlen(d, size_));
}

namespace {

void ignoreLog(void *, int, const char *) {}

uint64_t monotonicNs(void *)
{
	timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

} // namespace

template <typename F> Call Harness::call(std::string what, uint32_t msgSize, F f)
{
	MessageBuffer msg(msgSize, slack_);
	Call c;
	c.what = std::move(what);
	c.ret = f(msg.data(), msg.size());
	c.terminated = msg.terminated();
	c.message = msg.text();
	return c;
}

Host::Host(std::optional<size_t> size, const std::string &procfs, const std::string &sysfs)
    : procfs_(procfs), sysfs_(sysfs), buf_(size ? *size : sizeof(vmrd_host) + 256)
{
	const size_t bytes = size ? *size : sizeof(vmrd_host) + 256;
	std::memset(buf_.data(), size ? 0xa5 : 0, bytes);
	vmrd_host h{};
	h.struct_size = static_cast<uint32_t>(size ? *size : sizeof(vmrd_host));
	h.log = ignoreLog;
	h.monotonic_ns = monotonicNs;
	h.procfs_root = procfs_.c_str();
	h.sysfs_root = sysfs_.c_str();
	h.host_data = this;
	h.forget_fd = forget;
	std::memcpy(buf_.data(), &h, std::min(bytes, sizeof(h)));
	host_ = reinterpret_cast<vmrd_host *>(buf_.data());
}

void Host::forget(void *data, const char *name)
{
	static_cast<Host *>(data)->forgotten_.emplace_back(name ? name : "(null)");
}

std::vector<vmrd_option> Harness::optionTable(const Options &extra) const
{
	std::vector<vmrd_option> opts;
	for (const Options *list : {&options_, &extra})
		for (const auto &[k, v] : *list)
			opts.push_back({k.c_str(), v.c_str()});
	return opts;
}

Call Harness::create(uint32_t msgSize, std::optional<size_t> hostSize, const Options &extra)
{
	destroy();
	host_ = std::make_unique<Host>(hostSize, procfs_, sysfs_);
	const std::vector<vmrd_option> opts = optionTable(extra);
	vmrd_backend *out = nullptr;
	Call c = call("create()", msgSize, [&](char *msg, uint32_t size) {
		return ops_.create(host_->get(), opts.data(), static_cast<uint32_t>(opts.size()), &out, msg, size);
	});
	if (c.ret == 0)
		backend_ = out;
	return c;
}

void Harness::destroy()
{
	if (backend_)
		ops_.destroy(backend_);
	backend_ = nullptr;
	host_.reset();
}

Call Harness::getState(vmrd_backend_state &state, uint32_t msgSize)
{
	struct {
		vmrd_backend_state state;
		char room[256];
	} padded{};
	padded.state = state;
	Call c = call("get_state()", msgSize,
	              [&](char *msg, uint32_t size) { return ops_.get_state(backend_, &padded.state, msg, size); });
	state = padded.state;
	return c;
}

Call Harness::getStateAt(vmrd_backend_state *state)
{
	return call("get_state()", 512,
	            [&](char *msg, uint32_t size) { return ops_.get_state(backend_, state, msg, size); });
}

Call Harness::plug(uint64_t bytes, uint64_t &done, uint32_t msgSize)
{
	return call("plug(" + formatSize(bytes) + ")", msgSize,
	            [&](char *msg, uint32_t size) { return ops_.plug(backend_, bytes, &done, msg, size); });
}

Call Harness::unplug(uint64_t bytes, uint64_t &done, uint32_t msgSize)
{
	return call("unplug(" + formatSize(bytes) + ")", msgSize,
	            [&](char *msg, uint32_t size) { return ops_.unplug(backend_, bytes, &done, msg, size); });
}

Call Harness::releaseAll(uint64_t &done, uint32_t msgSize)
{
	return call("release_all()", msgSize,
	            [&](char *msg, uint32_t size) { return ops_.release_all(backend_, &done, msg, size); });
}

Call Harness::getEventFd(int &fd, uint32_t msgSize)
{
	return call("get_event_fd()", msgSize,
	            [&](char *msg, uint32_t size) { return ops_.get_event_fd(backend_, &fd, msg, size); });
}

Call Harness::ackEvent(uint32_t msgSize)
{
	return call("ack_event()", msgSize,
	            [&](char *msg, uint32_t size) { return ops_.ack_event(backend_, msg, size); });
}

Call Harness::exportFds(std::vector<vmrd_held_fd> &fds, uint32_t capacity)
{
	GuardedBuffer table(sizeof(vmrd_held_fd) * std::max<uint32_t>(capacity, 1));
	auto *at = reinterpret_cast<vmrd_held_fd *>(
	        table.data() + sizeof(vmrd_held_fd) * (std::max<uint32_t>(capacity, 1) - capacity));
	uint32_t count = 0;
	Call c = call("export_fds(room for " + std::to_string(capacity) + ")", 512, [&](char *msg, uint32_t size) {
		return ops_.export_fds(backend_, at, capacity, &count, msg, size);
	});
	fds.assign(at, at + (c.ret == 0 ? std::min(count, capacity) : 0));
	if (c.ret == -ENOSPC)
		fds.resize(count); // only the count is told
	return c;
}

Call Harness::adoptFds(const std::vector<vmrd_held_fd> &fds)
{
	return call("adopt_fds(" + std::to_string(fds.size()) + " fds)", 512, [&](char *msg, uint32_t size) {
		return ops_.adopt_fds(backend_, fds.data(), static_cast<uint32_t>(fds.size()), msg, size);
	});
}

Call Harness::probe(uint32_t msgSize)
{
	const Host host(std::nullopt, procfs_, sysfs_);
	const std::vector<vmrd_option> opts = optionTable({});
	return call("probe()", msgSize, [&](char *msg, uint32_t size) {
		return ops_.probe(host.get(), opts.data(), static_cast<uint32_t>(opts.size()), msg, size);
	});
}

} // namespace vmrd::check
