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

std::optional<std::vector<ZoneStats>> parseZoneinfo(std::string_view text, uint64_t pageSize)
{
	std::vector<ZoneStats> zones;
	ZoneStats *zone = nullptr;
	while (!text.empty()) {
		std::string_view line = nextLine(text);
		if (line.substr(0, 5) == "Node ") {
			// "Node 0, zone   Normal"
			size_t comma = line.find(", zone");
			uint64_t node;
			if (comma == std::string_view::npos || !toU64(line.substr(5, comma - 5), node))
				return std::nullopt;
			zones.push_back({});
			zone = &zones.back();
			zone->node = static_cast<unsigned>(node);
			zone->name = std::string(trim(line.substr(comma + 6)));
			if (zone->name.empty())
				return std::nullopt;
			continue;
		}
		if (!zone)
			continue;
		line = trim(line);
		if (line.substr(0, 10) == "pages free")
			line = line.substr(6); // "free     123"
		size_t sp = line.find_first_of(" \t");
		if (sp == std::string_view::npos)
			continue;
		std::string_view key = line.substr(0, sp);
		uint64_t *field = key == "free"                    ? &zone->free
		                  : key == "present"               ? &zone->present
		                  : key == "managed"               ? &zone->managed
		                  : key == "nr_zone_inactive_anon" ? &zone->inactiveAnon
		                  : key == "nr_zone_inactive_file" ? &zone->inactiveFile
		                                                   : nullptr;
		if (!field)
			continue;
		uint64_t pages;
		if (!toU64(trim(line.substr(sp)), pages) || pages > std::numeric_limits<uint64_t>::max() / pageSize)
			return std::nullopt;
		*field = pages * pageSize;
	}
	if (zones.empty())
		return std::nullopt;
	return zones;
}

ZoneStats sumZones(const std::vector<ZoneStats> &zones, std::string_view name)
{
	ZoneStats sum;
	sum.name = std::string(name);
	for (const auto &z : zones) {
		if (z.name != name)
			continue;
		sum.free += z.free;
		sum.inactiveAnon += z.inactiveAnon;
		sum.inactiveFile += z.inactiveFile;
		sum.managed += z.managed;
		sum.present += z.present;
	}
	return sum;
}

std::optional<VmStat> parseVmstat(std::string_view text)
{
	VmStat v;
	bool movable = false;
	while (!text.empty()) {
		std::string_view line = nextLine(text);
		size_t sp = line.find(' ');
		if (sp == std::string_view::npos)
			continue;
		std::string_view key = line.substr(0, sp);
		uint64_t *field = key == "pgalloc_movable"           ? &v.pgallocMovable
		                  : key == "pgscan_kswapd"           ? &v.pgscanKswapd
		                  : key == "pgscan_direct"           ? &v.pgscanDirect
		                  : key == "pgsteal_kswapd"          ? &v.pgstealKswapd
		                  : key == "pgsteal_direct"          ? &v.pgstealDirect
		                  : key == "workingset_refault_anon" ? &v.workingsetRefaultAnon
		                  : key == "workingset_refault_file" ? &v.workingsetRefaultFile
		                                                     : nullptr;
		if (!field)
			continue;
		if (!toU64(line.substr(sp + 1), *field))
			return std::nullopt;
		movable = movable || field == &v.pgallocMovable;
	}
	if (!movable)
		return std::nullopt;
	return v;
}

std::optional<CgroupMemory> parseCgroupMemory(std::string_view current, std::string_view stat)
{
	CgroupMemory m;
	if (!toU64(trim(nextLine(current)), m.current))
		return std::nullopt;
	uint64_t active = 0, inactive = 0;
	bool seenActive = false, seenInactive = false;
	while (!stat.empty()) {
		std::string_view line = nextLine(stat);
		const size_t sp = line.find(' ');
		const std::string_view key = line.substr(0, sp);
		if (key == "active_file")
			seenActive = toU64(line.substr(sp + 1), active);
		else if (key == "inactive_file")
			seenInactive = toU64(line.substr(sp + 1), inactive);
	}
	if (!seenActive || !seenInactive)
		return std::nullopt;
	m.fileLru = active + inactive;
	return m;
}

std::optional<uint64_t> parseBlockSize(std::string_view text)
{
	text = trim(text.substr(0, text.find('\n')));
	if (text.empty() || text.size() > 16)
		return std::nullopt;
	uint64_t v;
	auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v, 16);
	if (ec != std::errc() || p != text.data() + text.size() || v == 0)
		return std::nullopt;
	return v;
}

std::optional<OnlinePolicy> parseOnlinePolicy(std::string_view text)
{
	text = trim(text.substr(0, text.find('\n')));
	if (text == "offline")
		return OnlinePolicy::Offline;
	if (text == "online")
		return OnlinePolicy::Online;
	if (text == "online_kernel")
		return OnlinePolicy::OnlineKernel;
	if (text == "online_movable")
		return OnlinePolicy::OnlineMovable;
	return std::nullopt;
}

} // namespace vmrd
