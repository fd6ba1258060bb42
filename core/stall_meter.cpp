// SPDX-License-Identifier: MIT
// Severity bursts: the stall total read across one window after a PSI event.
#include "stall_meter.h"

#include <algorithm>

#include "log.h"

namespace vmrd {

namespace {

// Readings of a source's stall total across one window after an event.
constexpr int burstSamples = 4;

} // namespace

void StallMeter::onEvent(TimePoint t, const PsiEvent &e)
{
	const bool measuring =
	        std::any_of(bursts_.begin(), bursts_.end(), [&](const Burst &b) { return b.source == e.source; });
	if (measuring || !e.totalUs)
		return;
	const Micros step = e.window / burstSamples;
	bursts_.push_back(Burst{e.source, t, *e.totalUs, t + step, step, burstSamples});
}

std::vector<std::string> StallMeter::readsDue(TimePoint t) const
{
	std::vector<std::string> due;
	for (const auto &b : bursts_)
		if (t >= b.next)
			due.push_back(b.source);
	return due;
}

std::optional<TimePoint> StallMeter::nextRead() const
{
	std::optional<TimePoint> next;
	for (const auto &b : bursts_)
		if (!next || b.next < *next)
			next = b.next;
	return next;
}

bool StallMeter::onRead(TimePoint t, const std::string &source, std::optional<uint64_t> totalUs)
{
	auto it = std::find_if(bursts_.begin(), bursts_.end(), [&](const Burst &b) { return b.source == source; });
	if (it == bursts_.end())
		return false;
	if (!totalUs) {
		bursts_.erase(it);
		return true;
	}
	if (--it->left > 0) {
		it->next += it->step;
		return true;
	}
	const auto elapsed = std::chrono::duration_cast<Micros>(t - it->start).count();
	if (elapsed > 0) {
		last_ = static_cast<double>(*totalUs - std::min(*totalUs, it->startTotal)) /
		        static_cast<double>(elapsed);
		lastAt_ = t;
		logDebug("stall on " + source +
		         " over the last window: " + std::to_string(static_cast<int>(last_ * 100)) + "%");
	}
	bursts_.erase(it);
	return true;
}

double StallMeter::severity(const PsiEvent &e, TimePoint t) const
{
	if (lastAt_ && t - *lastAt_ < 2 * e.window)
		return last_;
	return e.window.count() > 0 ? static_cast<double>(e.stall.count()) / static_cast<double>(e.window.count()) : 0;
}

} // namespace vmrd
