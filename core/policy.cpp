// SPDX-License-Identifier: MIT
// The resize policy's common part: block alignment, step_max and the rate limit.
#include "policy.h"

#include "bounds.h"
#include "policies.h"

namespace vmrd {

std::string Policy::ago(TimePoint now, TimePoint then)
{
	return formatDuration(std::chrono::duration_cast<Micros>(now - then));
}

void Policy::addTimer(StateList &out, const char *name, TimePoint now, const std::optional<TimePoint> &at)
{
	if (at)
		out.emplace_back(name, *at > now ? "in " + ago(*at, now) : "due");
}

void Policy::addAgo(StateList &out, const char *name, TimePoint now, const std::optional<TimePoint> &at)
{
	if (at)
		out.emplace_back(name, ago(now, *at) + " ago");
}

std::unique_ptr<Policy> Policy::create(const PolicyParams &params, const Limits &limits)
{
	if (params.preset == "rfc-reference")
		return makeRfcReferencePolicy(params, limits);
	return makeServerPolicy(params, limits);
}

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

	if (rateLimited(now))
		return none("rate limit, last resize " + ago(now, *lastResize_) + " ago (limits.min_interval " +
		            formatDuration(limits_.minInterval) + ")");
	// Align to the block first (up for a plug, down for an unplug), then cap.
	uint64_t bytes =
	        d.action == Decision::Action::Plug ? (d.bytes + block - 1) / block * block : d.bytes / block * block;
	std::string why = bytes != d.bytes ? "aligned to the " + formatSize(block) + " block" : "";
	auto cap = [&](uint64_t limit, const std::string &name) {
		if (bytes > limit) {
			bytes = limit;
			why = name;
		}
	};
	const Bounds bound = bounds(limits_, b);
	const uint64_t room = bound.room(d.action, b.plugged);
	cap(stepMax, "limits.step_max");
	cap(room, d.action == Decision::Action::Plug ? bound.ceilingName : bound.floorName);
	if (bytes == 0 && d.action == Decision::Action::Plug)
		return none("at the maximum, " + formatSize(b.plugged) + " of " + formatSize(bound.ceiling) +
		            " plugged");
	if (bytes == 0)
		return none(room == 0 ? "at the minimum of " + formatSize(bound.floor)
		                      : "less than one block (" + formatSize(block) + ") to release");
	if (bytes != d.bytes)
		d.reason += "; " + formatSize(bytes) + " (" + why + ")";
	d.bytes = bytes;
	return d;
}

} // namespace vmrd
