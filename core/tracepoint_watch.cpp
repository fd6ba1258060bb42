// SPDX-License-Identifier: MIT
// Kernel tracepoints as perf events, one per CPU and tracepoint, readable through epoll.
#include "tracepoint_watch.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <chrono>
#include <cstring>
#include <ctime>
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "proc_file.h"

namespace vmrd {

std::vector<std::string> tracefsRoots(const std::string &sysfs)
{
	return {sysfs + "/kernel/tracing", sysfs + "/kernel/debug/tracing"};
}

namespace {

std::string trim(std::string_view s)
{
	const auto begin = s.find_first_not_of(" \t\n");
	if (begin == std::string_view::npos)
		return {};
	return std::string(s.substr(begin, s.find_last_not_of(" \t\n") - begin + 1));
}

// A decimal number of at most 9 digits (no sign, no spaces), or -1.  Not an
// optional: built for size, gcc reads an empty optional's payload while it
// checks both ends of a range, and valgrind reports that read.
int parseSmallNumber(std::string_view s)
{
	if (s.empty() || s.size() > 9)
		return -1;
	int n = 0;
	for (char c : s) {
		if (c < '0' || c > '9')
			return -1;
		n = n * 10 + (c - '0');
	}
	return n;
}

std::string tracepointName(const Tracepoint &tp)
{
	return std::string(tp.group) + ":" + std::string(tp.name);
}

} // namespace

Result<std::vector<int>> parseCpuList(std::string_view text)
{
	const std::string list = trim(text);
	if (list.empty())
		return Error{-EINVAL, "empty CPU list"};
	// A sysfs list names at most a few thousand CPUs; anything beyond is not one.
	constexpr int maxCpus = 1 << 16;
	std::vector<int> cpus;
	size_t start = 0;
	while (start <= list.size()) {
		size_t end = list.find(',', start);
		if (end == std::string::npos)
			end = list.size();
		const std::string_view item(list.data() + start, end - start);
		const size_t dash = item.find('-');
		const int first = parseSmallNumber(item.substr(0, dash));
		const int last = dash == std::string_view::npos ? first : parseSmallNumber(item.substr(dash + 1));
		if (first < 0 || last < first || last >= maxCpus ||
		    cpus.size() + static_cast<size_t>(last - first) >= static_cast<size_t>(maxCpus))
			return Error{-EINVAL, "bad CPU list '" + list + "' at '" + std::string(item) + "'"};
		for (int cpu = first; cpu <= last; cpu++)
			cpus.push_back(cpu);
		start = end + 1;
	}
	return cpus;
}

Result<uint64_t> findTracepointId(const std::vector<std::string> &roots, const Tracepoint &tp)
{
	// An unmounted tracefs leaves an empty folder: `events` tells a mount.
	std::string mounted, denied;
	for (const auto &root : roots) {
		struct stat st = {};
		const int r = ::stat((root + "/events").c_str(), &st);
		if (r == 0 && S_ISDIR(st.st_mode)) {
			mounted = root;
			break;
		}
		if (r != 0 && (errno == EACCES || errno == EPERM) && denied.empty())
			denied = root;
	}
	std::string where;
	for (const auto &root : roots)
		where += (where.empty() ? "" : " or ") + root;
	if (mounted.empty() && !denied.empty())
		return Error{-EACCES, "tracefs at " + denied + " is not readable (" + std::strerror(EACCES) +
		                              "): reading the " + std::string(tp.label) + "'s id needs root"};
	if (mounted.empty())
		return Error{-ENOENT, "tracefs is not mounted at " + where + ", where vmrd reads the " +
		                              std::string(tp.label) +
		                              "'s id: systemd mounts it at boot (sys-kernel-tracing.mount); "
		                              "without systemd, mount it with `mount -t tracefs nodev " +
		                              (roots.empty() ? std::string("/sys/kernel/tracing") : roots.front()) +
		                              "` (Linux 4.1 or later, CONFIG_TRACING)"};
	const std::string path = mounted + "/events/" + std::string(tp.group) + "/" + std::string(tp.name) + "/id";
	auto text = readKernelFile(path, 64);
	if (!text && text.error().code == -ENOENT)
		return Error{-ENOENT, "the " + std::string(tp.label) + " (" + tracepointName(tp) +
		                              ") is absent: tracefs is mounted at " + mounted + " but " + path +
		                              " does not exist; this kernel was built without it"};
	if (!text)
		return Error{text.error().code,
		             "reading the " + std::string(tp.label) + "'s id: " + text.error().message};
	const std::string id = trim(*text);
	uint64_t value = 0;
	bool ok = !id.empty() && id.size() < 20;
	for (char c : id) {
		ok = ok && c >= '0' && c <= '9';
		value = value * 10 + static_cast<uint64_t>(c - '0');
	}
	if (!ok)
		return Error{-EINVAL, path + ": expected a tracepoint id, read '" + id + "'"};
	return value;
}

std::string explainPerfOpenError(int err, const Tracepoint &tp, int cpu, std::optional<int> paranoid)
{
	std::string m = "perf_event_open of the " + std::string(tp.label) + " (" + tracepointName(tp) + ") on CPU " +
	                std::to_string(cpu) + ": " + std::strerror(err);
	switch (err) {
	case EACCES:
	case EPERM:
		// Mainline knows levels up to 2, below which CAP_PERFMON opens
		// every event; Debian's and Ubuntu's kernels add 3 (Debian's
		// default) and 4, where perf_event_open() wants CAP_SYS_ADMIN.
		if (paranoid && *paranoid > 2)
			return m + ": kernel.perf_event_paranoid is " + std::to_string(*paranoid) +
			       ", a level Debian's and Ubuntu's kernels add, at which perf_event_open needs "
			       "CAP_SYS_ADMIN and CAP_PERFMON is not enough; set kernel.perf_event_paranoid=2 (the "
			       "mainline default, in /etc/sysctl.d/) to watch with CAP_PERFMON, which vmrd.service "
			       "grants";
		return m +
		       ": watching a tracepoint on every CPU needs CAP_PERFMON (Linux 5.8 and later; "
		       "CAP_SYS_ADMIN before), with which kernel.perf_event_paranoid" +
		       (paranoid ? " (" + std::to_string(*paranoid) + " here)" : std::string()) +
		       " does not matter up to 2; vmrd.service grants it.  A seccomp filter without "
		       "perf_event_open (systemd's @system-service lacks it) or kernel lockdown refuse it too";
	case ENOENT:
		return m + ": this kernel has no perf support for tracepoints (CONFIG_EVENT_TRACING)";
	case ENODEV:
		return m + ": the CPU went offline while vmrd was opening the events, or this kernel's perf "
		           "cannot count tracepoints on it; restart vmrd";
	case ENOSYS:
		return m + ": this kernel has no perf events (CONFIG_PERF_EVENTS)";
	case EINVAL:
		return m + ": the kernel refused the event (a stale tracepoint id, or a kernel older than 4.1 "
		           "that cannot time samples with CLOCK_MONOTONIC)";
	case EMFILE:
	case ENFILE:
		return m + ": one file descriptor per CPU is needed; raise LimitNOFILE=";
	default:
		return m;
	}
}

TracepointWatch::TracepointWatch(TracepointWatch &&o) noexcept
    : label_(std::move(o.label_)), fds_(std::move(o.fds_)), buffers_(std::move(o.buffers_)), mapSize_(o.mapSize_),
      dataOffset_(o.dataOffset_), dataSize_(o.dataSize_), paused_(o.paused_)
{
	o.fds_.clear();
	o.buffers_.clear();
}

TracepointWatch &TracepointWatch::operator=(TracepointWatch &&o) noexcept
{
	if (this != &o) {
		close();
		label_ = std::move(o.label_);
		fds_ = std::move(o.fds_);
		buffers_ = std::move(o.buffers_);
		mapSize_ = o.mapSize_;
		dataOffset_ = o.dataOffset_;
		dataSize_ = o.dataSize_;
		paused_ = o.paused_;
		o.fds_.clear();
		o.buffers_.clear();
	}
	return *this;
}

TracepointWatch::~TracepointWatch()
{
	close();
}

void TracepointWatch::close()
{
	for (const auto &b : buffers_)
		if (b.base)
			::munmap(b.base, mapSize_);
	for (int fd : fds_)
		::close(fd);
	buffers_.clear();
	fds_.clear();
}

std::vector<Tracepoint> pageAllocations(uint64_t bytes, uint64_t pageSize)
{
	const uint64_t pages = std::max<uint64_t>(bytes / std::max<uint64_t>(pageSize, 1), 1);
	const uint64_t hugePages = (2ull << 20) / std::max<uint64_t>(pageSize, 1);
	const Tracepoint base{"kmem", "mm_page_alloc", "page allocation tracepoint"};
	Tracepoint single = base, blocks = base;
	single.filter = "order == 0";
	single.period = pages;
	blocks.filter = "order > 0";
	blocks.period = std::max<uint64_t>(pages / std::max<uint64_t>(hugePages, 1), 1);
	return {single, blocks};
}

Result<TracepointWatch> TracepointWatch::open(const std::string &procfs, const std::string &sysfs,
                                              const std::vector<std::string> &tracefs,
                                              const std::vector<Tracepoint> &tps)
{
	if (tps.empty())
		return Error{-EINVAL, "no tracepoint to watch"};
	const Tracepoint &tp = tps.front();
	const std::string onlinePath = sysfs + "/devices/system/cpu/online";
	auto online = readKernelFile(onlinePath);
	if (!online)
		return Error{online.error().code,
		             "the CPUs to watch the " + std::string(tp.label) + " on: " + online.error().message};
	auto cpus = parseCpuList(*online);
	if (!cpus)
		return Error{cpus.error().code, onlinePath + ": " + cpus.error().message};

	const long page = ::sysconf(_SC_PAGESIZE);
	TracepointWatch w;
	w.label_ = std::string(tp.label);
	// The metadata page and one data page: 256 records of 16 bytes, plenty
	// for records that come once per period of events and are drained at once.
	w.mapSize_ = 2 * static_cast<size_t>(page);
	w.dataOffset_ = static_cast<size_t>(page);
	w.dataSize_ = static_cast<size_t>(page);

	perf_event_attr attr{};
	attr.size = sizeof attr;
	attr.type = PERF_TYPE_TRACEPOINT;
	// The time only: no raw tracepoint data, which would need more than
	// CAP_PERFMON's reason to exist.  On CLOCK_MONOTONIC, the daemon's
	// steady clock, so a wake-up can be set against PSI and samples.
	attr.sample_type = PERF_SAMPLE_TIME;
	attr.use_clockid = 1;
	attr.clockid = CLOCK_MONOTONIC;
	attr.wakeup_events = 1;
	// Enabled together once every buffer is mapped.
	attr.disabled = 1;
	for (const Tracepoint &each : tps)
		for (int cpu : *cpus)
			if (auto st = w.openOne(procfs, tracefs, each, cpu, attr); !st)
				return st.error();
	if (auto s = w.resume(); !s)
		return s.error();
	logInfo("watching the " + w.describe() + " (" + tracepointName(tp) + ") through perf");
	return w;
}

Status TracepointWatch::openOne(const std::string &procfs, const std::vector<std::string> &tracefs,
                                const Tracepoint &tp, int cpu, perf_event_attr attr)
{
	auto id = findTracepointId(tracefs, tp);
	if (!id)
		return id.error();
	attr.config = *id;
	attr.sample_period = tp.period;
	const long fd = ::syscall(SYS_perf_event_open, &attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0) {
		const int err = errno;
		std::optional<int> paranoid;
		if (auto text = readKernelFile(procfs + "/sys/kernel/perf_event_paranoid"))
			paranoid = std::atoi(text->c_str());
		return Error{-err, explainPerfOpenError(err, tp, cpu, paranoid)};
	}
	fds_.push_back(static_cast<int>(fd));
	if (!tp.filter.empty() && ::ioctl(static_cast<int>(fd), PERF_EVENT_IOC_SET_FILTER, tp.filter.c_str()) != 0)
		return Error{-errno, "the filter '" + tp.filter + "' on the " + std::string(tp.label) + " (" +
		                             tracepointName(tp) + "): " + std::strerror(errno)};
	// Writable, so the kernel honours data_tail and never overwrites
	// what drain() has not read.
	void *base = ::mmap(nullptr, mapSize_, PROT_READ | PROT_WRITE, MAP_SHARED, static_cast<int>(fd), 0);
	if (base == MAP_FAILED) {
		const int err = errno;
		std::string hint = err == EPERM ? ": the locked-memory budget of perf buffers "
		                                  "(kernel.perf_event_mlock_kb) is used up; CAP_IPC_LOCK lifts it"
		                                : "";
		return Error{-err, "mapping the ring buffer of the " + label_ + " on CPU " + std::to_string(cpu) +
		                           ": " + std::strerror(err) + hint};
	}
	buffers_.push_back({cpu, base});
	const auto *meta = static_cast<const perf_event_mmap_page *>(base);
	// Set by kernels since 4.1; before, the data follows the first page.
	if (meta->data_size != 0) {
		dataOffset_ = static_cast<size_t>(meta->data_offset);
		dataSize_ = static_cast<size_t>(meta->data_size);
	}
	return Ok{};
}

namespace {

// Copies len bytes at ring offset `at`, across the end of the data area.
void copyFromRing(void *out, const char *data, size_t size, uint64_t at, size_t len)
{
	const size_t offset = static_cast<size_t>(at & (size - 1));
	const size_t first = len < size - offset ? len : size - offset;
	std::memcpy(out, data + offset, first);
	if (first < len)
		std::memcpy(static_cast<char *>(out) + first, data, len - first);
}

TimePoint fromNanoseconds(uint64_t ns)
{
	return TimePoint(std::chrono::duration_cast<TimePoint::duration>(std::chrono::nanoseconds(ns)));
}

} // namespace

TracepointWatch::Wakeups TracepointWatch::drain()
{
	Wakeups w;
	for (const auto &b : buffers_) {
		auto *meta = static_cast<perf_event_mmap_page *>(b.base);
		const char *data = static_cast<const char *>(b.base) + dataOffset_;
		// The perf ABI (include/uapi/linux/perf_event.h): read data_head,
		// then a read barrier before the records; the acquire load is
		// both, as in the kernel's own tools/include/linux/ring_buffer.h.
		const uint64_t head = __atomic_load_n(&meta->data_head, __ATOMIC_ACQUIRE);
		uint64_t tail = __atomic_load_n(&meta->data_tail, __ATOMIC_RELAXED);
		while (head - tail >= sizeof(perf_event_header)) {
			perf_event_header h{};
			copyFromRing(&h, data, dataSize_, tail, sizeof h);
			if (h.size < sizeof h || h.size > head - tail) {
				// Not a record: skip what is there rather than loop.
				tail = head;
				break;
			}
			if (h.type == PERF_RECORD_SAMPLE && h.size >= sizeof h + sizeof(uint64_t)) {
				uint64_t ns = 0;
				copyFromRing(&ns, data, dataSize_, tail + sizeof h, sizeof ns);
				const TimePoint at = fromNanoseconds(ns);
				w.count++;
				if (!w.first || at < *w.first)
					w.first = at;
				if (!w.last || at > *w.last)
					w.last = at;
			} else if (h.type == PERF_RECORD_LOST && h.size >= sizeof h + 2 * sizeof(uint64_t)) {
				uint64_t idAndLost[2] = {0, 0};
				copyFromRing(idAndLost, data, dataSize_, tail + sizeof h, sizeof idAndLost);
				w.lost += idAndLost[1];
				w.count += idAndLost[1];
			}
			tail += h.size;
		}
		// The records must be read before the kernel may overwrite them:
		// the ABI asks for a full barrier before the data_tail store; a
		// store-release orders the loads above before it, which is what
		// that barrier is for (the kernel's tools do the same).
		__atomic_store_n(&meta->data_tail, tail, __ATOMIC_RELEASE);
	}
	return w;
}

Status TracepointWatch::ioctlAll(unsigned long request, const char *what)
{
	for (size_t i = 0; i < fds_.size(); i++) {
		if (::ioctl(fds_[i], request, 0) < 0) {
			const int err = errno;
			return Error{-err, std::string(what) + " of the " + label_ + " on CPU " +
			                           std::to_string(buffers_[i].cpu) + ": " + std::strerror(err)};
		}
	}
	return Ok{};
}

Status TracepointWatch::pause()
{
	auto s = ioctlAll(PERF_EVENT_IOC_DISABLE, "PERF_EVENT_IOC_DISABLE");
	if (s)
		paused_ = true;
	return s;
}

Status TracepointWatch::resume()
{
	auto s = ioctlAll(PERF_EVENT_IOC_ENABLE, "PERF_EVENT_IOC_ENABLE");
	if (s)
		paused_ = false;
	return s;
}

std::string TracepointWatch::describe() const
{
	if (label_.empty())
		return "no tracepoint watch";
	std::vector<int> cpus;
	for (const auto &b : buffers_)
		if (std::find(cpus.begin(), cpus.end(), b.cpu) == cpus.end())
			cpus.push_back(b.cpu);
	return label_ + ", " + std::to_string(cpus.size()) + (cpus.size() == 1 ? " CPU" : " CPUs");
}

} // namespace vmrd
