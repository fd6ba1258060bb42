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

Sample avail(uint64_t available)
{
	Sample s;
	s.mem = MemInfo{4 * GiB, available, available, 0, 0};
	return s;
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

// ---- server ----

TEST(Server, PressureBelowHeadroomGrowsByTheStep)
{
	auto p = server();
	Decision d = p->onPressure(t0, avail(200 * MiB), backend(0), 0);
	EXPECT_EQ(d.action, Decision::Action::Plug);
	EXPECT_EQ(d.bytes, 128 * MiB);
	EXPECT_NE(d.reason.find("below the headroom 256 MiB"), std::string::npos) << d.reason;
}

TEST(Server, PressureWithPlentyAvailableDoesNotGrow)
{
	Decision d = server()->onPressure(t0, avail(2 * GiB), backend(0), 1.0);
	EXPECT_EQ(d.action, Decision::Action::None);
	EXPECT_NE(d.reason.find("more memory would not help"), std::string::npos) << d.reason;
}

TEST(Server, StepCoversTheHeadroomDeficit)
{
	EXPECT_EQ(server()->onPressure(t0, avail(10 * MiB), backend(0), 0).bytes, 246 * MiB);
}

TEST(Server, SeverityScalesTheStep)
{
	// severity_boost 4: 0 % stall gives the step, 100 % four times it,
	// linear between; block-aligned upwards.
	EXPECT_EQ(server()->onPressure(t0, avail(200 * MiB), backend(0), 0.5).bytes, 320 * MiB);
	EXPECT_EQ(server()->onPressure(t0, avail(200 * MiB), backend(0), 1.0).bytes, 512 * MiB);
	EXPECT_EQ(server()->onPressure(t0, avail(200 * MiB), backend(0), 7.0).bytes, 512 * MiB) << "clamped";
}

TEST(Server, RepeatedEventsDoubleTheStepUpToTheCap)
{
	auto p = server();
	TimePoint t = t0;
	uint64_t plugged = 0;
	std::vector<uint64_t> steps;
	for (int i = 0; i < 6; i++) {
		Decision d = p->onPressure(t, avail(200 * MiB), backend(plugged), 0);
		ASSERT_EQ(d.action, Decision::Action::Plug) << d.reason;
		steps.push_back(d.bytes / MiB);
		plugged += d.bytes;
		p->onResult(t, d, full(d), avail(200 * MiB), backend(plugged));
		t += 2s;
	}
	EXPECT_EQ(steps, (std::vector<uint64_t>{128, 256, 512, 1024, 1024, 1024}));
	Decision d = p->onPressure(t + 1min, avail(200 * MiB), backend(plugged), 0);
	EXPECT_EQ(d.bytes, 128 * MiB) << "a quiet period resets the step";
}

TEST(Server, HardBoundsHoldWhateverTheRequest)
{
	Limits l;
	l.max = 1 * GiB;
	l.stepMax = 301 * MiB; // not block aligned: the cap rounds down to 300 MiB
	l.minInterval = 0s;
	PolicyParams pp = preset("server")->params;
	pp.growStep = 900 * MiB;
	pp.growStepMax = 4 * GiB;
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
	p->onResult(t0, d, full(d), avail(0), backend(d.bytes));
	d = p->onPressure(t0 + 500ms, avail(0), backend(d.bytes), 0);
	EXPECT_EQ(d.action, Decision::Action::None);
	EXPECT_NE(d.reason.find("rate limit"), std::string::npos) << d.reason;
}

TEST(Server, ShrinksOnlyAfterIdleAndKeepsTheHeadroom)
{
	auto p = server();
	Decision grow = p->onPressure(t0, avail(100 * MiB), backend(0), 0);
	p->onResult(t0, grow, full(grow), avail(100 * MiB), backend(grow.bytes));
	ASSERT_TRUE(p->nextCheck());
	EXPECT_EQ(*p->nextCheck(), t0 + 30s);
	// 1 GiB available, headroom 256 MiB: 768 MiB spare, capped at 512 MiB.
	Decision d = p->onTimer(t0 + 30s, avail(1 * GiB), backend(2 * GiB));
	EXPECT_EQ(d.action, Decision::Action::Unplug);
	EXPECT_EQ(d.bytes, 512 * MiB);
	EXPECT_EQ(p->onTimer(t0 + 30s, avail(1 * GiB), backend(100 * MiB)).bytes, 100 * MiB);
	d = p->onTimer(t0 + 30s, avail(200 * MiB), backend(2 * GiB));
	EXPECT_EQ(d.action, Decision::Action::None);
	EXPECT_NE(d.reason.find("within the headroom"), std::string::npos);
}

TEST(Server, NeverBelowTheMinimum)
{
	Limits l;
	l.min = 1 * GiB;
	auto p = server(l);
	EXPECT_EQ(p->onTimer(t0, avail(3 * GiB), backend(1 * GiB + 64 * MiB)).bytes, 64 * MiB);
	Decision d = p->onTimer(t0, avail(3 * GiB), backend(1 * GiB));
	EXPECT_EQ(d.action, Decision::Action::None);
	EXPECT_NE(d.reason.find("at the minimum of 1 GiB"), std::string::npos) << d.reason;
}

TEST(Server, PartialReleaseBacksOff)
{
	auto p = server();
	Decision d = p->onTimer(t0, avail(2 * GiB), backend(2 * GiB));
	ASSERT_EQ(d.bytes, 512 * MiB);
	p->onResult(t0, d, CallResult{0, 100 * MiB, ""}, avail(2 * GiB), backend(2 * GiB - 100 * MiB));
	EXPECT_EQ(*p->nextCheck(), t0 + 60s);
	p->onResult(t0, d, CallResult{-EBUSY, 0, "busy"}, avail(2 * GiB), backend(2 * GiB));
	EXPECT_EQ(*p->nextCheck(), t0 + 120s);
	for (int i = 0; i < 10; i++)
		p->onResult(t0, d, CallResult{-EBUSY, 0, "busy"}, avail(2 * GiB), backend(2 * GiB));
	EXPECT_EQ(*p->nextCheck(), t0 + 5min) << "backoff_max caps the wait";
	p->onResult(t0, d, full(d), avail(2 * GiB), backend(GiB));
	EXPECT_EQ(*p->nextCheck(), t0 + 1s) << "a full release drains on at the rate limit";
}

TEST(Server, AnEventPostponesTheShrink)
{
	auto p = server();
	p->onPressure(t0, avail(2 * GiB), backend(GiB), 0);
	EXPECT_EQ(*p->nextCheck(), t0 + 30s);
	p->onPressure(t0 + 20s, avail(2 * GiB), backend(GiB), 0);
	EXPECT_EQ(*p->nextCheck(), t0 + 50s);
}

TEST(Server, CooldownBlocksTheOppositeDirection)
{
	auto p = server();
	Decision d = p->onTimer(t0, avail(2 * GiB), backend(2 * GiB));
	p->onResult(t0, d, full(d), avail(1536 * MiB), backend(1536 * MiB));
	// 5 s after a shrink: a mild event is the shrink's echo ...
	d = p->onPressure(t0 + 5s, avail(200 * MiB), backend(1536 * MiB), 0);
	EXPECT_EQ(d.action, Decision::Action::None);
	EXPECT_NE(d.reason.find("cooldown after the shrink"), std::string::npos) << d.reason;
	// ... but with the headroom half gone it is real demand.
	EXPECT_EQ(p->onPressure(t0 + 5s, avail(100 * MiB), backend(1536 * MiB), 0).action, Decision::Action::Plug);
	// After a grow, no shrink during the cooldown.
	auto q = server();
	d = q->onPressure(t0, avail(0), backend(0), 0);
	q->onResult(t0, d, full(d), avail(0), backend(d.bytes));
	d = q->onTimer(t0 + 3s, avail(3 * GiB), backend(GiB));
	EXPECT_EQ(d.action, Decision::Action::None);
	EXPECT_EQ(*q->nextCheck(), t0 + 10s);
}

// ---- embedded: the numbers of design.md section 3 ----

namespace {

std::unique_ptr<Policy> embedded(const PolicyParams &p = preset("embedded")->params)
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

TEST(Embedded, PresetNumbers)
{
	auto pr = preset("embedded");
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

TEST(Embedded, GrowsOneChunkWhenMovableFreeIsBelowHalfAChunk)
{
	auto p = embedded();
	Decision d = p->onPressure(t0, movable(2 * MiB - 4096), backend(0), 1.0);
	EXPECT_EQ(d.action, Decision::Action::Plug);
	EXPECT_EQ(d.bytes, 4 * MiB) << "one chunk, whatever the severity";
	d = p->onPressure(t0, movable(2 * MiB), backend(0), 1.0);
	EXPECT_EQ(d.action, Decision::Action::None);
	EXPECT_NE(d.reason.find("ZONE_MOVABLE has 2 MiB free"), std::string::npos) << d.reason;
}

TEST(Embedded, IdleWaitDependsOnChunksPlugged)
{
	struct {
		uint64_t chunks;
		std::chrono::seconds wait;
	} cases[] = {{0, 3s}, {4, 3s}, {5, 8s}, {9, 8s}, {10, 15s}, {40, 15s}};
	for (const auto &c : cases) {
		auto p = embedded();
		p->onPressure(t0, movable(64 * MiB), backend(c.chunks * 4 * MiB), 0);
		ASSERT_TRUE(p->nextCheck());
		EXPECT_EQ(*p->nextCheck(), t0 + c.wait) << c.chunks << " chunks";
	}
}

TEST(Embedded, AnyEventRestartsTheWait)
{
	auto p = embedded();
	p->onPressure(t0, movable(64 * MiB), backend(8 * MiB), 0);
	p->onPressure(t0 + 2s, movable(64 * MiB), backend(8 * MiB), 0);
	EXPECT_EQ(*p->nextCheck(), t0 + 5s);
	Decision d = p->onTimer(t0 + 3s, movable(64 * MiB), backend(8 * MiB));
	EXPECT_EQ(d.action, Decision::Action::None) << "not idle long enough";
}

TEST(Embedded, NoShrinkBeforeTheFirstEvent)
{
	Decision d = embedded()->onTimer(t0, movable(64 * MiB), backend(64 * MiB));
	EXPECT_EQ(d.action, Decision::Action::None);
	EXPECT_NE(d.reason.find("no pressure event yet"), std::string::npos);
}

TEST(Embedded, ReclaimableEstimateDiscountsSwap)
{
	// free 1 MiB + inactive file 2 MiB + min(SwapFree 100 MiB, inactive anon 2 MiB) x 50 % = 4 MiB:
	// exactly one chunk.
	auto p = embedded();
	p->onPressure(t0, movable(0), backend(32 * MiB), 0);
	Decision d = p->onTimer(t0 + 8s, movable(1 * MiB, 2 * MiB, 2 * MiB, 100 * MiB), backend(32 * MiB));
	EXPECT_EQ(d.action, Decision::Action::Unplug) << d.reason;
	EXPECT_EQ(d.bytes, 4 * MiB);
	// Without swap the anon term is min(0, ...) = 0: 3 MiB, less than a chunk.
	auto q = embedded();
	q->onPressure(t0, movable(0), backend(32 * MiB), 0);
	d = q->onTimer(t0 + 8s, movable(1 * MiB, 2 * MiB, 2 * MiB, 0), backend(32 * MiB));
	EXPECT_EQ(d.action, Decision::Action::None);
	EXPECT_NE(d.reason.find("reclaimable 3 MiB is under one chunk"), std::string::npos) << d.reason;
}

TEST(Embedded, ReleasesAtMostFiveChunksPerCycleThenHoldsOff)
{
	auto p = embedded();
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
		p->onResult(t, d, full(d), movable(100 * MiB, 0, 0, 0, 5000), backend(plugged));
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

TEST(Embedded, HoldoffIsCappedAtEightSeconds)
{
	PolicyParams pp = preset("embedded")->params;
	pp.releaseMaxChunks = 20;
	auto p = embedded(pp);
	uint64_t plugged = 128 * MiB;
	p->onPressure(t0, movable(0), backend(plugged), 0);
	TimePoint t = t0 + 15s;
	for (int i = 0; i < 20; i++) {
		t = std::max(t, *p->nextCheck());
		Decision d = p->onTimer(t, movable(200 * MiB), backend(plugged));
		ASSERT_EQ(d.action, Decision::Action::Unplug) << d.reason;
		plugged -= d.bytes;
		p->onResult(t, d, full(d), movable(200 * MiB), backend(plugged));
	}
	// 3000 + 500 x 20 = 13000 ms, capped at 8000 ms.
	EXPECT_EQ(p->onPressure(t + 7900ms, movable(0), backend(plugged), 0).action, Decision::Action::None);
	EXPECT_EQ(p->onPressure(t + 8100ms, movable(0), backend(plugged), 0).action, Decision::Action::Plug);
}

TEST(Embedded, RetriesAFailedReleaseTenTimesOneSecondApart)
{
	auto p = embedded();
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
		p->onResult(t, d, CallResult{-EBUSY, 0, "busy"}, movable(64 * MiB), backend(32 * MiB));
		if (*p->nextCheck() != t + 1s)
			break;
	}
	EXPECT_EQ(attempts, 11) << "the first try and ten retries";
}

TEST(Embedded, DecayWaitHoldsTheShrinkUntilPsiSettles)
{
	PolicyParams pp = preset("embedded")->params;
	pp.decayWait = true;
	auto p = embedded(pp);
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

TEST(Server, KeepsLookingWhileMemoryIsPlugged)
{
	// Relief has no PSI event: whatever stopped a shrink, the next check
	// is scheduled while memory stays plugged, and none once it is all back.
	auto p = server();
	p->onTimer(t0, avail(200 * MiB), backend(GiB));
	EXPECT_EQ(*p->nextCheck(), t0 + 30s) << "within the headroom";
	p->onTimer(t0, avail(257 * MiB), backend(GiB));
	EXPECT_EQ(*p->nextCheck(), t0 + 30s) << "less than a block spare";
	p->onTimer(t0, avail(3 * GiB), backend(0));
	EXPECT_FALSE(p->nextCheck()) << "nothing plugged: no timer, no wakeups";
}
