// SPDX-License-Identifier: MIT
// vmrd-plugin-check: tests a backend plugin against the ABI contract of plugin.h, clause by clause.
#include <iostream>
#include <sysexits.h>

#include <boost/program_options.hpp>

#include "clauses.h"
#include "cli.h"

namespace po = boost::program_options;
using namespace vmrd::check;

int main(int argc, char **argv)
{
	Target target;
	std::vector<std::string> options;
	po::options_description desc(
	        "Usage: vmrd-plugin-check [OPTIONS] PLUGIN.so\n\n"
	        "Tests a vmrd backend plugin against the ABI contract of <vmrd/plugin.h>, one clause at a time, each\n"
	        "in a child process. Prints PASS, FAIL or SKIP for each clause with the header's words. Exit status:\n"
	        "0 all passed, 1 a clause failed, 2 none failed but some could not be checked because create()\n"
	        "failed with these options, 64 bad usage.\n\nOptions");
	// clang-format off
	desc.add_options()
		("option,o", po::value<std::vector<std::string>>(&options)->composing(),
		 "KEY=VALUE passed to create(), as a backend.options entry (repeatable)")
		("procfs", po::value<std::string>(&target.procfs), "the procfs root lent to the plugin (default /proc)")
		("sysfs", po::value<std::string>(&target.sysfs), "the sysfs root lent to the plugin (default /sys)")
		("help,h", "print this help, exit");
	// clang-format on
	po::options_description hidden;
	hidden.add_options()("plugin", po::value<std::string>(&target.path));
	po::options_description all;
	all.add(desc).add(hidden);
	po::positional_options_description positional;
	positional.add("plugin", 1);
	po::variables_map vm;
	if (auto code = vmrd::parseCommandLine(argc, argv, "vmrd-plugin-check", desc, all, positional, vm))
		return *code;
	if (target.path.empty()) {
		std::cerr << "vmrd-plugin-check: name the plugin to check (vmrd-backend-NAME.so)\n";
		return EX_USAGE;
	}
	for (const auto &o : options) {
		const auto eq = o.find('=');
		if (eq == std::string::npos || eq == 0) {
			std::cerr << "vmrd-plugin-check: --option '" << o << "' is not KEY=VALUE\n";
			return EX_USAGE;
		}
		target.options.emplace_back(o.substr(0, eq), o.substr(eq + 1));
	}
	return checkPlugin(target, std::cout);
}
