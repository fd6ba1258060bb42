// SPDX-License-Identifier: MIT
// Reads the kernel's memory statistics into a Sample, from files opened once at start.
#include "sampler.h"

#include <unistd.h>

#include "log.h"

namespace vmrd {

Result<Sampler> Sampler::open(const std::string &procfs)
{
	Sampler s;
	auto mi = ProcFile::open(procfs + "/meminfo");
	if (!mi)
		return mi.error();
	s.meminfo_ = std::move(*mi);
	auto optional = [&](const std::string &name, size_t capacity, std::optional<ProcFile> &out) {
		auto f = ProcFile::open(procfs + "/" + name, capacity);
		if (f)
			out = std::move(*f);
		else
			logWarning(f.error().message + "; the policy sees zeros for it");
	};
	// zoneinfo lists per-CPU pagesets: allow for many CPUs.
	optional("zoneinfo", 1 << 20, s.zoneinfo_);
	optional("vmstat", 64 << 10, s.vmstat_);
	optional("pressure/memory", 4096, s.psi_);
	long ps = sysconf(_SC_PAGESIZE);
	s.pageSize_ = ps > 0 ? static_cast<uint64_t>(ps) : 4096;
	return s;
}

std::optional<Sample> Sampler::read()
{
	Sample s;
	auto text = meminfo_.read();
	std::optional<MemInfo> mem = text ? parseMeminfo(*text) : std::nullopt;
	if (!mem) {
		logError(meminfo_.path() + ": " +
		         (text ? "cannot parse (MemTotal, MemFree or MemAvailable missing or malformed)"
		               : text.error().message));
		return std::nullopt;
	}
	s.mem = *mem;
	if (zoneinfo_) {
		auto z = zoneinfo_->read();
		if (auto zones = z ? parseZoneinfo(*z, pageSize_) : std::nullopt)
			s.movable = sumZones(*zones, "Movable");
	}
	if (vmstat_) {
		auto v = vmstat_->read();
		if (auto stat = v ? parseVmstat(*v) : std::nullopt)
			s.pgallocMovable = stat->pgallocMovable;
	}
	if (psi_) {
		auto p = psi_->read();
		if (auto stats = p ? parsePsi(*p) : std::nullopt) {
			s.someAvg10 = stats->some.avg10;
			s.someAvg60 = stats->some.avg60;
			s.someTotalUs = stats->some.totalUs;
			if (stats->full) {
				s.fullAvg10 = stats->full->avg10;
				s.fullTotalUs = stats->full->totalUs;
			}
		}
	}
	return s;
}

std::optional<uint64_t> readPsiTotal(ProcFile &file, bool full)
{
	auto text = file.read();
	if (!text)
		return std::nullopt;
	auto stats = parsePsi(*text);
	if (!stats || (full && !stats->full))
		return std::nullopt;
	return full ? stats->full->totalUs : stats->some.totalUs;
}

} // namespace vmrd
