// SPDX-License-Identifier: MIT
// The outcome of a backend call, one type for the daemon and the plugins that report it.
#pragma once

#include <cstdint>
#include <string>

namespace vmrd {

// A partial result is normal, not an error: `done` counts even on failure.
struct CallResult {
	int code = 0;      // 0 or negative errno
	uint64_t done = 0; // bytes really plugged or released
	std::string message;
};

} // namespace vmrd
