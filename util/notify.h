// SPDX-License-Identifier: MIT
// Tells systemd about the service's state: readiness, status lines, watchdog pings.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include "units.h"

namespace vmrd {

// Sends one sd_notify(3) message ("READY=1", "STATUS=...", "WATCHDOG=1")
// without waiting.  Does nothing when not started by systemd with
// Type=notify (no $NOTIFY_SOCKET).
void notifySystemd(const std::string &message);

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

} // namespace vmrd
