// SPDX-License-Identifier: MIT
// Tells systemd about the service's state (readiness, status lines, watchdog pings) and keeps fds in its store.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include "result.h"
#include "units.h"

namespace vmrd {

// Sends one sd_notify(3) message ("READY=1", "STATUS=...", "WATCHDOG=1")
// without waiting.  Does nothing when not started by systemd with
// Type=notify (no $NOTIFY_SOCKET).
void notifySystemd(const std::string &message);

// Whether $NOTIFY_SOCKET names a socket this process can send to.
bool notifySocketSet();

// Sends one message with `fds` attached (SCM_RIGHTS), as
// sd_pid_notify_with_fds(3) does: how fds enter systemd's file descriptor
// store ("FDSTORE=1\nFDNAME=name").  Never waits; says why it did not go.
Status notifySystemdWithFds(const std::string &message, const std::vector<int> &fds);

// How often to send WATCHDOG=1: half of WatchdogSec, if systemd asked for it.
std::optional<Micros> watchdogInterval();

// The parts of the protocol, apart for tests.
struct NotifyAddress {
	sockaddr_un address;
	socklen_t length;
};
// $NOTIFY_SOCKET: a path, or with a leading '@' an abstract name; nullopt
// for anything else (a vsock address of newer systemd) or too long a name.
std::optional<NotifyAddress> parseNotifySocket(std::string_view name);
// $WATCHDOG_USEC and $WATCHDOG_PID (either may be null) as
// sd_watchdog_enabled(3) reads them: the watchdog's period, if it is on
// and meant for the process `self`.
std::optional<Micros> parseWatchdog(const char *usec, const char *pid, pid_t self);
// One fd that systemd passed at start, from 3 on, with its name.
struct ListenFd {
	int fd;
	std::string name; // "unknown" where systemd had none
};
// $LISTEN_PID, $LISTEN_FDS and $LISTEN_FDNAMES (any may be null) as
// sd_listen_fds_with_names(3) reads them: the fds passed to the process
// `self`; none when they are meant for another or make no sense.
std::vector<ListenFd> parseListenFds(const char *pid, const char *count, const char *names, pid_t self);

} // namespace vmrd
