// SPDX-License-Identifier: MIT
// A small synchronous QMP client.
#include "qmp.h"
#include "unix_socket.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace vmrd::vmem {

using json = nlohmann::json;

namespace {
// QMP messages are small; one larger than this means a confused peer.
constexpr size_t maxMessage = 1 << 20;
} // namespace

Status Qmp::connect(const std::string &path, std::chrono::milliseconds timeout)
{
	close();
	path_ = path;
	timeout_ = timeout;
	// A QEMU that stopped accepting (its backlog full) is EAGAIN at once,
	// not a wait without end; the client itself blocks, with a timeout.
	fd_ = connectUnix(path);
	if (fd_ < 0 || ::fcntl(fd_, F_SETFL, 0) != 0) {
		int err = errno;
		close();
		return Error{-err, "QMP " + path + ": " + std::strerror(err) +
		                           (err == EAGAIN ? " (QEMU accepts no connection now)" : "")};
	}
	auto greeting = readMessage();
	if (!greeting || !greeting->contains("QMP")) {
		close();
		return Error{-EPROTO, "QMP " + path + ": no QMP greeting" +
		                              (greeting ? std::string() : ": " + greeting.error().message)};
	}
	auto caps = execute("qmp_capabilities", json::object());
	if (!caps) {
		close();
		return caps.error();
	}
	return Ok{};
}

void Qmp::close()
{
	if (fd_ >= 0)
		::close(fd_);
	fd_ = -1;
	buffer_.clear();
}

Result<json> Qmp::readMessage()
{
	const auto end = std::chrono::steady_clock::now() + timeout_;
	for (;;) {
		size_t nl = buffer_.find('\n');
		if (nl != std::string::npos) {
			std::string line = buffer_.substr(0, nl);
			buffer_.erase(0, nl + 1);
			json j = json::parse(line, nullptr, false);
			if (j.is_discarded() || !j.is_object())
				return Error{-EPROTO, "QMP " + path_ + ": malformed message"};
			return j;
		}
		if (buffer_.size() > maxMessage)
			return Error{-EPROTO, "QMP " + path_ + ": message too long"};
		auto left =
		        std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
		pollfd p{fd_, POLLIN, 0};
		if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) == 0)
			return Error{-ETIMEDOUT,
			             "QMP " + path_ + ": no answer within " + std::to_string(timeout_.count()) + " ms"};
		char buf[4096];
		ssize_t n = ::read(fd_, buf, sizeof(buf));
		if (n == 0)
			return Error{-ECONNRESET, "QMP " + path_ + ": QEMU closed the connection"};
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			return Error{-errno, "QMP " + path_ + ": " + std::strerror(errno)};
		if (n > 0)
			buffer_.append(buf, static_cast<size_t>(n));
	}
}

Result<json> Qmp::execute(const std::string &command, const json &arguments)
{
	if (fd_ < 0)
		return Error{-ENOTCONN, "QMP " + path_ + ": not connected"};
	json cmd{{"execute", command}};
	if (!arguments.empty())
		cmd["arguments"] = arguments;
	const std::string text = cmd.dump() + "\n";
	if (::send(fd_, text.data(), text.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(text.size())) {
		int err = errno;
		close();
		return Error{-err, "QMP " + path_ + ": send: " + std::strerror(err)};
	}
	for (;;) {
		auto m = readMessage();
		if (!m) {
			close();
			return m.error();
		}
		if (m->contains("return"))
			return (*m)["return"];
		if (m->contains("error")) {
			const json &e = (*m)["error"];
			return Error{-EREMOTEIO,
			             "QMP " + command + ": " + e.value("class", "Error") + ": " + e.value("desc", "")};
		}
		noteEvent(*m);
	}
}

void Qmp::noteEvent(const json &event)
{
	auto name = event.find("event");
	if (name == event.end() || *name != "MEMORY_DEVICE_SIZE_CHANGE")
		return;
	auto data = event.find("data");
	std::string id;
	if (data != event.end() && data->is_object()) {
		auto i = data->find("id");
		if (i != data->end() && i->is_string())
			id = i->get<std::string>();
	}
	sizeChanged_.insert(id);
}

bool Qmp::takeSizeChange(const std::string &device)
{
	const bool changed = sizeChanged_.erase(device) + sizeChanged_.erase("") > 0;
	// Ids of other devices on this QEMU are no concern of this VM's broker.
	sizeChanged_.clear();
	return changed;
}

bool Qmp::drain()
{
	if (fd_ < 0)
		return false;
	char buf[4096];
	for (;;) {
		// Only events arrive unasked; a partial line stays for later.
		size_t start = 0;
		for (size_t nl; (nl = buffer_.find('\n', start)) != std::string::npos; start = nl + 1) {
			json j = json::parse(buffer_.begin() + static_cast<std::ptrdiff_t>(start),
			                     buffer_.begin() + static_cast<std::ptrdiff_t>(nl), nullptr, false);
			if (j.is_object())
				noteEvent(j);
		}
		buffer_.erase(0, start);
		if (buffer_.size() > maxMessage)
			break;
		ssize_t n = ::recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0)
			buffer_.append(buf, static_cast<size_t>(n));
		else if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return true;
		else
			break;
	}
	close();
	return false;
}

Result<uint64_t> Qmp::getSize(const std::string &device, const char *property)
{
	auto r = execute("qom-get", {{"path", "/machine/peripheral/" + device}, {"property", property}});
	if (!r)
		return r.error();
	if (!r->is_number_unsigned())
		return Error{-EPROTO, "QMP qom-get " + device + "." + property + ": not a size"};
	return r->get<uint64_t>();
}

Status Qmp::setRequestedSize(const std::string &device, uint64_t bytes)
{
	auto r = execute("qom-set",
	                 {{"path", "/machine/peripheral/" + device}, {"property", "requested-size"}, {"value", bytes}});
	if (!r)
		return r.error();
	return Ok{};
}

} // namespace vmrd::vmem
