// SPDX-License-Identifier: MIT
// The rfc-reference preset: the vmrd RFC's behaviour (design.md section 3), one chunk at a time.
#include "policies.h"

#include <algorithm>

namespace vmrd {

namespace {

class RfcReferencePolicy : public Policy
{
public:
	RfcReferencePolicy(const PolicyParams &p, const Limits &l) : Policy(l), p_(p) {}

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
		const uint64_t below = std::max(p_.growFreeBelow, chunk(b) / 2);
		if (s.movable.free >= below)
			return none("ZONE_MOVABLE has " + formatSize(s.movable.free) + " free, not below " +
			            formatSize(below));
		return enforceLimits(now,
		                     {Decision::Action::Plug, chunk(b),
		                      "ZONE_MOVABLE free " + formatSize(s.movable.free) + " below " +
		                              formatSize(below) + ": one chunk"},
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
		if (reclaimable < chunk(b)) {
			endCycle(now, s, b);
			return none("reclaimable " + formatSize(reclaimable) + " is under one chunk (" +
			            formatSize(chunk(b)) + ")");
		}
		Decision d = enforceLimits(now,
		                           {Decision::Action::Unplug, chunk(b),
		                            "idle; reclaimable " + formatSize(reclaimable) + ", chunk " +
		                                    std::to_string(released_ + 1) + " of at most " +
		                                    std::to_string(p_.releaseMaxChunks) + " this cycle"},
		                           b);
		if (d.action == Decision::Action::None) {
			if (rateLimited(now)) {
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

	void onResult(TimePoint now, const Decision &asked, const CallResult &r, Micros took, const Sample &s,
	              const BackendState &after) override
	{
		noteResize(now, took);
		if (asked.action == Decision::Action::Plug)
			return;
		if (r.done > 0) {
			released_ += static_cast<unsigned>(r.done / chunk(after));
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
		if (aboveFloor(b)) {
			lastEvent_ = now;
			scheduleIdle(now, b);
		}
	}

	bool wantsEarlySignal() const override { return false; }

	StateList describeState(TimePoint now) const override
	{
		StateList out;
		addTimer(out, "next_check", now, nextCheck_);
		addAgo(out, "last_pressure", now, lastEvent_);
		if (holdoffUntil_ && now < *holdoffUntil_)
			addTimer(out, "hold_off", now, holdoffUntil_);
		if (rateLimited(now))
			addTimer(out, "rate_limit", now, *lastResize_ + limits_.minInterval);
		out.emplace_back("release_cycle", releasing_ ? std::to_string(released_) + " chunk(s) released so far"
		                                             : std::string("not releasing"));
		return out;
	}

private:
	// One chunk as the backend can plug it: policy.chunk rounded up to the
	// backend's block (128 MiB memory blocks on Gunyah).  Half of it is also
	// the least grow_free_below can be: the RFC grows while ZONE_MOVABLE has
	// less than half a chunk free, and the kernel keeps a zone's free memory
	// above its watermarks, so a fixed 2 MiB would never be reached in a zone
	// of 128 MiB blocks.
	uint64_t chunk(const BackendState &b) const
	{
		const uint64_t block = std::max<uint64_t>(b.blockSize, 1);
		return (std::max<uint64_t>(p_.chunk, 1) + block - 1) / block * block;
	}

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
		const uint64_t chunks = b.plugged / chunk(b);
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
		if (released_ > 0 || aboveFloor(b))
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

std::unique_ptr<Policy> makeRfcReferencePolicy(const PolicyParams &params, const Limits &limits)
{
	return std::make_unique<RfcReferencePolicy>(params, limits);
}

} // namespace vmrd
