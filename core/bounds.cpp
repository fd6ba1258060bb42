// SPDX-License-Identifier: MIT
// The hard bounds on the plugged total, and the correction of a device found outside them.
#include "bounds.h"

#include <algorithm>

namespace vmrd {

Bounds bounds(const Limits &limits, const BackendState &state)
{
	Bounds b;
	b.block = std::max<uint64_t>(state.blockSize, 1);
	b.ceiling = limits.max ? std::min(limits.max, state.maxBytes) : state.maxBytes;
	b.ceilingName = limits.max && limits.max < state.maxBytes ? "limits.max" : "the backend's maximum";
	b.floor = std::min(std::max(limits.min, state.minBytes), state.maxBytes);
	b.floorName = limits.min > state.minBytes ? "limits.min" : "the backend's minimum";
	return b;
}

uint64_t Bounds::room(Decision::Action action, uint64_t plugged) const
{
	if (action == Decision::Action::Plug)
		return plugged < ceiling ? (ceiling - plugged) / block * block : 0;
	if (action == Decision::Action::Unplug)
		return plugged > floor ? (plugged - floor) / block * block : 0;
	return 0;
}

std::optional<Decision> boundsCorrection(const Limits &limits, const BackendState &state)
{
	const Bounds b = bounds(limits, state);
	auto roundUp = [&](uint64_t v) { return (v + b.block - 1) / b.block * b.block; };
	if (state.plugged > b.ceiling && state.plugged > b.floor)
		return Decision{
		        Decision::Action::Unplug, std::min(roundUp(state.plugged - b.ceiling), state.plugged - b.floor),
		        formatSize(state.plugged) + " plugged, above " + b.ceilingName + " " + formatSize(b.ceiling)};
	if (state.plugged < b.floor)
		return Decision{Decision::Action::Plug, roundUp(b.floor - state.plugged),
		                formatSize(state.plugged) + " plugged, below " + b.floorName + " " +
		                        formatSize(b.floor)};
	return std::nullopt;
}

} // namespace vmrd
