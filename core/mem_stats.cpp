// SPDX-License-Identifier: MIT
// Pure parsers for the kernel's memory statistics files.
#include "mem_stats.h"

#include <charconv>
#include <limits>

namespace vmrd {

namespace {

std::string_view nextLine(std::string_view &text)
{
	size_t nl = text.find('\n');
	std::string_view line = text.substr(0, nl);
	text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
	return line;
}

std::string_view trim(std::string_view s)
{
	while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
		s.remove_prefix(1);
	while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
		s.remove_suffix(1);
	return s;
}

bool toU64(std::string_view s, uint64_t &out)
{
	auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
	return ec == std::errc() && p == s.data() + s.size();
}

// "12.34" as the kernel prints PSI averages (LOAD_INT.LOAD_FRAC, 2 decimals).
bool toDecimal(std::string_view s, double &out)
{
	size_t dot = s.find('.');
	uint64_t whole = 0, frac = 0;
	if (!toU64(s.substr(0, dot), whole))
		return false;
	double scale = 1;
	if (dot != std::string_view::npos) {
		std::string_view f = s.substr(dot + 1);
		if (f.empty() || f.size() > 6 || !toU64(f, frac))
			return false;
		for (size_t i = 0; i < f.size(); i++)
			scale *= 10;
	}
	out = static_cast<double>(whole) + static_cast<double>(frac) / scale;
	return true;
}

} // namespace

std::optional<MemInfo> parseMeminfo(std::string_view text)
{
	MemInfo m;
	bool total = false, free = false, avail = false;
	while (!text.empty()) {
		std::string_view line = nextLine(text);
		size_t colon = line.find(':');
		if (colon == std::string_view::npos)
			continue;
		std::string_view key = line.substr(0, colon);
		std::string_view value = trim(line.substr(colon + 1));
		uint64_t factor = 1;
		if (value.size() > 3 && value.substr(value.size() - 3) == " kB") {
			value.remove_suffix(3);
			factor = 1024;
		}
		uint64_t *field = nullptr;
		if (key == "MemTotal")
			field = &m.memTotal, total = true;
		else if (key == "MemFree")
			field = &m.memFree, free = true;
		else if (key == "MemAvailable")
			field = &m.memAvailable, avail = true;
		else if (key == "SwapTotal")
			field = &m.swapTotal;
		else if (key == "SwapFree")
			field = &m.swapFree;
		if (!field)
			continue;
		uint64_t v;
		if (!toU64(value, v) || v > std::numeric_limits<uint64_t>::max() / factor)
			return std::nullopt;
		*field = v * factor;
	}
	if (!total || !free || !avail)
		return std::nullopt;
	return m;
}

std::optional<PsiStats> parsePsi(std::string_view text)
{
	PsiStats s;
	bool some = false;
	while (!text.empty()) {
		std::string_view line = nextLine(text);
		if (line.empty())
			continue;
		size_t sp = line.find(' ');
		std::string_view kind = line.substr(0, sp);
		if (sp == std::string_view::npos || (kind != "some" && kind != "full"))
			return std::nullopt;
		PsiLine l;
		int seen = 0;
		std::string_view rest = line.substr(sp + 1);
		while (!rest.empty()) {
			size_t next = rest.find(' ');
			std::string_view field = rest.substr(0, next);
			rest = next == std::string_view::npos ? std::string_view() : rest.substr(next + 1);
			size_t eq = field.find('=');
			if (eq == std::string_view::npos)
				return std::nullopt;
			std::string_view k = field.substr(0, eq), v = field.substr(eq + 1);
			bool ok = k == "avg10"    ? (seen |= 1, toDecimal(v, l.avg10))
			          : k == "avg60"  ? (seen |= 2, toDecimal(v, l.avg60))
			          : k == "avg300" ? (seen |= 4, toDecimal(v, l.avg300))
			          : k == "total"  ? (seen |= 8, toU64(v, l.totalUs))
			                          : true;
			if (!ok)
				return std::nullopt;
		}
		if (seen != 15)
			return std::nullopt;
		if (kind == "some")
			s.some = l, some = true;
		else
			s.full = l;
	}
	if (!some)
		return std::nullopt;
	return s;
}

} // namespace vmrd
