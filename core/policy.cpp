// SPDX-License-Identifier: MIT
// The resize policy: a pure function of events, samples, backend state and time.
#include "policy.h"

#include <algorithm>

namespace vmrd {

const char *actionName(Decision::Action a)
{
	switch (a) {
	case Decision::Action::Plug:
		return "plug";
	case Decision::Action::Unplug:
		return "unplug";
	case Decision::Action::None:
		break;
	}
	return "none";
}

Policy::Policy(PolicyParams params, Limits limits) : params_(std::move(params)), limits_(limits) {}

Decision Policy::enforceLimits(TimePoint now, Decision d, const BackendState &b) const
{
	if (d.action == Decision::Action::None)
		return d;
	const uint64_t block = std::max<uint64_t>(b.blockSize, 1);
	const uint64_t stepMax = limits_.stepMax / block * block;
	const std::string wanted = std::string(actionName(d.action)) + " " + formatSize(d.bytes);
	auto none = [&](const std::string &why) {
		return Decision{Decision::Action::None, 0, wanted + " not done: " + why};
	};

	if (lastResize_ && now - *lastResize_ < limits_.minInterval)
		return none("rate limit, last resize " +
		            formatDuration(std::chrono::duration_cast<Micros>(now - *lastResize_)) +
		            " ago (limits.min_interval " + formatDuration(limits_.minInterval) + ")");
	uint64_t bytes = d.bytes;
	if (d.action == Decision::Action::Plug) {
		const uint64_t max = limits_.max ? std::min(limits_.max, b.maxBytes) : b.maxBytes;
		const uint64_t room = b.plugged < max ? (max - b.plugged) / block * block : 0;
		bytes = (bytes + block - 1) / block * block;
		bytes = std::min({bytes, room, stepMax});
		if (bytes == 0)
			return none("at the maximum, " + formatSize(b.plugged) + " of " + formatSize(max) + " plugged");
	} else {
		const uint64_t min = std::max(limits_.min, b.minBytes);
		const uint64_t above = b.plugged > min ? (b.plugged - min) / block * block : 0;
		bytes = bytes / block * block;
		bytes = std::min({bytes, above, stepMax});
		if (bytes == 0)
			return none(above == 0 ? "at the minimum of " + formatSize(min)
			                       : "less than one block (" + formatSize(block) + ") to release");
	}
	if (bytes != d.bytes)
		d.reason += "; bounded to " + formatSize(bytes);
	d.bytes = bytes;
	return d;
}

Decision Policy::onPressure(TimePoint now, const MemInfo &mem, const BackendState &b)
{
	lastEvent_ = now;
	scheduleShrink(now);
	if (mem.memAvailable >= params_.headroom)
		return {Decision::Action::None, 0,
		        "pressure, but MemAvailable " + formatSize(mem.memAvailable) + " is above the headroom " +
		                formatSize(params_.headroom) + ": more memory would not help"};
	// Grow fast: an event soon after a grow means the last step was too small.
	const bool repeated = lastGrow_ && now - *lastGrow_ < params_.repeatWindow;
	uint64_t step = repeated ? std::min(lastStep_ * 2, params_.growStepMax) : params_.growStep;
	step = std::max(step, params_.headroom - mem.memAvailable);
	Decision d{Decision::Action::Plug, step,
	           "pressure with MemAvailable " + formatSize(mem.memAvailable) + " below the headroom " +
	                   formatSize(params_.headroom) + (repeated ? "; repeated, step doubled" : "")};
	return enforceLimits(now, d, b);
}

Decision Policy::onTimer(TimePoint now, const MemInfo &mem, const BackendState &b)
{
	nextCheck_.reset();
	const uint64_t spare = mem.memAvailable > params_.headroom ? mem.memAvailable - params_.headroom : 0;
	// Never ask for more than the guest can give without swapping: MemAvailable
	// is the kernel's own estimate of that.
	Decision d{Decision::Action::Unplug, std::min(spare, params_.shrinkStepMax),
	           "no pressure for " + formatDuration(params_.shrinkIdle) + "; MemAvailable " +
	                   formatSize(mem.memAvailable) + " is " + formatSize(spare) + " above the headroom"};
	if (spare == 0)
		return {Decision::Action::None, 0,
		        "idle, but MemAvailable " + formatSize(mem.memAvailable) + " is within the headroom"};
	Decision bounded = enforceLimits(now, d, b);
	if (bounded.action == Decision::Action::None && lastResize_ && now - *lastResize_ < limits_.minInterval)
		nextCheck_ = *lastResize_ + limits_.minInterval;
	return bounded;
}

void Policy::onResult(TimePoint now, const Decision &asked, const CallResult &r)
{
	lastResize_ = now;
	if (asked.action == Decision::Action::Plug) {
		lastGrow_ = now;
		lastStep_ = asked.bytes;
		scheduleShrink(now);
		return;
	}
	if (r.code != 0 || r.done < asked.bytes) {
		// Back off: the guest could not give back what it seemed to have.
		backoff_ = std::min(backoff_ + 1, 16u);
		scheduleShrink(now);
	} else {
		// Keep draining, one step per rate-limit interval.
		backoff_ = 0;
		nextCheck_ = now + limits_.minInterval;
	}
}

void Policy::scheduleShrink(TimePoint from)
{
	Micros wait = params_.shrinkIdle;
	for (unsigned i = 0; i < backoff_ && wait < params_.backoffMax; i++)
		wait *= 2;
	nextCheck_ = from + std::min(wait, params_.backoffMax);
}

} // namespace vmrd
