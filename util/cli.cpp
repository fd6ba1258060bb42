// SPDX-License-Identifier: MIT
// The command-line handling that vmrd, vmrd-replay and vmrd-broker share.
#include "cli.h"

#include <iostream>
#include <sysexits.h>

namespace po = boost::program_options;

namespace vmrd {

std::optional<int> parseCommandLine(int argc, char **argv, const char *program, const po::options_description &visible,
                                    const po::options_description &all,
                                    const po::positional_options_description &positional, po::variables_map &vm)
{
	try {
		po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
		po::notify(vm);
	} catch (const po::error &e) {
		std::cerr << program << ": " << e.what() << "\nTry '" << program << " --help'.\n";
		return EX_USAGE;
	}
	if (vm.count("help")) {
		std::cout << visible << "\n";
		return 0;
	}
	return std::nullopt;
}

} // namespace vmrd
