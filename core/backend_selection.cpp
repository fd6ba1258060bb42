// SPDX-License-Identifier: MIT
// Chooses the backend among backend.name's candidates (one, a list or auto) by asking each plugin's probe.
#include "backend_selection.h"

#include <algorithm>
#include <cerrno>

namespace vmrd {

namespace {

using Kind = CandidateVerdict::Kind;

CandidateVerdict judge(const std::string &name, const Config &config, const PluginLoader &loader,
                       std::shared_ptr<Plugin> &plugin)
{
	const BackendConfig &b = config.backend;
	const bool automatic = b.choice == BackendConfig::Choice::Auto;
	auto loaded = loader.load(name);
	if (!loaded)
		return {name, loaded.error().code == -ENOENT ? Kind::Absent : Kind::Failed, loaded.error().message};
	if (automatic && (*loaded)->info().testBackend)
		return {name, Kind::Skipped, "a test backend: auto never picks it (name it in backend.name to use it)"};
	auto present = Backend::probe(*loaded, b.optionsOf(name), {config.paths.procfs, config.paths.sysfs});
	if (present) {
		plugin = std::move(*loaded);
		return {name, Kind::Chosen, "present"};
	}
	const Error &e = present.error();
	if (e.code == -EOPNOTSUPP && automatic)
		return {name, Kind::Skipped,
		        "it has no probe, so auto cannot tell whether its device is there (name it in backend.name to "
		        "use it)"};
	if (e.code == -EOPNOTSUPP) {
		plugin = std::move(*loaded);
		return {name, Kind::Chosen, "named, and it has no probe to ask"};
	}
	if (e.code == -ENODEV)
		return {name, Kind::Absent, e.message};
	return {name, Kind::Failed, "probe failed: " + e.message + " (" + std::to_string(e.code) + ")"};
}

} // namespace

std::vector<std::string> candidateNames(const BackendConfig &backend,
                                        const std::vector<PluginLoader::Listing> &installed)
{
	if (backend.choice != BackendConfig::Choice::Auto)
		return backend.candidates;
	std::vector<std::string> names;
	for (const auto &l : installed)
		if (l.ok && std::find(names.begin(), names.end(), l.info.name) == names.end())
			names.push_back(l.info.name);
	std::sort(names.begin(), names.end());
	return names;
}

Result<Selection> selectBackend(const Config &config, const PluginLoader &loader)
{
	const BackendConfig &b = config.backend;
	const std::vector<std::string> names = candidateNames(b, loader.list());
	if (b.choice == BackendConfig::Choice::Auto)
		for (const auto &[name, options] : b.options)
			if (std::find(names.begin(), names.end(), name) == names.end())
				return Error{-ENOENT,
				             config.where.at(b.optionsKey(name)) + ": no plugin '" + name +
				                     "' is installed for auto to choose (vmrd --list-plugins shows "
				                     "them); remove its options or install it"};
	Selection s;
	for (const auto &name : names) {
		s.verdicts.push_back(judge(name, config, loader, s.plugin));
		if (s.plugin)
			break;
	}
	return s;
}

std::string describeChoice(const BackendConfig &backend)
{
	if (backend.choice == BackendConfig::Choice::Auto)
		return "auto";
	if (backend.choice == BackendConfig::Choice::One)
		return backend.candidates.empty() ? "" : backend.candidates[0];
	std::string s;
	for (const auto &c : backend.candidates)
		s += (s.empty() ? "[" : ", ") + c;
	return s + "]";
}

const char *verdictName(CandidateVerdict::Kind kind)
{
	switch (kind) {
	case Kind::Chosen:
		return "chosen";
	case Kind::Absent:
		return "absent";
	case Kind::Skipped:
		return "skipped";
	case Kind::Failed:
		return "failed";
	}
	return "?";
}

std::string describeNoBackend(const Selection &selection)
{
	if (selection.verdicts.empty())
		return "no backend plugin is installed (vmrd --list-plugins shows where vmrd looks)";
	if (selection.verdicts.size() == 1)
		return selection.verdicts[0].reason;
	std::string s = "none of the backends is present:";
	for (const auto &v : selection.verdicts)
		s += "\n  " + v.name + ": " + verdictName(v.kind) + ": " + v.reason;
	return s;
}

} // namespace vmrd
