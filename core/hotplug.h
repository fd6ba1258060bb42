// SPDX-License-Identifier: MIT
// Where hot-added memory lands: the onlining policy check and onlining blocks to ZONE_MOVABLE.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mem_stats.h"
#include "result.h"

namespace vmrd {

struct OnliningVerdict {
	bool ok = false;
	std::string message; // why not, and which kernel parameter fixes it
};

// Pure: judges auto_online_blocks and memory_hotplug.online_policy (empty if
// the kernel has no such parameter).
OnliningVerdict judgeOnlining(std::optional<OnlinePolicy> autoOnline, std::string_view onlinePolicy);

// Reads <sysfs>/devices/system/memory/auto_online_blocks and
// <sysfs>/module/memory_hotplug/parameters/online_policy, and judges them.
OnliningVerdict checkOnlining(const std::string &sysfs);

// Makes the kernel online new blocks to ZONE_MOVABLE (auto_online_blocks =
// online_movable) and onlines every offline block that way.  Returns how
// many blocks it onlined.
Result<unsigned> makeOnliningMovable(const std::string &sysfs);

// Every memoryN block under <sysfs>/devices/system/memory.
std::vector<MemoryBlock> readMemoryBlocks(const std::string &sysfs);

} // namespace vmrd
