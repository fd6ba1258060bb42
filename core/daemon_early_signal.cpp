// SPDX-License-Identifier: MIT
// The daemon's early signal: page allocations by volume, watched while the policy is not sampling anyway.
#include <algorithm>
#include <sys/epoll.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"

namespace vmrd {

void Daemon::armEarlySignal()
{
	if (!controller_->wantsEarlySignal()) {
		if (earlySignal_)
			for (int fd : earlySignal_->fds())
				loop_.remove(fd);
		earlySignal_.reset();
		earlySignalNote_ = "not used by the " + config_.policy.preset + " preset";
		return;
	}
	if (earlySignal_ || !earlySignalNote_.empty())
		return; // open, or tried once: a kernel that lacks it lacks it until a restart
	// Woken after at most half the headroom was allocated, summed over the
	// CPUs, each of which counts its own (and at most every 4 MiB a CPU).
	const auto cpus = static_cast<uint64_t>(std::max(::sysconf(_SC_NPROCESSORS_ONLN), 1L));
	const auto page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
	const uint64_t perCpu = std::max<uint64_t>(config_.policy.headroom / 2 / cpus, 4ull << 20);
	auto watch = TracepointWatch::open(config_.paths.procfs, config_.paths.sysfs, tracefsRoots(config_.paths.sysfs),
	                                   pageAllocations(perCpu, page));
	if (!watch) {
		earlySignalNote_ = "unavailable: " + watch.error().message;
		logWarning("no early memory signal: " + watch.error().message +
		           "; vmrd grows on PSI events and its samples alone");
		return;
	}
	for (int fd : watch->fds())
		if (auto st = loop_.add(fd, EPOLLIN, [this](uint32_t) { onAllocations(); }); !st) {
			logWarning("no early memory signal: " + st.error().message);
			earlySignalNote_ = "unavailable: " + st.error().message;
			for (int added : watch->fds())
				loop_.remove(added);
			return;
		}
	earlySignal_ = std::move(*watch);
	earlySignalNote_.clear();
	logInfo("early memory signal: " + earlySignal_->describe());
}

void Daemon::onAllocations()
{
	const auto woke = earlySignal_->drain();
	if (woke.count == 0)
		return;
	if (auto s = sample())
		controller_->onAllocations(now(), *s);
}

// While the policy samples anyway, a wake-up would tell it nothing new:
// paused, the tracepoint costs nothing at all.
void Daemon::pauseEarlySignal()
{
	if (!earlySignal_)
		return;
	const bool sampling = controller_->nextTick().has_value();
	if (sampling == earlySignal_->paused())
		return;
	if (auto st = sampling ? earlySignal_->pause() : earlySignal_->resume(); !st)
		logWarning("early memory signal: " + st.error().message);
	if (!sampling)
		(void)earlySignal_->drain(); // what came while paused is old news
}

std::string Daemon::describeEarlySignal() const
{
	if (!earlySignal_)
		return earlySignalNote_;
	return earlySignal_->describe() + (earlySignal_->paused() ? ", paused while vmrd samples" : ", armed");
}

} // namespace vmrd
