// SPDX-License-Identifier: MIT
// vmrd-replay: prints every decision the policy makes on a recorded trace.
#include <iostream>
#include <sysexits.h>

#include <boost/program_options.hpp>

#include "cli.h"
#include "config.h"
#include "replay.h"

namespace po = boost::program_options;
using namespace vmrd;

int main(int argc, char **argv)
{
	std::string configPath, tracePath, tail = "2m";
	po::options_description desc("Usage: vmrd-replay [--config FILE] [--tail DURATION] TRACE\n\n"
	                             "Feeds a trace recorded by vmrd (daemon.trace) through the policy with a\n"
	                             "simulated backend and prints every decision with its reason.\n\nOptions");
	// clang-format off
	desc.add_options()
		("config,c", po::value<std::string>(&configPath),
		 "the policy and limits to use (default: the server preset's defaults)")
		("tail", po::value<std::string>(&tail), "keep running timers this long after the last record (2m)")
		("help,h", "print this help, exit");
	// clang-format on
	po::options_description hidden;
	hidden.add_options()("trace", po::value<std::string>(&tracePath));
	po::options_description all;
	all.add(desc).add(hidden);
	po::positional_options_description pos;
	pos.add("trace", 1);
	po::variables_map vm;
	if (auto code = parseCommandLine(argc, argv, "vmrd-replay", desc, all, pos, vm))
		return *code;
	if (tracePath.empty()) {
		std::cerr << "vmrd-replay: name a trace file\nTry 'vmrd-replay --help'.\n";
		return EX_USAGE;
	}
	auto tailDuration = parseDuration(tail);
	if (!tailDuration) {
		std::cerr << "vmrd-replay: --tail: '" << tail << "' is not a duration\n";
		return EX_USAGE;
	}
	Result<Config> config = parseConfig("version: 1\nbackend: {name: replay}\n", "(defaults)");
	if (!configPath.empty())
		config = loadConfig(configPath);
	if (!config) {
		std::cerr << config.error().message << "\n";
		return EX_CONFIG;
	}
	auto trace = readTrace(tracePath);
	if (!trace) {
		std::cerr << trace.error().message << "\n";
		return EX_DATAERR;
	}
	for (const auto &line : replay(config->policy, config->limits, *trace, *tailDuration))
		std::cout << line << "\n";
	return 0;
}
