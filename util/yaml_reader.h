// SPDX-License-Identifier: MIT
// Reads a yaml-cpp document key by key, collecting every error as "file:line:column: key: what".
#pragma once

#include <cerrno>
#include <cstdlib>
#include <initializer_list>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "key_positions.h"
#include "log.h"
#include "result.h"
#include "units.h"

namespace vmrd {

inline std::string nodeType(const YAML::Node &n)
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

// Walks a document, collecting every error with its position.  yaml-cpp
// marks are 0-based; messages are 1-based like every editor.
class YamlReader
{
public:
	explicit YamlReader(std::string file) : file_(file), positions_(std::move(file)) {}

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

	// Records where a key was written, for messages after parsing.
	void where(const YAML::Node &n, const std::string &key)
	{
		positions_.add(key, n.Mark().line + 1, n.Mark().column + 1);
	}

	bool map(const YAML::Node &n, const std::string &key)
	{
		where(n, key);
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
		where(n, key);
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

	// `version: 1` at the top of `root`; `program` names who reads it.
	void version(const YAML::Node &root, const std::string &program)
	{
		if (YAML::Node v = root["version"]) {
			std::string s;
			if (scalar(v, "version", s) && s != "1")
				fail(v, "version", "'" + s + "' is not supported; " + program + " reads version 1");
		} else {
			fail(root, "version", "missing; put 'version: 1' at the top");
		}
	}

	// The `logging:` section: `level` only.
	void logging(const YAML::Node &root, LogLevel &out)
	{
		YAML::Node n = root["logging"];
		if (!n || !map(n, "logging"))
			return;
		onlyKeys(n, "logging", {"level"});
		std::string level;
		if (n["level"] && scalar(n["level"], "logging.level", level)) {
			if (auto l = parseLogLevel(level))
				out = *l;
			else
				fail(n["level"], "logging.level",
				     "'" + level + "' is not error, warning, info or debug");
		}
	}

	// YAML allows each key once in a map, but yaml-cpp takes duplicates
	// without a word, and which one wins depends on how the map is read.
	void duplicates(const YAML::Node &n, const std::string &path)
	{
		if (n.IsSequence())
			for (size_t i = 0; i < n.size(); i++)
				duplicates(n[i], path + "[" + std::to_string(i) + "]");
		if (!n.IsMap())
			return;
		std::map<std::string, YAML::Mark> seen;
		for (const auto &kv : n) {
			if (!kv.first.IsScalar())
				continue;
			const std::string key = kv.first.Scalar();
			if (auto [it, added] = seen.emplace(key, kv.first.Mark()); !added)
				fail(kv.first, join(path, key),
				     "duplicate key: already set at line " + std::to_string(it->second.line + 1) +
				             ", column " + std::to_string(it->second.column + 1) +
				             " (keep one of the two)");
			duplicates(kv.second, join(path, key));
		}
	}

	static std::string join(const std::string &path, const std::string &name)
	{
		return path.empty() ? name : path + "." + name;
	}

	const std::vector<std::string> &errors() const { return errors_; }
	// Where every key read so far was written.
	const KeyPositions &positions() const { return positions_; }

private:
	std::string file_;
	KeyPositions positions_;
	std::vector<std::string> errors_;
};

// Parses `text` and hands the root to `read(reader, root)`, which returns the
// value.  Syntax errors and every error the reader collected come back as
// one Error, one "file:line:column: key: what" per line.
template <typename T, typename F> Result<T> readYaml(const std::string &text, const std::string &file, F read)
{
	YamlReader r(file);
	T value;
	try {
		const YAML::Node root = YAML::Load(text);
		r.duplicates(root, "");
		value = read(r, root);
	} catch (const YAML::Exception &e) {
		r.fail(e.mark, "", (r.errors().empty() ? "YAML syntax error: " : "") + e.msg);
	}
	if (r.errors().empty())
		return value;
	std::string all;
	for (const auto &e : r.errors())
		all += (all.empty() ? "" : "\n") + e;
	return Error{-EINVAL, all};
}

// The text of a config file; an error names the path and what to do.
Result<std::string> readConfigText(const std::string &path);

// Reads a config file and parses it with parse(text, path): the daemon's
// and the broker's loaders.
template <typename T, typename Parse> Result<T> loadConfigFile(const std::string &path, Parse parse)
{
	auto text = readConfigText(path);
	if (!text)
		return text.error();
	return parse(*text, path);
}

} // namespace vmrd
