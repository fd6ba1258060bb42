// SPDX-License-Identifier: MIT
// Pure parsers for the kernel's memory statistics files.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

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

} // namespace vmrd
