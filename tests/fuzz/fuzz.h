// SPDX-License-Identifier: MIT
// What every fuzz target shares: the libFuzzer entry point and an invariant check.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

inline std::string_view fuzzText(const uint8_t *data, size_t size)
{
	return {reinterpret_cast<const char *>(data), size};
}

// A broken invariant is a crash, so libFuzzer keeps the input.
#define FUZZ_CHECK(cond)                                                                                               \
	do {                                                                                                           \
		if (!(cond)) {                                                                                         \
			std::fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);              \
			std::abort();                                                                                  \
		}                                                                                                      \
	} while (0)
