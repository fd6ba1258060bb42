// SPDX-License-Identifier: MIT
// The resize policy: a pure function of events, samples, backend state and time.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "model.h"
#include "policy_params.h"

namespace vmrd {

// The daemon, the replay tool and the tests feed a policy the same inputs;
// it does no I/O and reads no clock.
class Policy
{
public:
	static std::unique_ptr<Policy> create(const PolicyParams &params, const Limits &limits);
	virtual ~Policy() = default;

	// A PSI trigger fired.  `severity` is the measured share of time stalled
	// (0 to 1) over the last window.
	virtual Decision onPressure(TimePoint now, const Sample &s, const BackendState &b, double severity) = 0;
	// The time nextCheck() asked for has come, or an operator asked for a check.
	virtual Decision onTimer(TimePoint now, const Sample &s, const BackendState &b) = 0;
	// A resize finished; `result` says what the backend really did and
	// `after` is the state it reported afterwards.
	virtual void onResult(TimePoint now, const Decision &asked, const CallResult &result, const Sample &s,
	                      const BackendState &after) = 0;

	// The policy was made while memory may be plugged (at start, after a
	// reload): it schedules its first check as after a pressure event, so
	// that memory nobody uses goes back without waiting for one.
	virtual void resume(TimePoint now, const BackendState &b) = 0;

	// The timers and counters the next decision depends on, as name and
	// human value ("cooldown", "12s left"), for vmrdctl status.
	virtual std::vector<std::pair<std::string, std::string>> describeState(TimePoint now) const = 0;

	// An operator asked for this resize (vmrdctl grow or shrink).
	Decision onRequest(TimePoint now, const Decision &d, const BackendState &b) const
	{
		return enforceLimits(now, d, b);
	}
	// When onTimer() should run next, if at all.
	std::optional<TimePoint> nextCheck() const { return nextCheck_; }
	const Limits &limits() const { return limits_; }

protected:
	explicit Policy(const Limits &limits) : limits_(limits) {}

	// Every decision passes through here: block alignment, limits.min and
	// max (and the backend's range), step_max and the rate limit are
	// enforced in this one place.  It also books the resize for the rate
	// limit when the result comes (noteResize).
	Decision enforceLimits(TimePoint now, Decision d, const BackendState &b) const;
	void noteResize(TimePoint now) { lastResize_ = now; }

	Limits limits_;
	std::optional<TimePoint> lastResize_;
	std::optional<TimePoint> nextCheck_;
};

} // namespace vmrd
