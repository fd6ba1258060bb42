// SPDX-License-Identifier: MIT
// Chooses the backend among backend.name's candidates (one, a list or auto) by asking each plugin's probe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "plugin_loader.h"
#include "result.h"

namespace vmrd {

// What one candidate answered, for the log, --check-config, --list-plugins
// and vmrdctl status.
struct CandidateVerdict {
	enum class Kind {
		Chosen,  // present, or named and without a probe
		Absent,  // its probe said -ENODEV, or it is not installed
		Skipped, // auto leaves it out: a test backend, or no probe
		Failed,  // it could not be loaded, or its probe failed
	};
	std::string name;
	Kind kind = Kind::Absent;
	std::string reason; // what the plugin or the loader said
};

struct Selection {
	std::shared_ptr<Plugin> plugin;         // the chosen one; null if none is present
	std::vector<CandidateVerdict> verdicts; // in the order tried, the chosen one last
};

// The names to try, in order: backend.name's, or for auto every plugin
// installed in the directories whose manifest passes, in name order
// (--list-plugins shows the files it rejects, and why).
std::vector<std::string> candidateNames(const BackendConfig &backend,
                                        const std::vector<PluginLoader::Listing> &installed);

// Tries the candidates in order and stops at the first present one.  An
// error, "file:line:column: key: ...", for options that auto gives to a
// plugin that is not installed.
Result<Selection> selectBackend(const Config &config, const PluginLoader &loader);

// backend.name as written: "auto", "[gunyah-membuf, virtio-mem]", "mock".
std::string describeChoice(const BackendConfig &backend);

// "chosen", "absent", "skipped" or "failed".
const char *verdictName(CandidateVerdict::Kind kind);

// Why nothing was chosen: each candidate with what it said, one per line.
std::string describeNoBackend(const Selection &selection);

} // namespace vmrd
