// SPDX-License-Identifier: MIT
// The daemon's configuration: the YAML schema, its defaults and its validation.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "key_positions.h"
#include "log.h"
#include "policy_params.h"
#include "result.h"
#include "units.h"

namespace vmrd {

struct BackendConfig {
	using Options = std::vector<std::pair<std::string, std::string>>; // passed flat to the plugin
	// How backend.name chose: one plugin, a list in order of preference, or
	// `auto` (every installed plugin but test backends, in name order).
	enum class Choice { One, List, Auto };

	Choice choice = Choice::One;
	std::vector<std::string> candidates; // plugin names, [a-z0-9-]+; empty for Auto
	std::string pluginDir;               // searched after --plugin-dir, before the built-in directory
	Micros callTimeout{std::chrono::seconds(30)};
	// By plugin name.  One name takes them flat (backend.options.KEY); a
	// list or auto takes them keyed by name (backend.options.NAME.KEY).
	std::map<std::string, Options> options;

	// The options of one plugin; none if the config gives none.
	const Options &optionsOf(const std::string &name) const;
	// Where that plugin's options are in the config, for KeyPositions.
	std::string optionsKey(const std::string &name) const;
};

struct PsiConfig {
	bool system = true;                  // watch <procfs>/pressure/memory
	std::vector<std::string> cgroups;    // cgroup v2 memory.pressure files
	std::vector<TriggerConfig> triggers; // the preset's when the config has none
};

struct DaemonConfig {
	bool mlock = true;                   // mlockall() at start: never page the daemon out
	int oomScoreAdj = -1000;             // written to /proc/self/oom_score_adj
	bool onlineMovable = false;          // make hot-added memory land in ZONE_MOVABLE instead of refusing to start
	bool releaseOnExit = false;          // give plugged memory back on SIGTERM
	std::string trace;                   // the event log: JSON lines, read by vmrd-replay and vmrd-plot
	uint64_t traceMaxSize = 16ull << 20; // then rotated to <trace>.1; 0: unbounded
};

// Where operators reach the running daemon (vmrdctl, Prometheus).
struct ControlConfig {
	std::string socket = "/run/vmrd/control.sock"; // empty: none
	std::string http;                              // "127.0.0.1:9560" serves /metrics; empty: off
};

// For guests without swap: keep a cgroup's memory.high where the workload
// would leave the guest less than `margin` available, so a workload nearing
// it is throttled (PSI pressure on the cgroup) rather than OOM-killed.
struct GuardConfig {
	std::string cgroup; // a cgroup v2 directory; empty: no guard
	uint64_t margin = 64ull << 20;
};

struct PathsConfig {
	std::string procfs = "/proc";
	std::string sysfs = "/sys";
};

struct Config {
	std::string file;   // where it was read from, for messages
	KeyPositions where; // "file:line:column: key" for errors found after parsing
	BackendConfig backend;
	PsiConfig psi;
	PolicyParams policy;
	Limits limits;
	DaemonConfig daemon;
	ControlConfig control;
	GuardConfig guard;
	LogLevel logLevel = LogLevel::Info;
	PathsConfig paths;
};

// Parse YAML text; `file` names it in messages.  Every error found is reported,
// one per line, as "file:line:column: key: what is wrong".
Result<Config> parseConfig(const std::string &text, const std::string &file);

// Read and parse a file; a missing or unreadable file is an error naming it.
Result<Config> loadConfig(const std::string &path);

} // namespace vmrd
