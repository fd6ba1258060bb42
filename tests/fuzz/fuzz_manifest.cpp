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
		(void)vmrd::checkManifest(*m);
	} else {
		FUZZ_CHECK(!m.error().message.empty());
	}
	// The same walk with another visitor: vmrd-plugin-check's exports.
	auto exports = vmrd::exportedSymbols(fuzzText(data, size));
	FUZZ_CHECK(exports || !exports.error().message.empty());
	return 0;
}
