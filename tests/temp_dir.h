// SPDX-License-Identifier: MIT
// A temporary directory for a test, removed with everything in it.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

class TempDir
{
public:
	TempDir()
	{
		std::string tmpl = (std::filesystem::temp_directory_path() / "vmrd-test-XXXXXX").string();
		path_ = mkdtemp(tmpl.data()) ? tmpl : std::string();
	}
	~TempDir()
	{
		std::error_code ec;
		std::filesystem::remove_all(path_, ec);
	}
	TempDir(const TempDir &) = delete;
	TempDir &operator=(const TempDir &) = delete;
	const std::string &path() const { return path_; }

private:
	std::string path_;
};
