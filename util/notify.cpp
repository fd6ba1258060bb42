// SPDX-License-Identifier: MIT
// Tells systemd about the service's state: readiness, status lines, watchdog pings.
#include "notify.h"

#ifdef VMRD_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace vmrd {

#ifdef VMRD_HAVE_SYSTEMD
void notifySystemd(const std::string &message)
{
	sd_notify(0, message.c_str());
}

std::optional<Micros> watchdogInterval()
{
	uint64_t usec = 0;
	if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
		return std::nullopt;
	return Micros(static_cast<Micros::rep>(usec / 2));
}
#else
void notifySystemd(const std::string &) {}

std::optional<Micros> watchdogInterval()
{
	return std::nullopt;
}
#endif

} // namespace vmrd
