// SPDX-License-Identifier: MIT
// The daemon's early signal: the kernel waking kswapd, watched while the policy is not sampling anyway.
#include <sys/epoll.h>

#include "daemon.h"
#include "log.h"

namespace vmrd {

void Daemon::armWatermark()
{
	if (!controller_->wantsWatermark()) {
		if (watermark_)
			for (int fd : watermark_->fds())
				loop_.remove(fd);
		watermark_.reset();
		watermarkNote_ = "not used by the " + config_.policy.preset + " preset";
		return;
	}
	if (watermark_ || !watermarkNote_.empty())
		return; // open, or tried once: a kernel that lacks it lacks it until a restart
	auto watch = KswapdWatch::open(config_.paths.procfs, config_.paths.sysfs, tracefsRoots(config_.paths.sysfs));
	if (!watch) {
		watermarkNote_ = "unavailable: " + watch.error().message;
		logWarning("no early memory signal: " + watch.error().message +
		           "; vmrd grows on PSI events and its samples alone");
		return;
	}
	for (int fd : watch->fds())
		if (auto st = loop_.add(fd, EPOLLIN, [this](uint32_t) { onWatermark(); }); !st) {
			logWarning("no early memory signal: " + st.error().message);
			watermarkNote_ = "unavailable: " + st.error().message;
			for (int added : watch->fds())
				loop_.remove(added);
			return;
		}
	watermark_ = std::move(*watch);
	watermarkNote_.clear();
	logInfo("early memory signal: " + watermark_->describe());
}

void Daemon::onWatermark()
{
	const auto woke = watermark_->drain();
	if (woke.count == 0)
		return;
	if (auto s = sampler_->read())
		controller_->onWatermark(now(), *s);
}

// While the policy samples anyway, a wake-up would tell it nothing new:
// paused, the tracepoint costs nothing at all.
void Daemon::pauseWatermark()
{
	if (!watermark_)
		return;
	const bool sampling = controller_->nextTick().has_value();
	if (sampling == watermark_->paused())
		return;
	if (auto st = sampling ? watermark_->pause() : watermark_->resume(); !st)
		logWarning("early memory signal: " + st.error().message);
	if (!sampling)
		(void)watermark_->drain(); // what came while paused is old news
}

std::string Daemon::describeWatermark() const
{
	if (!watermark_)
		return watermarkNote_;
	return watermark_->describe() + (watermark_->paused() ? ", paused while vmrd samples" : ", armed");
}

} // namespace vmrd
