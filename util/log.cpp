// SPDX-License-Identifier: MIT
// The daemon's one logger.
#include "log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <sys/stat.h>

namespace vmrd {

namespace {
std::atomic<int> currentLevel{static_cast<int>(LogLevel::Info)};
std::mutex outputMutex;

const char *levelName(LogLevel level)
{
	switch (level) {
	case LogLevel::Error:
		return "error";
	case LogLevel::Warning:
		return "warning";
	case LogLevel::Info:
		return "info";
	case LogLevel::Debug:
		return "debug";
	}
	return "?";
}
// systemd sets JOURNAL_STREAM to the device and inode of the stream it
// connected to stderr; if stderr is still that stream, journald reads the
// priority from a "<N>" prefix.
bool stderrIsJournal()
{
	const char *env = std::getenv("JOURNAL_STREAM");
	unsigned long long dev = 0, ino = 0;
	struct stat st;
	if (!env || std::sscanf(env, "%llu:%llu", &dev, &ino) != 2 || ::fstat(2, &st) != 0)
		return false;
	return st.st_dev == dev && st.st_ino == ino;
}
} // namespace

std::optional<LogLevel> parseLogLevel(std::string_view name)
{
	for (LogLevel l : {LogLevel::Error, LogLevel::Warning, LogLevel::Info, LogLevel::Debug})
		if (name == levelName(l))
			return l;
	return std::nullopt;
}

void setLogLevel(LogLevel level)
{
	currentLevel = static_cast<int>(level);
}

bool logEnabled(LogLevel level)
{
	return static_cast<int>(level) <= currentLevel;
}

void log(LogLevel level, const std::string &message)
{
	if (!logEnabled(level))
		return;
	static const bool journal = stderrIsJournal();
	std::lock_guard<std::mutex> lock(outputMutex);
	if (journal) {
		// journald takes every line as its own entry: each needs the prefix.
		size_t start = 0;
		for (;;) {
			const size_t end = message.find('\n', start);
			const std::string line = message.substr(start, end - start);
			std::fprintf(stderr, "<%d>%s\n", static_cast<int>(level), line.c_str());
			if (end == std::string::npos)
				break;
			start = end + 1;
		}
	} else
		std::fprintf(stderr, "vmrd %s: %s\n", levelName(level), message.c_str());
	std::fflush(stderr);
}

} // namespace vmrd
