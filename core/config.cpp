// SPDX-License-Identifier: MIT
// The daemon's configuration: YAML parsing with file:line:column errors.
#include "config.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <sys/un.h>

#include <yaml-cpp/yaml.h>

#include "listen_address.h"
#include "manifest.h"
#include "yaml_reader.h"

namespace vmrd {

namespace {

constexpr const char *autoName = "auto";

// One plugin name of backend.name; false (and an error) if it is none.
bool readPluginName(YamlReader &r, const YAML::Node &n, const std::string &key, std::string &out)
{
	if (!r.scalar(n, key, out))
		return false;
	if (validPluginName(out))
		return true;
	r.fail(n, key, "'" + out + "' is not a plugin name (only a-z, 0-9 and -)");
	return false;
}

void readCandidates(YamlReader &r, const YAML::Node &name, BackendConfig &b)
{
	const std::string key = "backend.name";
	if (name.IsSequence()) {
		b.choice = BackendConfig::Choice::List;
		if (name.size() == 0)
			r.fail(name, key, "an empty list; name at least one backend plugin, or auto");
		for (size_t i = 0; i < name.size(); i++) {
			const std::string item = key + "[" + std::to_string(i) + "]";
			std::string plugin;
			if (!readPluginName(r, name[i], item, plugin))
				continue;
			if (plugin == autoName)
				r.fail(name[i], item, "auto stands alone (backend.name: auto), not in a list");
			else if (std::find(b.candidates.begin(), b.candidates.end(), plugin) != b.candidates.end())
				r.fail(name[i], item, "'" + plugin + "' is listed twice");
			else
				b.candidates.push_back(plugin);
		}
		return;
	}
	std::string plugin;
	if (!readPluginName(r, name, key, plugin))
		return;
	if (plugin == autoName)
		b.choice = BackendConfig::Choice::Auto;
	else
		b.candidates.push_back(plugin);
}

// The flat form: one plugin's options, passed to it as they are.
void readFlatOptions(YamlReader &r, const YAML::Node &opts, const std::string &path, const std::string &plugin,
                     BackendConfig::Options &out)
{
	for (const auto &kv : opts) {
		std::string key;
		if (!r.scalar(kv.first, path, key))
			continue;
		const std::string at = path + "." + key;
		if (kv.second.IsScalar()) {
			out.emplace_back(key, kv.second.Scalar());
			continue;
		}
		std::string why = "expected a single value, got " + nodeType(kv.second) +
		                  " (options are passed flat to the plugin)";
		if (key == plugin && path == "backend.options")
			why += "; with one backend in backend.name its options are not keyed by its name: move them "
			       "up into backend.options";
		r.fail(kv.second, at, why);
	}
}

// The keyed form, for a list or auto: backend.options.NAME.KEY.
void readKeyedOptions(YamlReader &r, const YAML::Node &opts, BackendConfig &b)
{
	for (const auto &kv : opts) {
		std::string plugin;
		if (!readPluginName(r, kv.first, "backend.options", plugin))
			continue;
		const std::string path = "backend.options." + plugin;
		if (b.choice == BackendConfig::Choice::List &&
		    std::find(b.candidates.begin(), b.candidates.end(), plugin) == b.candidates.end()) {
			std::string list;
			for (const auto &c : b.candidates)
				list += (list.empty() ? "" : ", ") + c;
			r.fail(kv.first, path,
			       "'" + plugin + "' is not in backend.name [" + list +
			               "]: with a list, options are keyed by the name of a backend in it (add it to "
			               "the "
			               "list or remove its options)");
			continue;
		}
		if (!kv.second.IsMap()) {
			r.fail(kv.second, path,
			       "expected the options of backend '" + plugin + "' as a map, got " + nodeType(kv.second) +
			               ": with a list or auto in backend.name, options are keyed by backend name, e.g. "
			               "options: {virtio-mem: {port: /dev/virtio-ports/org.vmrd.0}}");
			continue;
		}
		r.map(kv.second, path);
		readFlatOptions(r, kv.second, path, plugin, b.options[plugin]);
	}
}

void readBackend(YamlReader &r, const YAML::Node &n, BackendConfig &b)
{
	const std::string p = "backend";
	if (!r.map(n, p))
		return;
	r.onlyKeys(n, p, {"name", "plugin_dir", "call_timeout", "options"});
	if (YAML::Node name = n["name"]) {
		r.where(name, "backend.name");
		readCandidates(r, name, b);
	} else {
		r.fail(n, p, "missing key 'name' (the backend plugin to load, a list of them in order, or auto)");
	}
	r.text(n, "plugin_dir", p, b.pluginDir);
	r.duration(n, "call_timeout", p, b.callTimeout);
	if (b.callTimeout.count() <= 0)
		r.fail(n["call_timeout"], "backend.call_timeout", "must be more than 0");
	YAML::Node opts = n["options"];
	if (!opts || opts.IsNull() || !r.map(opts, "backend.options"))
		return;
	if (b.choice != BackendConfig::Choice::One)
		readKeyedOptions(r, opts, b);
	else if (!b.candidates.empty())
		readFlatOptions(r, opts, "backend.options", b.candidates[0], b.options[b.candidates[0]]);
}

void readPsi(YamlReader &r, const YAML::Node &n, PsiConfig &psi, bool &triggersSet)
{
	const std::string p = "psi";
	if (!r.map(n, p))
		return;
	r.onlyKeys(n, p, {"system", "cgroups", "triggers"});
	r.boolean(n, "system", p, psi.system);
	if (YAML::Node cg = n["cgroups"]) {
		if (!cg.IsSequence()) {
			r.fail(cg, "psi.cgroups", "expected a list of memory.pressure files, got " + nodeType(cg));
		} else {
			psi.cgroups.clear();
			for (size_t i = 0; i < cg.size(); i++) {
				std::string path;
				const std::string key = "psi.cgroups[" + std::to_string(i) + "]";
				if (r.scalar(cg[i], key, path) && (path.empty() || path[0] != '/'))
					r.fail(cg[i], key, "'" + path + "' is not an absolute path");
				psi.cgroups.push_back(path);
			}
		}
	}
	if (YAML::Node tr = n["triggers"]) {
		if (!tr.IsSequence() || tr.size() == 0) {
			r.fail(tr, "psi.triggers", "expected a non-empty list of {kind, stall, window}");
			return;
		}
		psi.triggers.clear();
		triggersSet = true;
		for (size_t i = 0; i < tr.size(); i++) {
			const std::string key = "psi.triggers[" + std::to_string(i) + "]";
			const YAML::Node t = tr[i];
			TriggerConfig tc;
			if (!r.map(t, key))
				continue;
			r.onlyKeys(t, key, {"kind", "stall", "window"});
			std::string kind;
			if (!t["kind"] || !t["stall"] || !t["window"]) {
				r.fail(t, key, "needs all of kind, stall and window");
				continue;
			}
			if (r.scalar(t["kind"], key + ".kind", kind)) {
				if (kind == "some" || kind == "full")
					tc.kind =
					        kind == "some" ? TriggerConfig::Kind::Some : TriggerConfig::Kind::Full;
				else
					r.fail(t["kind"], key + ".kind", "'" + kind + "' is not some or full");
			}
			r.duration(t, "stall", key, tc.stall);
			r.duration(t, "window", key, tc.window);
			// The kernel's own limits (kernel/sched/psi.c): window up to 10 s,
			// stall threshold above 0 and at most the window.
			if (tc.window > std::chrono::seconds(10) || tc.window.count() <= 0)
				r.fail(t["window"], key + ".window",
				       "must be more than 0 and at most 10s (the kernel's limit)");
			else if (tc.stall.count() <= 0 || tc.stall > tc.window)
				r.fail(t["stall"], key + ".stall", "must be more than 0 and at most the window");
			psi.triggers.push_back(tc);
		}
	}
}

// The preset is read first: it gives the defaults that the other keys
// override, and which keys are allowed at all.
void readPolicy(YamlReader &r, const YAML::Node &n, Preset &pr)
{
	const std::string p = "policy";
	if (!r.map(n, p))
		return;
	if (YAML::Node name = n["preset"]) {
		std::string text;
		if (r.scalar(name, "policy.preset", text)) {
			if (auto chosen = preset(text)) {
				pr = *chosen;
			} else if (text == "embedded") {
				r.fail(name, "policy.preset",
				       "'embedded' is now named 'rfc-reference' (the vmrd RFC's reference behaviour); "
				       "the default, server, is the one to use on Gunyah guests too");
				return;
			} else {
				std::string list;
				for (const auto &k : presetNames())
					list += (list.empty() ? "" : ", ") + k;
				r.fail(name, "policy.preset", "unknown preset '" + text + "' (known: " + list + ")");
				return;
			}
		}
	}
	for (const auto &kv : n) {
		std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "?";
		if (key == "preset" || std::find(pr.keys.begin(), pr.keys.end(), key) != pr.keys.end())
			continue;
		std::string owner;
		for (const auto &other : presetNames()) {
			auto o = preset(other);
			if (std::find(o->keys.begin(), o->keys.end(), key) != o->keys.end())
				owner = other;
		}
		if (auto why = retiredPolicyKey(key)) {
			r.fail(kv.first, "policy." + key,
			       "no longer exists: " + *why + " (README: How vmrd decides); remove it");
		} else if (!owner.empty()) {
			r.fail(kv.first, "policy." + key,
			       "belongs to the " + owner + " preset, not " + pr.params.preset +
			               " (set policy.preset: " + owner + " to use it)");
		} else {
			std::string list;
			for (const auto &k : pr.keys)
				list += ", " + k;
			r.fail(kv.first, "policy." + key,
			       "unknown key (known for the " + pr.params.preset + " preset: preset" + list + ")");
		}
	}
	PolicyParams &pp = pr.params;
	// server
	r.size(n, "headroom", p, pp.headroom);
	r.size(n, "grow_step", p, pp.growStep);
	r.duration(n, "sample_min", p, pp.sampleMin);
	r.duration(n, "sample_max", p, pp.sampleMax);
	r.duration(n, "shrink_hold", p, pp.shrinkHold);
	r.size(n, "shrink_step_max", p, pp.shrinkStepMax);
	r.duration(n, "backoff_max", p, pp.backoffMax);
	// rfc-reference
	r.size(n, "chunk", p, pp.chunk);
	r.size(n, "grow_free_below", p, pp.growFreeBelow);
	r.duration(n, "idle_short", p, pp.idleShort);
	r.duration(n, "idle_medium", p, pp.idleMedium);
	r.duration(n, "idle_long", p, pp.idleLong);
	r.count(n, "idle_medium_chunks", p, 1, 1 << 20, pp.idleMediumChunks);
	r.count(n, "idle_long_chunks", p, 1, 1 << 20, pp.idleLongChunks);
	r.count(n, "swap_discount", p, 0, 100, pp.swapDiscount);
	r.count(n, "release_max_chunks", p, 1, 1 << 20, pp.releaseMaxChunks);
	r.count(n, "release_retries", p, 0, 1000, pp.releaseRetries);
	r.duration(n, "retry_interval", p, pp.retryInterval);
	r.duration(n, "holdoff_base", p, pp.holdoffBase);
	r.duration(n, "holdoff_per_chunk", p, pp.holdoffPerChunk);
	r.duration(n, "holdoff_max", p, pp.holdoffMax);
	r.count(n, "holdoff_override_pages", p, 0, int64_t{1} << 40, pp.holdoffOverridePages);
	r.boolean(n, "decay_wait", p, pp.decayWait);

	auto at = [&](const char *key) { return n[key] ? n[key] : n; };
	if (pp.growStep == 0)
		r.fail(at("grow_step"), "policy.grow_step", "must be more than 0");
	// Below 10 ms a sample costs more than it can tell: PSI and
	// MemAvailable move on that scale at the fastest.
	if (pp.sampleMin < std::chrono::milliseconds(10))
		r.fail(at("sample_min"), "policy.sample_min", "must be at least 10ms");
	if (pp.sampleMax < pp.sampleMin)
		r.fail(at("sample_max"), "policy.sample_max",
		       "must be at least sample_min (" + formatDuration(pp.sampleMin) + ")");
	if (pp.shrinkHold.count() <= 0)
		r.fail(at("shrink_hold"), "policy.shrink_hold", "must be more than 0");
	if (pp.backoffMax < pp.shrinkHold)
		r.fail(at("backoff_max"), "policy.backoff_max",
		       "must be at least shrink_hold (" + formatDuration(pp.shrinkHold) + ")");
	if (pp.chunk == 0)
		r.fail(at("chunk"), "policy.chunk", "must be more than 0");
	if (pp.idleShort.count() <= 0 || pp.idleMedium < pp.idleShort || pp.idleLong < pp.idleMedium)
		r.fail(at("idle_short"), "policy.idle_short", "need 0 < idle_short <= idle_medium <= idle_long");
	if (pp.idleLongChunks < pp.idleMediumChunks)
		r.fail(at("idle_long_chunks"), "policy.idle_long_chunks", "must be at least idle_medium_chunks");
	if (pp.retryInterval.count() <= 0)
		r.fail(at("retry_interval"), "policy.retry_interval", "must be more than 0");
}

void readLimits(YamlReader &r, const YAML::Node &n, Limits &l)
{
	const std::string p = "limits";
	if (!r.map(n, p))
		return;
	r.onlyKeys(n, p, {"min", "max", "step_max", "min_interval"});
	r.size(n, "min", p, l.min);
	r.size(n, "max", p, l.max);
	r.size(n, "step_max", p, l.stepMax);
	r.duration(n, "min_interval", p, l.minInterval);
	if (l.max != 0 && l.min > l.max)
		r.fail(n["min"] ? n["min"] : n, "limits.min",
		       formatSize(l.min) + " is more than limits.max " + formatSize(l.max));
	if (l.stepMax == 0)
		r.fail(n["step_max"] ? n["step_max"] : n, "limits.step_max", "must be more than 0");
}

void readDaemon(YamlReader &r, const YAML::Node &n, DaemonConfig &d)
{
	const std::string p = "daemon";
	if (!r.map(n, p))
		return;
	r.onlyKeys(n, p, {"mlock", "oom_score_adj", "online_movable", "release_on_exit", "trace", "trace_max_size"});
	r.boolean(n, "mlock", p, d.mlock);
	r.count(n, "oom_score_adj", p, -1000, 1000, d.oomScoreAdj);
	r.boolean(n, "online_movable", p, d.onlineMovable);
	r.boolean(n, "release_on_exit", p, d.releaseOnExit);
	r.text(n, "trace", p, d.trace);
	r.size(n, "trace_max_size", p, d.traceMaxSize);
	if (d.traceMaxSize != 0 && d.traceMaxSize < (64u << 10))
		r.fail(n["trace_max_size"], "daemon.trace_max_size", "must be 0 (unbounded) or at least 64K");
}

void readControl(YamlReader &r, const YAML::Node &n, ControlConfig &c)
{
	const std::string p = "control";
	if (!r.map(n, p))
		return;
	r.onlyKeys(n, p, {"socket", "http"});
	r.text(n, "socket", p, c.socket);
	r.text(n, "http", p, c.http);
	if (!c.socket.empty() && c.socket[0] != '/')
		r.fail(n["socket"], "control.socket", "'" + c.socket + "' is not an absolute path");
	if (c.socket.size() >= sizeof(sockaddr_un::sun_path))
		r.fail(n["socket"], "control.socket",
		       "longer than the " + std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
		               " bytes a unix socket path can have");
	if (!c.http.empty() && !parseListenAddress(c.http))
		r.fail(n["http"], "control.http",
		       "'" + c.http +
		               "' is not PORT (on loopback) or ADDRESS:PORT with a numeric IPv4 or [IPv6] address, "
		               "e.g. "
		               "127.0.0.1:9560");
}

void readGuard(YamlReader &r, const YAML::Node &n, GuardConfig &g)
{
	const std::string p = "guard";
	if (!r.map(n, p))
		return;
	r.onlyKeys(n, p, {"cgroup", "margin"});
	r.text(n, "cgroup", p, g.cgroup);
	r.size(n, "margin", p, g.margin);
	if (!g.cgroup.empty() && g.cgroup[0] != '/')
		r.fail(n["cgroup"], "guard.cgroup", "'" + g.cgroup + "' is not an absolute path");
}

Config readDocument(YamlReader &r, const YAML::Node &root, const std::string &file)
{
	Config c;
	c.file = file;
	Preset chosen = *preset("server");
	bool triggersSet = false;
	if (!root || root.IsNull()) {
		r.fail(YAML::Mark(), "", "the file is empty; it needs at least 'version: 1' and a backend");
		return c;
	}
	if (!r.map(root, ""))
		return c;
	r.onlyKeys(root, "",
	           {"version", "backend", "psi", "policy", "limits", "daemon", "control", "guard", "logging", "paths"});
	r.version(root, "this vmrd");
	if (YAML::Node b = root["backend"])
		readBackend(r, b, c.backend);
	else
		r.fail(root, "backend", "missing; name the backend plugin, for example 'backend: {name: mock}'");
	if (YAML::Node n = root["psi"])
		readPsi(r, n, c.psi, triggersSet);
	if (!c.psi.system && c.psi.cgroups.empty())
		r.fail(root["psi"] ? root["psi"] : root, "psi", "no source: set system: true or list cgroups");
	if (YAML::Node n = root["policy"])
		readPolicy(r, n, chosen);
	c.policy = chosen.params;
	if (!triggersSet)
		c.psi.triggers = chosen.triggers;
	if (YAML::Node n = root["limits"])
		readLimits(r, n, c.limits);
	if (YAML::Node n = root["daemon"])
		readDaemon(r, n, c.daemon);
	if (YAML::Node n = root["control"])
		readControl(r, n, c.control);
	if (YAML::Node n = root["guard"]) {
		readGuard(r, n, c.guard);
		// The server preset grows when MemAvailable falls below its
		// headroom; a guard that throttled first would wait for it forever.
		if (!c.guard.cgroup.empty() && c.policy.preset == "server" && c.guard.margin >= c.policy.headroom)
			r.fail(n["margin"] ? n["margin"] : n, "guard.margin",
			       formatSize(c.guard.margin) + " is not below policy.headroom " +
			               formatSize(c.policy.headroom) +
			               ": the workload would be throttled before vmrd grows the guest; lower it or "
			               "raise the headroom");
	}
	r.logging(root, c.logLevel);
	if (YAML::Node n = root["paths"]) {
		if (r.map(n, "paths")) {
			r.onlyKeys(n, "paths", {"procfs", "sysfs"});
			r.text(n, "procfs", "paths", c.paths.procfs);
			r.text(n, "sysfs", "paths", c.paths.sysfs);
		}
	}
	c.where = r.positions();
	return c;
}

} // namespace

const BackendConfig::Options &BackendConfig::optionsOf(const std::string &name) const
{
	static const Options none;
	auto it = options.find(name);
	return it == options.end() ? none : it->second;
}

std::string BackendConfig::optionsKey(const std::string &name) const
{
	return choice == Choice::One ? "backend.options" : "backend.options." + name;
}

Result<Config> parseConfig(const std::string &text, const std::string &file)
{
	return readYaml<Config>(text, file,
	                        [&](YamlReader &r, const YAML::Node &root) { return readDocument(r, root, file); });
}

Result<Config> loadConfig(const std::string &path)
{
	return loadConfigFile<Config>(path, parseConfig);
}

} // namespace vmrd
