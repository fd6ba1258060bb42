// SPDX-License-Identifier: MIT
// The policy's tunables and the hard limits, with each preset's defaults.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "units.h"

namespace vmrd {

struct TriggerConfig {
	enum class Kind { Some, Full };
	Kind kind = Kind::Some;
	Micros stall{0};
	Micros window{0};
};

// Every member has a YAML key under `policy:`, named in the comment.  Each
// preset uses its own keys; config.cpp refuses the other preset's keys.
struct PolicyParams {
	std::string preset = "server"; // preset

	// server: size to the demand measured by sampling while it pays.
	uint64_t headroom = 96ull << 20;                  // headroom: the least MemAvailable kept
	uint64_t growStep = 32ull << 20;                  // grow_step: the least one grow plugs
	Micros sampleMin{std::chrono::milliseconds(100)}; // sample_min: sampling while demand nears the reserve
	Micros sampleMax{std::chrono::seconds(2)};        // sample_max: ... and while it holds still
	Micros shrinkHold{std::chrono::seconds(2)};       // shrink_hold: spare this long before it goes back
	uint64_t shrinkStepMax = 2ull << 30;              // shrink_step_max
	Micros backoffMax{std::chrono::minutes(1)};       // backoff_max: the longest shrink_hold after failures

	// rfc-reference: the reference behaviour of the vmrd RFC, one chunk at a time.
	uint64_t chunk = 4ull << 20;                            // chunk
	uint64_t growFreeBelow = 2ull << 20;                    // grow_free_below
	Micros idleShort{std::chrono::seconds(3)};              // idle_short
	Micros idleMedium{std::chrono::seconds(8)};             // idle_medium
	Micros idleLong{std::chrono::seconds(15)};              // idle_long
	unsigned idleMediumChunks = 5;                          // idle_medium_chunks
	unsigned idleLongChunks = 10;                           // idle_long_chunks
	unsigned swapDiscount = 50;                             // swap_discount, percent
	unsigned releaseMaxChunks = 5;                          // release_max_chunks
	unsigned releaseRetries = 10;                           // release_retries
	Micros retryInterval{std::chrono::seconds(1)};          // retry_interval
	Micros holdoffBase{std::chrono::milliseconds(3000)};    // holdoff_base
	Micros holdoffPerChunk{std::chrono::milliseconds(500)}; // holdoff_per_chunk
	Micros holdoffMax{std::chrono::milliseconds(8000)};     // holdoff_max
	uint64_t holdoffOverridePages = 1000;                   // holdoff_override_pages
	bool decayWait = false;                                 // decay_wait
};

// Hard bounds: limits.min and max are read through bounds() (bounds.h); step_max and
// min_interval are applied to every decision by Policy::enforceLimits.
struct Limits {
	uint64_t min = 0;                            // min: never plug less than this in total
	uint64_t max = 0;                            // max: never more; 0 = the backend's maximum
	uint64_t stepMax = 2ull << 30;               // step_max: largest single plug or unplug
	Micros minInterval{std::chrono::seconds(1)}; // min_interval: between two resize calls
};

struct Preset {
	PolicyParams params;
	std::vector<TriggerConfig> triggers; // psi.triggers when the config has none
	std::vector<std::string> keys;       // the policy keys this preset reads
};

// The names `policy.preset` accepts.
std::vector<std::string> presetNames();
// Why a key the server preset had before policy v2 is gone, or nothing.
std::optional<std::string> retiredPolicyKey(const std::string &key);
// A preset's defaults, or nothing for an unknown name.
std::optional<Preset> preset(const std::string &name);
// The keys the params' preset reads, each with its value as YAML would write it.
std::vector<std::pair<std::string, std::string>> describePolicy(const PolicyParams &params);

} // namespace vmrd
