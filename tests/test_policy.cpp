// SPDX-License-Identifier: MIT
// Tests of both presets' rules, with a made-up clock, and of the one place that enforces the hard bounds.
#include <gtest/gtest.h>

#include "policy.h"

using namespace vmrd;
using namespace std::chrono_literals;

namespace {

constexpr uint64_t MiB = 1ull << 20;
constexpr uint64_t GiB = 1ull << 30;

const TimePoint t0{std::chrono::hours(1)};

Sample mem(uint64_t total, uint64_t available)
{
	Sample s;
	s.mem = MemInfo{total, available, available, 0, 0};
	return s;
}

Sample avail(uint64_t available)
{
	return mem(4 * GiB, available);
}

BackendState backend(uint64_t plugged, uint64_t max = 8 * GiB, uint64_t block = 2 * MiB)
{
	BackendState b;
	b.connected = true;
	b.blockSize = block;
	b.maxBytes = max;
	b.plugged = plugged;
	return b;
}

std::unique_ptr<Policy> server(Limits l = {})
{
	return Policy::create(preset("server")->params, l);
}

CallResult full(const Decision &d)
{
	return CallResult{0, d.bytes, ""};
}

} // namespace

// ---- server: headroom 96 MiB, grow_step 32 MiB, samples 100ms to 2s, shrink_hold 2s ----

TEST(Server, BelowTheHeadroomGrowsToIt)
{
	Decision d = server()->onPressure(t0, avail(40 * MiB), backend(0), 0);
	EXPECT_EQ(d.action, Decision::Action::Plug);
	EXPECT_EQ(d.bytes, 56 * MiB) << "96 MiB - 40 MiB, nothing measured on top yet";
	EXPECT_NE(d.reason.find("below the reserve 96 MiB"), std::string::npos) << d.reason;
	EXPECT_EQ(server()->onTimer(t0, avail(90 * MiB), backend(0)).bytes, 32 * MiB) << "at least grow_step";
}

TEST(Server, PlentyAvailableDoesNotGrow)
{
	Decision d = server()->onPressure(t0, avail(2 * GiB), backend(0), 1.0);
	EXPECT_EQ(d.action, Decision::Action::None);
	EXPECT_NE(d.reason.find("MemAvailable 2 GiB, reserve 96 MiB"), std::string::npos) << d.reason;
}

// Demand rising 500 MiB/s: the reserve grows by what it takes in a
// sample interval and a plug (0.1 s + 0.5 s), so the grow comes while
// 374 MiB are still available, and it covers the demand until the next
// grow may be asked for (the 1 s rate limit); from then on the reserve
// covers the rest.
TEST(Server, TheMeasuredDemandRateSizesTheGrow)
{
	auto p = server();
	TimePoint t = t0;
	uint64_t free = 1 * GiB;
	Decision d = p->onTimer(t, avail(free), backend(GiB));
	std::vector<Micros> intervals;
	for (int i = 0; i < 20 && d.action == Decision::Action::None; i++) {
		intervals.push_back(std::chrono::duration_cast<Micros>(*p->nextCheck() - t));
		t += 100ms;
		free -= 50 * MiB;
		d = p->onTimer(t, avail(free), backend(GiB));
	}
	ASSERT_EQ(d.action, Decision::Action::Plug) << d.reason;
	EXPECT_EQ(free, 374 * MiB);
	EXPECT_EQ(d.bytes, (396 - 374 + 500) * MiB);
	EXPECT_NE(d.reason.find("for demand growing 500 MiB/s"), std::string::npos) << d.reason;
	// A quarter of the time until the reserve, never below sample_min;
	// the reserve counts no more than the rise seen so far.
	EXPECT_NEAR(intervals[1].count(), 414000, 1) << "(974 - 96 - 50) MiB at 500 MiB/s, over 4";
	EXPECT_EQ(intervals.back(), 100ms);
}

TEST(Server, ARateFadesOnceDemandStops)
{
	auto p = server();
	p->onTimer(t0, avail(GiB), backend(GiB));
	p->onTimer(t0 + 100ms, avail(GiB - 50 * MiB), backend(GiB));
	// Still there after a sample that saw no rise (in the reserve as the
	// 50 MiB seen, not the 300 MiB 0.6 s at 500 MiB/s would be) ...
	Decision d = p->onTimer(t0 + 200ms, avail(GiB - 50 * MiB), backend(GiB));
	EXPECT_NE(d.reason.find("reserve 146 MiB"), std::string::npos) << d.reason;
	// ... and forgotten when the last sample is too old to tell.
	d = p->onTimer(t0 + 10s, avail(GiB - 50 * MiB), backend(GiB));
	EXPECT_NE(d.reason.find("reserve 96 MiB"), std::string::npos) << d.reason;
}

// 600 MiB within 0.1 s reads as 6 GiB/s, but a step is not a flood that
// lasts the whole plug: the reserve and the grow count the 600 MiB seen.
TEST(Server, ABurstIsNotExtrapolatedBeyondWhatWasSeen)
{
	auto p = server();
	p->onTimer(t0, avail(GiB), backend(GiB));
	Decision d = p->onTimer(t0 + 100ms, avail(GiB - 600 * MiB), backend(GiB));
	ASSERT_EQ(d.action, Decision::Action::Plug) << d.reason;
	EXPECT_NE(d.reason.find("below the reserve 696 MiB"), std::string::npos) << d.reason;
	EXPECT_EQ(d.bytes, (696 - 424 + 600) * MiB);
}

TEST(Server, IdleAtTheFloorIsNotSampled)
{
	auto p = server();
	p->onTimer(t0, avail(2 * GiB), backend(0));
	EXPECT_EQ(*p->nextCheck(), t0 + 100ms) << "after a quiet spell, a second look tells the rate";
	p->onTimer(t0 + 100ms, avail(2 * GiB), backend(0));
	EXPECT_FALSE(p->nextCheck()) << "nothing plugged, nothing growing: no wakeups";
	auto q = server();
	q->onTimer(t0, avail(150 * MiB), backend(0));
	q->onTimer(t0 + 100ms, avail(150 * MiB), backend(0));
	EXPECT_EQ(*q->nextCheck(), t0 + 100ms + 2s) << "near the reserve: sample_max";
}

TEST(Server, MemoryPluggedIsSampledAtSampleMax)
{
	auto p = server();
	p->resume(t0, backend(GiB));
	EXPECT_EQ(*p->nextCheck(), t0 + 100ms) << "a restart looks at once";
	p->onTimer(t0 + 100ms, avail(200 * MiB), backend(GiB));
	Decision d = p->onTimer(t0 + 200ms, avail(200 * MiB), backend(GiB));
	EXPECT_EQ(d.action, Decision::Action::None);
	EXPECT_EQ(*p->nextCheck(), t0 + 200ms + 2s) << "within the band: no shrink, a slow look";
}

TEST(Server, GivesBackWhatStaysSpare)
{
	auto p = server();
	p->onTimer(t0, avail(GiB), backend(2 * GiB));
	Decision d = p->onTimer(t0 + 100ms, avail(GiB), backend(2 * GiB));
	EXPECT_EQ(d.action, Decision::Action::None);
	EXPECT_NE(d.reason.find("896 MiB spare, given back if it stays spare 1.9s more"), std::string::npos)
	        << d.reason;
	EXPECT_EQ(*p->nextCheck(), t0 + 600ms) << "a quarter of shrink_hold";
	d = p->onTimer(t0 + 2s, avail(GiB), backend(2 * GiB));
	ASSERT_EQ(d.action, Decision::Action::Unplug) << d.reason;
	EXPECT_EQ(d.bytes, 896 * MiB) << "down to the reserve and one grow step";
	// Demand stayed: what went back left MemTotal and MemAvailable alike.
	const Sample after = mem(4 * GiB - d.bytes, 128 * MiB);
	p->onResult(t0 + 2s, d, full(d), 0us, after, backend(2 * GiB - d.bytes));
	EXPECT_EQ(*p->nextCheck(), t0 + 2100ms) << "a look soon, to schedule from what is left";
	d = p->onTimer(t0 + 2100ms, after, backend(2 * GiB - d.bytes));
	EXPECT_EQ(d.action, Decision::Action::None) << d.reason;
}

// limits.min_interval runs from a call's start: after an unplug that
// took 1.5 s, a guest that needs memory again gets it at once (in the
// sawtooth the next cycle starts while the give-back still converges).
TEST(Server, TheRateLimitRunsFromTheCallsStart)
{
	auto p = server();
	p->onTimer(t0, avail(GiB), backend(2 * GiB));
	Decision d = p->onTimer(t0 + 2s, avail(GiB), backend(2 * GiB));
	ASSERT_EQ(d.action, Decision::Action::Unplug) << d.reason;
	p->onResult(t0 + 3500ms, d, full(d), 1500ms, avail(128 * MiB), backend(2 * GiB - d.bytes));
	d = p->onTimer(t0 + 3600ms, avail(20 * MiB), backend(2 * GiB - d.bytes));
	EXPECT_EQ(d.action, Decision::Action::Plug) << d.reason;
}

// No memory goes back while demand grows, however much is spare.
TEST(Server, NoShrinkWhileDemandGrows)
{
	auto p = server();
	p->onTimer(t0, avail(2 * GiB), backend(2 * GiB));
	for (int i = 1; i <= 30; i++) {
		Decision d = p->onTimer(t0 + i * 100ms, avail(2 * GiB - static_cast<uint64_t>(i) * 2 * MiB),
		                        backend(2 * GiB));
		ASSERT_EQ(d.action, Decision::Action::None) << "at " << i << ": " << d.reason;
	}
}

TEST(Server, SpareThatDipsStartsTheHoldAgain)
{
	auto p = server();
	p->onTimer(t0, avail(GiB), backend(2 * GiB));
	p->onTimer(t0 + 1s, avail(150 * MiB), backend(2 * GiB));
	EXPECT_EQ(p->onTimer(t0 + 2s, avail(GiB), backend(2 * GiB)).action, Decision::Action::None);
	EXPECT_EQ(p->onTimer(t0 + 4s, avail(GiB), backend(2 * GiB)).action, Decision::Action::Unplug);
}

TEST(Server, HardBoundsHoldWhateverTheRequest)
{
	Limits l;
	l.max = 1 * GiB;
	l.stepMax = 301 * MiB; // not block aligned: the cap rounds down to 300 MiB
	l.minInterval = 0s;
	PolicyParams pp = preset("server")->params;
	pp.growStep = 900 * MiB;
	auto p = Policy::create(pp, l);
	EXPECT_EQ(p->onPressure(t0, avail(0), backend(0), 0).bytes, 300 * MiB);
	EXPECT_EQ(p->onPressure(t0, avail(0), backend(900 * MiB), 0).bytes, 124 * MiB) << "limits.max";
	Decision d = p->onPressure(t0, avail(0), backend(1 * GiB), 0);
	EXPECT_EQ(d.action, Decision::Action::None);
	EXPECT_NE(d.reason.find("at the maximum"), std::string::npos) << d.reason;
	EXPECT_EQ(p->onPressure(t0, avail(0), backend(510 * MiB, 512 * MiB), 0).bytes, 2 * MiB) << "backend max";
	// A backend reporting more than the limit never gets a plug.
	EXPECT_EQ(p->onPressure(t0, avail(0), backend(2 * GiB), 0).action, Decision::Action::None);
}

TEST(Server, RateLimitSpacesResizes)
{
	auto p = server();
	Decision d = p->onPressure(t0, avail(0), backend(0), 0);
	p->onResult(t0, d, full(d), 0us, avail(0), backend(d.bytes));
	d = p->onPressure(t0 + 500ms, avail(0), backend(d.bytes), 0);
	EXPECT_EQ(d.action, Decision::Action::None);
	EXPECT_NE(d.reason.find("the next grow waits for limits.min_interval"), std::string::npos) << d.reason;
	EXPECT_EQ(*p->nextCheck(), t0 + 1s) << "looks again when the next resize may go";
}

TEST(Server, NeverBelowTheMinimum)
{
	Limits l;
	l.min = 1 * GiB;
	auto p = server(l);
	p->onTimer(t0, avail(3 * GiB), backend(1 * GiB + 64 * MiB));
	EXPECT_EQ(p->onTimer(t0 + 2s, avail(3 * GiB), backend(1 * GiB + 64 * MiB)).bytes, 64 * MiB);
	Decision d = p->onTimer(t0 + 4s, avail(3 * GiB), backend(1 * GiB));
	EXPECT_EQ(d.action, Decision::Action::None);
	EXPECT_FALSE(p->nextCheck()) << "at the floor and idle";
}

TEST(Server, AFailedReleaseDoublesTheHold)
{
	auto p = server();
	p->onTimer(t0, avail(2 * GiB), backend(2 * GiB));
	Decision d = p->onTimer(t0 + 2s, avail(2 * GiB), backend(2 * GiB));
	ASSERT_EQ(d.action, Decision::Action::Unplug);
	p->onResult(t0 + 2s, d, CallResult{0, 100 * MiB, ""}, 0us, avail(2 * GiB), backend(2 * GiB - 100 * MiB));
	p->onTimer(t0 + 3s, avail(2 * GiB), backend(2 * GiB - 100 * MiB));
	EXPECT_EQ(p->onTimer(t0 + 6s, avail(2 * GiB), backend(2 * GiB)).action, Decision::Action::None);
	EXPECT_EQ(p->onTimer(t0 + 7s, avail(2 * GiB), backend(2 * GiB)).action, Decision::Action::Unplug)
	        << "shrink_hold 2s doubled";
	for (int i = 0; i < 10; i++)
		p->onResult(t0 + 7s, d, CallResult{-EBUSY, 0, "busy"}, 0us, avail(2 * GiB), backend(2 * GiB));
	p->onTimer(t0 + 8s, avail(2 * GiB), backend(2 * GiB));
	EXPECT_EQ(p->onTimer(t0 + 8s + 59s, avail(2 * GiB), backend(2 * GiB)).action, Decision::Action::None);
	EXPECT_EQ(p->onTimer(t0 + 8s + 60s, avail(2 * GiB), backend(2 * GiB)).action, Decision::Action::Unplug)
	        << "backoff_max caps the hold";
}

TEST(Server, PlugLatencyWidensTheReserve)
{
	auto p = server();
	Decision d = p->onTimer(t0, avail(0), backend(0));
	p->onResult(t0, d, full(d), 1500ms, avail(64 * MiB), backend(d.bytes));
	for (int i = 0; i <= 11; i++)
		d = p->onTimer(t0 + 1s + i * 100ms, avail(GiB - static_cast<uint64_t>(i) * 10 * MiB), backend(d.bytes));
	// 100 MiB/s, steady for 1.1 s, over 0.1 s + (0.5 s + 1.5 s) / 2.
	EXPECT_NE(d.reason.find("reserve 206 MiB"), std::string::npos) << d.reason;
}

// ---- rfc-reference: the numbers of design.md section 3 ----

namespace {

std::unique_ptr<Policy> rfcReference(const PolicyParams &p = preset("rfc-reference")->params)
{
	Limits l;
	l.minInterval = 0s;
	return Policy::create(p, l);
}

Sample movable(uint64_t free, uint64_t inactiveFile = 0, uint64_t inactiveAnon = 0, uint64_t swapFree = 0,
               uint64_t pgalloc = 0)
{
	Sample s = avail(GiB);
	s.movable.free = free;
	s.movable.inactiveFile = inactiveFile;
	s.movable.inactiveAnon = inactiveAnon;
	s.mem.swapFree = swapFree;
	s.pgallocMovable = pgalloc;
	return s;
}

} // namespace

TEST(RfcReference, PresetNumbers)
{
	auto pr = preset("rfc-reference");
	ASSERT_TRUE(pr);
	ASSERT_EQ(pr->triggers.size(), 10u) << "ten some triggers";
	for (size_t i = 0; i < 10; i++) {
		EXPECT_EQ(pr->triggers[i].kind, TriggerConfig::Kind::Some);
		EXPECT_EQ(pr->triggers[i].stall, std::chrono::milliseconds(5 * (i + 1))) << "5, 10, ..., 50 ms";
		EXPECT_EQ(pr->triggers[i].window, 50ms);
	}
	const PolicyParams &p = pr->params;
	EXPECT_EQ(p.chunk, 4 * MiB);
	EXPECT_EQ(p.growFreeBelow, 2 * MiB) << "half a chunk";
	EXPECT_EQ(p.idleShort, 3s);
	EXPECT_EQ(p.idleMedium, 8s);
	EXPECT_EQ(p.idleLong, 15s);
	EXPECT_EQ(p.swapDiscount, 50u);
	EXPECT_EQ(p.releaseMaxChunks, 5u);
	EXPECT_EQ(p.releaseRetries, 10u);
	EXPECT_EQ(p.retryInterval, 1s);
	EXPECT_EQ(p.holdoffBase, 3000ms);
	EXPECT_EQ(p.holdoffPerChunk, 500ms);
	EXPECT_EQ(p.holdoffMax, 8000ms);
	EXPECT_EQ(p.holdoffOverridePages, 1000u);
	EXPECT_FALSE(p.decayWait);
}

TEST(RfcReference, GrowsOneChunkWhenMovableFreeIsBelowHalfAChunk)
{
	auto p = rfcReference();
	Decision d = p->onPressure(t0, movable(2 * MiB - 4096), backend(0), 1.0);
	EXPECT_EQ(d.action, Decision::Action::Plug);
	EXPECT_EQ(d.bytes, 4 * MiB) << "one chunk, whatever the severity";
	d = p->onPressure(t0, movable(2 * MiB), backend(0), 1.0);
	EXPECT_EQ(d.action, Decision::Action::None);
	EXPECT_NE(d.reason.find("ZONE_MOVABLE has 2 MiB free"), std::string::npos) << d.reason;
}

TEST(RfcReference, AChunkIsAtLeastOneBlockOfTheBackend)
{
	// Gunyah's qti_virtio_mem plugs 128 MiB memory blocks: a 4 MiB chunk is one block, and the zone's
	// free memory, which the kernel keeps above its watermarks, need only fall below half of it.
	const uint64_t block = 128 * MiB;
	auto p = rfcReference();
	Decision d = p->onPressure(t0, movable(64 * MiB - 4096), backend(0, 2 * GiB, block), 1.0);
	ASSERT_EQ(d.action, Decision::Action::Plug) << d.reason;
	EXPECT_EQ(d.bytes, block);
	EXPECT_NE(d.reason.find("below 64 MiB"), std::string::npos) << d.reason;
	EXPECT_EQ(p->onPressure(t0, movable(64 * MiB), backend(0, 2 * GiB, block), 1.0).action, Decision::Action::None);
	// Five blocks plugged are five chunks (idle_medium), and one goes back once a block is reclaimable.
	p->onPressure(t0, movable(0), backend(5 * block, 2 * GiB, block), 0);
	EXPECT_EQ(*p->nextCheck(), t0 + 8s);
	d = p->onTimer(t0 + 8s, movable(block - 4096), backend(5 * block, 2 * GiB, block));
	EXPECT_EQ(d.action, Decision::Action::None) << "less than one block reclaimable";
	auto q = rfcReference();
	q->onPressure(t0, movable(0), backend(5 * block, 2 * GiB, block), 0);
	d = q->onTimer(t0 + 8s, movable(block), backend(5 * block, 2 * GiB, block));
	ASSERT_EQ(d.action, Decision::Action::Unplug) << d.reason;
	EXPECT_EQ(d.bytes, block);
}

TEST(RfcReference, IdleWaitDependsOnChunksPlugged)
{
	struct {
		uint64_t chunks;
		std::chrono::seconds wait;
	} cases[] = {{0, 3s}, {4, 3s}, {5, 8s}, {9, 8s}, {10, 15s}, {40, 15s}};
	for (const auto &c : cases) {
		auto p = rfcReference();
		p->onPressure(t0, movable(64 * MiB), backend(c.chunks * 4 * MiB), 0);
		ASSERT_TRUE(p->nextCheck());
		EXPECT_EQ(*p->nextCheck(), t0 + c.wait) << c.chunks << " chunks";
	}
}

TEST(RfcReference, AnyEventRestartsTheWait)
{
	auto p = rfcReference();
	p->onPressure(t0, movable(64 * MiB), backend(8 * MiB), 0);
	p->onPressure(t0 + 2s, movable(64 * MiB), backend(8 * MiB), 0);
	EXPECT_EQ(*p->nextCheck(), t0 + 5s);
	Decision d = p->onTimer(t0 + 3s, movable(64 * MiB), backend(8 * MiB));
	EXPECT_EQ(d.action, Decision::Action::None) << "not idle long enough";
}

TEST(RfcReference, NoShrinkBeforeTheFirstEvent)
{
	Decision d = rfcReference()->onTimer(t0, movable(64 * MiB), backend(64 * MiB));
	EXPECT_EQ(d.action, Decision::Action::None);
	EXPECT_NE(d.reason.find("no pressure event yet"), std::string::npos);
}

TEST(RfcReference, ReclaimableEstimateDiscountsSwap)
{
	// free 1 MiB + inactive file 2 MiB + min(SwapFree 100 MiB, inactive anon 2 MiB) x 50 % = 4 MiB:
	// exactly one chunk.
	auto p = rfcReference();
	p->onPressure(t0, movable(0), backend(32 * MiB), 0);
	Decision d = p->onTimer(t0 + 8s, movable(1 * MiB, 2 * MiB, 2 * MiB, 100 * MiB), backend(32 * MiB));
	EXPECT_EQ(d.action, Decision::Action::Unplug) << d.reason;
	EXPECT_EQ(d.bytes, 4 * MiB);
	// Without swap the anon term is min(0, ...) = 0: 3 MiB, less than a chunk.
	auto q = rfcReference();
	q->onPressure(t0, movable(0), backend(32 * MiB), 0);
	d = q->onTimer(t0 + 8s, movable(1 * MiB, 2 * MiB, 2 * MiB, 0), backend(32 * MiB));
	EXPECT_EQ(d.action, Decision::Action::None);
	EXPECT_NE(d.reason.find("reclaimable 3 MiB is under one chunk"), std::string::npos) << d.reason;
}

TEST(RfcReference, ReleasesAtMostFiveChunksPerCycleThenHoldsOff)
{
	auto p = rfcReference();
	uint64_t plugged = 64 * MiB; // 16 chunks: idle wait 15 s
	p->onPressure(t0, movable(0), backend(plugged), 0);
	TimePoint t = t0 + 15s;
	int released = 0;
	// One cycle: each release asks for a re-check at once.
	while (p->nextCheck() && *p->nextCheck() <= t) {
		Decision d = p->onTimer(t, movable(100 * MiB, 0, 0, 0, 5000), backend(plugged));
		if (d.action != Decision::Action::Unplug)
			break;
		EXPECT_EQ(d.bytes, 4 * MiB) << "one chunk at a time, re-checking after each";
		plugged -= d.bytes;
		released++;
		p->onResult(t, d, full(d), 0us, movable(100 * MiB, 0, 0, 0, 5000), backend(plugged));
	}
	EXPECT_EQ(released, 5);
	// Hold-off: min(3000 + 500 x 5, 8000) = 5500 ms of ignored events ...
	Decision d = p->onPressure(t + 5400ms, movable(0, 0, 0, 0, 5999), backend(plugged), 0);
	EXPECT_EQ(d.action, Decision::Action::None);
	EXPECT_NE(d.reason.find("hold-off"), std::string::npos) << d.reason;
	// ... unless pgalloc_movable grew by 1000 pages: real demand.
	d = p->onPressure(t + 5400ms, movable(0, 0, 0, 0, 6000), backend(plugged), 0);
	EXPECT_EQ(d.action, Decision::Action::Plug) << d.reason;
}

TEST(RfcReference, HoldoffIsCappedAtEightSeconds)
{
	PolicyParams pp = preset("rfc-reference")->params;
	pp.releaseMaxChunks = 20;
	auto p = rfcReference(pp);
	uint64_t plugged = 128 * MiB;
	p->onPressure(t0, movable(0), backend(plugged), 0);
	TimePoint t = t0 + 15s;
	for (int i = 0; i < 20; i++) {
		t = std::max(t, *p->nextCheck());
		Decision d = p->onTimer(t, movable(200 * MiB), backend(plugged));
		ASSERT_EQ(d.action, Decision::Action::Unplug) << d.reason;
		plugged -= d.bytes;
		p->onResult(t, d, full(d), 0us, movable(200 * MiB), backend(plugged));
	}
	// 3000 + 500 x 20 = 13000 ms, capped at 8000 ms.
	EXPECT_EQ(p->onPressure(t + 7900ms, movable(0), backend(plugged), 0).action, Decision::Action::None);
	EXPECT_EQ(p->onPressure(t + 8100ms, movable(0), backend(plugged), 0).action, Decision::Action::Plug);
}

TEST(RfcReference, RetriesAFailedReleaseTenTimesOneSecondApart)
{
	auto p = rfcReference();
	p->onPressure(t0, movable(0), backend(32 * MiB), 0);
	TimePoint t = t0 + 8s;
	int attempts = 0;
	for (int i = 0; i < 20; i++) {
		ASSERT_TRUE(p->nextCheck());
		EXPECT_EQ(*p->nextCheck(), i == 0 ? t0 + 8s : t + 1s);
		t = *p->nextCheck();
		Decision d = p->onTimer(t, movable(64 * MiB), backend(32 * MiB));
		if (d.action != Decision::Action::Unplug)
			break;
		attempts++;
		p->onResult(t, d, CallResult{-EBUSY, 0, "busy"}, 0us, movable(64 * MiB), backend(32 * MiB));
		if (*p->nextCheck() != t + 1s)
			break;
	}
	EXPECT_EQ(attempts, 11) << "the first try and ten retries";
}

TEST(RfcReference, DecayWaitHoldsTheShrinkUntilPsiSettles)
{
	PolicyParams pp = preset("rfc-reference")->params;
	pp.decayWait = true;
	auto p = rfcReference(pp);
	p->onPressure(t0, movable(0), backend(32 * MiB), 0);
	Sample s = movable(64 * MiB);
	s.someAvg10 = 0.12;
	Decision d = p->onTimer(t0 + 8s, s, backend(32 * MiB));
	EXPECT_EQ(d.action, Decision::Action::None);
	EXPECT_NE(d.reason.find("waiting for PSI to decay"), std::string::npos);
	s.someAvg10 = 0;
	s.someAvg60 = 0.04;
	EXPECT_EQ(p->onTimer(t0 + 9s, s, backend(32 * MiB)).action, Decision::Action::None);
	s.someAvg60 = 0.03;
	EXPECT_EQ(p->onTimer(t0 + 10s, s, backend(32 * MiB)).action, Decision::Action::Unplug);
}
