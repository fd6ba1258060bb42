// SPDX-License-Identifier: MIT
// One VM's warnings in the host's log, rate-limited.
#include "warnings.h"

#include "log.h"

namespace vmrd::vmem {

void Warnings::warn(const std::string &message, Clock::time_point now)
{
	flush(now);
	if (logged_ < burst_) {
		logged_++;
		logWarning(prefix_ + message);
		return;
	}
	suppressed_++;
	lastSuppressed_ = message;
}

void Warnings::flush(Clock::time_point now)
{
	if (now - windowStart_ < window_)
		return;
	if (suppressed_ > 0)
		logWarning(prefix_ + std::to_string(suppressed_) + " more warning(s) suppressed in " +
		           std::to_string(std::chrono::duration_cast<std::chrono::seconds>(window_).count()) +
		           " s, the last: " + lastSuppressed_);
	windowStart_ = now;
	logged_ = 0;
	suppressed_ = 0;
	lastSuppressed_.clear();
}

} // namespace vmrd::vmem
