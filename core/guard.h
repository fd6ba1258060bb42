// SPDX-License-Identifier: MIT
// The memory.high guard: keeps a workload's cgroup a margin below the guest's memory.
#pragma once

#include <string>

#include "config.h"
#include "result.h"

namespace vmrd {

// Near the limit the workload is throttled, which PSI reports, instead of
// being OOM-killed before the memory it needs arrives.
class Guard
{
public:
	Guard() = default;
	Guard(const Guard &) = delete;
	Guard &operator=(const Guard &) = delete;
	~Guard();

	// Opens <guard.cgroup>/memory.high; does nothing without guard.cgroup.
	Status open(const GuardConfig &config);
	void setMargin(uint64_t margin) { config_.margin = margin; }
	// Writes memory.high for a guest of `memTotal` bytes; a failure is logged.
	void update(uint64_t memTotal);
	// Writes it again if someone else changed it since, and says so.  The
	// daemon calls it at its sample ticks and at systemd's watchdog pings.
	void check();

private:
	void write(uint64_t high);

	GuardConfig config_;
	int fd_ = -1;
	uint64_t written_ = 0; // what update() wrote last
};

} // namespace vmrd
