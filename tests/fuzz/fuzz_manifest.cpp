// SPDX-License-Identifier: MIT
// Fuzz target: the plugin manifest reader, which parses a plugin's ELF file
// before any of the plugin's code runs.
#include "fuzz.h"
#include "manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	auto m = vmrd::parseManifest(fuzzText(data, size));
	if (m) {
		(void)vmrd::manifestString(m->name, sizeof(m->name));
		(void)vmrd::manifestString(m->vendor, sizeof(m->vendor));
		(void)vmrd::manifestString(m->version, sizeof(m->version));
	} else {
		FUZZ_CHECK(!m.error().message.empty());
	}
	return 0;
}
