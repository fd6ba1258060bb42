// SPDX-License-Identifier: MIT
// The Controller driven by hand, with a made-up clock and a backend that answers what the test says:
// no root, no PSI, no threads, milliseconds per scenario.
#include <gtest/gtest.h>

#include "controller.h"
#include "replay.h"

using namespace vmrd;
using namespace std::chrono_literals;

namespace {

constexpr uint64_t MiB = 1ull << 20;
constexpr uint64_t GiB = 1ull << 30;

BackendState device(uint64_t plugged, uint64_t max = 8 * GiB)
{
	BackendState b;
	b.connected = true;
	b.blockSize = 2 * MiB;
	b.maxBytes = max;
	b.plugged = plugged;
	return b;
}

Sample avail(uint64_t available)
{
	Sample s;
	s.mem = MemInfo{4 * GiB, available, available, 0, 0};
	return s;
}

PsiEvent some100()
{
	return {"/proc/pressure/memory", "some 100ms/1s", 100ms, 1s, std::nullopt};
}

class ControllerTest : public ::testing::Test
{
protected:
	void make(const BackendState &initial, Limits limits = {}, bool dryRun = false)
	{
		Controller::Settings s{preset("server")->params, limits, 30s, dryRun, "fake"};
		ctl = std::make_unique<Controller>(s, initial, avail(2 * GiB), t,
		                                   [this](const TraceRecord &r) { records.push_back(r); });
		take();
	}
	// Picks up the call the controller started, if any.
	void take()
	{
		if (auto c = ctl->nextCall())
			call = c;
	}
	// Finishes the call in flight: the operation's result and the state read after it.
	void finish(CallResult result, Result<BackendState> state, const Sample &s = avail(2 * GiB))
	{
		ASSERT_TRUE(call) << "no call in flight";
		CallDone done{*call, std::move(result), std::move(state), 5ms};
		call.reset();
		t += 5ms;
		ctl->onCallDone(t, done, s);
		take();
	}
	// The backend moves `bytes` as asked and reports `after`.
	void grant(uint64_t plugged) { finish({0, call->bytes, ""}, device(plugged)); }
	void readState(Result<BackendState> state) { finish({}, std::move(state)); }
	// The backend's event fd fires; vmrd acks it and reads `reported`.
	void backendEvent(Result<BackendState> reported)
	{
		ctl->onBackendEvent(t);
		take();
		ASSERT_TRUE(call);
		EXPECT_EQ(call->op, BackendCall::Op::AckEvent);
		readState(std::move(reported));
	}
	// A device found at `found`, above limits.max `max`, is read once more
	// and brought back with one unplug, without anyone asking.
	void expectCorrected(uint64_t found, uint64_t max)
	{
		ASSERT_TRUE(call) << "a device above limits.max is corrected at once";
		EXPECT_EQ(call->op, BackendCall::Op::ReadState);
		readState(device(found));
		ASSERT_TRUE(call);
		EXPECT_EQ(call->op, BackendCall::Op::Unplug);
		EXPECT_EQ(call->bytes, found - max);
		grant(max);
		EXPECT_EQ(ctl->state().plugged, max);
		EXPECT_FALSE(call);
	}
	// The latest decision whose reason has `text`.
	const Controller::Recent *decided(const std::string &text) const
	{
		for (auto r = ctl->recent().rbegin(); r != ctl->recent().rend(); ++r)
			if (r->decision.reason.find(text) != std::string::npos)
				return &*r;
		return nullptr;
	}
	// Runs the due ticks with `s` until none is left, as an idle guest
	// would; how many it took, or -1 if they never stop.
	int settle(const Sample &s)
	{
		for (int i = 0; i < 5; i++) {
			auto next = ctl->nextDeadline();
			if (!next)
				return i;
			t = *next;
			ctl->onTick(t, [&] { return std::optional<Sample>(s); });
			take();
		}
		return -1;
	}
	std::string metrics() const { return ctl->metrics().render(MetricGauges{}); }
	std::vector<TraceRecord> of(TraceRecord::Type type) const
	{
		std::vector<TraceRecord> out;
		for (const auto &r : records)
			if (r.type == type)
				out.push_back(r);
		return out;
	}

	TimePoint t{std::chrono::hours(1)};
	std::unique_ptr<Controller> ctl;
	std::optional<BackendCall> call;
	std::vector<TraceRecord> records;
};

} // namespace

TEST_F(ControllerTest, PressureBecomesAReadThenAPlugAndTheResultIsBooked)
{
	make(device(0));
	ctl->onPressure(t, some100(), avail(40 * MiB));
	take();
	ASSERT_TRUE(call);
	EXPECT_EQ(call->op, BackendCall::Op::ReadState) << "every resize starts with a fresh state";
	readState(device(0));
	ASSERT_TRUE(call);
	EXPECT_EQ(call->op, BackendCall::Op::Plug);
	const uint64_t asked = call->bytes;
	grant(asked);
	EXPECT_FALSE(call);
	EXPECT_EQ(ctl->state().plugged, asked);
	EXPECT_EQ(of(TraceRecord::Type::Result).size(), 1u);
	EXPECT_NE(ctl->recent().back().outcome.find("done"), std::string::npos) << ctl->recent().back().outcome;
}

// The case a user hit: limits 64M to 512M, the device at 500M behind vmrd's
// back, and get_state failing: a grow must send nothing.
TEST_F(ControllerTest, NoResizeIsSentWhileTheStateCannotBeRead)
{
	Limits l;
	l.min = 64 * MiB;
	l.max = 512 * MiB;
	make(device(64 * MiB), l);
	for (const auto &bad : {Result<BackendState>(Error{-EIO, "get_state failed in backend 'fake'"}),
	                        Result<BackendState>(Error{-EIO, "get_state failed in backend 'fake': (7)"})}) {
		auto d = ctl->onCommand(t, Decision::Action::Plug, 256 * MiB);
		ASSERT_TRUE(d) << d.error().message;
		take();
		ASSERT_TRUE(call);
		readState(bad);
		EXPECT_FALSE(call) << "a resize was sent on an unreadable state";
		EXPECT_NE(ctl->recent().back().outcome.find("cannot be read"), std::string::npos);
		t += 2s; // past the rate limit
	}
	// A state that makes no sense counts as unreadable.
	BackendState nonsense = device(500 * MiB);
	nonsense.blockSize = 0;
	ASSERT_TRUE(ctl->onCommand(t, Decision::Action::Plug, 256 * MiB));
	take();
	readState(nonsense);
	EXPECT_FALSE(call);
	EXPECT_EQ(ctl->state().plugged, 64 * MiB) << "nothing booked from nonsense";
	t += 2s;
	// Readable again: the plug is trimmed to what fits under limits.max.
	ASSERT_TRUE(ctl->onCommand(t, Decision::Action::Plug, 256 * MiB));
	take();
	readState(device(500 * MiB));
	ASSERT_TRUE(call);
	EXPECT_EQ(call->op, BackendCall::Op::Plug);
	EXPECT_EQ(call->bytes, 12 * MiB);
	grant(512 * MiB);
	EXPECT_EQ(ctl->state().plugged, 512 * MiB);
}

TEST_F(ControllerTest, AResultIsBookedFromTheCallWhenTheStateReadAfterItFails)
{
	make(device(0));
	ASSERT_TRUE(ctl->onCommand(t, Decision::Action::Plug, 256 * MiB));
	take();
	readState(device(0));
	finish({0, 256 * MiB, ""}, Error{-EIO, "get_state failed"});
	EXPECT_EQ(ctl->state().plugged, 256 * MiB);
	const auto results = of(TraceRecord::Type::Result);
	ASSERT_EQ(results.size(), 1u);
	EXPECT_EQ(results[0].stateError, "get_state failed");
}

TEST_F(ControllerTest, PressureDuringACallIsHeldAndLookedAtWhenItEnds)
{
	make(device(0));
	ctl->onPressure(t, some100(), avail(40 * MiB));
	take();
	readState(device(0));
	const auto decisionsBefore = of(TraceRecord::Type::Decision).size();
	t += 100ms;
	ctl->onPressure(t, some100(), avail(20 * MiB)); // while the plug runs
	take();
	EXPECT_EQ(of(TraceRecord::Type::Decision).size(), decisionsBefore) << "decided while a call ran";
	// The plug ends with memory still short: the held event is decided on now.
	finish({0, call->bytes, ""}, device(call->bytes), avail(30 * MiB));
	const auto decisions = of(TraceRecord::Type::Decision);
	ASSERT_EQ(decisions.size(), decisionsBefore + 1);
	EXPECT_NE(decisions.back().asked.reason.find("during the last call"), std::string::npos)
	        << decisions.back().asked.reason;
}

TEST_F(ControllerTest, AFailingBackendIsToldToThePolicyAndBooked)
{
	make(device(0));
	ASSERT_TRUE(ctl->onCommand(t, Decision::Action::Plug, 256 * MiB));
	take();
	readState(device(0));
	finish({-ENOSPC, 64 * MiB, "host refused"}, device(64 * MiB));
	EXPECT_EQ(ctl->state().plugged, 64 * MiB);
	EXPECT_NE(ctl->recent().back().outcome.find("failed after 64 MiB: host refused"), std::string::npos);
	EXPECT_NE(metrics().find("vmrd_backend_failures_total{action=\"plug\",reason=\"ENOSPC\"} 1\n"),
	          std::string::npos)
	        << metrics();
	// The failed call counts for the rate limit like any.
	auto again = ctl->onCommand(t, Decision::Action::Plug, 256 * MiB);
	ASSERT_TRUE(again);
	EXPECT_NE(again->reason.find("rate limit"), std::string::npos) << again->reason;

	// A call that fails having done nothing leaves the booking alone, and
	// the next one, past the rate limit, is done and booked: it recovers.
	t += 2s;
	ASSERT_TRUE(ctl->onCommand(t, Decision::Action::Plug, 256 * MiB));
	take();
	readState(device(64 * MiB));
	finish({-EIO, 0, "injected failure"}, device(64 * MiB));
	EXPECT_EQ(ctl->state().plugged, 64 * MiB);
	EXPECT_NE(ctl->recent().back().outcome.find("failed after 0 B: injected failure"), std::string::npos)
	        << ctl->recent().back().outcome;
	t += 2s;
	ASSERT_TRUE(ctl->onCommand(t, Decision::Action::Plug, 64 * MiB));
	take();
	readState(device(64 * MiB));
	grant(128 * MiB);
	EXPECT_EQ(ctl->state().plugged, 128 * MiB);
	EXPECT_NE(ctl->recent().back().outcome.find("64 MiB done"), std::string::npos) << ctl->recent().back().outcome;
}

TEST_F(ControllerTest, APartialGrantIsBookedAsItIs)
{
	make(device(512 * MiB));
	ASSERT_TRUE(ctl->onCommand(t, Decision::Action::Plug, 256 * MiB));
	take();
	readState(device(512 * MiB));
	finish({0, 128 * MiB, ""}, device(640 * MiB));
	EXPECT_EQ(ctl->state().plugged, 640 * MiB);
	EXPECT_NE(ctl->recent().back().outcome.find("128 MiB done"), std::string::npos) << ctl->recent().back().outcome;
	EXPECT_NE(metrics().find("vmrd_backend_partial_total{action=\"plug\"} 1\n"), std::string::npos) << metrics();
	EXPECT_FALSE(call) << "a partial grant is a result, not a fault to retry";
}

// A backend that plugs 768 MiB for a plug of 256 MiB, past limits.max: its
// state is booked, then corrected.
TEST_F(ControllerTest, ABackendThatDidMoreThanAskedIsBroughtBackUnderTheMaximum)
{
	Limits l;
	l.max = 1 * GiB;
	make(device(512 * MiB), l);
	ASSERT_TRUE(ctl->onCommand(t, Decision::Action::Plug, 256 * MiB));
	take();
	readState(device(512 * MiB));
	finish({0, 768 * MiB, ""}, device(1280 * MiB));
	EXPECT_EQ(ctl->state().plugged, 1280 * MiB);
	expectCorrected(1280 * MiB, 1 * GiB);
}

// Without an event fd, nothing tells vmrd of a resize from outside: it is
// seen at the next call, the read before a resize, which then does not push
// the device further.
TEST_F(ControllerTest, ADeviceChangedBehindItsBackIsSeenAtTheNextCall)
{
	Limits l;
	l.max = 1 * GiB;
	make(device(512 * MiB), l);
	EXPECT_FALSE(call);
	// No polling: the one deadline is the policy's first look at the
	// memory plugged before vmrd started.
	EXPECT_EQ(ctl->nextDeadline(), t + preset("server")->params.sampleMin);
	// Someone else resizes the device to 1.5 GiB; vmrd still believes 512 MiB.
	ASSERT_TRUE(ctl->onCommand(t, Decision::Action::Plug, 256 * MiB));
	EXPECT_EQ(ctl->state().plugged, 512 * MiB);
	take();
	ASSERT_TRUE(call);
	EXPECT_EQ(call->op, BackendCall::Op::ReadState);
	readState(device(1536 * MiB));
	EXPECT_EQ(ctl->state().plugged, 1536 * MiB) << "the backend's word is booked";
	const auto *grow = decided("vmrdctl grow");
	ASSERT_TRUE(grow);
	EXPECT_NE(grow->outcome.find("not called: the backend already has 1536 MiB plugged, at the limit"),
	          std::string::npos)
	        << grow->outcome;
	expectCorrected(1536 * MiB, 1 * GiB);
}

TEST_F(ControllerTest, ASlowCallRefusesOperatorsAndWarnsOnce)
{
	make(device(0));
	ASSERT_TRUE(ctl->onCommand(t, Decision::Action::Plug, 256 * MiB));
	take();
	readState(device(0));
	auto busy = ctl->onCommand(t, Decision::Action::Plug, 2 * MiB);
	ASSERT_FALSE(busy);
	EXPECT_EQ(busy.error().code, -EBUSY);
	ASSERT_TRUE(ctl->nextDeadline());
	EXPECT_EQ(*ctl->nextDeadline(), t + 30s) << "the only deadline while a call runs is its timeout";
	t += 31s;
	EXPECT_TRUE(ctl->tickDue(t));
	ctl->onTick(t, [] { return std::nullopt; });
	EXPECT_FALSE(ctl->tickDue(t)) << "the timeout is warned about once";
}

TEST_F(ControllerTest, AnEventReadsTheStateAndCorrectsADeviceAboveTheMaximum)
{
	Limits l;
	l.max = 1 * GiB;
	make(device(512 * MiB), l);
	backendEvent(device(1536 * MiB)); // the host resized behind vmrd's back
	EXPECT_EQ(ctl->state().plugged, 1536 * MiB);
	expectCorrected(1536 * MiB, 1 * GiB);
}

TEST_F(ControllerTest, AnEventDuringACallIsReadAfterIt)
{
	make(device(0));
	ASSERT_TRUE(ctl->onCommand(t, Decision::Action::Plug, 256 * MiB));
	take();
	ctl->onBackendEvent(t);
	readState(device(0));
	grant(256 * MiB);
	ASSERT_TRUE(call);
	EXPECT_EQ(call->op, BackendCall::Op::AckEvent);
}

TEST_F(ControllerTest, ABackendAwayIsAskedAgainWithADoublingPause)
{
	BackendState away = device(0);
	away.connected = false;
	make(away);
	std::vector<Micros> pauses;
	TimePoint last = t;
	for (int i = 0; i < 7; i++) {
		auto next = ctl->nextDeadline();
		ASSERT_TRUE(next);
		pauses.push_back(std::chrono::duration_cast<Micros>(*next - last));
		t = *next;
		ctl->onTick(t, [] { return std::nullopt; });
		take();
		ASSERT_TRUE(call);
		readState(away);
		last = t;
	}
	EXPECT_EQ(pauses, (std::vector<Micros>{0s, 1s, 2s, 4s, 8s, 16s, 30s}));
	auto refused = ctl->onCommand(t, Decision::Action::Plug, 2 * MiB);
	ASSERT_FALSE(refused);
	EXPECT_EQ(refused.error().code, -ENOTCONN);
	t = *ctl->nextDeadline();
	ctl->onTick(t, [] { return std::nullopt; });
	take();
	readState(device(0));
	EXPECT_TRUE(ctl->state().connected);
	// The policy's looks that waited for the backend, then none.
	EXPECT_LE(settle(avail(2 * GiB)), 2) << "connected and idle: no timer";
	EXPECT_FALSE(call);
}

TEST_F(ControllerTest, SeverityIsMeasuredFromStallReadsAcrossOneWindow)
{
	make(device(0));
	PsiEvent e = some100();
	e.totalUs = 1000;
	ctl->onPressure(t, e, avail(2 * GiB)); // plenty available: no resize
	for (int i = 1; i <= 4; i++) {
		auto due = ctl->stallReadsDue(t + 250ms * i);
		ASSERT_EQ(due.size(), 1u);
		ctl->onStall(t + 250ms * i, due[0], 1000 + 150000 * i);
	}
	EXPECT_TRUE(ctl->stallReadsDue(t + 2s).empty());
	ctl->onPressure(t + 1100ms, e, avail(2 * GiB));
	EXPECT_DOUBLE_EQ(of(TraceRecord::Type::Pressure).back().severity, 0.6);
}

TEST_F(ControllerTest, ADeviceBelowTheMinimumIsCorrectedAtStart)
{
	Limits l;
	l.min = 256 * MiB;
	make(device(0), l);
	ASSERT_TRUE(call);
	readState(device(0));
	ASSERT_TRUE(call);
	EXPECT_EQ(call->op, BackendCall::Op::Plug);
	EXPECT_EQ(call->bytes, 256 * MiB);
}

TEST_F(ControllerTest, DryRunDecidesButCallsNothing)
{
	make(device(0), {}, true);
	ctl->onPressure(t, some100(), avail(40 * MiB));
	take();
	EXPECT_FALSE(call);
	EXPECT_EQ(ctl->recent().back().outcome, "dry run: not done");
}

TEST_F(ControllerTest, ReleaseOnExitUsesReleaseAllDownToTheBackendsMinimum)
{
	make(device(1 * GiB));
	ASSERT_TRUE(ctl->releaseOnExit(t));
	take();
	ASSERT_TRUE(call);
	EXPECT_EQ(call->op, BackendCall::Op::ReleaseAll);
	finish({0, 1 * GiB, ""}, device(0));
	EXPECT_EQ(ctl->state().plugged, 0u);

	Limits l;
	l.min = 256 * MiB;
	make(device(1 * GiB), l);
	ASSERT_TRUE(ctl->releaseOnExit(t));
	take();
	EXPECT_EQ(call->op, BackendCall::Op::Unplug) << "limits.min is kept";
	EXPECT_EQ(call->bytes, 768 * MiB);
}

// What the controller records is all a replay needs: the same inputs give
// the same decisions, word for word.
TEST_F(ControllerTest, ItsOwnRecordsReplayToTheSameDecisions)
{
	make(device(0));
	PsiEvent e = some100();
	e.totalUs = 0;
	ctl->onPressure(t, e, avail(40 * MiB));
	take();
	ctl->onStall(t + 250ms, e.source, 90000);
	readState(device(0));
	t += 300ms;
	ctl->onPressure(t, e, avail(30 * MiB));
	grant(call->bytes);
	for (int i = 0; i < 20 && ctl->nextDeadline(); i++) {
		t = std::max(t, *ctl->nextDeadline()) + 7ms;
		for (const auto &src : ctl->stallReadsDue(t))
			ctl->onStall(t, src, 200000);
		if (ctl->tickDue(t))
			ctl->onTick(t, [] { return std::optional<Sample>(avail(3 * GiB)); });
		take();
		while (call)
			call->op == BackendCall::Op::ReadState ? readState(ctl->state())
			                                       : grant(ctl->state().plugged - call->bytes);
	}
	// Through the file format, as vmrd-replay reads it.
	std::vector<TraceRecord> trace;
	for (const auto &r : records) {
		auto back = parseTraceLine(TraceWriter::formatTraceRecord(r));
		ASSERT_TRUE(back) << back.error().message;
		trace.push_back(**back);
	}
	const auto replayed = replay(preset("server")->params, Limits{}, trace);
	EXPECT_EQ(replayed.divergence, "");
	EXPECT_GE(recordedDecisions(trace).size(), 4u);
	EXPECT_EQ(replayed.decisions, recordedDecisions(trace));
}

// A correction waits while the backend is away: its deadline must not
// stay in the past and spin the daemon.
TEST_F(ControllerTest, ACorrectionPendingWhileTheBackendIsAwayDoesNotSpin)
{
	Limits l;
	l.max = 1 * GiB;
	make(device(512 * MiB), l);
	backendEvent(device(1536 * MiB)); // host grew it: correction starts
	ASSERT_TRUE(call);
	readState(device(1536 * MiB));
	ASSERT_EQ(call->op, BackendCall::Op::Unplug);
	finish({0, 128 * MiB, ""}, device(1408 * MiB)); // partial: still above
	EXPECT_FALSE(call);
	// The broker goes away: the next event's read says so.
	BackendState away = device(1408 * MiB);
	away.connected = false;
	backendEvent(away);
	EXPECT_FALSE(call);
	int ticks = 0;
	const TimePoint begin = t;
	const size_t samplesBefore = of(TraceRecord::Type::Sample).size();
	while (t < begin + 20s && ticks < 100000) {
		auto next = ctl->nextDeadline();
		ASSERT_TRUE(next);
		t = std::max(t, *next);
		ctl->onTick(t, [] { return std::nullopt; });
		take();
		if (call)
			readState(away);
		ticks++;
		if (ticks > 1000)
			break;
	}
	EXPECT_LT(ticks, 50) << "deadline stuck in the past: " << ticks << " ticks, t advanced "
	                     << std::chrono::duration_cast<std::chrono::milliseconds>(t - begin).count() << " ms, "
	                     << of(TraceRecord::Type::Sample).size() - samplesBefore << " sample records";
}

// Through the file format, with the backend away at start.
TEST_F(ControllerTest, ALogThatStartsWithTheBackendAwayReplaysFromTheFile)
{
	BackendState away = device(0);
	away.connected = false;
	make(away);
	ctl->onTick(t, [] { return std::nullopt; });
	take();
	ASSERT_TRUE(call);
	readState(device(0));
	ctl->onPressure(t, some100(), avail(40 * MiB));
	take();
	readState(device(0));
	grant(call->bytes);
	std::vector<TraceRecord> trace;
	for (const auto &r : records) {
		auto p = parseTraceLine(TraceWriter::formatTraceRecord(r));
		ASSERT_TRUE(p);
		if (*p)
			trace.push_back(**p);
	}
	const auto replayed = replay(preset("server")->params, Limits{}, trace);
	EXPECT_EQ(replayed.divergence, "");
	EXPECT_EQ(replayed.decisions, recordedDecisions(trace));
}

// A PSI event held while the backend was away is not acted on minutes later.
TEST_F(ControllerTest, AHeldEventTooOldToMeanAnythingIsDropped)
{
	make(device(0));
	ASSERT_TRUE(ctl->onCommand(t, Decision::Action::Plug, 256 * MiB));
	take();
	ctl->onPressure(t, some100(), avail(40 * MiB)); // held
	BackendState away = device(0);
	away.connected = false;
	readState(away); // pre-read: away
	EXPECT_FALSE(call);
	t += 10min;
	for (int i = 0; i < 100 && !ctl->state().connected; i++) {
		t = std::max(t, *ctl->nextDeadline());
		ctl->onTick(t, [] { return std::nullopt; });
		take();
		if (call)
			readState(i < 5 ? away : device(0));
	}
	ASSERT_TRUE(ctl->state().connected);
	const auto *d = decided("during the last call");
	EXPECT_EQ(d, nullptr) << "acted on a PSI event from more than 10 minutes ago";
}

// A reclaim held during a call runs, even when a PSI event was held too.
TEST_F(ControllerTest, AHeldCheckRunsBesideAHeldEvent)
{
	make(device(1 * GiB));
	ASSERT_TRUE(ctl->onCommand(t, Decision::Action::Plug, 2 * MiB));
	take();
	auto held = ctl->onCheck(t, avail(3 * GiB));
	ctl->onPressure(t, some100(), avail(3 * GiB));
	readState(device(1 * GiB));
	grant(1 * GiB + 2 * MiB);
	// The check's decision is the one not made for PSI or vmrdctl.
	size_t checks = 0;
	for (const auto &r : ctl->recent())
		if (r.decision.reason.rfind("PSI", 0) != 0 && r.decision.reason.rfind("vmrdctl", 0) != 0)
			checks++;
	EXPECT_EQ(checks, 1u) << "reply said: " << held.reason;
}

// The host asks for memory back (the broker's reclaim, through the
// backend's state): vmrd gives back what it can spare at once, as for
// vmrdctl reclaim, keeps what is in use, and its log replays the same.
TEST_F(ControllerTest, TheHostsAskForMemoryBackIsAShrinkCheck)
{
	make(device(1 * GiB));
	BackendState asked = device(1 * GiB);
	asked.reclaim = true;
	// 1.5 GiB available, 1 GiB plugged: all of it can go.
	ctl->onBackendEvent(t);
	take();
	finish({}, asked, avail(1536 * MiB));
	ASSERT_TRUE(call) << "no shrink check followed the host's ask";
	EXPECT_EQ(call->op, BackendCall::Op::ReadState);
	readState(device(1 * GiB));
	ASSERT_TRUE(call);
	EXPECT_EQ(call->op, BackendCall::Op::Unplug);
	const auto *d = decided("the host asks for memory back");
	ASSERT_NE(d, nullptr);
	grant(1 * GiB - call->bytes);
	EXPECT_FALSE(ctl->state().reclaim) << "an ask, taken once";
	// Asked again, now with 512 MiB plugged and little available: what is
	// in use stays.
	asked.plugged = 512 * MiB;
	ctl->onBackendEvent(t);
	take();
	finish({}, asked, avail(64 * MiB));
	EXPECT_TRUE(!call || call->op != BackendCall::Op::Unplug);
	EXPECT_NE(decided("the host asks for memory back: MemAvailable 64 MiB below"), nullptr);
	const auto replayed = replay(preset("server")->params, Limits{}, records);
	EXPECT_EQ(replayed.divergence, "");
	EXPECT_EQ(replayed.decisions, recordedDecisions(records));
	// A simulated replay gets the host's asks too, where they came.
	ReplayOptions simulate;
	simulate.simulate = true;
	const auto simulated = replay(preset("server")->params, Limits{}, records, simulate);
	const auto asks = std::count_if(simulated.decisions.begin(), simulated.decisions.end(), [](const auto &d) {
		return d.find("the host asks for memory back") != std::string::npos;
	});
	EXPECT_EQ(asks, 2) << ::testing::PrintToString(simulated.decisions);
}

// The host's ask in the very first state (a reclaim queued before vmrd
// started) is taken too, and only once.
TEST_F(ControllerTest, TheHostsAskInTheFirstStateIsTaken)
{
	BackendState asked = device(1 * GiB);
	asked.reclaim = true;
	make(asked);
	ASSERT_TRUE(call) << "no shrink check followed the host's ask at start";
	EXPECT_EQ(call->op, BackendCall::Op::ReadState);
	EXPECT_FALSE(ctl->state().reclaim);
	readState(device(1 * GiB));
	ASSERT_TRUE(call);
	EXPECT_EQ(call->op, BackendCall::Op::Unplug);
	grant(1 * GiB - call->bytes);
	EXPECT_FALSE(call) << "asked once, checked once";
}

// A dry run's log replays as a dry run.
TEST_F(ControllerTest, ADryRunLogReplaysAsADryRun)
{
	make(device(0), {}, true);
	ctl->onPressure(t, some100(), avail(40 * MiB));
	take();
	EXPECT_FALSE(call);
	t += 100ms;
	backendEvent(device(0));
	t += 5s;
	ctl->onPressure(t, some100(), avail(40 * MiB));
	take();
	const auto replayed = replay(preset("server")->params, Limits{}, records);
	EXPECT_EQ(replayed.divergence, "");
	EXPECT_EQ(replayed.decisions, recordedDecisions(records));
}

// ---- the server policy through the controller: sampling while it pays ----

// Idle at the floor nothing is due: no wakeup until a signal.  A volume of
// page allocations is one: vmrd looks, finds memory short and grows, then
// samples on while memory is plugged.
TEST_F(ControllerTest, TheEarlySignalWakesAnIdleGuestThatThenGrows)
{
	make(device(0));
	// The first looks after start find nothing to do, and no timer stays.
	EXPECT_EQ(settle(avail(2 * GiB)), 2) << "idle at the floor: no wakeups";

	t += 10min;
	ctl->onAllocations(t, avail(40 * MiB));
	take();
	ASSERT_TRUE(call);
	EXPECT_EQ(call->op, BackendCall::Op::ReadState);
	readState(device(0));
	ASSERT_TRUE(call);
	EXPECT_EQ(call->op, BackendCall::Op::Plug);
	EXPECT_EQ(call->bytes, 56 * MiB);
	ASSERT_NE(decided("allocations: MemAvailable 40 MiB below the reserve"), nullptr);
	grant(56 * MiB);
	ASSERT_TRUE(ctl->nextDeadline()) << "memory plugged: sampled";
	EXPECT_LE(*ctl->nextDeadline() - t, 2s);
}

// The early signal during a call is looked at when the call ends.
TEST_F(ControllerTest, TheEarlySignalDuringACallIsLookedAtAfterIt)
{
	make(device(0));
	ASSERT_TRUE(ctl->onCommand(t, Decision::Action::Plug, 64 * MiB));
	take();
	ctl->onAllocations(t, avail(20 * MiB));
	take();
	EXPECT_EQ(call->op, BackendCall::Op::ReadState) << "still the command's read";
	readState(device(0));
	finish({0, 64 * MiB, ""}, device(64 * MiB), avail(20 * MiB));
	// The held look was taken; it waits for the rate limit, a routine
	// decision that is in the event log only.
	const auto decisions = of(TraceRecord::Type::Decision);
	ASSERT_FALSE(decisions.empty());
	EXPECT_NE(decisions.back().asked.reason.find("MemAvailable 20 MiB below the reserve"), std::string::npos)
	        << decisions.back().asked.reason;
}

// Demand that ends is given back within shrink_hold and a rate-limit
// step: samples while plugged see the spare stay, then it goes.
TEST_F(ControllerTest, MemoryThatStaysSpareGoesBackWithinTheHold)
{
	make(device(2 * GiB));
	const TimePoint end = t;
	Sample idle = avail(3 * GiB);
	for (int i = 0; i < 100 && !call; i++) {
		ASSERT_TRUE(ctl->nextDeadline());
		t = *ctl->nextDeadline();
		ctl->onTick(t, [&] { return std::optional<Sample>(idle); });
		take();
	}
	ASSERT_TRUE(call);
	readState(device(2 * GiB));
	ASSERT_TRUE(call);
	EXPECT_EQ(call->op, BackendCall::Op::Unplug);
	EXPECT_EQ(call->bytes, 2 * GiB) << "all of it: 3 GiB are available";
	EXPECT_LE(t - end, 2500ms);
	grant(0);
	// One more look after the rate-limit interval, then none.  The 2 GiB
	// left MemTotal and MemAvailable alike.
	ASSERT_TRUE(ctl->nextDeadline());
	t = *ctl->nextDeadline();
	Sample after = idle;
	after.mem.memTotal -= 2 * GiB;
	after.mem.memAvailable -= 2 * GiB;
	ctl->onTick(t, [&] { return std::optional<Sample>(after); });
	EXPECT_FALSE(ctl->nextDeadline()) << "back at the floor: no more samples";
}
