// SPDX-License-Identifier: MIT
// The watermark signal: a perf tracepoint event on kswapd's wake-up, one per CPU, readable through epoll.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "result.h"
#include "units.h"

namespace vmrd {

// The kernel fires vmscan:mm_vmscan_wakeup_kswapd in wakeup_kswapd()
// (mm/vmscan.c, 6.1 and 6.12 alike) when an allocation fell below a zone's
// low watermark and kswapd is asleep, the node is not balanced (or its
// watermarks are boosted after fragmentation) and not hopeless: at most
// once per kswapd sleep, so the signal costs nothing while memory is plentiful.
struct Tracepoint {
	std::string_view group; // the folder under <tracefs>/events
	std::string_view name;
	std::string_view label; // for describe() and messages
};
inline constexpr Tracepoint kswapdWakeup{"vmscan", "mm_vmscan_wakeup_kswapd", "kswapd wake-up tracepoint"};

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

class KswapdWatch
{
public:
	// What drain() found.
	struct Wakeups {
		uint64_t count = 0;             // records read, plus those the kernel dropped
		uint64_t lost = 0;              // of count: dropped because a buffer was full
		std::optional<TimePoint> first; // when the earliest record read fired (CLOCK_MONOTONIC)
		std::optional<TimePoint> last;  // and the latest
	};

	KswapdWatch() = default;
	KswapdWatch(KswapdWatch &&o) noexcept;
	KswapdWatch &operator=(KswapdWatch &&o) noexcept;
	KswapdWatch(const KswapdWatch &) = delete;
	KswapdWatch &operator=(const KswapdWatch &) = delete;
	~KswapdWatch();

	// Opens the tracepoint as a perf event on every CPU online in
	// <sysfs>/devices/system/cpu/online, each with a ring buffer mapped now
	// (perf_poll() reports EPOLLHUP for an event without one), enabled.
	// Needs CAP_PERFMON (CAP_SYS_ADMIN before Linux 5.8, and where
	// <procfs>/sys/kernel/perf_event_paranoid is above 2: Debian's and
	// Ubuntu's kernels add such levels, and Debian defaults to 3).
	static Result<KswapdWatch> open(const std::string &procfs, const std::string &sysfs,
	                                const std::vector<std::string> &tracefs, const Tracepoint &tp = kswapdWakeup);

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

	// "kswapd wake-up tracepoint, 2 CPUs"
	std::string describe() const;

private:
	struct Buffer {
		int cpu = -1;
		void *base = nullptr; // the metadata page, then the data pages
	};
	Status ioctlAll(unsigned long request, const char *what);
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
