// SPDX-License-Identifier: MIT
// The control interface: a unix socket for vmrdctl and an optional HTTP listener for /metrics.
#include "control.h"

#include <algorithm>
#include <arpa/inet.h>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

namespace vmrd {

using json = nlohmann::json;

namespace {

constexpr size_t maxHttpHeader = 8192;

std::string errorLine(const std::string &message)
{
	return json{{"ok", false}, {"error", message}}.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string httpResponse(const char *status, const std::string &body, const char *extra = "")
{
	return std::string("HTTP/1.1 ") + status +
	       "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: " +
	       std::to_string(body.size()) + "\r\nConnection: close\r\n" + extra + "\r\n" + body;
}

} // namespace

ControlServer::ControlServer(EventLoop &loop, Handler handler)
    : loop_(loop), idleTimer_(loop.addTimer([this] { closeIdle(); })), handler_(std::move(handler))
{
}

ControlServer::~ControlServer()
{
	while (!clients_.empty())
		close(clients_.begin()->first);
	loop_.setTimer(idleTimer_, std::nullopt);
	for (int fd : {unixFd_, httpFd_})
		if (fd >= 0) {
			loop_.remove(fd);
			::close(fd);
		}
	if (!socketPath_.empty())
		::unlink(socketPath_.c_str());
}

Result<std::unique_ptr<ControlServer>> ControlServer::open(const ControlConfig &config, const KeyPositions &where,
                                                           EventLoop &loop, Handler handler)
{
	std::unique_ptr<ControlServer> s(new ControlServer(loop, std::move(handler)));
	if (!config.socket.empty())
		if (auto st = s->listenUnix(config.socket); !st)
			return Error{st.error().code, where.at("control.socket") + " " + st.error().message};
	if (!config.http.empty())
		if (auto st = s->listenHttp(config.http); !st)
			return Error{st.error().code, where.at("control.http") + " " + st.error().message};
	return s;
}

Status ControlServer::listenUnix(const std::string &path)
{
	auto fail = [&](const std::string &what, int err) {
		return Error{-err, path + ": " + what + ": " + std::strerror(err)};
	};
	sockaddr_un sun{};
	sun.sun_family = AF_UNIX;
	std::strncpy(sun.sun_path, path.c_str(), sizeof(sun.sun_path) - 1);
	// The runtime directory (systemd's RuntimeDirectory=) may not exist when
	// the daemon is started by hand.
	const std::string dir = path.substr(0, path.rfind('/'));
	if (!dir.empty() && ::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
		return fail("cannot create the directory " + dir, errno);
	struct stat st;
	if (::lstat(path.c_str(), &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return Error{-EEXIST,
			             path + ": exists and is not a socket; remove it or set another control.socket"};
		int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		const bool live = probe >= 0 && ::connect(probe, reinterpret_cast<sockaddr *>(&sun), sizeof(sun)) == 0;
		if (probe >= 0)
			::close(probe);
		if (live)
			return Error{-EADDRINUSE, path + ": another vmrd answers on it; stop that one or set another "
			                                 "control.socket"};
		::unlink(path.c_str()); // left behind by a daemon that was killed
	}
	unixFd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (unixFd_ < 0)
		return fail("socket", errno);
	// Root only: the socket can resize the VM's memory.  Set before the file
	// exists, so it never has a wider mode.
	const mode_t old = ::umask(0177);
	const int bound = ::bind(unixFd_, reinterpret_cast<sockaddr *>(&sun), sizeof(sun));
	const int err = errno;
	::umask(old);
	if (bound != 0)
		return fail("cannot bind", err);
	socketPath_ = path;
	if (::listen(unixFd_, 16) != 0)
		return fail("listen", errno);
	if (auto w = loop_.add(unixFd_, EPOLLIN, [this](uint32_t) { accept(unixFd_, false); }); !w)
		return Error{w.error().code, path + ": " + w.error().message};
	return Ok{};
}

Status ControlServer::listenHttp(const std::string &address)
{
	auto fail = [&](const std::string &what, int err) {
		return Error{-err, address + ": " + what + ": " + std::strerror(err)};
	};
	auto a = parseListenAddress(address);
	if (!a)
		return Error{-EINVAL, address + ": not ADDRESS:PORT"};
	httpFd_ = ::socket(a->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (httpFd_ < 0)
		return fail("socket", errno);
	int one = 1;
	::setsockopt(httpFd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (::bind(httpFd_, reinterpret_cast<sockaddr *>(&a->addr), a->length) != 0)
		return fail("cannot bind", errno);
	if (::listen(httpFd_, 16) != 0)
		return fail("listen", errno);
	if (auto w = loop_.add(httpFd_, EPOLLIN, [this](uint32_t) { accept(httpFd_, true); }); !w)
		return Error{w.error().code, address + ": " + w.error().message};
	return Ok{};
}

void ControlServer::onClient(uint64_t id, uint32_t events)
{
	auto it = clients_.find(id);
	if (it == clients_.end())
		return;
	if (events & (EPOLLERR | EPOLLHUP)) {
		close(id);
		return;
	}
	if ((events & EPOLLOUT) && !flushOk(id, it->second))
		return;
	if (events & EPOLLIN)
		onReadable(id, it->second);
}

void ControlServer::closeIdle()
{
	const auto now = Clock::now();
	std::optional<Clock::time_point> next;
	for (auto it = clients_.begin(); it != clients_.end();) {
		const auto id = (it++)->first;
		const Client &c = clients_.at(id);
		if (c.subscribed)
			continue;
		if (now >= c.deadline)
			close(id);
		else if (!next || c.deadline < *next)
			next = c.deadline;
	}
	loop_.setTimer(idleTimer_, next);
}

void ControlServer::accept(int listener, bool http)
{
	for (;;) {
		int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return; // EAGAIN: all taken; anything else is the client's problem
		if (clients_.size() >= maxClients) {
			const std::string busy = http ? httpResponse("503 Service Unavailable", "too many clients\n")
			                              : errorLine("too many clients (" + std::to_string(maxClients) +
			                                          "); try again later");
			(void)!::send(fd, busy.data(), busy.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
			::close(fd);
			continue;
		}
		const uint64_t id = nextId_++;
		Client c;
		c.fd = fd;
		c.http = http;
		c.deadline = Clock::now() + idleTimeout;
		if (!loop_.add(fd, EPOLLIN, [this, id](uint32_t events) { onClient(id, events); })) {
			::close(fd);
			continue;
		}
		clients_.emplace(id, std::move(c));
		closeIdle();
	}
}

void ControlServer::onReadable(uint64_t id, Client &c)
{
	char buf[4096];
	for (;;) {
		const ssize_t got = ::recv(c.fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
			close(id);
			return;
		}
		if (got < 0)
			break;
		if (!c.closing)
			c.in.append(buf, static_cast<size_t>(got));
		if (c.in.size() > maxHttpHeader + maxRequest)
			break; // judged below; do not let a client fill memory
	}
	c.deadline = Clock::now() + idleTimeout;
	if (c.closing)
		return;
	if (c.http) {
		answerHttp(c);
		flushOk(id, c);
		return;
	}
	size_t start = 0;
	for (size_t nl; (nl = c.in.find('\n', start)) != std::string::npos && !c.closing; start = nl + 1) {
		if (nl - start > maxRequest) {
			c.out += errorLine("request longer than " + std::to_string(maxRequest) + " bytes");
			c.closing = true;
		} else {
			answer(c, c.in.substr(start, nl - start));
		}
	}
	c.in.erase(0, start);
	if (c.in.size() > maxRequest && !c.closing) {
		c.out += errorLine("request longer than " + std::to_string(maxRequest) + " bytes");
		c.closing = true;
	}
	flushOk(id, c);
}

void ControlServer::answer(Client &c, const std::string &line)
{
	auto request = parseControlRequest(line);
	if (!request) {
		c.out += errorLine(request.error().message);
		return;
	}
	if (request->command == ControlCommand::Events) {
		if (!c.subscribed)
			subscribers_++;
		c.subscribed = true;
		c.out += json{{"ok", true}, {"events", "following"}}.dump() + "\n";
		return;
	}
	Result<json> reply = handler_(*request);
	if (!reply) {
		c.out += errorLine(reply.error().message);
		return;
	}
	json r = reply.value().is_object() ? reply.value() : json{{"result", reply.value()}};
	r["ok"] = true;
	c.out += r.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

void ControlServer::answerHttp(Client &c)
{
	const size_t end = c.in.find("\r\n\r\n");
	if (end == std::string::npos) {
		if (c.in.size() > maxHttpHeader) {
			c.out += httpResponse("431 Request Header Fields Too Large", "request header too large\n");
			c.closing = true;
		}
		return;
	}
	const std::string requestLine = c.in.substr(0, c.in.find("\r\n"));
	c.closing = true;
	const size_t sp1 = requestLine.find(' ');
	const size_t sp2 = sp1 == std::string::npos ? sp1 : requestLine.find(' ', sp1 + 1);
	if (sp2 == std::string::npos) {
		c.out += httpResponse("400 Bad Request", "bad request line\n");
		return;
	}
	const std::string method = requestLine.substr(0, sp1);
	const std::string target = requestLine.substr(sp1 + 1, sp2 - sp1 - 1);
	if (method != "GET") {
		c.out += httpResponse("405 Method Not Allowed", "only GET\n", "Allow: GET\r\n");
		return;
	}
	if (target != "/metrics") {
		c.out += httpResponse("404 Not Found", "vmrd serves /metrics only\n");
		return;
	}
	Result<json> metrics = handler_(ControlRequest{ControlCommand::Metrics, 0});
	if (!metrics) {
		c.out += httpResponse("500 Internal Server Error", metrics.error().message + "\n");
		return;
	}
	c.out += httpResponse("200 OK", metrics.value().value("text", std::string()));
}

void ControlServer::publish(const std::string &line)
{
	for (auto it = clients_.begin(); it != clients_.end();) {
		const uint64_t id = (it++)->first;
		Client &c = clients_.at(id);
		if (!c.subscribed)
			continue;
		if (c.out.size() + line.size() > maxBacklog) {
			logWarning("control: an events client read nothing of the last " + std::to_string(maxBacklog) +
			           " bytes; disconnecting it");
			close(id);
			continue;
		}
		c.out += line;
		flushOk(id, c);
	}
}

bool ControlServer::flushOk(uint64_t id, Client &c)
{
	while (!c.out.empty()) {
		const ssize_t sent = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
		if (sent < 0 && errno == EINTR)
			continue;
		if (sent < 0 && errno == EAGAIN)
			break;
		if (sent <= 0) {
			close(id);
			return false;
		}
		c.out.erase(0, static_cast<size_t>(sent));
	}
	if (c.out.empty() && c.closing) {
		close(id);
		return false;
	}
	(void)loop_.modify(c.fd, EPOLLIN | (c.out.empty() ? 0u : static_cast<uint32_t>(EPOLLOUT)));
	return true;
}

void ControlServer::close(uint64_t id)
{
	auto it = clients_.find(id);
	if (it == clients_.end())
		return;
	if (it->second.subscribed)
		subscribers_--;
	loop_.remove(it->second.fd);
	::close(it->second.fd);
	clients_.erase(it);
}

} // namespace vmrd
