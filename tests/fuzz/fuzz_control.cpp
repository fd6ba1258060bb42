// SPDX-License-Identifier: MIT
// Fuzz target: the control socket's request parser and the listen address parser.
#include "control.h"
#include "fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const std::string_view text = fuzzText(data, size);
	if (auto r = vmrd::parseControlRequest(text)) {
		const bool resize =
		        r->command == vmrd::ControlCommand::Grow || r->command == vmrd::ControlCommand::Shrink;
		FUZZ_CHECK(resize == (r->bytes > 0));
	} else {
		FUZZ_CHECK(!r.error().message.empty());
	}
	if (auto a = vmrd::parseListenAddress(std::string(text)))
		FUZZ_CHECK(a->length > 0 && a->length <= sizeof(a->addr));
	return 0;
}
