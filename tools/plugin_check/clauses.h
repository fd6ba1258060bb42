// SPDX-License-Identifier: MIT
// The clauses of the plugin ABI that vmrd-plugin-check tests, each with the words of plugin.h it holds a plugin to.
#pragma once

#include <ostream>
#include <string>

#include "harness.h"

namespace vmrd::check {

struct Target {
	std::string path; // the plugin file
	Options options;  // passed to create(), as backend.options would be
	std::string procfs = "/proc";
	std::string sysfs = "/sys";
};

// Checks every clause, prints one line each (PASS, FAIL or SKIP, with the
// details below it) and a summary to `out`.  Returns the exit status: 0
// when all passed, 1 when any failed, 2 when none failed but some could
// not be checked (create() failed with these options).
int checkPlugin(const Target &target, std::ostream &out);

} // namespace vmrd::check
