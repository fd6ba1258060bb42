// SPDX-License-Identifier: MIT
// Fuzz target: the YAML config loader, sizes and durations included.
#include "config.h"
#include "fuzz.h"
#include "log.h"
#include "units.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setLogLevel(vmrd::LogLevel::Error);
	const std::string text(fuzzText(data, size));
	auto config = vmrd::parseConfig(text, "fuzz.yaml");
	if (config) {
		// What the loader accepts is consistent.
		const auto &l = config->limits;
		FUZZ_CHECK(l.max == 0 || l.min <= l.max);
		FUZZ_CHECK((config->backend.choice == vmrd::BackendConfig::Choice::Auto) ==
		           config->backend.candidates.empty());
	} else {
		FUZZ_CHECK(!config.error().message.empty());
	}
	// The scalars alone, as the loader reads them.
	if (auto bytes = vmrd::parseSize(text))
		FUZZ_CHECK(!vmrd::formatSize(*bytes).empty());
	if (auto d = vmrd::parseDuration(text))
		FUZZ_CHECK(d->count() >= 0 && !vmrd::formatDuration(*d).empty());
	return 0;
}
