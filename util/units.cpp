// SPDX-License-Identifier: MIT
// Parsing and printing of sizes and durations.
#include "units.h"

#include <array>
#include <cstdio>
#include <limits>

namespace vmrd {

namespace {

struct Unit {
	std::string_view suffix;
	uint64_t factor;
};

// Splits "128MiB" into 128 and "MiB"; fails on no digits or overflow.
bool splitNumber(std::string_view text, uint64_t &number, std::string_view &suffix)
{
	size_t i = 0;
	number = 0;
	for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; i++) {
		uint64_t digit = static_cast<uint64_t>(text[i] - '0');
		if (number > (std::numeric_limits<uint64_t>::max() - digit) / 10)
			return false;
		number = number * 10 + digit;
	}
	suffix = text.substr(i);
	while (!suffix.empty() && suffix.front() == ' ')
		suffix.remove_prefix(1);
	return i > 0;
}

std::optional<uint64_t> scale(uint64_t number, std::string_view suffix, const Unit *units, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (suffix != units[i].suffix)
			continue;
		if (number > std::numeric_limits<uint64_t>::max() / units[i].factor)
			return std::nullopt;
		return number * units[i].factor;
	}
	return std::nullopt;
}

} // namespace

std::optional<uint64_t> parseSize(std::string_view text)
{
	static constexpr uint64_t K = 1024;
	static constexpr std::array<Unit, 13> units{{
	        {"", 1},
	        {"B", 1},
	        {"K", K},
	        {"KB", K},
	        {"KiB", K},
	        {"M", K * K},
	        {"MB", K * K},
	        {"MiB", K * K},
	        {"G", K * K * K},
	        {"GB", K * K * K},
	        {"GiB", K * K * K},
	        {"T", K * K * K * K},
	        {"TiB", K * K * K * K},
	}};
	uint64_t number;
	std::string_view suffix;
	if (!splitNumber(text, number, suffix))
		return std::nullopt;
	return scale(number, suffix, units.data(), units.size());
}

std::optional<Micros> parseDuration(std::string_view text)
{
	static constexpr std::array<Unit, 5> units{{
	        {"us", 1},
	        {"ms", 1000},
	        {"s", 1000000},
	        {"m", 60000000},
	        {"h", 3600000000},
	}};
	if (text == "0")
		return Micros(0);
	uint64_t number;
	std::string_view suffix;
	if (!splitNumber(text, number, suffix))
		return std::nullopt;
	auto us = scale(number, suffix, units.data(), units.size());
	if (!us || *us > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
		return std::nullopt;
	return Micros(static_cast<int64_t>(*us));
}

std::string formatSize(uint64_t bytes)
{
	static constexpr std::array<const char *, 5> names{"B", "KiB", "MiB", "GiB", "TiB"};
	size_t i = 0;
	uint64_t whole = bytes;
	while (i + 1 < names.size() && whole >= 1024 && whole % 1024 == 0) {
		whole /= 1024;
		i++;
	}
	if (i + 1 < names.size() && whole >= (1ull << 20)) {
		// Not a whole number of the next unit: one decimal is enough to read.
		double v = static_cast<double>(whole);
		while (i + 1 < names.size() && v >= 1024) {
			v /= 1024;
			i++;
		}
		char buf[32];
		std::snprintf(buf, sizeof(buf), "%.1f %s", v, names[i]);
		return buf;
	}
	return std::to_string(whole) + " " + names[i];
}

std::string formatDuration(Micros d)
{
	const int64_t us = d.count();
	char buf[32];
	if (us != 0 && us % 60000000 == 0)
		return std::to_string(us / 60000000) + "m";
	if (us % 1000000 == 0)
		return std::to_string(us / 1000000) + "s";
	// Not a whole unit: one decimal is what a reader of a log wants.
	if (us >= 1000000)
		std::snprintf(buf, sizeof(buf), "%.1fs", static_cast<double>(us) / 1e6);
	else if (us % 1000 == 0)
		std::snprintf(buf, sizeof(buf), "%lldms", static_cast<long long>(us / 1000));
	else if (us >= 1000)
		std::snprintf(buf, sizeof(buf), "%.1fms", static_cast<double>(us) / 1e3);
	else
		std::snprintf(buf, sizeof(buf), "%lldus", static_cast<long long>(us));
	return buf;
}

} // namespace vmrd
