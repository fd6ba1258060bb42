// SPDX-License-Identifier: MIT
// The hard bounds on the plugged total: limits.min and limits.max within the backend's own range.
#pragma once

#include <optional>

#include "model.h"
#include "policy_params.h"

namespace vmrd {

// Every rule about the bounds reads them from bounds(): the policy's
// decisions, the trim just before a call and the correction of a device
// found outside them.  A plug may reach the ceiling, an unplug the floor.
struct Bounds {
	uint64_t floor = 0;
	uint64_t ceiling = 0;
	uint64_t block = 1;
	const char *floorName = "";   // "limits.min", or the backend's minimum
	const char *ceilingName = ""; // "limits.max", or the backend's maximum

	// The bytes, in whole blocks, that a plug or unplug may move from
	// `plugged` without leaving [floor, ceiling]; 0 if none.
	uint64_t room(Decision::Action action, uint64_t plugged) const;
};

Bounds bounds(const Limits &limits, const BackendState &state);

// A device found outside the bounds (a backend that did more than asked, a
// resize from outside vmrd): the resize that brings it back, ignoring
// step_max and the rate limit, because the bounds are the promise to the
// operator.  Nothing when the device is within them.
std::optional<Decision> boundsCorrection(const Limits &limits, const BackendState &state);

} // namespace vmrd
