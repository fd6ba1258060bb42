// SPDX-License-Identifier: MIT
// Tests of the tracepoint watch: the id lookup and its messages on fake tracefs trees, and the perf mechanics on this
// machine's kernel.
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <tuple>
#include <unistd.h>

#include "tracepoint_watch.h"
#include "proc_file.h"
#include "temp_dir.h"

using namespace vmrd;

namespace {
const Tracepoint allocs = pageAllocations(24 << 20, 4096).front();
} // namespace

// drain() must not allocate.  The sanitized build (./run test's second)
// counts every allocation through the sanitizer's hooks; replacing operator
// new instead would confuse valgrind, which runs these tests too.
#if defined(VMRD_SANITIZED) && __has_include(<sanitizer/allocator_interface.h>)
#include <sanitizer/allocator_interface.h>
#define VMRD_COUNT_ALLOCATIONS 1
namespace {
std::atomic<size_t> allocations{0};
void countAllocation(const volatile void *, size_t)
{
	allocations++;
}
void ignoreFree(const volatile void *) {}
// Both hooks or none: the runtime refuses a null one.
const bool hooked = __sanitizer_install_malloc_and_free_hooks(countAllocation, ignoreFree) != 0;
} // namespace
#endif

namespace {

void writeFile(const std::string &path, const std::string &text)
{
	std::filesystem::create_directories(std::filesystem::path(path).parent_path());
	std::ofstream(path) << text;
}

bool contains(const std::string &text, const std::string &part)
{
	return text.find(part) != std::string::npos;
}

// A fake /sys: tracefs not mounted at kernel/tracing (an empty folder, as
// the kernel leaves it), the debugfs automount absent, two CPUs.
struct FakeSys {
	TempDir dir;
	std::string procfs = dir.path() + "/proc";
	std::string sysfs = dir.path() + "/sys";
	FakeSys()
	{
		std::filesystem::create_directories(sysfs + "/kernel/tracing");
		writeFile(sysfs + "/devices/system/cpu/online", "0-1\n");
	}
	void mountAt(const std::string &root) { std::filesystem::create_directories(root + "/events/sched"); }
	void addAllocId(const std::string &root, const std::string &id)
	{
		writeFile(root + "/events/kmem/mm_page_alloc/id", id);
	}
};

} // namespace

TEST(CpuList, ParsesTheSysfsFormat)
{
	EXPECT_EQ(*parseCpuList("0\n"), (std::vector<int>{0}));
	EXPECT_EQ(*parseCpuList("0-1\n"), (std::vector<int>{0, 1}));
	EXPECT_EQ(*parseCpuList("0,2-4,7\n"), (std::vector<int>{0, 2, 3, 4, 7}));
}

TEST(CpuList, RejectsWhatIsNotAList)
{
	for (const char *bad : {"", "\n", "a", "1-", "-1", "3-1", "0,,1", "0,", "1 2", "0-99999999"})
		EXPECT_FALSE(parseCpuList(bad)) << bad;
}

TEST(TracepointId, TracingBeforeTheDebugfsAutomount)
{
	EXPECT_EQ(tracefsRoots("/sys"), (std::vector<std::string>{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}));
}

TEST(TracepointId, ReadsTheFirstMountedTracefs)
{
	FakeSys sys;
	const auto roots = tracefsRoots(sys.sysfs);
	// Only the old debugfs place is mounted: found there.
	sys.mountAt(roots[1]);
	sys.addAllocId(roots[1], "638\n");
	auto id = findTracepointId(roots, allocs);
	ASSERT_TRUE(id) << id.error().message;
	EXPECT_EQ(*id, 638u);
	// Both mounted: the first wins.
	sys.mountAt(roots[0]);
	sys.addAllocId(roots[0], "640\n");
	EXPECT_EQ(*findTracepointId(roots, allocs), 640u);
}

TEST(TracepointId, NotMountedSaysHowToMount)
{
	FakeSys sys;
	auto id = findTracepointId(tracefsRoots(sys.sysfs), allocs);
	ASSERT_FALSE(id);
	EXPECT_EQ(id.error().code, -ENOENT);
	const std::string &m = id.error().message;
	EXPECT_TRUE(contains(m, "tracefs is not mounted at " + sys.sysfs + "/kernel/tracing or " + sys.sysfs +
	                                "/kernel/debug/tracing"))
	        << m;
	EXPECT_TRUE(contains(m, "mount -t tracefs nodev " + sys.sysfs + "/kernel/tracing")) << m;
	EXPECT_TRUE(contains(m, "systemd mounts it")) << m;
}

TEST(TracepointId, AbsentEventNamesTheTracepoint)
{
	FakeSys sys;
	const auto roots = tracefsRoots(sys.sysfs);
	sys.mountAt(roots[0]);
	auto id = findTracepointId(roots, allocs);
	ASSERT_FALSE(id);
	EXPECT_EQ(id.error().code, -ENOENT);
	const std::string &m = id.error().message;
	EXPECT_TRUE(contains(m, "page allocation tracepoint (kmem:mm_page_alloc) is absent")) << m;
	EXPECT_TRUE(contains(m, roots[0] + "/events/kmem/mm_page_alloc/id does not exist")) << m;
}

TEST(TracepointId, MalformedIdIsAnError)
{
	FakeSys sys;
	const auto roots = tracefsRoots(sys.sysfs);
	sys.mountAt(roots[0]);
	for (const char *bad : {"", "x1\n", "-3\n", "123456789012345678901234\n"}) {
		sys.addAllocId(roots[0], bad);
		auto id = findTracepointId(roots, allocs);
		ASSERT_FALSE(id) << bad;
		EXPECT_TRUE(contains(id.error().message, "expected a tracepoint id")) << id.error().message;
	}
}

TEST(TracepointId, InjectedTracepoint)
{
	FakeSys sys;
	const auto roots = tracefsRoots(sys.sysfs);
	writeFile(roots[0] + "/events/syscalls/sys_enter_getppid/id", "5\n");
	EXPECT_EQ(*findTracepointId(roots, {"syscalls", "sys_enter_getppid", "getppid"}), 5u);
}

TEST(TracepointWatchOpen, FailsBeforePerfWithTheTracefsMessage)
{
	FakeSys sys;
	auto w = TracepointWatch::open(sys.procfs, sys.sysfs, tracefsRoots(sys.sysfs), {allocs});
	ASSERT_FALSE(w);
	EXPECT_TRUE(contains(w.error().message, "tracefs is not mounted")) << w.error().message;
}

TEST(TracepointWatchOpen, BadCpuListNamesTheFile)
{
	FakeSys sys;
	const auto roots = tracefsRoots(sys.sysfs);
	sys.mountAt(roots[0]);
	sys.addAllocId(roots[0], "638\n");
	writeFile(sys.sysfs + "/devices/system/cpu/online", "zero\n");
	auto w = TracepointWatch::open(sys.procfs, sys.sysfs, roots, {allocs});
	ASSERT_FALSE(w);
	EXPECT_TRUE(contains(w.error().message, sys.sysfs + "/devices/system/cpu/online: bad CPU list"))
	        << w.error().message;
}

TEST(TracepointWatchOpen, PerfErrorsSayWhatToDo)
{
	for (int err : {EACCES, EPERM}) {
		for (std::optional<int> paranoid : {std::optional<int>(), std::optional<int>(2)}) {
			const std::string m = explainPerfOpenError(err, allocs, 1, paranoid);
			EXPECT_TRUE(contains(m, "page allocation tracepoint (kmem:mm_page_alloc) on CPU 1")) << m;
			EXPECT_TRUE(contains(m, "needs CAP_PERFMON")) << m;
			EXPECT_TRUE(contains(m, "CAP_SYS_ADMIN before")) << m;
			EXPECT_TRUE(contains(m, "does not matter up to 2")) << m;
			EXPECT_EQ(contains(m, "(2 here)"), paranoid.has_value()) << m;
		}
		// Debian's default: the capability is not enough.
		const std::string m = explainPerfOpenError(err, allocs, 0, 3);
		EXPECT_TRUE(contains(m, "kernel.perf_event_paranoid is 3")) << m;
		EXPECT_TRUE(contains(m, "needs CAP_SYS_ADMIN and CAP_PERFMON is not enough")) << m;
		EXPECT_TRUE(contains(m, "set kernel.perf_event_paranoid=2")) << m;
	}
	EXPECT_TRUE(contains(explainPerfOpenError(ENOENT, allocs, 0, 2), "CONFIG_EVENT_TRACING"));
	EXPECT_TRUE(contains(explainPerfOpenError(ENODEV, allocs, 3, 2), "CPU went offline"));
	EXPECT_TRUE(contains(explainPerfOpenError(ENOSYS, allocs, 0, 2), "CONFIG_PERF_EVENTS"));
}

TEST(TracepointWatchOpen, DefaultIsNotOpen)
{
	TracepointWatch w;
	EXPECT_TRUE(w.fds().empty());
	EXPECT_EQ(w.drain().count, 0u);
	EXPECT_EQ(w.describe(), "no tracepoint watch");
}

// On this machine's kernel, as root.  Page allocations come from everything
// on the host, which a test cannot count; the mechanics are checked on a
// syscall tracepoint that nothing else here calls.
class TracepointKernel : public ::testing::Test
{
protected:
	static void SetUpTestSuite()
	{
		skip_.clear();
		// The cross build's tests run under qemu-user (meson/README.md).
		if (const char *w = std::getenv("VMRD_TEST_WRAPPER"); w && *w) {
			skip_ = std::string("under ") + w + ", which does not emulate perf_event_open";
			return;
		}
		if (geteuid() != 0) {
			skip_ = "perf tracepoint events on every CPU need root (CAP_PERFMON)";
			return;
		}
		struct stat st = {};
		if (::stat("/sys/kernel/tracing/events", &st) == 0)
			return;
		if (::stat("/sys/kernel/tracing", &st) != 0) {
			skip_ = "/sys/kernel/tracing does not exist: this kernel has no tracefs";
			return;
		}
		if (::mount("nodev", "/sys/kernel/tracing", "tracefs", 0, nullptr) != 0) {
			skip_ = std::string("tracefs is not mounted and mount -t tracefs nodev /sys/kernel/tracing "
			                    "failed: ") +
			        std::strerror(errno);
			return;
		}
		mountedHere_ = true;
	}
	static void TearDownTestSuite()
	{
		// Leave the machine as it was found.
		if (mountedHere_ && ::umount("/sys/kernel/tracing") == 0)
			mountedHere_ = false;
	}
	void SetUp() override
	{
		if (!skip_.empty())
			GTEST_SKIP() << skip_;
	}

	static std::string skip_;
	static bool mountedHere_;
};
std::string TracepointKernel::skip_;
bool TracepointKernel::mountedHere_ = false;

namespace {

// Rare on any machine, harmless, and a real syscall (no vDSO).
const Tracepoint probe{"syscalls", "sys_enter_sched_get_priority_max", "test tracepoint"};

void fire(int times)
{
	for (int i = 0; i < times; i++)
		::syscall(SYS_sched_get_priority_max, SCHED_OTHER);
}

// The fds in one epoll set, as the daemon's loop holds them: registered
// before anything fires.  (Adding an fd polls it, and perf_poll() clears the
// readiness it reports, which epoll then polls again before reporting.)
class Epoll
{
public:
	explicit Epoll(const std::vector<int> &fds) : ep_(epoll_create1(EPOLL_CLOEXEC))
	{
		for (int fd : fds) {
			epoll_event ev{};
			ev.events = EPOLLIN;
			ev.data.fd = fd;
			epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
		}
	}
	~Epoll() { ::close(ep_); }
	Epoll(const Epoll &) = delete;
	Epoll &operator=(const Epoll &) = delete;

	// How many fds are readable within `ms`; fails the test on anything
	// else (EPOLLHUP: an event without a ring buffer).
	int readable(int ms)
	{
		epoll_event out[64];
		const int n = epoll_wait(ep_, out, 64, ms);
		int in = 0;
		for (int i = 0; i < n; i++) {
			EXPECT_EQ(out[i].events, static_cast<uint32_t>(EPOLLIN));
			in += (out[i].events & EPOLLIN) ? 1 : 0;
		}
		return in;
	}

private:
	int ep_;
};

std::vector<int> onlineCpus()
{
	auto text = readKernelFile("/sys/devices/system/cpu/online");
	return text ? parseCpuList(*text).value() : std::vector<int>{};
}

} // namespace

TEST_F(TracepointKernel, OpensThePageAllocationSignalOnEveryCpu)
{
	auto w = TracepointWatch::open("/proc", "/sys", tracefsRoots("/sys"), pageAllocations(24 << 20, 4096));
	ASSERT_TRUE(w) << w.error().message;
	const size_t cpus = onlineCpus().size();
	EXPECT_EQ(w->fds().size(), 2 * cpus) << "single pages and larger blocks, on each CPU";
	EXPECT_EQ(w->describe(),
	          "page allocation tracepoint, " + std::to_string(cpus) + (cpus == 1 ? " CPU" : " CPUs"));
	for (int fd : w->fds())
		EXPECT_EQ(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	// Idle: nothing to read, and no EPOLLHUP, which perf reports for an
	// event without a ring buffer and which would spin the loop.
	EXPECT_EQ(Epoll(w->fds()).readable(0), 0);
}

TEST_F(TracepointKernel, ReadableDrainedPausedResumed)
{
	if (access("/sys/kernel/tracing/events/syscalls/sys_enter_sched_get_priority_max/id", R_OK) != 0)
		GTEST_SKIP()
		        << "this kernel has no syscall tracepoints (CONFIG_FTRACE_SYSCALLS) to check the mechanics on";
	auto w = TracepointWatch::open("/proc", "/sys", tracefsRoots("/sys"), {probe});
	ASSERT_TRUE(w) << w.error().message;
	Epoll ep(w->fds());
	EXPECT_EQ(w->drain().count, 0u);
	EXPECT_EQ(ep.readable(0), 0) << "readable with nothing fired";

	const auto before = std::chrono::steady_clock::now();
	fire(5);
	const auto after = std::chrono::steady_clock::now();
	EXPECT_GE(ep.readable(2000), 1) << "no EPOLLIN after 5 events";
#ifdef VMRD_COUNT_ALLOCATIONS
	ASSERT_TRUE(hooked);
	const size_t allocated = allocations;
#endif
	const auto got = w->drain();
#ifdef VMRD_COUNT_ALLOCATIONS
	EXPECT_EQ(allocations, allocated) << "drain() allocated";
#endif
	EXPECT_GE(got.count, 5u);
	EXPECT_EQ(got.lost, 0u);
	ASSERT_TRUE(got.first && got.last);
	EXPECT_LE(before, *got.first) << "record times are CLOCK_MONOTONIC, the steady clock";
	EXPECT_LE(*got.last, after);
	EXPECT_EQ(ep.readable(0), 0) << "still readable after drain()";

	ASSERT_TRUE(w->pause());
	EXPECT_TRUE(w->paused());
	fire(5);
	EXPECT_EQ(ep.readable(200), 0) << "readable while paused";
	EXPECT_EQ(w->drain().count, 0u) << "records while paused";

	ASSERT_TRUE(w->resume());
	fire(3);
	EXPECT_GE(ep.readable(2000), 1) << "no EPOLLIN after resume()";
	EXPECT_GE(w->drain().count, 3u);
}

TEST_F(TracepointKernel, FullBufferCountsLostWakeups)
{
	if (access("/sys/kernel/tracing/events/syscalls/sys_enter_sched_get_priority_max/id", R_OK) != 0)
		GTEST_SKIP()
		        << "this kernel has no syscall tracepoints (CONFIG_FTRACE_SYSCALLS) to check the mechanics on";
	// On one CPU, so one buffer fills: 4 KiB of 16-byte records.
	cpu_set_t old, one;
	ASSERT_EQ(sched_getaffinity(0, sizeof old, &old), 0);
	CPU_ZERO(&one);
	CPU_SET(onlineCpus().front(), &one);
	ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
	auto w = TracepointWatch::open("/proc", "/sys", tracefsRoots("/sys"), {probe});
	ASSERT_TRUE(w) << w.error().message;
	uint64_t total = 0, lost = 0;
	// Two rounds: the second starts mid-buffer, so records wrap around its end.
	for (int round = 0; round < 2; round++) {
		fire(300);
		auto got = w->drain();
		total += got.count;
		lost += got.lost;
		// The kernel reports what it dropped with the next record it can write.
		fire(1);
		got = w->drain();
		total += got.count;
		lost += got.lost;
	}
	sched_setaffinity(0, sizeof old, &old);
	EXPECT_GT(lost, 0u) << "the 4 KiB buffer held 300 records";
	EXPECT_GE(total, 602u) << "records and lost ones together: every wake-up counted";
	EXPECT_LT(total, 620u);
}

namespace {

// In a child: keeps only the capabilities in `keep` (bit numbers), then
// opens the page allocation signal.  Returns the error code (0 on success) and message.
std::pair<int, std::string> openWithCapabilities(std::initializer_list<int> keep)
{
	int pipefd[2];
	if (pipe(pipefd) != 0)
		return {-errno, "pipe"};
	const pid_t pid = fork();
	if (pid == 0) {
		::close(pipefd[0]);
		__user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
		__user_cap_data_struct data[2]{};
		for (int cap : keep) {
			data[cap / 32].effective |= 1u << (cap % 32);
			data[cap / 32].permitted |= 1u << (cap % 32);
		}
		std::string message;
		int code = 0;
		if (::syscall(SYS_capset, &header, data) != 0) {
			code = -errno;
			message = "capset failed";
		} else {
			auto w = TracepointWatch::open("/proc", "/sys", tracefsRoots("/sys"), {allocs});
			code = w ? 0 : w.error().code;
			message = w ? w->describe() : w.error().message;
		}
		(void)!write(pipefd[1], &code, sizeof code);
		(void)!write(pipefd[1], message.data(), message.size());
		_exit(0);
	}
	::close(pipefd[1]);
	int code = -EIO;
	std::string message;
	if (read(pipefd[0], &code, sizeof code) == static_cast<ssize_t>(sizeof code)) {
		char buf[4096];
		ssize_t n;
		while ((n = read(pipefd[0], buf, sizeof buf)) > 0)
			message.append(buf, static_cast<size_t>(n));
	}
	::close(pipefd[0]);
	waitpid(pid, nullptr, 0);
	return {code, message};
}

} // namespace

TEST_F(TracepointKernel, CapPerfmonIsWhatItTakes)
{
	constexpr int capPerfmon = 38; // linux/capability.h, Linux 5.8
	int paranoid = 2;
	if (auto t = readKernelFile("/proc/sys/kernel/perf_event_paranoid"))
		paranoid = std::atoi(t->c_str());
	if (paranoid <= 0)
		GTEST_SKIP() << "kernel.perf_event_paranoid is " << paranoid
		             << " here: anyone may watch every CPU, so no capability is missed";
	auto [code, message] = openWithCapabilities({});
	EXPECT_EQ(code, -EACCES) << message;
	EXPECT_TRUE(contains(message, paranoid > 2 ? "needs CAP_SYS_ADMIN" : "needs CAP_PERFMON")) << message;
	std::tie(code, message) = openWithCapabilities({capPerfmon});
	if (paranoid > 2) {
		// Refused on a Debian or Ubuntu kernel, whose patch asks for
		// CAP_SYS_ADMIN there; mainline takes any level above 2 as 2.
		if (code != 0) {
			EXPECT_TRUE(contains(message, "kernel.perf_event_paranoid is " + std::to_string(paranoid)))
			        << message;
		}
	} else {
		EXPECT_EQ(code, 0) << "CAP_PERFMON alone, perf_event_paranoid " << paranoid << ": " << message;
	}
}

// A filter and a period: only the events that pass count, one record per
// `period` of them, as the page-allocation signal uses them.
TEST_F(TracepointKernel, AFilterAndAPeriodThinTheRecords)
{
	if (access("/sys/kernel/tracing/events/syscalls/sys_enter_sched_get_priority_max/id", R_OK) != 0)
		GTEST_SKIP()
		        << "this kernel has no syscall tracepoints (CONFIG_FTRACE_SYSCALLS) to check the mechanics on";
	Tracepoint every3 = probe;
	every3.filter = "policy == 1"; // SCHED_FIFO
	every3.period = 3;
	auto w = TracepointWatch::open("/proc", "/sys", tracefsRoots("/sys"), {every3});
	ASSERT_TRUE(w) << w.error().message;
	// Pinned to one CPU, so one counter sees them all.
	cpu_set_t all, one;
	ASSERT_EQ(sched_getaffinity(0, sizeof all, &all), 0);
	CPU_ZERO(&one);
	CPU_SET(onlineCpus().front(), &one);
	ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
	fire(10); // SCHED_OTHER: filtered out
	for (int i = 0; i < 7; i++)
		::syscall(SYS_sched_get_priority_max, SCHED_FIFO);
	ASSERT_EQ(sched_setaffinity(0, sizeof all, &all), 0);
	EXPECT_EQ(w->drain().count, 2u) << "7 passing events, one record per 3";
}

TEST(TracepointWatch, PageAllocationsCountSinglePagesAndHugeBlocksApart)
{
	const auto tps = pageAllocations(48ull << 20, 4096);
	ASSERT_EQ(tps.size(), 2u);
	EXPECT_EQ(tps[0].filter, "order == 0");
	EXPECT_EQ(tps[0].period, 12288u) << "48 MiB of 4 KiB pages";
	EXPECT_EQ(tps[1].filter, "order > 0");
	EXPECT_EQ(tps[1].period, 24u) << "48 MiB of 2 MiB blocks";
	EXPECT_EQ(pageAllocations(1 << 20, 4096)[1].period, 1u) << "never 0";
}
