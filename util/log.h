// SPDX-License-Identifier: MIT
// The daemon's one logger: levels as syslog's, one line per message on stderr.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace vmrd {

enum class LogLevel { Error = 3, Warning = 4, Info = 6, Debug = 7 };

std::optional<LogLevel> parseLogLevel(std::string_view name);
void setLogLevel(LogLevel level);
bool logEnabled(LogLevel level);

// Thread-safe; each call writes one whole line.
void log(LogLevel level, const std::string &message);

inline void logError(const std::string &m)
{
	log(LogLevel::Error, m);
}
inline void logWarning(const std::string &m)
{
	log(LogLevel::Warning, m);
}
inline void logInfo(const std::string &m)
{
	log(LogLevel::Info, m);
}
inline void logDebug(const std::string &m)
{
	log(LogLevel::Debug, m);
}

} // namespace vmrd
