// SPDX-License-Identifier: MIT
// The memory.high guard.
#include "guard.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#include "log.h"

namespace vmrd {

Guard::~Guard()
{
	if (fd_ >= 0)
		::close(fd_);
}

Status Guard::open(const GuardConfig &config)
{
	config_ = config;
	if (config.cgroup.empty())
		return Ok{};
	const char *hint = " (guard.cgroup must be a cgroup v2 directory with the memory controller)";
	const std::string high = config.cgroup + "/memory.high";
	fd_ = ::open(high.c_str(), O_RDWR | O_CLOEXEC);
	if (fd_ < 0)
		return Error{-errno, high + ": cannot open: " + std::strerror(errno) + hint};
	auto current = ProcFile::open(config.cgroup + "/memory.current", sysfsAttributeCapacity);
	auto stat = ProcFile::open(config.cgroup + "/memory.stat", sysfsAttributeCapacity);
	if (!current)
		return Error{current.error().code, current.error().message + hint};
	if (!stat)
		return Error{stat.error().code, stat.error().message + hint};
	current_ = std::move(*current);
	stat_ = std::move(*stat);
	return Ok{};
}

Result<CgroupMemory> Guard::readUsage()
{
	auto current = current_->read();
	if (!current)
		return current.error();
	auto stat = stat_->read();
	if (!stat)
		return stat.error();
	if (auto usage = parseCgroupMemory(*current, *stat))
		return *usage;
	return Error{-EINVAL, current_->path() + " or " + stat_->path() + ": not as cgroup v2 writes them"};
}

void Guard::update(uint64_t memAvailable)
{
	if (fd_ < 0)
		return;
	auto usage = readUsage();
	if (!usage) {
		if (!unreadable_)
			logWarning("guard: " + usage.error().message + "; memory.high stays " +
			           (written_ ? formatSize(written_) : "as it is"));
		unreadable_ = true;
		return;
	}
	unreadable_ = false;
	constexpr uint64_t floor = 64ull << 20;
	const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
	const uint64_t reach = usage->current - std::min(usage->current, usage->fileLru) + memAvailable;
	uint64_t high = std::max(reach - std::min(reach, config_.margin), floor);
	if (high < usage->current) {
		// A throttled workload goes a little past memory.high: raised to
		// meet it, the limit would follow the workload up and throttle
		// nothing.  Lowered below it, the write would make vmrd reclaim
		// the workload's pages itself.
		if (written_ && written_ <= usage->current)
			return;
		high = usage->current;
	}
	high = (high + page - 1) / page * page; // the kernel keeps pages; check() reads back what it kept
	if (written_ && (high > written_ ? high - written_ : written_ - high) < (1ull << 20))
		return;
	write(high);
}

void Guard::check()
{
	if (fd_ < 0 || written_ == 0)
		return;
	char text[32];
	const ssize_t n = ::pread(fd_, text, sizeof(text) - 1, 0);
	if (n <= 0)
		return;
	text[n] = '\0';
	if (std::strtoull(text, nullptr, 10) == written_)
		return;
	text[strcspn(text, "\n")] = '\0';
	write(written_);
	logWarning(config_.cgroup + "/memory.high was set to " + text +
	           " by someone else (systemctl daemon-reload resets it on the slices systemd manages): set " +
	           formatSize(written_) + " again");
}

void Guard::write(uint64_t high)
{
	const std::string text = std::to_string(high);
	if (::pwrite(fd_, text.c_str(), text.size(), 0) < 0) {
		logWarning(config_.cgroup + "/memory.high: cannot write " + text + ": " + std::strerror(errno));
		return;
	}
	written_ = high;
	logDebug("guard: " + config_.cgroup + "/memory.high = " + formatSize(high));
}

} // namespace vmrd
