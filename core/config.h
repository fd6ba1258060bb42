// SPDX-License-Identifier: MIT
// The daemon's configuration: the YAML schema, its defaults and its validation.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "log.h"
#include "policy_params.h"
#include "result.h"
#include "units.h"

namespace vmrd {

struct TriggerConfig {
	enum class Kind { Some, Full };
	Kind kind = Kind::Some;
	Micros stall{0};
	Micros window{0};
};

struct BackendConfig {
	std::string name;      // plugin name, [a-z0-9-]+
	std::string pluginDir; // searched after --plugin-dir, before the built-in directory
	Micros callTimeout{std::chrono::seconds(30)};
	std::vector<std::pair<std::string, std::string>> options; // passed flat to the plugin
};

struct PsiConfig {
	bool system = true;               // watch <procfs>/pressure/memory
	std::vector<std::string> cgroups; // cgroup v2 memory.pressure files
	std::vector<TriggerConfig> triggers;
};

struct PathsConfig {
	std::string procfs = "/proc";
	std::string sysfs = "/sys";
};

struct Config {
	std::string file; // where it was read from, for messages
	BackendConfig backend;
	PsiConfig psi;
	PolicyParams policy;
	Limits limits;
	LogLevel logLevel = LogLevel::Info;
	PathsConfig paths;
};

// Parse YAML text; `file` names it in messages.  Every error found is reported,
// one per line, as "file:line:column: key: what is wrong".
Result<Config> parseConfig(const std::string &text, const std::string &file);

// Read and parse a file; a missing or unreadable file is an error naming it.
Result<Config> loadConfig(const std::string &path);

} // namespace vmrd
