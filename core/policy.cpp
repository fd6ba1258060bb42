// SPDX-License-Identifier: MIT
// The resize policy: the presets' rules, block alignment, step_max and the rate limit.
#include "policy.h"

#include <algorithm>
#include <cmath>

#include "bounds.h"

namespace vmrd {

namespace {

std::string ago(TimePoint now, TimePoint then)
{
	return formatDuration(std::chrono::duration_cast<Micros>(now - then));
}

using StateList = std::vector<std::pair<std::string, std::string>>;

// "in 4s" or "due" for a time to come; nothing when there is none.
void addTimer(StateList &out, const char *name, TimePoint now, const std::optional<TimePoint> &at)
{
	if (at)
		out.emplace_back(name, *at > now ? "in " + ago(*at, now) : "due");
}

void addAgo(StateList &out, const char *name, TimePoint now, const std::optional<TimePoint> &at)
{
	if (at)
		out.emplace_back(name, ago(now, *at) + " ago");
}

// server: grow fast, shrink slow, keep a headroom of MemAvailable.
class ServerPolicy : public Policy
{
public:
	ServerPolicy(const PolicyParams &p, const Limits &l) : Policy(l), p_(p) {}

	Decision onPressure(TimePoint now, const Sample &s, const BackendState &b, double severity) override
	{
		lastEvent_ = now;
		scheduleShrink(now);
		const uint64_t avail = s.mem.memAvailable;
		if (avail >= p_.headroom)
			return none("pressure, but MemAvailable " + formatSize(avail) + " is above the headroom " +
			            formatSize(p_.headroom) + ": more memory would not help");
		// After a shrink, hold still for the cooldown unless the headroom
		// is half gone: that is real demand, not the shrink's echo.
		if (lastShrink_ && now - *lastShrink_ < p_.cooldown && avail >= p_.headroom / 2)
			return none("cooldown after the shrink " + ago(now, *lastShrink_) + " ago (policy.cooldown " +
			            formatDuration(p_.cooldown) + ")");
		const bool repeated = lastGrow_ && now - *lastGrow_ < p_.repeatWindow;
		double step = static_cast<double>(repeated ? std::min(lastStep_ * 2, p_.growStepMax) : p_.growStep);
		severity = std::clamp(severity, 0.0, 1.0);
		step *= 1 + severity * (p_.severityBoost - 1);
		uint64_t bytes = std::min(static_cast<uint64_t>(step), std::max(p_.growStepMax, p_.growStep));
		bytes = std::max(bytes, p_.headroom - avail);
		char sev[16];
		std::snprintf(sev, sizeof(sev), "%.0f%%", severity * 100);
		return enforceLimits(now,
		                     {Decision::Action::Plug, bytes,
		                      "MemAvailable " + formatSize(avail) + " below the headroom " +
		                              formatSize(p_.headroom) + ", stall " + sev +
		                              (repeated ? "; repeated within repeat_window, step doubled" : "")},
		                     b);
	}

	Decision onTimer(TimePoint now, const Sample &s, const BackendState &b) override
	{
		nextCheck_.reset();
		if (lastGrow_ && now - *lastGrow_ < p_.cooldown) {
			nextCheck_ = *lastGrow_ + p_.cooldown;
			return none("cooldown after the grow " + ago(now, *lastGrow_) + " ago");
		}
		const uint64_t avail = s.mem.memAvailable;
		const uint64_t spare = avail > p_.headroom ? avail - p_.headroom : 0;
		if (spare == 0) {
			// Relief has no PSI event: while memory is plugged, look again
			// after the next idle period.
			if (b.plugged > std::max(limits_.min, b.minBytes))
				nextCheck_ = now + p_.shrinkIdle;
			return none("idle, but MemAvailable " + formatSize(avail) + " is within the headroom " +
			            formatSize(p_.headroom));
		}
		// MemAvailable is the kernel's estimate of what can be freed
		// without swapping: never ask for more than that.
		Decision d = enforceLimits(now,
		                           {Decision::Action::Unplug, std::min(spare, p_.shrinkStepMax),
		                            "idle; MemAvailable " + formatSize(avail) + " is " + formatSize(spare) +
		                                    " above the headroom"},
		                           b);
		if (d.action == Decision::Action::None && lastResize_ && now - *lastResize_ < limits_.minInterval)
			nextCheck_ = *lastResize_ + limits_.minInterval;
		else if (d.action == Decision::Action::None && b.plugged > std::max(limits_.min, b.minBytes))
			nextCheck_ = now + p_.shrinkIdle; // less than a block spare now; maybe later
		return d;
	}

	void onResult(TimePoint now, const Decision &asked, const CallResult &r, const Sample &,
	              const BackendState &) override
	{
		noteResize(now);
		if (asked.action == Decision::Action::Plug) {
			lastGrow_ = now;
			lastStep_ = asked.bytes;
			scheduleShrink(now);
			return;
		}
		lastShrink_ = now;
		if (r.code != 0 || r.done < asked.bytes) {
			// Back off: the guest could not give back what it seemed to have.
			backoff_ = std::min(backoff_ + 1, 16u);
			scheduleShrink(now);
		} else {
			// Keep draining, one step per rate-limit interval.
			backoff_ = 0;
			nextCheck_ = now + limits_.minInterval;
		}
	}

	void resume(TimePoint now, const BackendState &b) override
	{
		if (b.plugged > std::max(limits_.min, b.minBytes))
			scheduleShrink(now);
	}

	StateList describeState(TimePoint now) const override
	{
		StateList out;
		addTimer(out, "next_check", now, nextCheck_);
		addAgo(out, "last_pressure", now, lastEvent_);
		addAgo(out, "last_grow", now, lastGrow_);
		addAgo(out, "last_shrink", now, lastShrink_);
		if (lastGrow_ && now - *lastGrow_ < p_.cooldown)
			addTimer(out, "cooldown_after_grow", now, *lastGrow_ + p_.cooldown);
		if (lastShrink_ && now - *lastShrink_ < p_.cooldown)
			addTimer(out, "cooldown_after_shrink", now, *lastShrink_ + p_.cooldown);
		if (lastResize_ && now - *lastResize_ < limits_.minInterval)
			addTimer(out, "rate_limit", now, *lastResize_ + limits_.minInterval);
		if (backoff_)
			out.emplace_back("shrink_backoff",
			                 std::to_string(backoff_) + " failed shrink(s): waits doubled");
		return out;
	}

private:
	static Decision none(std::string why) { return {Decision::Action::None, 0, std::move(why)}; }

	void scheduleShrink(TimePoint from)
	{
		Micros wait = p_.shrinkIdle;
		for (unsigned i = 0; i < backoff_ && wait < p_.backoffMax; i++)
			wait *= 2;
		nextCheck_ = from + std::min(wait, p_.backoffMax);
	}

	PolicyParams p_;
	std::optional<TimePoint> lastEvent_, lastGrow_, lastShrink_;
	uint64_t lastStep_ = 0;
	unsigned backoff_ = 0;
};

// embedded: the reference behaviour of the vmrd RFC (design.md section 3).
class EmbeddedPolicy : public Policy
{
public:
	EmbeddedPolicy(const PolicyParams &p, const Limits &l) : Policy(l), p_(p) {}

	Decision onPressure(TimePoint now, const Sample &s, const BackendState &b, double) override
	{
		// Any event ends a release cycle and restarts the idle wait.
		if (releasing_)
			endCycle(now, s, b);
		lastEvent_ = now;
		scheduleIdle(now, b);
		if (holdoffUntil_ && now < *holdoffUntil_) {
			const uint64_t grown = s.pgallocMovable - std::min(s.pgallocMovable, holdoffPgalloc_);
			if (grown < p_.holdoffOverridePages)
				return none("hold-off after releasing memory, " +
				            formatDuration(std::chrono::duration_cast<Micros>(*holdoffUntil_ - now)) +
				            " left; pgalloc_movable grew " + std::to_string(grown) + " pages, under " +
				            std::to_string(p_.holdoffOverridePages));
		}
		if (s.movable.free >= p_.growFreeBelow)
			return none("ZONE_MOVABLE has " + formatSize(s.movable.free) + " free, not below " +
			            formatSize(p_.growFreeBelow));
		return enforceLimits(now,
		                     {Decision::Action::Plug, p_.chunk,
		                      "ZONE_MOVABLE free " + formatSize(s.movable.free) + " below " +
		                              formatSize(p_.growFreeBelow) + ": one chunk"},
		                     b);
	}

	Decision onTimer(TimePoint now, const Sample &s, const BackendState &b) override
	{
		nextCheck_.reset();
		if (!lastEvent_)
			return none("no pressure event yet: nothing was grown to give back");
		if (!releasing_) {
			const TimePoint due = *lastEvent_ + idleWait(b);
			if (now < due) {
				nextCheck_ = due;
				return none("not idle long enough");
			}
			if (p_.decayWait && !(s.someAvg10 == 0 && s.someAvg60 <= 0.03)) {
				nextCheck_ = now + p_.retryInterval;
				char buf[96];
				std::snprintf(buf, sizeof(buf), "waiting for PSI to decay: some avg10 %.2f, avg60 %.2f",
				              s.someAvg10, s.someAvg60);
				return none(buf);
			}
		}
		const uint64_t reclaimable = reclaimableBytes(s);
		if (reclaimable < p_.chunk) {
			endCycle(now, s, b);
			return none("reclaimable " + formatSize(reclaimable) + " is under one chunk (" +
			            formatSize(p_.chunk) + ")");
		}
		Decision d = enforceLimits(now,
		                           {Decision::Action::Unplug, p_.chunk,
		                            "idle; reclaimable " + formatSize(reclaimable) + ", chunk " +
		                                    std::to_string(released_ + 1) + " of at most " +
		                                    std::to_string(p_.releaseMaxChunks) + " this cycle"},
		                           b);
		if (d.action == Decision::Action::None) {
			if (lastResize_ && now - *lastResize_ < limits_.minInterval) {
				nextCheck_ = *lastResize_ + limits_.minInterval;
				releasing_ = true;
			} else {
				endCycle(now, s, b);
			}
			return d;
		}
		releasing_ = true;
		return d;
	}

	void onResult(TimePoint now, const Decision &asked, const CallResult &r, const Sample &s,
	              const BackendState &after) override
	{
		noteResize(now);
		if (asked.action == Decision::Action::Plug)
			return;
		if (r.done > 0) {
			released_ += static_cast<unsigned>(r.done / p_.chunk);
			retries_ = 0;
		}
		if (r.code != 0 || r.done < asked.bytes) {
			if (++retries_ > p_.releaseRetries) {
				endCycle(now, s, after);
				return;
			}
			nextCheck_ = now + p_.retryInterval;
			return;
		}
		if (released_ >= p_.releaseMaxChunks) {
			endCycle(now, s, after);
			return;
		}
		// Re-check right away before the next chunk.
		nextCheck_ = now;
	}

	void resume(TimePoint now, const BackendState &b) override
	{
		if (b.plugged > std::max(limits_.min, b.minBytes)) {
			lastEvent_ = now;
			scheduleIdle(now, b);
		}
	}

	StateList describeState(TimePoint now) const override
	{
		StateList out;
		addTimer(out, "next_check", now, nextCheck_);
		addAgo(out, "last_pressure", now, lastEvent_);
		if (holdoffUntil_ && now < *holdoffUntil_)
			addTimer(out, "hold_off", now, holdoffUntil_);
		if (lastResize_ && now - *lastResize_ < limits_.minInterval)
			addTimer(out, "rate_limit", now, *lastResize_ + limits_.minInterval);
		out.emplace_back("release_cycle", releasing_ ? std::to_string(released_) + " chunk(s) released so far"
		                                             : std::string("not releasing"));
		return out;
	}

private:
	static Decision none(std::string why) { return {Decision::Action::None, 0, std::move(why)}; }

	// movable free + movable inactive file + min(SwapFree, movable inactive
	// anon) discounted for zram's compression.
	uint64_t reclaimableBytes(const Sample &s) const
	{
		const uint64_t anon = std::min(s.mem.swapFree, s.movable.inactiveAnon);
		return s.movable.free + s.movable.inactiveFile + anon / 100 * p_.swapDiscount +
		       anon % 100 * p_.swapDiscount / 100;
	}

	Micros idleWait(const BackendState &b) const
	{
		const uint64_t chunks = b.plugged / std::max<uint64_t>(p_.chunk, 1);
		return chunks >= p_.idleLongChunks     ? p_.idleLong
		       : chunks >= p_.idleMediumChunks ? p_.idleMedium
		                                       : p_.idleShort;
	}

	void scheduleIdle(TimePoint from, const BackendState &b) { nextCheck_ = from + idleWait(b); }

	// After releasing n chunks, ignore events for min(base + n * per_chunk, max).
	void endCycle(TimePoint now, const Sample &s, const BackendState &b)
	{
		if (released_ > 0) {
			holdoffUntil_ = now + std::min(p_.holdoffBase + p_.holdoffPerChunk * released_, p_.holdoffMax);
			holdoffPgalloc_ = s.pgallocMovable;
			lastEvent_ = now; // the next cycle needs a new idle period
		}
		// Relief has no PSI event: while memory is plugged, look again after
		// the next idle period.
		if (released_ > 0 || b.plugged > std::max(limits_.min, b.minBytes))
			scheduleIdle(now, b);
		else
			nextCheck_.reset();
		released_ = 0;
		retries_ = 0;
		releasing_ = false;
	}

	PolicyParams p_;
	std::optional<TimePoint> lastEvent_, holdoffUntil_;
	uint64_t holdoffPgalloc_ = 0;
	unsigned released_ = 0; // chunks released in this cycle
	unsigned retries_ = 0;
	bool releasing_ = false;
};

} // namespace

std::unique_ptr<Policy> Policy::create(const PolicyParams &params, const Limits &limits)
{
	if (params.preset == "embedded")
		return std::make_unique<EmbeddedPolicy>(params, limits);
	return std::make_unique<ServerPolicy>(params, limits);
}

Decision Policy::enforceLimits(TimePoint now, Decision d, const BackendState &b) const
{
	if (d.action == Decision::Action::None)
		return d;
	const uint64_t block = std::max<uint64_t>(b.blockSize, 1);
	const uint64_t stepMax = limits_.stepMax / block * block;
	const std::string wanted = std::string(actionName(d.action)) + " " + formatSize(d.bytes);
	auto none = [&](const std::string &why) {
		return Decision{Decision::Action::None, 0, wanted + " not done: " + why};
	};

	if (lastResize_ && now - *lastResize_ < limits_.minInterval)
		return none("rate limit, last resize " + ago(now, *lastResize_) + " ago (limits.min_interval " +
		            formatDuration(limits_.minInterval) + ")");
	// Align to the block first (up for a plug, down for an unplug), then cap.
	uint64_t bytes =
	        d.action == Decision::Action::Plug ? (d.bytes + block - 1) / block * block : d.bytes / block * block;
	std::string why = bytes != d.bytes ? "aligned to the " + formatSize(block) + " block" : "";
	auto cap = [&](uint64_t limit, const std::string &name) {
		if (bytes > limit) {
			bytes = limit;
			why = name;
		}
	};
	const Bounds bound = bounds(limits_, b);
	const uint64_t room = bound.room(d.action, b.plugged);
	cap(stepMax, "limits.step_max");
	cap(room, d.action == Decision::Action::Plug ? bound.ceilingName : bound.floorName);
	if (bytes == 0 && d.action == Decision::Action::Plug)
		return none("at the maximum, " + formatSize(b.plugged) + " of " + formatSize(bound.ceiling) +
		            " plugged");
	if (bytes == 0)
		return none(room == 0 ? "at the minimum of " + formatSize(bound.floor)
		                      : "less than one block (" + formatSize(block) + ") to release");
	if (bytes != d.bytes)
		d.reason += "; " + formatSize(bytes) + " (" + why + ")";
	d.bytes = bytes;
	return d;
}

} // namespace vmrd
