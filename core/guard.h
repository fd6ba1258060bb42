// SPDX-License-Identifier: MIT
// The memory.high guard: keeps a workload's cgroup from taking the memory the rest of the guest needs.
#pragma once

#include <optional>
#include <string>

#include "config.h"
#include "mem_stats.h"
#include "proc_file.h"
#include "result.h"

namespace vmrd {

// Near the limit the workload is throttled, which PSI reports, instead of
// being OOM-killed before the memory it needs arrives.  The limit is where
// the workload would leave the guest less than the margin available:
//
//   memory.high = what the cgroup holds beyond its page cache
//                 + MemAvailable - margin,
//
// and at least 64 MiB.  Where that is below what the cgroup holds now, it
// is lowered only as far as the cgroup's usage (further, the write would make
// vmrd reclaim the workload's pages itself) and never raised to meet a
// workload that went past it.  It follows every sample, so memory that other
// processes take or free, and every resize, move it.
class Guard
{
public:
	Guard() = default;
	Guard(const Guard &) = delete;
	Guard &operator=(const Guard &) = delete;
	~Guard();

	// Opens memory.high, memory.current and memory.stat of guard.cgroup;
	// does nothing without guard.cgroup.
	Status open(const GuardConfig &config);
	void setMargin(uint64_t margin) { config_.margin = margin; }
	// Sets memory.high for a guest with `memAvailable` bytes available, if
	// it moved by a MiB or more; a failure is logged.
	void update(uint64_t memAvailable);
	// Writes it again if someone else changed it since, and says so.  The
	// daemon calls it at its sample ticks and at systemd's watchdog pings.
	void check();

private:
	Result<CgroupMemory> readUsage();
	void write(uint64_t high);

	GuardConfig config_;
	int fd_ = -1; // memory.high
	std::optional<ProcFile> current_, stat_;
	uint64_t written_ = 0;    // what write() wrote last
	bool unreadable_ = false; // logged once that the cgroup's usage cannot be read
};

} // namespace vmrd
