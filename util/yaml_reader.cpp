// SPDX-License-Identifier: MIT
// Reads a config file's text for the YAML readers of vmrd and vmrd-broker.
#include "yaml_reader.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace vmrd {

Result<std::string> readConfigText(const std::string &path)
{
	std::error_code ec;
	if (std::filesystem::is_directory(path, ec))
		return Error{-EISDIR, path + ": is a directory, not a config file (give a file with --config FILE)"};
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
	return s.str();
}

} // namespace vmrd
