// SPDX-License-Identifier: MIT
// The resize policy: a pure function of events, samples, backend state and time.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "mem_stats.h"
#include "plugin_loader.h"
#include "policy_params.h"

namespace vmrd {

using TimePoint = std::chrono::steady_clock::time_point;

struct Decision {
	enum class Action { None, Plug, Unplug };
	Action action = Action::None;
	uint64_t bytes = 0;
	std::string reason;
};

const char *actionName(Decision::Action a);

// The daemon feeds it events and results; it never does I/O and never reads
// a clock, so tests drive it with made-up times.
class Policy
{
public:
	Policy(PolicyParams params, Limits limits);

	// A PSI trigger fired.
	Decision onPressure(TimePoint now, const MemInfo &mem, const BackendState &backend);
	// The time nextCheck() asked for has come.
	Decision onTimer(TimePoint now, const MemInfo &mem, const BackendState &backend);
	// A resize finished: `asked` bytes were requested, `result` says what happened.
	void onResult(TimePoint now, const Decision &asked, const CallResult &result);

	// When onTimer() should run next, if at all.
	std::optional<TimePoint> nextCheck() const { return nextCheck_; }

	const PolicyParams &params() const { return params_; }
	const Limits &limits() const { return limits_; }

private:
	// Every decision passes through here: block alignment, min, max, step
	// cap and the rate limit are enforced in this one place.
	Decision enforceLimits(TimePoint now, Decision d, const BackendState &backend) const;
	void scheduleShrink(TimePoint from);

	PolicyParams params_;
	Limits limits_;
	std::optional<TimePoint> lastEvent_;
	std::optional<TimePoint> lastGrow_;
	std::optional<TimePoint> lastResize_;
	uint64_t lastStep_ = 0;
	unsigned backoff_ = 0; // shrink failures in a row
	std::optional<TimePoint> nextCheck_;
};

} // namespace vmrd
