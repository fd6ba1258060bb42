// SPDX-License-Identifier: MIT
// The daemon's one logger.
#include "log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

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
	std::lock_guard<std::mutex> lock(outputMutex);
	std::fprintf(stderr, "vmrd %s: %s\n", levelName(level), message.c_str());
	std::fflush(stderr);
}

} // namespace vmrd
