// SPDX-License-Identifier: MIT
// The server preset: sizes the guest to the demand it measures, sampling only while that pays.
#include <deque>

#include "policies.h"

namespace vmrd {

namespace {

// Demand is MemTotal - MemAvailable, the memory the kernel could not free
// without swapping; it grows at the rate measured between samples.  The
// policy keeps MemAvailable above a reserve: the headroom plus what demand
// takes while a grow is on its way.
//
// A sample costs a wakeup, so it samples only while that pays: while
// memory is plugged (it may have to go back), while MemAvailable is near
// the reserve, or while demand grows; then as often as the time until the
// reserve is reached asks for, between sample_min and sample_max.  An idle
// guest at its floor is not sampled at all: a PSI event or the daemon's
// early signal (a set volume of page allocations) starts it again.
class ServerPolicy : public Policy
{
public:
	ServerPolicy(const PolicyParams &p, const Limits &l) : Policy(l), p_(p) {}

	Decision onPressure(TimePoint now, const Sample &s, const BackendState &b, double) override
	{
		return evaluate(now, s, b);
	}

	Decision onTimer(TimePoint now, const Sample &s, const BackendState &b) override { return evaluate(now, s, b); }

	Decision onCheck(TimePoint now, const Sample &s, const BackendState &b) override
	{
		return evaluate(now, s, b, true);
	}

	void onResult(TimePoint now, const Decision &asked, const CallResult &r, Micros took, const Sample &,
	              const BackendState &) override
	{
		noteResize(now, took);
		if (asked.action == Decision::Action::Plug) {
			spareSince_.reset();
			if (r.code == 0 && r.done > 0)
				plugLatency_ = std::min(took, maxLatency) / 2 + plugLatency_ / 2;
			lastGrow_ = now;
			nextCheck_ = now + p_.sampleMin; // the grow may not have been enough
			return;
		}
		lastShrink_ = now;
		// A guest that could not give back what it seemed to have waits
		// longer before the next try; after a full release, what is
		// still spare goes on draining, one step per rate-limit interval.
		const bool failed = r.code != 0 || r.done < asked.bytes;
		backoff_ = failed ? std::min(backoff_ + 1, 16u) : 0;
		if (failed)
			spareSince_.reset();
		// A look soon, to schedule from what is left: back at the floor
		// it sleeps, and the early signal, paused while a look is due,
		// watches again (a workload that starts again right after a
		// give-back stalled the guest within the rate-limit interval).
		nextCheck_ = now + p_.sampleMin;
	}

	void resume(TimePoint now, const BackendState &) override { nextCheck_ = now + p_.sampleMin; }

	bool wantsEarlySignal() const override { return true; }

	StateList describeState(TimePoint now) const override
	{
		StateList out;
		addTimer(out, "next_sample", now, nextCheck_);
		out.emplace_back("demand_rate", formatSize(static_cast<uint64_t>(std::max(rate_, 0.0))) + "/s");
		out.emplace_back("reserve", formatSize(reserve()));
		out.emplace_back("plug_latency", formatDuration(plugLatency_));
		addAgo(out, "last_grow", now, lastGrow_);
		addAgo(out, "last_shrink", now, lastShrink_);
		if (spareSince_)
			addAgo(out, "spare_since", now, spareSince_);
		if (rateLimited(now))
			addTimer(out, "rate_limit", now, *lastResize_ + limits_.minInterval);
		if (backoff_)
			out.emplace_back("shrink_backoff",
			                 std::to_string(backoff_) + " failed shrink(s): shrink_hold doubled");
		return out;
	}

private:
	// Plug latencies above this are a guest in trouble, not a lead time to plan for.
	static constexpr Micros maxLatency{std::chrono::seconds(2)};

	// `asked`: an operator asked, so spare memory goes back without the
	// hold, and even while demand grows.
	Decision evaluate(TimePoint now, const Sample &s, const BackendState &b, bool asked = false)
	{
		observe(now, s);
		const uint64_t avail = s.mem.memAvailable;
		const uint64_t need = reserve();
		Decision d = none("MemAvailable " + formatSize(avail) + ", reserve " + formatSize(need));
		if (avail < need && rateLimited(now)) {
			// Looked at again when the next resize may go.
			spareSince_.reset();
			nextCheck_ = *lastResize_ + limits_.minInterval;
			return none("MemAvailable " + formatSize(avail) + " below the reserve " + formatSize(need) +
			            "; the next grow waits for limits.min_interval");
		}
		if (avail < need) {
			spareSince_.reset();
			// Up to the reserve, and on top what demand takes until the
			// next grow may be asked for: from then on the reserve covers
			// the sample that sees it and the plug's latency.
			const uint64_t bytes = std::max(need - avail + growth(limits_.minInterval), p_.growStep);
			d = enforceLimits(now,
			                  {Decision::Action::Plug, bytes,
			                   "MemAvailable " + formatSize(avail) + " below the reserve " +
			                           formatSize(need) + " (headroom " + formatSize(p_.headroom) + " + " +
			                           formatSize(need - p_.headroom) + " for demand growing " +
			                           formatSize(growth(std::chrono::seconds(1))) + "/s)"},
			                  b);
		} else if (avail >= 2 * need + p_.growStep && aboveFloor(b) && (asked || !growing())) {
			// Give back what stayed spare for shrink_hold, down to the
			// reserve and one grow step: the band between the two
			// thresholds keeps a steady demand from flapping.
			if (!spareSince_)
				spareSince_ = now;
			const TimePoint due = *spareSince_ + hold();
			const uint64_t spare = avail - need - p_.growStep;
			if (now >= due || asked) {
				// MemAvailable is the kernel's estimate of what it can
				// free without swapping: never more than that.
				d = enforceLimits(now,
				                  {Decision::Action::Unplug, std::min(spare, p_.shrinkStepMax),
				                   "MemAvailable " + formatSize(avail) + " is " + formatSize(spare) +
				                           " above the reserve " + formatSize(need) +
				                           " and a grow step" +
				                           (asked ? "" : ", for " + ago(now, *spareSince_))},
				                  b);
			} else {
				d.reason += "; " + formatSize(spare) + " spare, given back if it stays spare " +
				            formatDuration(std::chrono::duration_cast<Micros>(due - now)) + " more";
			}
		} else {
			spareSince_.reset();
		}
		schedule(now, avail, need, b);
		return d;
	}

	// Demand's growth rate: each sample's rise counts at once, a lull lets
	// it decay, so a burst is met at its own pace and a pause does not
	// forget it in one sample.  A fall of a grow step or more is demand
	// that ended.  Rises are measured over at least half of sample_min,
	// or a few pages in a few microseconds would read as a flood.
	void observe(TimePoint now, const Sample &s)
	{
		const uint64_t used = s.mem.memTotal - std::min(s.mem.memTotal, s.mem.memAvailable);
		if (!seen_.empty() && now - seen_.back().first < p_.sampleMin / 2)
			return;
		if (!seen_.empty() && now - seen_.back().first <= 2 * p_.sampleMax) {
			const auto [then, before] = seen_.back();
			const double dt = std::chrono::duration<double>(now - then).count();
			const double rise = (static_cast<double>(used) - static_cast<double>(before)) / dt;
			rate_ = before >= used + p_.growStep ? 0 : std::max(rise, rate_ / (1 + dt / decay));
			rateKnown_ = true;
		} else {
			rate_ = 0; // too long ago to say how fast it grows now
			rateKnown_ = false;
			seen_.clear();
		}
		seen_.emplace_back(now, used);
		while (now - seen_.front().first > 2 * p_.sampleMax)
			seen_.pop_front();
	}

	// What demand takes over the next `over` at the measured rate, but
	// never more than it took over the last `over` (at least a second) or
	// a grow step: a burst seen between two close samples is not a flood
	// that goes on for the whole plug.
	uint64_t growth(Micros over) const
	{
		const auto extrapolated =
		        static_cast<uint64_t>(std::max(rate_, 0.0) * std::chrono::duration<double>(over).count());
		return std::min(extrapolated,
		                std::max(recentRise(std::max<Micros>(over, std::chrono::seconds(1))), p_.growStep));
	}

	// Demand's rise since the newest sample at least `over` old, or the
	// oldest one kept.
	uint64_t recentRise(Micros over) const
	{
		if (seen_.empty())
			return 0;
		auto base = seen_.front();
		for (const auto &sample : seen_)
			if (seen_.back().first - sample.first >= over)
				base = sample;
		return seen_.back().second - std::min(seen_.back().second, base.second);
	}

	// The headroom plus what demand takes from the sample that sees it
	// short to the memory being there: while demand grows, samples come
	// sample_min apart near the reserve; then a plug's latency.
	uint64_t reserve() const { return p_.headroom + growth(p_.sampleMin + plugLatency_); }

	Micros hold() const
	{
		Micros wait = p_.shrinkHold;
		for (unsigned i = 0; i < backoff_ && wait < p_.backoffMax; i++)
			wait *= 2;
		return std::min(wait, p_.backoffMax);
	}

	// Demand that would eat a grow step within shrink_hold: no time to
	// give memory back, and a reason to look often.
	bool growing() const { return growth(p_.shrinkHold) >= p_.growStep; }

	void schedule(TimePoint now, uint64_t avail, uint64_t need, const BackendState &b)
	{
		if (!rateKnown_) {
			// Woken after a quiet spell: a second look soon tells how
			// fast demand grows.
			nextCheck_ = now + p_.sampleMin;
			return;
		}
		if (!aboveFloor(b) && !growing() && avail >= 2 * need) {
			nextCheck_.reset(); // idle at the floor: wait for a signal
			return;
		}
		Micros next = p_.sampleMax;
		if (growing() && avail > need) {
			// A quarter of the time until demand reaches the reserve.
			const double seconds = static_cast<double>(avail - need) / rate_ / 4;
			next = std::chrono::duration_cast<Micros>(std::chrono::duration<double>(seconds));
		} else if (growing()) {
			next = p_.sampleMin;
		}
		if (spareSince_)
			next = std::min(next, std::chrono::duration_cast<Micros>(hold() / 4));
		nextCheck_ = now + std::clamp(next, p_.sampleMin, p_.sampleMax);
	}

	// How fast a measured rate fades once demand stops growing: by 1/(1 +
	// t/decay) in a lull of t, close to e^(-t/decay) over short lulls, and
	// without libm, whose load alone costs vmrd half a MiB resident.
	static constexpr double decay = 2.0; // seconds

	PolicyParams p_;
	std::optional<TimePoint> lastGrow_, lastShrink_, spareSince_;
	std::deque<std::pair<TimePoint, uint64_t>> seen_; // (when, demand) of the last 2 x sample_max
	double rate_ = 0;                                 // bytes per second
	bool rateKnown_ = false;                          // the last two samples were close enough to tell
	Micros plugLatency_{std::chrono::milliseconds(500)};
	unsigned backoff_ = 0;
};

} // namespace

std::unique_ptr<Policy> makeServerPolicy(const PolicyParams &params, const Limits &limits)
{
	return std::make_unique<ServerPolicy>(params, limits);
}

} // namespace vmrd
