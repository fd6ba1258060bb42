// SPDX-License-Identifier: MIT
// One VM's warnings in the host's log, rate-limited: a hostile or broken guest cannot flood it.
#pragma once

#include <chrono>
#include <string>

namespace vmrd::vmem {

// At most `burst` warnings per `window` reach the log; the rest are counted
// and summed up in one line once the window is over (at the next warning
// or flush).  So a guest that sends a million bad lines costs the host's
// log a few lines every ten seconds, and every other VM's messages stay
// readable, also under journald, whose own limit counts the whole service.
class Warnings
{
public:
	using Clock = std::chrono::steady_clock;
	static constexpr unsigned defaultBurst = 5;
	static constexpr std::chrono::seconds defaultWindow{10};

	explicit Warnings(std::string prefix, unsigned burst = defaultBurst, Clock::duration window = defaultWindow)
	    : prefix_(std::move(prefix)), burst_(burst), window_(window)
	{
	}
	void warn(const std::string &message, Clock::time_point now);
	// Logs the count of what was suppressed once the window is over.
	void flush(Clock::time_point now);

private:
	std::string prefix_; // "vm NAME: "
	unsigned burst_;
	Clock::duration window_;
	Clock::time_point windowStart_{};
	unsigned logged_ = 0; // in this window
	unsigned long suppressed_ = 0;
	std::string lastSuppressed_;
};

} // namespace vmrd::vmem
