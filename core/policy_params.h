// SPDX-License-Identifier: MIT
// The policy's tunables and the hard limits, with each preset's defaults.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "units.h"

namespace vmrd {

// Every member has a YAML key under `policy:` of the same name in snake_case.
struct PolicyParams {
	std::string preset = "server";
	uint64_t growStep = 128ull << 20;              // first step after a quiet period
	uint64_t growStepMax = 1ull << 30;             // doubling stops here
	Micros repeatWindow{std::chrono::seconds(10)}; // an event this soon after a grow doubles the step
	uint64_t headroom = 256ull << 20;              // MemAvailable to keep; grow only below it
	Micros shrinkIdle{std::chrono::seconds(30)};   // no event for this long before a shrink
	uint64_t shrinkStepMax = 512ull << 20;         // released per shrink cycle at most
	Micros backoffMax{std::chrono::minutes(5)};    // idle wait after failed shrinks doubles up to this
};

// Hard bounds, enforced in one place (policy.cpp: enforceLimits).
struct Limits {
	uint64_t min = 0;                            // never plug less than this in total
	uint64_t max = 0;                            // never plug more; 0 = the backend's maximum
	uint64_t stepMax = 2ull << 30;               // largest single plug or unplug
	Micros minInterval{std::chrono::seconds(1)}; // between two resize calls
};

// The names `policy.preset` accepts.
std::vector<std::string> presetNames();
// Defaults of a preset, or nothing for an unknown name.
std::optional<PolicyParams> presetDefaults(const std::string &name);

} // namespace vmrd
