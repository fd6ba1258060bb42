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

#include "mem_stats.h"
#include "plugin_loader.h"
#include "policy_params.h"

namespace vmrd {

using TimePoint = std::chrono::steady_clock::time_point;

// What the daemon measured just before a decision.
struct Sample {
	MemInfo mem;
	ZoneStats movable;           // ZONE_MOVABLE, summed over nodes
	uint64_t pgallocMovable = 0; // /proc/vmstat
	double someAvg10 = 0;        // memory PSI of the system, percent
	double someAvg60 = 0;
	double fullAvg10 = 0;
	uint64_t someTotalUs = 0; // cumulative stall time
	uint64_t fullTotalUs = 0;
};

struct Decision {
	enum class Action { None, Plug, Unplug };
	Action action = Action::None;
	uint64_t bytes = 0;
	std::string reason;
};

const char *actionName(Decision::Action a);
// "plug 128 MiB: reason" or "nothing: reason": the same words in the log and in replays.
std::string describeDecision(const Decision &d);

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
