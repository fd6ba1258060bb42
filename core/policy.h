// SPDX-License-Identifier: MIT
// The resize policy: a pure function of events, samples, backend state and time.
#pragma once

#include <algorithm>
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
	// The time nextCheck() asked for has come, or an early signal came.
	virtual Decision onTimer(TimePoint now, const Sample &s, const BackendState &b) = 0;
	// An operator asked for a shrink check (SIGUSR1, vmrdctl reclaim):
	// what is spare goes back now, without waiting to see it stay spare.
	virtual Decision onCheck(TimePoint now, const Sample &s, const BackendState &b) { return onTimer(now, s, b); }
	// A resize finished; `result` says what the backend really did, `took`
	// how long the call ran, and `after` is the state it reported afterwards.
	virtual void onResult(TimePoint now, const Decision &asked, const CallResult &result, Micros took,
	                      const Sample &s, const BackendState &after) = 0;

	// The policy was made while memory may be plugged (at start, after a
	// reload): it schedules its first check, so that memory nobody uses
	// goes back without waiting for a pressure event.
	virtual void resume(TimePoint now, const BackendState &b) = 0;

	// Whether it decides from samples, so that an early signal that
	// demand may be rising (page allocations) is worth a look; onTimer()
	// takes it.
	virtual bool wantsEarlySignal() const = 0;

	// The timers and counters the next decision depends on, as name and
	// human value ("next_sample", "in 2s"), for vmrdctl status.
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
	// min_interval runs from a call's start, `took` before its result at
	// `now`: a long call (an unplug of a GiB takes over a second) adds no
	// dead time after it, in which a guest that needs memory again waits.
	void noteResize(TimePoint now, Micros took) { lastResize_ = now - took; }
	bool rateLimited(TimePoint now) const { return lastResize_ && now - *lastResize_ < limits_.minInterval; }
	// Plugged above the floor: there is memory to give back.
	bool aboveFloor(const BackendState &b) const { return b.plugged > std::max(limits_.min, b.minBytes); }

	// For describeState(): "next_check" = "in 4s" or "due"; "last_grow" = "3s ago".
	using StateList = std::vector<std::pair<std::string, std::string>>;
	static void addTimer(StateList &out, const char *name, TimePoint now, const std::optional<TimePoint> &at);
	static void addAgo(StateList &out, const char *name, TimePoint now, const std::optional<TimePoint> &at);
	static std::string ago(TimePoint now, TimePoint then);
	static Decision none(std::string why) { return {Decision::Action::None, 0, std::move(why)}; }

	Limits limits_;
	std::optional<TimePoint> lastResize_;
	std::optional<TimePoint> nextCheck_;
};

} // namespace vmrd
