// SPDX-License-Identifier: MIT
// Parsing and printing of sizes ("128M", "2GiB") and durations ("50ms", "10s").
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vmrd {

using Micros = std::chrono::microseconds;
using TimePoint = std::chrono::steady_clock::time_point;

// Sizes are binary: K, M, G, T (with optional "iB" or "B") multiply by 1024^n.
// A bare number is bytes.  Returns nothing on bad syntax or overflow.
std::optional<uint64_t> parseSize(std::string_view text);

// Durations need a unit: us, ms, s, m, h.  "0" alone is allowed.
std::optional<Micros> parseDuration(std::string_view text);

// "128 MiB", "1.5 GiB", "4096 B": for messages.
std::string formatSize(uint64_t bytes);
std::string formatDuration(Micros d);

} // namespace vmrd
