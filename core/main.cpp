// SPDX-License-Identifier: MIT
// vmrd's command line: check the config, list plugins, or run the daemon.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sysexits.h>

#include <boost/program_options.hpp>

#include "backend_selection.h"
#include "cli.h"
#include "config.h"
#include "daemon.h"
#include "hotplug.h"
#include "log.h"
#include "plugin_loader.h"
#include "psi_monitor.h"

namespace po = boost::program_options;
using namespace vmrd;

namespace {

struct Cli {
	std::string config = VMRD_SYSCONFDIR "/vmrd/vmrd.yaml";
	bool configGiven = false;
	bool checkConfig = false;
	bool listPlugins = false;
	bool dryRun = false;
	std::vector<std::string> pluginDirs;
	std::string logLevel;
};

// --plugin-dir first, then the config's backend.plugin_dir, then the built-in one.
std::vector<std::string> pluginDirs(const Cli &cli, const Config *config)
{
	std::vector<std::string> dirs = cli.pluginDirs;
	if (config && !config->backend.pluginDir.empty())
		dirs.push_back(config->backend.pluginDir);
	dirs.push_back(defaultPluginDir());
	return dirs;
}

// What backend.name chose here, and why each candidate before it was not.
void printSelection(const Config &c, const Selection &s)
{
	std::cout << "backend.name: " << describeChoice(c.backend) << "\n";
	for (const auto &v : s.verdicts)
		std::cout << "  " << v.name << ": " << verdictName(v.kind) << ": " << v.reason << "\n";
	if (!s.plugin)
		std::cout << "  none present: vmrd would exit 78\n";
}

int listPlugins(const Cli &cli)
{
	std::optional<Config> config;
	// The default config is optional here; one named with --config is not.
	if (cli.configGiven || std::filesystem::exists(cli.config)) {
		auto c = loadConfig(cli.config);
		if (!c) {
			std::cerr << c.error().message << "\n";
			return EX_CONFIG;
		}
		config = *c;
	}
	PluginLoader loader(pluginDirs(cli, config ? &*config : nullptr));
	bool any = false;
	for (const auto &l : loader.list()) {
		if (l.ok) {
			any = true;
			std::cout << l.info.name << "\t" << l.info.version << "\t" << l.info.vendor << "\tABI "
			          << l.info.abiMajor << "." << l.info.abiMinor << "\t" << l.info.path << "\n";
		} else {
			std::cout << "rejected\t" << l.path << ": " << l.problem << "\n";
		}
	}
	if (!any) {
		std::cout << "no plugins found in";
		for (const auto &d : loader.dirs())
			std::cout << " " << d;
		std::cout << "\n";
	}
	if (config) {
		// Loads the candidates and runs their probes: no longer manifests only.
		auto selection = selectBackend(*config, loader);
		if (!selection) {
			std::cerr << selection.error().message << "\n";
			return EX_CONFIG;
		}
		std::cout << "\nchoice of " << config->file << ":\n";
		printSelection(*config, *selection);
	}
	return 0;
}

// The daemon's log says why each candidate before the chosen one was passed over.
void logSelection(const Selection &s)
{
	for (const auto &v : s.verdicts) {
		const std::string line = "backend '" + v.name + "': " + verdictName(v.kind) + ": " + v.reason;
		if (v.kind == CandidateVerdict::Kind::Failed)
			logWarning(line + (s.plugin ? "; the next candidate was tried" : ""));
		else
			logInfo(line);
	}
}

void printPlan(const Config &c, const Selection &selection, const Backend &b, const BackendState &s)
{
	const auto &info = b.plugin().info();
	std::cout << "config " << c.file << " is valid\n";
	printSelection(c, selection);
	std::cout << "backend: " << info.name << " " << info.version << " (" << info.vendor << ", ABI " << info.abiMajor
	          << "." << info.abiMinor << ") from " << info.path << "\n"
	          << "  about: " << info.description << "\n"
	          << "  device: " << formatSize(s.plugged) << " plugged, range " << formatSize(s.minBytes) << " to "
	          << formatSize(s.maxBytes) << ", block " << formatSize(s.blockSize) << "\n"
	          << "psi sources:";
	if (c.psi.system)
		std::cout << " " << c.paths.procfs << "/pressure/memory";
	for (const auto &g : c.psi.cgroups)
		std::cout << " " << g;
	std::cout << "\npsi triggers:";
	for (const auto &t : c.psi.triggers)
		std::cout << " [" << describeTrigger(t) << "]";
	std::cout << "\npolicy: " << c.policy.preset;
	for (const auto &[key, value] : describePolicy(c.policy))
		std::cout << ", " << key << " " << value;
	std::cout << "\nlimits: min " << formatSize(c.limits.min) << ", max "
	          << (c.limits.max ? formatSize(c.limits.max) : std::string("the backend's")) << ", step_max "
	          << formatSize(c.limits.stepMax) << ", min_interval " << formatDuration(c.limits.minInterval) << "\n";
	if (s.hotplug) {
		OnliningVerdict v = checkOnlining(c.paths.sysfs);
		std::cout << "onlining: " << v.message
		          << (v.ok                     ? ""
		              : c.daemon.onlineMovable ? " (vmrd will fix it: daemon.online_movable)"
		                                       : "")
		          << "\n";
	}
	if (!c.guard.cgroup.empty())
		std::cout << "guard: " << c.guard.cgroup << "/memory.high throttles the workload where it would leave "
		          << formatSize(c.guard.margin) << " available\n";
}

} // namespace

int main(int argc, char **argv)
{
	Cli cli;
	po::options_description desc("Usage: vmrd [OPTIONS]\n\n"
	                             "Resizes this VM's memory with its workload, driven by PSI.\n\nOptions");
	// clang-format off
	desc.add_options()
		("config,c", po::value<std::string>(&cli.config),
		 "configuration file (default " VMRD_SYSCONFDIR "/vmrd/vmrd.yaml)")
		("check-config", po::bool_switch(&cli.checkConfig),
		 "validate the config, create the backend, print the plan, exit (78 on error)")
		("list-plugins", po::bool_switch(&cli.listPlugins),
		 "list the plugins found and why any file was rejected")
		("plugin-dir", po::value<std::vector<std::string>>(&cli.pluginDirs)->composing(),
		 "search this plugin directory first (repeatable)")
		("log-level", po::value<std::string>(&cli.logLevel),
		 "error, warning, info or debug (overrides logging.level)")
		("dry-run", po::bool_switch(&cli.dryRun), "decide and log, but never plug or unplug")
		("version", "print the version and plugin ABI, exit")
		("help,h", "print this help, exit");
	// clang-format on
	po::variables_map vm;
	if (auto code = parseCommandLine(argc, argv, "vmrd", desc, desc, {}, vm))
		return *code;
	if (vm.count("version")) {
		std::cout << "vmrd " VMRD_VERSION " (plugin ABI " << VMRD_ABI_MAJOR << "." << VMRD_ABI_MINOR << ")\n";
		return 0;
	}
	cli.configGiven = vm.count("config") > 0;
	if (!cli.logLevel.empty()) {
		auto l = parseLogLevel(cli.logLevel);
		if (!l) {
			std::cerr << "vmrd: --log-level: '" << cli.logLevel
			          << "' is not error, warning, info or debug\n";
			return EX_USAGE;
		}
	}
	if (cli.listPlugins)
		return listPlugins(cli);

	auto config = loadConfig(cli.config);
	if (!config) {
		logError(config.error().message);
		return EX_CONFIG;
	}
	setLogLevel(cli.logLevel.empty() ? config->logLevel : *parseLogLevel(cli.logLevel));

	PluginLoader loader(pluginDirs(cli, &*config));
	auto selection = selectBackend(*config, loader);
	if (!selection) {
		logError(selection.error().message);
		return EX_CONFIG;
	}
	if (!cli.checkConfig)
		logSelection(*selection);
	if (!selection->plugin) {
		logError(config->where.at("backend.name") + ": " + describeNoBackend(*selection));
		return EX_CONFIG;
	}
	const std::string name = selection->plugin->info().name;
	const BackendConfig::Options &options = config->backend.optionsOf(name);
	auto backend = Backend::create(selection->plugin, options, {config->paths.procfs, config->paths.sysfs});
	if (!backend) {
		logError(config->where.at(options.empty() ? "backend.name" : config->backend.optionsKey(name)) + ": " +
		         backend.error().message);
		return EX_CONFIG;
	}
	if (cli.checkConfig) {
		auto state = (*backend)->state();
		if (!state) {
			logError(state.error().message);
			return EX_CONFIG;
		}
		printPlan(*config, *selection, **backend, *state);
		return 0;
	}
	Daemon daemon(*config, std::move(*backend), {cli.dryRun, cli.config, selection->verdicts});
	return daemon.run();
}
