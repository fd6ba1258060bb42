// SPDX-License-Identifier: MIT
// vmrd-replay: prints every decision a Controller makes on a recorded event log.
#include <algorithm>
#include <iostream>
#include <sysexits.h>

#include <boost/program_options.hpp>

#include "cli.h"
#include "config.h"
#include "log.h"
#include "replay.h"

namespace po = boost::program_options;
using namespace vmrd;

int main(int argc, char **argv)
{
	std::string configPath, tracePath, tail = "2m";
	bool simulate = false, check = false;
	po::options_description desc(
	        "Usage: vmrd-replay [--config FILE] [--simulate [--tail DURATION] | --check] TRACE\n\n"
	        "Feeds an event log recorded by vmrd (daemon.trace) to the daemon's controller and prints\n"
	        "every decision with its reason.  By default every recorded input is fed, backend\n"
	        "results included: with the config the daemon ran with, that gives exactly its\n"
	        "decisions.  --simulate feeds only PSI events, stall readings and operator commands\n"
	        "and simulates the backend: what another config would have decided.\n\nOptions");
	// clang-format off
	desc.add_options()
		("config,c", po::value<std::string>(&configPath),
		 "the policy and limits to use (default: the server preset's defaults)")
		("simulate", po::bool_switch(&simulate), "simulate the backend and the timers")
		("tail", po::value<std::string>(&tail), "with --simulate: run timers this long after the last record (2m)")
		("check", po::bool_switch(&check),
		 "compare the decisions with those the trace recorded; exit 1 on the first difference")
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
	// The decisions are the output; the controller's own log would repeat them.
	setLogLevel(LogLevel::Warning);
	auto trace = readTrace(tracePath);
	if (!trace) {
		std::cerr << trace.error().message << "\n";
		return EX_DATAERR;
	}
	if (simulate && check) {
		std::cerr << "vmrd-replay: --check compares with what the daemon did: it does not go with --simulate\n";
		return EX_USAGE;
	}
	const ReplayResult result = replay(config->policy, config->limits, *trace, {*tailDuration, simulate, nullptr});
	if (check) {
		const auto recorded = recordedDecisions(*trace, result.endedAt);
		for (size_t i = 0; i < std::max(recorded.size(), result.decisions.size()); i++) {
			const std::string none = "(none)";
			const std::string &want = i < recorded.size() ? recorded[i] : none;
			const std::string &got = i < result.decisions.size() ? result.decisions[i] : none;
			if (want != got) {
				std::cerr << tracePath << ": decision " << i + 1 << " differs\n  recorded: " << want
				          << "\n  replayed: " << got << "\n";
				return 1;
			}
		}
	} else {
		for (const auto &line : result.decisions)
			std::cout << line << "\n";
	}
	if (!result.divergence.empty()) {
		std::cerr << tracePath << ": the replay stopped: " << result.divergence
		          << "; is this the config the daemon ran with? (--simulate replays with another)\n";
		return 1;
	}
	if (result.endedAt)
		std::cerr << tracePath << ": " << result.endReason << " at "
		          << static_cast<double>(result.endedAt->count()) / 1e6
		          << "s; the replay stops there (--simulate goes on with one config)\n";
	if (check)
		std::cout << tracePath << ": all " << result.decisions.size() << " decisions as recorded\n";
	return 0;
}
