// SPDX-License-Identifier: MIT
// Pure parsers for the kernel's memory statistics files.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vmrd {

// /proc/meminfo, in bytes.
struct MemInfo {
	uint64_t memTotal = 0;
	uint64_t memFree = 0;
	uint64_t memAvailable = 0;
	uint64_t swapTotal = 0;
	uint64_t swapFree = 0;
};

// Needs MemTotal, MemFree and MemAvailable; other lines are optional and
// unknown lines are ignored (the kernel adds some in most releases).
std::optional<MemInfo> parseMeminfo(std::string_view text);

// One line of a PSI file: "some avg10=0.00 avg60=0.00 avg300=0.00 total=0".
struct PsiLine {
	double avg10 = 0;
	double avg60 = 0;
	double avg300 = 0;
	uint64_t totalUs = 0; // cumulative stall time in microseconds
};

struct PsiStats {
	PsiLine some;
	std::optional<PsiLine> full; // absent for the system-wide CPU file
};

std::optional<PsiStats> parsePsi(std::string_view text);

// One zone of /proc/zoneinfo, in bytes.
struct ZoneStats {
	unsigned node = 0;
	std::string name; // "DMA", "DMA32", "Normal", "Movable", ...
	uint64_t free = 0;
	uint64_t inactiveAnon = 0;
	uint64_t inactiveFile = 0;
	uint64_t managed = 0;
	uint64_t present = 0;
};

// Every zone; pages are converted with `pageSize`.  Zones the kernel lists
// but never populated (present 0) are kept: callers filter.
std::optional<std::vector<ZoneStats>> parseZoneinfo(std::string_view text, uint64_t pageSize);

// The sum over every node of the zones called `name`.
ZoneStats sumZones(const std::vector<ZoneStats> &zones, std::string_view name);

// The /proc/vmstat counters vmrd uses (pages or events, as the kernel counts).
struct VmStat {
	uint64_t pgallocMovable = 0;
	uint64_t pgscanKswapd = 0;
	uint64_t pgscanDirect = 0;
	uint64_t pgstealKswapd = 0;
	uint64_t pgstealDirect = 0;
	uint64_t workingsetRefaultAnon = 0;
	uint64_t workingsetRefaultFile = 0;
};

// Needs pgalloc_movable; the other counters are 0 where the kernel lacks them.
std::optional<VmStat> parseVmstat(std::string_view text);

// A cgroup v2 memory controller's usage, in bytes.
struct CgroupMemory {
	uint64_t current = 0; // memory.current
	uint64_t fileLru = 0; // page cache on the file LRU lists (memory.stat active_file + inactive_file)
};

// memory.current and memory.stat; needs both LRU lines, which every kernel
// with cgroup v2 has.
std::optional<CgroupMemory> parseCgroupMemory(std::string_view current, std::string_view stat);

// /sys/devices/system/memory/block_size_bytes: hexadecimal without 0x.
std::optional<uint64_t> parseBlockSize(std::string_view text);

// What the kernel does with hot-added memory blocks.
enum class OnlinePolicy { Offline, Online, OnlineKernel, OnlineMovable };
// /sys/devices/system/memory/auto_online_blocks.
std::optional<OnlinePolicy> parseOnlinePolicy(std::string_view text);

struct MemoryBlock {
	unsigned index = 0;   // memoryN
	bool online = false;  // state "online"
	bool movable = false; // online in ZONE_MOVABLE (valid_zones "Movable")
};

} // namespace vmrd
