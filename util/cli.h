// SPDX-License-Identifier: MIT
// The command-line handling that vmrd, vmrd-replay and vmrd-broker share.
#pragma once

#include <optional>

#include <boost/program_options.hpp>

namespace vmrd {

// Parses argv into `vm`.  Returns an exit code when the program should stop
// now: 0 after printing `visible` for --help, EX_USAGE after saying what is
// wrong with the command line.  `all` may add hidden and positional options.
std::optional<int> parseCommandLine(int argc, char **argv, const char *program,
                                    const boost::program_options::options_description &visible,
                                    const boost::program_options::options_description &all,
                                    const boost::program_options::positional_options_description &positional,
                                    boost::program_options::variables_map &vm);

} // namespace vmrd
