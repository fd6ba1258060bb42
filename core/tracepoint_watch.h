// SPDX-License-Identifier: MIT
// Kernel tracepoints as perf events, one per CPU, readable through epoll: the daemon's early memory signal.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <linux/perf_event.h>

#include "result.h"
#include "units.h"

namespace vmrd {

// A tracepoint to watch, and which of its events make a record.
struct Tracepoint {
	std::string_view group; // the folder under <tracefs>/events
	std::string_view name;
	std::string_view label;  // for describe() and messages
	std::string filter = {}; // an ftrace filter on the event's fields; empty: none
	uint64_t period = 1;     // one record per this many events on a CPU
};
// Page allocations by volume (kmem:mm_page_alloc, fired in __alloc_pages
// for every allocation that succeeded): a record each time a CPU has
// allocated about `bytes`.  The event counts allocations, not pages, so
// single pages and larger blocks are counted apart: a block of order 1 or
// more counts as a 2 MiB transparent huge page, the common case, which
// errs toward an early record for the rare orders between.  An idle guest
// allocates next to nothing, so the signal costs no wakeup then.  (The
// kernel waking kswapd, vmscan:mm_vmscan_wakeup_kswapd, was measured too:
// it comes at the low watermark, with MemAvailable already near 0.)
std::vector<Tracepoint> pageAllocations(uint64_t bytes, uint64_t pageSize);

// Where tracefs may be mounted, in the order to try: <sysfs>/kernel/tracing
// (systemd mounts it there), then the debugfs automount <sysfs>/kernel/debug/tracing.
std::vector<std::string> tracefsRoots(const std::string &sysfs);

// Pure: the CPUs in a sysfs CPU list ("0-3,6\n").
Result<std::vector<int>> parseCpuList(std::string_view text);

// The tracepoint's id from <root>/events/<group>/<name>/id, in the first of
// `roots` where tracefs is mounted.  Errors say whether tracefs is not
// mounted (and how to mount it) or the tracepoint is absent.
Result<uint64_t> findTracepointId(const std::vector<std::string> &roots, const Tracepoint &tp);

// What perf_event_open's errno means for a CPU-wide tracepoint event, and
// what to do about it; `paranoid` is kernel.perf_event_paranoid if known.
std::string explainPerfOpenError(int err, const Tracepoint &tp, int cpu, std::optional<int> paranoid);

class TracepointWatch
{
public:
	// What drain() found.
	struct Wakeups {
		uint64_t count = 0;             // records read, plus those the kernel dropped
		uint64_t lost = 0;              // of count: dropped because a buffer was full
		std::optional<TimePoint> first; // when the earliest record read fired (CLOCK_MONOTONIC)
		std::optional<TimePoint> last;  // and the latest
	};

	TracepointWatch() = default;
	TracepointWatch(TracepointWatch &&o) noexcept;
	TracepointWatch &operator=(TracepointWatch &&o) noexcept;
	TracepointWatch(const TracepointWatch &) = delete;
	TracepointWatch &operator=(const TracepointWatch &) = delete;
	~TracepointWatch();

	// Opens the tracepoint as a perf event on every CPU online in
	// <sysfs>/devices/system/cpu/online, each with a ring buffer mapped now
	// (perf_poll() reports EPOLLHUP for an event without one), enabled.
	// Needs CAP_PERFMON (CAP_SYS_ADMIN before Linux 5.8, and where
	// <procfs>/sys/kernel/perf_event_paranoid is above 2: Debian's and
	// Ubuntu's kernels add such levels, and Debian defaults to 3).
	static Result<TracepointWatch> open(const std::string &procfs, const std::string &sysfs,
	                                    const std::vector<std::string> &tracefs,
	                                    const std::vector<Tracepoint> &tps);

	// One per CPU, for epoll: EPOLLIN once per record, edge-like, since
	// perf_poll() clears the readiness it reports.  So each EPOLLIN must be
	// followed by a drain(), and the fds are added to epoll once, before
	// waiting: EPOLL_CTL_ADD polls and would swallow a pending EPOLLIN.
	const std::vector<int> &fds() const { return fds_; }

	// Consumes every ring buffer.  Does not allocate: it runs under memory
	// pressure.
	Wakeups drain();

	// Disable and enable the events on every CPU (PERF_EVENT_IOC_DISABLE and
	// _ENABLE): no record, no wakeup while paused.
	Status pause();
	Status resume();
	bool paused() const { return paused_; }

	// "page allocation tracepoint, 2 CPUs"
	std::string describe() const;

private:
	struct Buffer {
		int cpu = -1;
		void *base = nullptr; // the metadata page, then the data pages
	};
	Status ioctlAll(unsigned long request, const char *what);
	Status openOne(const std::string &procfs, const std::vector<std::string> &tracefs, const Tracepoint &tp,
	               int cpu, perf_event_attr attr);
	void close();

	std::string label_;
	std::vector<int> fds_;
	std::vector<Buffer> buffers_; // parallel to fds_
	size_t mapSize_ = 0;
	size_t dataOffset_ = 0; // of the records in each mapping
	size_t dataSize_ = 0;   // a power of two
	bool paused_ = false;
};

} // namespace vmrd
