// SPDX-License-Identifier: MIT
// The daemon's configuration: YAML parsing with file:line:column errors.
#include "config.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <regex>
#include <sstream>

#include <yaml-cpp/yaml.h>

namespace vmrd {

namespace {

std::string nodeType(const YAML::Node &n)
{
	switch (n.Type()) {
	case YAML::NodeType::Map:
		return "a map";
	case YAML::NodeType::Sequence:
		return "a list";
	case YAML::NodeType::Scalar:
		return "'" + n.Scalar() + "'";
	default:
		return "nothing";
	}
}

// Walks the document, collecting every error with its position.  yaml-cpp
// marks are 0-based; messages are 1-based like every editor.
class Reader
{
public:
	explicit Reader(std::string file) : file_(std::move(file)) {}

	void fail(const YAML::Mark &mark, const std::string &key, const std::string &what)
	{
		std::ostringstream s;
		s << file_ << ':' << mark.line + 1 << ':' << mark.column + 1 << ": ";
		if (!key.empty())
			s << key << ": ";
		s << what;
		errors_.push_back(s.str());
	}
	void fail(const YAML::Node &n, const std::string &key, const std::string &what) { fail(n.Mark(), key, what); }

	bool map(const YAML::Node &n, const std::string &key)
	{
		if (n.IsMap())
			return true;
		fail(n, key, "expected a map, got " + nodeType(n));
		return false;
	}

	// Reports every key of map `n` that is not in `known`.
	void onlyKeys(const YAML::Node &n, const std::string &key, std::initializer_list<const char *> known)
	{
		for (const auto &kv : n) {
			std::string k = kv.first.IsScalar() ? kv.first.Scalar() : "?";
			bool found = false;
			std::string list;
			for (const char *name : known) {
				found = found || k == name;
				list += list.empty() ? name : std::string(", ") + name;
			}
			if (!found)
				fail(kv.first, join(key, k), "unknown key (known here: " + list + ")");
		}
	}

	bool scalar(const YAML::Node &n, const std::string &key, std::string &out)
	{
		if (!n.IsScalar()) {
			fail(n, key,
			     "expected a single value, got " + (n.IsMap() ? std::string("a map") : nodeType(n)));
			return false;
		}
		out = n.Scalar();
		return true;
	}

	void text(const YAML::Node &parent, const char *name, const std::string &path, std::string &out)
	{
		if (YAML::Node n = parent[name])
			scalar(n, join(path, name), out);
	}

	void size(const YAML::Node &parent, const char *name, const std::string &path, uint64_t &out)
	{
		std::string s;
		YAML::Node n = parent[name];
		if (!n || !scalar(n, join(path, name), s))
			return;
		if (auto v = parseSize(s))
			out = *v;
		else
			fail(n, join(path, name), "'" + s + "' is not a size (examples: 0, 4096, 4M, 128MiB, 2G)");
	}

	void duration(const YAML::Node &parent, const char *name, const std::string &path, Micros &out)
	{
		std::string s;
		YAML::Node n = parent[name];
		if (!n || !scalar(n, join(path, name), s))
			return;
		if (auto v = parseDuration(s))
			out = *v;
		else
			fail(n, join(path, name),
			     "'" + s + "' is not a duration (examples: 500us, 50ms, 10s, 5m; a unit is required)");
	}

	void boolean(const YAML::Node &parent, const char *name, const std::string &path, bool &out)
	{
		std::string s;
		YAML::Node n = parent[name];
		if (!n || !scalar(n, join(path, name), s))
			return;
		if (s == "true")
			out = true;
		else if (s == "false")
			out = false;
		else
			fail(n, join(path, name), "'" + s + "' is not true or false");
	}

	// A whole number in [lo, hi].
	void integer(const YAML::Node &parent, const char *name, const std::string &path, int64_t lo, int64_t hi,
	             int64_t &out)
	{
		std::string s;
		YAML::Node n = parent[name];
		if (!n || !scalar(n, join(path, name), s))
			return;
		char *end = nullptr;
		errno = 0;
		long long v = std::strtoll(s.c_str(), &end, 10);
		if (s.empty() || *end != '\0' || errno || v < lo || v > hi)
			fail(n, join(path, name),
			     "'" + s + "' is not a whole number from " + std::to_string(lo) + " to " +
			             std::to_string(hi));
		else
			out = v;
	}

	template <typename T>
	void count(const YAML::Node &parent, const char *name, const std::string &path, int64_t lo, int64_t hi, T &out)
	{
		int64_t v = static_cast<int64_t>(out);
		integer(parent, name, path, lo, hi, v);
		out = static_cast<T>(v);
	}

	void real(const YAML::Node &parent, const char *name, const std::string &path, double lo, double hi,
	          double &out)
	{
		std::string s;
		YAML::Node n = parent[name];
		if (!n || !scalar(n, join(path, name), s))
			return;
		char *end = nullptr;
		double v = std::strtod(s.c_str(), &end);
		if (s.empty() || *end != '\0' || !(v >= lo && v <= hi))
			fail(n, join(path, name),
			     "'" + s + "' is not a number from " + std::to_string(lo) + " to " + std::to_string(hi));
		else
			out = v;
	}

	static std::string join(const std::string &path, const std::string &name)
	{
		return path.empty() ? name : path + "." + name;
	}

	const std::vector<std::string> &errors() const { return errors_; }

private:
	std::string file_;
	std::vector<std::string> errors_;
};

void readBackend(Reader &r, const YAML::Node &n, BackendConfig &b)
{
	const std::string p = "backend";
	if (!r.map(n, p))
		return;
	r.onlyKeys(n, p, {"name", "plugin_dir", "call_timeout", "options"});
	if (YAML::Node name = n["name"]) {
		if (r.scalar(name, "backend.name", b.name) && !std::regex_match(b.name, std::regex("[a-z0-9-]+")))
			r.fail(name, "backend.name", "'" + b.name + "' is not a plugin name (only a-z, 0-9 and -)");
	} else {
		r.fail(n, p, "missing key 'name' (the backend plugin to load, for example 'mock')");
	}
	r.text(n, "plugin_dir", p, b.pluginDir);
	r.duration(n, "call_timeout", p, b.callTimeout);
	if (b.callTimeout.count() <= 0)
		r.fail(n["call_timeout"], "backend.call_timeout", "must be more than 0");
	if (YAML::Node opts = n["options"]) {
		if (opts.IsNull())
			return;
		if (!r.map(opts, "backend.options"))
			return;
		for (const auto &kv : opts) {
			std::string key, value;
			if (!r.scalar(kv.first, "backend.options", key))
				continue;
			const std::string path = "backend.options." + key;
			if (!kv.second.IsScalar()) {
				r.fail(kv.second, path,
				       "expected a single value, got " + nodeType(kv.second) +
				               " (options are passed flat to the plugin)");
				continue;
			}
			b.options.emplace_back(key, kv.second.Scalar());
		}
	}
}

void readPsi(Reader &r, const YAML::Node &n, PsiConfig &psi, bool &triggersSet)
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
void readPolicy(Reader &r, const YAML::Node &n, Preset &pr)
{
	const std::string p = "policy";
	if (!r.map(n, p))
		return;
	if (YAML::Node name = n["preset"]) {
		std::string text;
		if (r.scalar(name, "policy.preset", text)) {
			if (auto chosen = preset(text)) {
				pr = *chosen;
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
		if (!owner.empty()) {
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
	r.size(n, "grow_step", p, pp.growStep);
	r.size(n, "grow_step_max", p, pp.growStepMax);
	r.duration(n, "repeat_window", p, pp.repeatWindow);
	r.real(n, "severity_boost", p, 1, 64, pp.severityBoost);
	r.size(n, "headroom", p, pp.headroom);
	r.duration(n, "shrink_idle", p, pp.shrinkIdle);
	r.size(n, "shrink_step_max", p, pp.shrinkStepMax);
	r.duration(n, "backoff_max", p, pp.backoffMax);
	r.duration(n, "cooldown", p, pp.cooldown);
	// embedded
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
	if (pp.growStepMax < pp.growStep)
		r.fail(at("grow_step_max"), "policy.grow_step_max",
		       "must be at least grow_step (" + formatSize(pp.growStep) + ")");
	if (pp.shrinkIdle.count() <= 0)
		r.fail(at("shrink_idle"), "policy.shrink_idle", "must be more than 0");
	if (pp.backoffMax < pp.shrinkIdle)
		r.fail(at("backoff_max"), "policy.backoff_max",
		       "must be at least shrink_idle (" + formatDuration(pp.shrinkIdle) + ")");
	if (pp.chunk == 0)
		r.fail(at("chunk"), "policy.chunk", "must be more than 0");
	if (pp.idleShort.count() <= 0 || pp.idleMedium < pp.idleShort || pp.idleLong < pp.idleMedium)
		r.fail(at("idle_short"), "policy.idle_short", "need 0 < idle_short <= idle_medium <= idle_long");
	if (pp.idleLongChunks < pp.idleMediumChunks)
		r.fail(at("idle_long_chunks"), "policy.idle_long_chunks", "must be at least idle_medium_chunks");
	if (pp.retryInterval.count() <= 0)
		r.fail(at("retry_interval"), "policy.retry_interval", "must be more than 0");
}

void readLimits(Reader &r, const YAML::Node &n, Limits &l)
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

void readDaemon(Reader &r, const YAML::Node &n, DaemonConfig &d)
{
	const std::string p = "daemon";
	if (!r.map(n, p))
		return;
	r.onlyKeys(n, p, {"mlock", "oom_score_adj", "online_movable", "release_on_exit", "trace"});
	r.boolean(n, "mlock", p, d.mlock);
	r.count(n, "oom_score_adj", p, -1000, 1000, d.oomScoreAdj);
	r.boolean(n, "online_movable", p, d.onlineMovable);
	r.boolean(n, "release_on_exit", p, d.releaseOnExit);
	r.text(n, "trace", p, d.trace);
}

void readGuard(Reader &r, const YAML::Node &n, GuardConfig &g)
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

Config readDocument(Reader &r, const YAML::Node &root, const std::string &file)
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
	r.onlyKeys(root, "", {"version", "backend", "psi", "policy", "limits", "daemon", "guard", "logging", "paths"});
	if (YAML::Node v = root["version"]) {
		std::string s;
		if (r.scalar(v, "version", s) && s != "1")
			r.fail(v, "version", "'" + s + "' is not supported; this vmrd reads version 1");
	} else {
		r.fail(root, "version", "missing; put 'version: 1' at the top");
	}
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
	if (YAML::Node n = root["guard"])
		readGuard(r, n, c.guard);
	if (YAML::Node n = root["logging"]) {
		if (r.map(n, "logging")) {
			r.onlyKeys(n, "logging", {"level"});
			std::string level;
			if (n["level"] && r.scalar(n["level"], "logging.level", level)) {
				if (auto l = parseLogLevel(level))
					c.logLevel = *l;
				else
					r.fail(n["level"], "logging.level",
					       "'" + level + "' is not error, warning, info or debug");
			}
		}
	}
	if (YAML::Node n = root["paths"]) {
		if (r.map(n, "paths")) {
			r.onlyKeys(n, "paths", {"procfs", "sysfs"});
			r.text(n, "procfs", "paths", c.paths.procfs);
			r.text(n, "sysfs", "paths", c.paths.sysfs);
		}
	}
	return c;
}

} // namespace

Result<Config> parseConfig(const std::string &text, const std::string &file)
{
	Reader r(file);
	YAML::Node root;
	try {
		root = YAML::Load(text);
	} catch (const YAML::Exception &e) {
		r.fail(e.mark, "", "YAML syntax error: " + e.msg);
		return Error{-EINVAL, r.errors().front()};
	}
	Config c;
	try {
		c = readDocument(r, root, file);
	} catch (const YAML::Exception &e) {
		// yaml-cpp throws for things like duplicate anchors; still name the place.
		r.fail(e.mark, "", e.msg);
	}
	if (!r.errors().empty()) {
		std::string all;
		for (const auto &e : r.errors())
			all += (all.empty() ? "" : "\n") + e;
		return Error{-EINVAL, all};
	}
	return c;
}

Result<Config> loadConfig(const std::string &path)
{
	std::ifstream in(path);
	if (!in) {
		int err = errno;
		return Error{-err, path + ": cannot read the config file: " + std::strerror(err) +
		                           " (give another with --config FILE)"};
	}
	std::ostringstream s;
	s << in.rdbuf();
	if (in.bad())
		return Error{-EIO, path + ": read error"};
	return parseConfig(s.str(), path);
}

} // namespace vmrd
