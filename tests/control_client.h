// SPDX-License-Identifier: MIT
// A test's client of vmrd's control socket (or of its HTTP listener).
#pragma once

#include <arpa/inet.h>
#include <chrono>
#include <cstring>
#include <functional>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <optional>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>

#include <nlohmann/json.hpp>

// A client connection to a unix or TCP socket, reading lines with a timeout.
class Client
{
public:
	explicit Client(const std::string &unixPath)
	{
		sockaddr_un sun{};
		sun.sun_family = AF_UNIX;
		std::strncpy(sun.sun_path, unixPath.c_str(), sizeof(sun.sun_path) - 1);
		fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (::connect(fd_, reinterpret_cast<sockaddr *>(&sun), sizeof(sun)) != 0)
			reset();
	}
	explicit Client(uint16_t tcpPort)
	{
		sockaddr_in in{};
		in.sin_family = AF_INET;
		in.sin_port = htons(tcpPort);
		in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (::connect(fd_, reinterpret_cast<sockaddr *>(&in), sizeof(in)) != 0)
			reset();
	}
	~Client() { reset(); }
	bool connected() const { return fd_ >= 0; }
	void send(const std::string &data)
	{
		ASSERT_EQ(::send(fd_, data.data(), data.size(), MSG_NOSIGNAL), (ssize_t)data.size());
	}

	// The next line, or nothing after `timeout` or at end of stream.
	std::optional<std::string> line(std::chrono::milliseconds timeout = std::chrono::seconds(5))
	{
		for (;;) {
			if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
				std::string l = buffer_.substr(0, nl);
				buffer_.erase(0, nl + 1);
				return l;
			}
			if (!fill(timeout))
				return std::nullopt;
		}
	}
	// Everything until the peer closes.
	std::string rest(std::chrono::milliseconds timeout = std::chrono::seconds(5))
	{
		while (fill(timeout))
			;
		return std::exchange(buffer_, "");
	}
	bool closedByPeer(std::chrono::milliseconds timeout = std::chrono::seconds(5))
	{
		while (fill(timeout))
			;
		return eof_;
	}
	nlohmann::json request(const std::string &cmd) { return ask(nlohmann::json{{"cmd", cmd}}); }
	// Any request; the reply, or {} after 5 s.
	nlohmann::json ask(const nlohmann::json &req)
	{
		send(req.dump() + "\n");
		// No reply, or not JSON: an empty object, so that value() reads
		// defaults and the test's assertion says what was missing.
		auto l = line();
		auto reply = l ? nlohmann::json::parse(*l, nullptr, false) : nlohmann::json::object();
		return reply.is_object() ? reply : nlohmann::json::object();
	}

private:
	bool fill(std::chrono::milliseconds timeout)
	{
		pollfd p{fd_, POLLIN, 0};
		if (fd_ < 0 || ::poll(&p, 1, static_cast<int>(timeout.count())) <= 0)
			return false;
		char buf[65536];
		ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
		if (n <= 0) {
			eof_ = true;
			return false;
		}
		buffer_.append(buf, static_cast<size_t>(n));
		return true;
	}
	void reset()
	{
		if (fd_ >= 0)
			::close(fd_);
		fd_ = -1;
	}

	int fd_ = -1;
	std::string buffer_;
	bool eof_ = false;
};

// Asks `status` (a call returning vmrd's status reply) until the reply shows
// `what`, judged by `done`, with no backend call in flight; that reply.  A
// command's reply comes when it is decided, before the backend has done it.
inline nlohmann::json statusWhen(const std::function<nlohmann::json()> &status, const std::string &what,
                                 const std::function<bool(const nlohmann::json &)> &done,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(10))
{
	auto end = std::chrono::steady_clock::now() + timeout;
	nlohmann::json s;
	do {
		s = status();
		if (s.value("ok", false) && s["backend"]["in_flight"].is_null() && done(s))
			return s;
		std::this_thread::sleep_for(std::chrono::milliseconds(20));
	} while (std::chrono::steady_clock::now() < end);
	ADD_FAILURE() << "no status with " << what << " after " << timeout.count() << " ms: " << s.dump();
	return s;
}
