// SPDX-License-Identifier: MIT
// Guest probe: how early vmrd's early signal (page allocations by volume) comes before PSI reports a stall.
//
// usage: signal-watch DURATION_MS PER_CPU_MIB
//   Opens vmrd's TracepointWatch on the page allocation tracepoint, one
//   record per PER_CPU_MIB allocated on a CPU (as vmrd arms it: half its
//   headroom over the CPU count), and watches, for DURATION_MS or until
//   SIGTERM: the records (each drain: "wake"), the first growth of the PSI `some`
//   total, sampled every 10 ms ("stall": the first stall of any length), and
//   a PSI trigger as vmrd's server preset arms it, some 100ms/1s ("trigger").
//   Each line carries the time since start and MemAvailable read at once, as
//   vmrd would; wake lines also the kernel's time of the first record.  Then
//   one line per second with wake-ups and a "summary" line.
#include <algorithm>
#include <cinttypes>
#include <cstdlib>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <vector>

#include "tracepoint_watch.h"
#include "log.h"
#include "mem_stats.h"
#include "proc_file.h"

using namespace vmrd;
using Clock = std::chrono::steady_clock;

namespace {

constexpr uint64_t MiB = 1 << 20;

double msSince(TimePoint start, TimePoint t)
{
	return std::chrono::duration<double, std::milli>(t - start).count();
}

// The low watermarks of every zone, summed: kswapd is woken below them.
uint64_t lowWatermarks()
{
	auto text = readKernelFile("/proc/zoneinfo", 1 << 16);
	if (!text)
		return 0;
	uint64_t pages = 0;
	size_t at = 0;
	while ((at = text->find("\n        low ", at)) != std::string::npos) {
		at += 13;
		pages += std::strtoull(text->c_str() + at, nullptr, 10);
	}
	return pages * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

struct Probe {
	ProcFile meminfo, pressure;
	uint64_t available()
	{
		auto t = meminfo.read();
		auto m = t ? parseMeminfo(*t) : std::nullopt;
		return m ? m->memAvailable / MiB : 0;
	}
	uint64_t someTotal()
	{
		auto t = pressure.read();
		auto p = t ? parsePsi(*t) : std::nullopt;
		return p ? p->some.totalUs : 0;
	}
};

} // namespace

int main(int argc, char **argv)
{
	if (argc != 3) {
		std::fprintf(stderr, "usage: signal-watch DURATION_MS PER_CPU_MIB\n");
		return 2;
	}
	const long duration = std::strtol(argv[1], nullptr, 10);
	const uint64_t perCpu = std::strtoull(argv[2], nullptr, 10) * MiB;
	setLogLevel(LogLevel::Warning);
	auto watch = TracepointWatch::open("/proc", "/sys", tracefsRoots("/sys"),
	                                   pageAllocations(perCpu, static_cast<uint64_t>(::sysconf(_SC_PAGESIZE))));
	if (!watch) {
		std::printf("signal-watch: error: %s\n", watch.error().message.c_str());
		return 1;
	}
	auto meminfo = ProcFile::open("/proc/meminfo");
	auto pressure = ProcFile::open("/proc/pressure/memory");
	if (!meminfo || !pressure) {
		std::printf("signal-watch: error: /proc/meminfo or /proc/pressure/memory\n");
		return 1;
	}
	Probe probe{std::move(*meminfo), std::move(*pressure)};
	// Resident and spared by the OOM killer, as vmrd keeps itself: a probe
	// swapped out to zram would see the signal late.
	if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0)
		std::printf("signal-watch: mlockall: %s\n", std::strerror(errno));
	if (auto f = std::fopen("/proc/self/oom_score_adj", "w")) {
		std::fputs("-1000", f);
		std::fclose(f);
	}
	// As vmrd's server preset arms it; the trigger string with its NUL.
	const int trigger = ::open("/proc/pressure/memory", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	const char text[] = "some 100000 1000000";
	if (trigger < 0 || ::write(trigger, text, sizeof text) < 0) {
		std::printf("signal-watch: error: PSI trigger: %s\n", std::strerror(errno));
		return 1;
	}
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, nullptr);
	const int signals = signalfd(-1, &mask, SFD_CLOEXEC);
	const int timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	itimerspec every10ms{{0, 10'000'000}, {0, 10'000'000}};
	timerfd_settime(timer, 0, &every10ms, nullptr);

	const int ep = epoll_create1(EPOLL_CLOEXEC);
	auto add = [&](int fd, uint32_t events) {
		epoll_event ev{};
		ev.events = events;
		ev.data.fd = fd;
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	};
	for (int fd : watch->fds())
		add(fd, EPOLLIN);
	add(trigger, EPOLLPRI);
	add(signals, EPOLLIN);
	add(timer, EPOLLIN);

	const TimePoint start = Clock::now();
	const uint64_t some0 = probe.someTotal();
	auto paranoid = readKernelFile("/proc/sys/kernel/perf_event_paranoid");
	std::printf("signal-watch: watching the %s; MemAvailable %" PRIu64 " MiB, low watermarks %" PRIu64
	            " MiB, perf_event_paranoid %d\n",
	            watch->describe().c_str(), probe.available(), lowWatermarks() / MiB,
	            paranoid ? std::atoi(paranoid->c_str()) : -9);
	std::fflush(stdout);

	double firstWake = -1, firstStall = -1, firstTrigger = -1;
	uint64_t firstWakeAvail = 0, firstStallAvail = 0, firstTriggerAvail = 0, wakeups = 0, drains = 0, lost = 0;
	std::vector<uint64_t> perSecond(static_cast<size_t>(duration / 1000 + 2), 0);
	std::vector<uint64_t> availPerSecond(perSecond.size(), 0);
	bool done = false;
	while (!done && msSince(start, Clock::now()) < static_cast<double>(duration)) {
		epoll_event events[16];
		const int n = epoll_wait(ep, events, 16, 100);
		for (int i = 0; i < n; i++) {
			const int fd = events[i].data.fd;
			const double now = msSince(start, Clock::now());
			if (fd == signals) {
				done = true;
			} else if (fd == timer) {
				uint64_t expirations;
				(void)!read(timer, &expirations, sizeof expirations);
				const size_t second = static_cast<size_t>(now / 1000);
				if (second < availPerSecond.size() && availPerSecond[second] == 0)
					availPerSecond[second] = probe.available() + 1;
				if (firstStall < 0 && probe.someTotal() > some0) {
					firstStall = now;
					firstStallAvail = probe.available();
					std::printf("stall t=%.0fms avail=%" PRIu64 "MiB\n", now, firstStallAvail);
				}
			} else if (fd == trigger) {
				const uint64_t avail = probe.available();
				if (firstTrigger < 0) {
					firstTrigger = now;
					firstTriggerAvail = avail;
				}
				std::printf("trigger t=%.0fms avail=%" PRIu64 "MiB\n", now, avail);
			} else {
				const auto got = watch->drain();
				const uint64_t avail = probe.available();
				if (got.count == 0)
					continue;
				drains++;
				wakeups += got.count;
				lost += got.lost;
				const double fired = got.first ? msSince(start, *got.first) : now;
				if (firstWake < 0) {
					firstWake = fired;
					firstWakeAvail = avail;
				}
				const size_t second = static_cast<size_t>(fired / 1000);
				if (second < perSecond.size())
					perSecond[second] += got.count;
				std::printf("wake t=%.0fms fired=%.0fms n=%" PRIu64 " avail=%" PRIu64 "MiB\n", now,
				            fired, got.count, avail);
			}
		}
		std::fflush(stdout);
	}
	unsigned busySeconds = 0;
	uint64_t maxPerSecond = 0;
	for (size_t s = 0; s < perSecond.size(); s++) {
		if (perSecond[s] == 0)
			continue;
		busySeconds++;
		maxPerSecond = std::max(maxPerSecond, perSecond[s]);
		std::printf("second %zu: %" PRIu64 " wake-ups, MemAvailable %" PRIu64 " MiB\n", s, perSecond[s],
		            availPerSecond[s] ? availPerSecond[s] - 1 : 0);
	}
	std::printf("summary wakeups=%" PRIu64 " drains=%" PRIu64 " lost=%" PRIu64
	            " busy_seconds=%u max_per_second=%" PRIu64 " first_wake_ms=%.0f first_wake_avail_mib=%" PRIu64
	            " first_stall_ms=%.0f first_stall_avail_mib=%" PRIu64 " first_trigger_ms=%.0f"
	            " first_trigger_avail_mib=%" PRIu64 "\n",
	            wakeups, drains, lost, busySeconds, maxPerSecond, firstWake, firstWakeAvail, firstStall,
	            firstStallAvail, firstTrigger, firstTriggerAvail);
	return 0;
}
