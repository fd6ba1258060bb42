// SPDX-License-Identifier: MIT
// Tests of the server policy and of the one place that enforces the hard bounds.
#include <gtest/gtest.h>

#include "policy.h"

using namespace vmrd;
using namespace std::chrono_literals;

namespace {

constexpr uint64_t MiB = 1ull << 20;
constexpr uint64_t GiB = 1ull << 30;

const TimePoint t0{std::chrono::hours(1)};

MemInfo mem(uint64_t available)
{
	return MemInfo{4 * GiB, available, available, 0, 0};
}

BackendState backend(uint64_t plugged, uint64_t max = 8 * GiB, uint64_t block = 2 * MiB)
{
	return BackendState{true, block, 0, max, plugged};
}

} // namespace

TEST(Policy, PressureBelowHeadroomGrowsByTheStep)
{
	Policy p(PolicyParams{}, Limits{});
	Decision d = p.onPressure(t0, mem(200 * MiB), backend(0));
	EXPECT_EQ(d.action, Decision::Action::Plug);
	EXPECT_EQ(d.bytes, 128 * MiB);
	EXPECT_NE(d.reason.find("below the headroom 256 MiB"), std::string::npos) << d.reason;
}

TEST(Policy, PressureWithPlentyAvailableDoesNotGrow)
{
	Policy p(PolicyParams{}, Limits{});
	Decision d = p.onPressure(t0, mem(2 * GiB), backend(0));
	EXPECT_EQ(d.action, Decision::Action::None);
	EXPECT_NE(d.reason.find("more memory would not help"), std::string::npos) << d.reason;
}

TEST(Policy, StepCoversTheHeadroomDeficit)
{
	Policy p(PolicyParams{}, Limits{});
	Decision d = p.onPressure(t0, mem(10 * MiB), backend(0));
	EXPECT_EQ(d.bytes, 246 * MiB);
}

TEST(Policy, RepeatedEventsDoubleTheStepUpToTheCap)
{
	Policy p(PolicyParams{}, Limits{});
	TimePoint t = t0;
	uint64_t plugged = 0;
	std::vector<uint64_t> steps;
	for (int i = 0; i < 6; i++) {
		Decision d = p.onPressure(t, mem(200 * MiB), backend(plugged));
		ASSERT_EQ(d.action, Decision::Action::Plug) << d.reason;
		steps.push_back(d.bytes / MiB);
		p.onResult(t, d, CallResult{0, d.bytes, ""});
		plugged += d.bytes;
		t += 2s;
	}
	EXPECT_EQ(steps, (std::vector<uint64_t>{128, 256, 512, 1024, 1024, 1024}));
	// A quiet period resets the step.
	Decision d = p.onPressure(t + 1min, mem(200 * MiB), backend(plugged));
	EXPECT_EQ(d.bytes, 128 * MiB);
}

TEST(Policy, HardBoundsHoldWhateverTheRequest)
{
	Limits l;
	l.max = 1 * GiB;
	l.stepMax = 301 * MiB; // not block aligned: the cap rounds down to 300 MiB
	l.minInterval = 0s;
	PolicyParams pp;
	pp.growStep = 900 * MiB;
	pp.growStepMax = 4 * GiB;
	Policy p(pp, l);
	Decision d = p.onPressure(t0, mem(0), backend(0));
	EXPECT_EQ(d.bytes, 300 * MiB) << d.reason;
	d = p.onPressure(t0, mem(0), backend(900 * MiB));
	EXPECT_EQ(d.bytes, 124 * MiB) << "max is 1 GiB";
	d = p.onPressure(t0, mem(0), backend(1 * GiB));
	EXPECT_EQ(d.action, Decision::Action::None);
	EXPECT_NE(d.reason.find("at the maximum"), std::string::npos) << d.reason;
	// The backend's own maximum also bounds.
	d = p.onPressure(t0, mem(0), backend(510 * MiB, 512 * MiB));
	EXPECT_EQ(d.bytes, 2 * MiB);
}

TEST(Policy, RateLimitSpacesResizes)
{
	Limits l;
	l.minInterval = 1s;
	Policy p(PolicyParams{}, l);
	Decision d = p.onPressure(t0, mem(0), backend(0));
	p.onResult(t0, d, CallResult{0, d.bytes, ""});
	d = p.onPressure(t0 + 500ms, mem(0), backend(d.bytes));
	EXPECT_EQ(d.action, Decision::Action::None);
	EXPECT_NE(d.reason.find("rate limit"), std::string::npos) << d.reason;
}

TEST(Policy, ShrinksOnlyAfterIdleAndKeepsTheHeadroom)
{
	Policy p(PolicyParams{}, Limits{});
	Decision grow = p.onPressure(t0, mem(100 * MiB), backend(0));
	p.onResult(t0, grow, CallResult{0, grow.bytes, ""});
	ASSERT_TRUE(p.nextCheck());
	EXPECT_EQ(*p.nextCheck(), t0 + 30s);
	// 1 GiB available, headroom 256 MiB: 768 MiB spare, capped at 512 MiB per cycle,
	// and at what is plugged above the minimum.
	Decision d = p.onTimer(t0 + 30s, mem(1 * GiB), backend(2 * GiB));
	EXPECT_EQ(d.action, Decision::Action::Unplug);
	EXPECT_EQ(d.bytes, 512 * MiB);
	d = p.onTimer(t0 + 30s, mem(1 * GiB), backend(100 * MiB));
	EXPECT_EQ(d.bytes, 100 * MiB);
	d = p.onTimer(t0 + 30s, mem(200 * MiB), backend(2 * GiB));
	EXPECT_EQ(d.action, Decision::Action::None);
	EXPECT_NE(d.reason.find("within the headroom"), std::string::npos);
}

TEST(Policy, NeverBelowTheMinimum)
{
	Limits l;
	l.min = 1 * GiB;
	Policy p(PolicyParams{}, l);
	Decision d = p.onTimer(t0, mem(3 * GiB), backend(1 * GiB + 64 * MiB));
	EXPECT_EQ(d.bytes, 64 * MiB);
	d = p.onTimer(t0, mem(3 * GiB), backend(1 * GiB));
	EXPECT_EQ(d.action, Decision::Action::None);
	EXPECT_NE(d.reason.find("at the minimum of 1 GiB"), std::string::npos) << d.reason;
}

TEST(Policy, PartialReleaseBacksOff)
{
	Policy p(PolicyParams{}, Limits{});
	Decision d = p.onTimer(t0, mem(2 * GiB), backend(2 * GiB));
	ASSERT_EQ(d.bytes, 512 * MiB);
	p.onResult(t0, d, CallResult{0, 100 * MiB, ""});
	EXPECT_EQ(*p.nextCheck(), t0 + 60s);
	p.onResult(t0, d, CallResult{-EBUSY, 0, "busy"});
	EXPECT_EQ(*p.nextCheck(), t0 + 120s);
	for (int i = 0; i < 10; i++)
		p.onResult(t0, d, CallResult{-EBUSY, 0, "busy"});
	EXPECT_EQ(*p.nextCheck(), t0 + 5min) << "backoff_max caps the wait";
	// A full release drains on at the rate limit.
	p.onResult(t0, d, CallResult{0, d.bytes, ""});
	EXPECT_EQ(*p.nextCheck(), t0 + 1s);
}

TEST(Policy, AnEventPostponesTheShrink)
{
	Policy p(PolicyParams{}, Limits{});
	p.onPressure(t0, mem(2 * GiB), backend(GiB));
	EXPECT_EQ(*p.nextCheck(), t0 + 30s);
	p.onPressure(t0 + 20s, mem(2 * GiB), backend(GiB));
	EXPECT_EQ(*p.nextCheck(), t0 + 50s);
}
