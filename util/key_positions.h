// SPDX-License-Identifier: MIT
// Where each key of a config file was written, for messages after parsing.
#pragma once

#include <map>
#include <string>
#include <utility>

namespace vmrd {

// Where each key of a config was written, so that an error found after
// parsing (a plugin that is not installed, a socket that cannot be bound)
// names the line to change.
class KeyPositions
{
public:
	KeyPositions() = default;
	explicit KeyPositions(std::string file) : file_(std::move(file)) {}

	// The first position given for a key stays; lines and columns from 1.
	void add(const std::string &key, int line, int column)
	{
		positions_.emplace(key, std::make_pair(line, column));
	}

	// "file:line:column: key" of the key, or of the nearest enclosing key
	// that was written, for messages; "file: key" if neither was.
	std::string at(const std::string &key) const
	{
		for (std::string k = key;;) {
			if (auto it = positions_.find(k); it != positions_.end())
				return file_ + ':' + std::to_string(it->second.first) + ':' +
				       std::to_string(it->second.second) + ": " + key;
			const size_t up = k.find_last_of(".[");
			if (up == std::string::npos)
				break;
			k.resize(up);
		}
		return file_ + ": " + key;
	}

private:
	std::string file_;
	std::map<std::string, std::pair<int, int>> positions_;
};

} // namespace vmrd
