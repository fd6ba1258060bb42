// SPDX-License-Identifier: MIT
// Fuzz target: the parsers of /proc/pressure/memory, meminfo, zoneinfo and
// vmstat, and of the memory block sysfs files.  The kernel is trusted, but
// a parser must not crash on a format it did not expect.
#include "fuzz.h"
#include "mem_stats.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const std::string_view text = fuzzText(data, size);
	if (auto psi = vmrd::parsePsi(text))
		FUZZ_CHECK(psi->some.avg10 >= 0 && psi->some.avg60 >= 0 && psi->some.avg300 >= 0);
	(void)vmrd::parseMeminfo(text);
	if (auto zones = vmrd::parseZoneinfo(text, 4096))
		(void)vmrd::sumZones(*zones, "Movable");
	(void)vmrd::parseVmstat(text);
	(void)vmrd::parseBlockSize(text);
	(void)vmrd::parseOnlinePolicy(text);
	return 0;
}
