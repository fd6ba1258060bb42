// SPDX-License-Identifier: MIT
// Tells systemd about the service's state: readiness, status lines, watchdog pings.
#pragma once

#include <optional>
#include <string>

#include "units.h"

namespace vmrd {

// Sends one sd_notify(3) message ("READY=1", "STATUS=...", "WATCHDOG=1").
// Does nothing when not started by systemd with Type=notify, or when built
// without libsystemd.
void notifySystemd(const std::string &message);

// How often to send WATCHDOG=1: half of WatchdogSec, if systemd asked for it.
std::optional<Micros> watchdogInterval();

} // namespace vmrd
