// SPDX-License-Identifier: MIT
// The daemon's configuration: YAML parsing with file:line:column errors.
#include "config.h"

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

void readPsi(Reader &r, const YAML::Node &n, PsiConfig &psi)
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

void readPolicy(Reader &r, const YAML::Node &n, PolicyParams &pp)
{
	const std::string p = "policy";
	if (!r.map(n, p))
		return;
	r.onlyKeys(n, p,
	           {"preset", "grow_step", "grow_step_max", "repeat_window", "headroom", "shrink_idle",
	            "shrink_step_max", "backoff_max"});
	// The preset gives the defaults; the other keys override them.
	if (YAML::Node preset = n["preset"]) {
		std::string name;
		if (r.scalar(preset, "policy.preset", name)) {
			if (auto d = presetDefaults(name)) {
				pp = *d;
			} else {
				std::string list;
				for (const auto &k : presetNames())
					list += (list.empty() ? "" : ", ") + k;
				r.fail(preset, "policy.preset", "unknown preset '" + name + "' (known: " + list + ")");
			}
		}
	}
	r.size(n, "grow_step", p, pp.growStep);
	r.size(n, "grow_step_max", p, pp.growStepMax);
	r.duration(n, "repeat_window", p, pp.repeatWindow);
	r.size(n, "headroom", p, pp.headroom);
	r.duration(n, "shrink_idle", p, pp.shrinkIdle);
	r.size(n, "shrink_step_max", p, pp.shrinkStepMax);
	r.duration(n, "backoff_max", p, pp.backoffMax);
	if (pp.growStep == 0)
		r.fail(n["grow_step"] ? n["grow_step"] : n, "policy.grow_step", "must be more than 0");
	if (pp.growStepMax < pp.growStep)
		r.fail(n["grow_step_max"] ? n["grow_step_max"] : n, "policy.grow_step_max",
		       "must be at least grow_step (" + formatSize(pp.growStep) + ")");
	if (pp.shrinkIdle.count() <= 0)
		r.fail(n["shrink_idle"] ? n["shrink_idle"] : n, "policy.shrink_idle", "must be more than 0");
	if (pp.backoffMax < pp.shrinkIdle)
		r.fail(n["backoff_max"] ? n["backoff_max"] : n, "policy.backoff_max",
		       "must be at least shrink_idle (" + formatDuration(pp.shrinkIdle) + ")");
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

Config readDocument(Reader &r, const YAML::Node &root, const std::string &file)
{
	Config c;
	c.file = file;
	c.psi.triggers = {{TriggerConfig::Kind::Some, std::chrono::milliseconds(100), std::chrono::seconds(1)},
	                  {TriggerConfig::Kind::Full, std::chrono::milliseconds(50), std::chrono::seconds(1)}};
	if (!root || root.IsNull()) {
		r.fail(YAML::Mark(), "", "the file is empty; it needs at least 'version: 1' and a backend");
		return c;
	}
	if (!r.map(root, ""))
		return c;
	r.onlyKeys(root, "", {"version", "backend", "psi", "policy", "limits", "logging", "paths"});
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
		readPsi(r, n, c.psi);
	if (!c.psi.system && c.psi.cgroups.empty())
		r.fail(root["psi"] ? root["psi"] : root, "psi", "no source: set system: true or list cgroups");
	if (YAML::Node n = root["policy"])
		readPolicy(r, n, c.policy);
	if (YAML::Node n = root["limits"])
		readLimits(r, n, c.limits);
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
