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
	const std::string high = config.cgroup + "/memory.high";
	fd_ = ::open(high.c_str(), O_RDWR | O_CLOEXEC);
	if (fd_ < 0)
		return Error{-errno,
		             high + ": cannot open: " + std::strerror(errno) +
		                     " (guard.cgroup must be a cgroup v2 directory with the memory controller)"};
	return Ok{};
}

void Guard::update(uint64_t memTotal)
{
	if (fd_ < 0)
		return;
	constexpr uint64_t floor = 64ull << 20;
	write(std::max(memTotal > config_.margin ? memTotal - config_.margin : 0, floor));
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
	logWarning(config_.cgroup + "/memory.high was set to " + text +
	           " by someone else (systemctl daemon-reload resets it on the slices systemd manages): setting " +
	           formatSize(written_) + " again");
	write(written_);
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
