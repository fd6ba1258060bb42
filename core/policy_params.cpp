// SPDX-License-Identifier: MIT
// The presets: named sets of policy defaults and PSI triggers.
#include "policy_params.h"

#include <algorithm>

namespace vmrd {

using std::chrono::milliseconds;

std::vector<std::string> presetNames()
{
	return {"server", "rfc-reference"};
}

std::optional<std::string> retiredPolicyKey(const std::string &key)
{
	static const std::vector<std::pair<std::string, std::string>> retired{
	        {"grow_step_max", "grow steps now follow the measured demand"},
	        {"repeat_window", "grow steps now follow the measured demand"},
	        {"severity_boost", "grow steps now follow the measured demand"},
	        {"shrink_idle", "memory now goes back once it stayed spare for shrink_hold"},
	        {"cooldown", "the band between the grow and shrink thresholds now keeps demand from flapping"},
	};
	for (const auto &kv : retired)
		if (kv.first == key)
			return kv.second;
	return std::nullopt;
}

std::optional<Preset> preset(const std::string &name)
{
	Preset p;
	p.params.preset = name;
	if (name == "server") {
		// The defaults are the struct's initialisers.
		p.triggers = {{TriggerConfig::Kind::Some, milliseconds(100), milliseconds(1000)},
		              {TriggerConfig::Kind::Full, milliseconds(50), milliseconds(1000)}};
		p.keys = {"headroom",    "grow_step",       "sample_min", "sample_max",
		          "shrink_hold", "shrink_step_max", "backoff_max"};
		return p;
	}
	if (name == "rfc-reference") {
		// The vmrd RFC: ten `some` triggers, 5 to 50 ms in a 50 ms window.
		for (int ms = 5; ms <= 50; ms += 5)
			p.triggers.push_back({TriggerConfig::Kind::Some, milliseconds(ms), milliseconds(50)});
		p.keys = {"chunk",
		          "grow_free_below",
		          "idle_short",
		          "idle_medium",
		          "idle_long",
		          "idle_medium_chunks",
		          "idle_long_chunks",
		          "swap_discount",
		          "release_max_chunks",
		          "release_retries",
		          "retry_interval",
		          "holdoff_base",
		          "holdoff_per_chunk",
		          "holdoff_max",
		          "holdoff_override_pages",
		          "decay_wait"};
		return p;
	}
	return std::nullopt;
}

std::vector<std::pair<std::string, std::string>> describePolicy(const PolicyParams &p)
{
	const std::vector<std::pair<std::string, std::string>> all{
	        {"headroom", formatSize(p.headroom)},
	        {"grow_step", formatSize(p.growStep)},
	        {"sample_min", formatDuration(p.sampleMin)},
	        {"sample_max", formatDuration(p.sampleMax)},
	        {"shrink_hold", formatDuration(p.shrinkHold)},
	        {"shrink_step_max", formatSize(p.shrinkStepMax)},
	        {"backoff_max", formatDuration(p.backoffMax)},
	        {"chunk", formatSize(p.chunk)},
	        {"grow_free_below", formatSize(p.growFreeBelow)},
	        {"idle_short", formatDuration(p.idleShort)},
	        {"idle_medium", formatDuration(p.idleMedium)},
	        {"idle_long", formatDuration(p.idleLong)},
	        {"idle_medium_chunks", std::to_string(p.idleMediumChunks)},
	        {"idle_long_chunks", std::to_string(p.idleLongChunks)},
	        {"swap_discount", std::to_string(p.swapDiscount)},
	        {"release_max_chunks", std::to_string(p.releaseMaxChunks)},
	        {"release_retries", std::to_string(p.releaseRetries)},
	        {"retry_interval", formatDuration(p.retryInterval)},
	        {"holdoff_base", formatDuration(p.holdoffBase)},
	        {"holdoff_per_chunk", formatDuration(p.holdoffPerChunk)},
	        {"holdoff_max", formatDuration(p.holdoffMax)},
	        {"holdoff_override_pages", std::to_string(p.holdoffOverridePages)},
	        {"decay_wait", p.decayWait ? "true" : "false"},
	};
	std::vector<std::pair<std::string, std::string>> out;
	auto pr = preset(p.preset);
	for (const auto &kv : all)
		if (pr && std::find(pr->keys.begin(), pr->keys.end(), kv.first) != pr->keys.end())
			out.push_back(kv);
	return out;
}

} // namespace vmrd
