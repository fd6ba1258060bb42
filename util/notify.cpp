// SPDX-License-Identifier: MIT
// Tells systemd about the service's state (readiness, status lines, watchdog pings) and keeps fds in its store.
//
// The protocol of sd_notify(3), spoken directly rather than through
// libsystemd, which would bring six more shared libraries into a daemon
// that has to stay small and locked in memory.  systemd documents it as
// stable for exactly this use: one datagram of newline-separated VAR=value
// lines to the AF_UNIX socket named by $NOTIFY_SOCKET, with fds attached as
// SCM_RIGHTS for the file descriptor store.
#include "notify.h"

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

namespace vmrd {

namespace {

// Opened at the first message, READY=1 at start, so that nothing is
// allocated for it on the hot path.
struct NotifySocket {
	int fd = -1;
	NotifyAddress to{};

	NotifySocket()
	{
		const char *name = std::getenv("NOTIFY_SOCKET");
		if (!name || !*name)
			return;
		auto address = parseNotifySocket(name);
		if (!address) {
			logWarning(std::string("NOTIFY_SOCKET=") + name +
			           ": not an AF_UNIX path or abstract name; systemd is not told of readiness");
			return;
		}
		to = *address;
		fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			logWarning(std::string("sd_notify: socket: ") + std::strerror(errno) +
			           "; systemd is not told of readiness");
	}
	NotifySocket(const NotifySocket &) = delete;
	NotifySocket &operator=(const NotifySocket &) = delete;
	~NotifySocket()
	{
		if (fd >= 0)
			::close(fd);
	}
};

// Decimal digits only, all of them (libsystemd's safe_atou64 and parse_pid).
std::optional<uint64_t> parseDecimal(const char *s)
{
	if (!s || *s < '0' || *s > '9')
		return std::nullopt;
	errno = 0;
	char *end = nullptr;
	const unsigned long long v = std::strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return std::nullopt;
	return v;
}

} // namespace

std::optional<NotifyAddress> parseNotifySocket(std::string_view name)
{
	NotifyAddress a{};
	if (name.empty() || (name[0] != '/' && name[0] != '@') || name.size() >= sizeof(a.address.sun_path))
		return std::nullopt;
	a.address.sun_family = AF_UNIX;
	name.copy(a.address.sun_path, name.size());
	if (a.address.sun_path[0] == '@')
		a.address.sun_path[0] = '\0';
	a.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
	return a;
}

std::optional<Micros> parseWatchdog(const char *usec, const char *pid, pid_t self)
{
	const std::optional<uint64_t> period = parseDecimal(usec);
	if (!period || *period == 0 || *period == UINT64_MAX) // unset, or infinity
		return std::nullopt;
	if (pid) {
		const std::optional<uint64_t> p = parseDecimal(pid);
		if (!p || *p != static_cast<uint64_t>(self))
			return std::nullopt;
	}
	return Micros(static_cast<Micros::rep>(*period));
}

std::vector<ListenFd> parseListenFds(const char *pid, const char *count, const char *names, pid_t self)
{
	const std::optional<uint64_t> p = parseDecimal(pid), n = parseDecimal(count);
	if (!p || *p != static_cast<uint64_t>(self) || !n || *n == 0 || *n > 1024)
		return {};
	std::vector<ListenFd> out;
	std::string_view rest = names ? names : "";
	for (uint64_t i = 0; i < *n; i++) {
		const size_t colon = rest.find(':');
		std::string name(rest.substr(0, colon));
		rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
		out.push_back({static_cast<int>(3 + i), name.empty() ? "unknown" : std::move(name)});
	}
	return out;
}

namespace {

const NotifySocket &notifySocket()
{
	static const NotifySocket socket;
	return socket;
}

} // namespace

bool notifySocketSet()
{
	return notifySocket().fd >= 0;
}

void notifySystemd(const std::string &message)
{
	// A message that cannot go is dropped, as the callers of libsystemd's
	// sd_notify never checked either.
	(void)notifySystemdWithFds(message, {});
}

Status notifySystemdWithFds(const std::string &message, const std::vector<int> &fds)
{
	const NotifySocket &socket = notifySocket();
	if (socket.fd < 0)
		return Error{-ENOTCONN, "no $NOTIFY_SOCKET"};
	iovec iov{const_cast<char *>(message.data()), message.size()};
	msghdr m{};
	m.msg_name = const_cast<sockaddr_un *>(&socket.to.address);
	m.msg_namelen = socket.to.length;
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
	if (!fds.empty()) {
		m.msg_control = control.data();
		m.msg_controllen = control.size();
		cmsghdr *c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
		std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
	}
	// Unconnected, so that a systemd that re-created its socket
	// (daemon-reexec) is still reached.  Never waiting: the event loop must
	// not hang on a listener that reads nothing (with none at all the
	// kernel refuses at once).
	if (::sendmsg(socket.fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		return Error{-errno, std::string("sd_notify: ") + std::strerror(errno)};
	return Ok{};
}

std::optional<Micros> watchdogInterval()
{
	const auto period = parseWatchdog(std::getenv("WATCHDOG_USEC"), std::getenv("WATCHDOG_PID"), ::getpid());
	if (!period)
		return std::nullopt;
	return *period / 2;
}

} // namespace vmrd
