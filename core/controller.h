// SPDX-License-Identifier: MIT
// The decision loop as a state machine: PSI events, samples, ticks, backend results and commands in;
// backend calls, the next deadline and event-log records out.  No system calls, no threads, no clock.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "metrics.h"
#include "model.h"
#include "policy.h"
#include "result.h"
#include "stall_meter.h"
#include "trace.h"

namespace vmrd {

// One backend operation, run by the daemon's worker thread; every one ends
// with a get_state() whose answer comes back in CallDone.
struct BackendCall {
	enum class Op { ReadState, Plug, Unplug, ReleaseAll, AckEvent };
	Op op = Op::ReadState;
	uint64_t bytes = 0; // Plug and Unplug
};

// "plug", "get_state": the ABI's name of the operation.
const char *callName(BackendCall::Op op);

struct CallDone {
	BackendCall call;
	CallResult result; // of the operation; empty for ReadState
	Result<BackendState> state{Error{}};
	Micros took{0}; // the operation alone, without the state read
};

class Controller
{
public:
	struct Settings {
		PolicyParams policy;
		Limits limits;
		Micros callTimeout{std::chrono::seconds(30)};
		bool dryRun = false;
		std::string backend; // the plugin's name, for messages
	};
	// Records for the event log, with `t` counted from `start`.
	using Sink = std::function<void(const TraceRecord &)>;
	// A decision and what became of it, for vmrdctl status.
	struct Recent {
		TimePoint at;
		Decision decision;
		std::string outcome;
	};

	Controller(Settings settings, const BackendState &initial, const Sample &sample, TimePoint start, Sink sink);

	// Inputs.  After each, the daemon starts nextCall() if there is one and
	// sleeps until nextDeadline().
	void onPressure(TimePoint t, const PsiEvent &event, const Sample &s);
	// A stall total read for a source that stallReadsDue() named.
	void onStall(TimePoint t, const std::string &source, std::optional<uint64_t> totalUs);
	// nextDeadline() has come and it is not only stall reads; `sample`
	// is called at most once, when a decision needs fresh statistics.
	void onTick(TimePoint t, const std::function<std::optional<Sample>()> &sample);
	// The early signal, for a policy that wantsEarlySignal(): the CPUs
	// allocated a set volume of pages.  A look at the fresh sample `s` now,
	// or when the call in flight ends.
	void onAllocations(TimePoint t, const Sample &s);
	// Whether the policy takes the early signal; the daemon arms it only
	// then, and only while no tick is near (nextTick()).
	bool wantsEarlySignal() const { return policy_->wantsEarlySignal(); }
	// SIGUSR1 or vmrdctl reclaim: a shrink check now.
	Decision onCheck(TimePoint t, const Sample &s);
	// vmrdctl grow or shrink: an operator's resize, within the same bounds.
	Result<Decision> onCommand(TimePoint t, Decision::Action action, uint64_t bytes);
	// The backend's event fd became readable: the size changed outside vmrd.
	void onBackendEvent(TimePoint t);
	// The call from nextCall() finished; `s` was read just after it.
	void onCallDone(TimePoint t, const CallDone &done, const Sample &s);
	void reload(TimePoint t, const Settings &settings);
	// SIGTERM: no new decision or call from here on, held inputs dropped;
	// a call in flight still ends in onCallDone, and releaseOnExit() works.
	void stop(TimePoint t);

	// Outputs.
	std::optional<BackendCall> nextCall();
	std::optional<TimePoint> nextDeadline() const;
	// The part of nextDeadline() that is onTick()'s, without stall reads.
	std::optional<TimePoint> nextTick() const;
	// The sources whose stall total should be read now (severity bursts).
	std::vector<std::string> stallReadsDue(TimePoint t) const { return stall_.readsDue(t); }
	// Whether onTick() has something to do at `t`.
	bool tickDue(TimePoint t) const;
	// At exit with daemon.release_on_exit: starts the call that gives the
	// memory back down to the floor; false if there is nothing to do.
	bool releaseOnExit(TimePoint t);

	// For status and metrics.
	const BackendState &state() const { return state_; }
	const Sample &lastSample() const { return lastSample_; }
	const Settings &settings() const { return settings_; }
	const Metrics &metrics() const { return metrics_; }
	const std::deque<Recent> &recent() const { return recent_; }
	// "the plug of 256 MiB" while a call runs.
	std::optional<std::string> inFlight() const;
	std::vector<std::pair<std::string, std::string>> policyState(TimePoint t) const
	{
		return policy_->describeState(t);
	}

private:
	// What the call in flight is for.
	enum class Purpose { PreRead, Resize, Refresh, Event, Release };
	void start(TimePoint t, BackendCall call, Purpose purpose);
	void execute(TimePoint t, Decision d, bool routine = false);
	void remember(TimePoint t, const Decision &d, std::string outcome);
	void setOutcome(std::string outcome);
	void decidePressure(TimePoint t, const PsiEvent &event, bool held);
	void afterCall(TimePoint t);
	void runHeldCheck(TimePoint t);
	void correctBounds(TimePoint t);
	void preReadDone(TimePoint t, const CallDone &done);
	// A resize ended; `after` is the state read after it, or null if the
	// backend was not called.
	void concludeResize(TimePoint t, const CallResult &res, Micros took, const Result<BackendState> *after);
	void stateRead(TimePoint t, const CallDone &done);
	// Books a state the backend reported; false (logged) if it cannot be
	// read or makes no sense.  A plugged size other than `expected` (by
	// default what vmrd saw last) is logged as a change from outside.
	bool book(const Result<BackendState> &st, const char *when, std::optional<uint64_t> expected = std::nullopt);
	void connectionChanged(TimePoint t, bool wasConnected);
	void record(TraceRecord r, TimePoint t);
	// An input with nothing to it but its time and the last sample (event,
	// reload, stop, tick, check, allocations).
	void mark(TimePoint t, TraceRecord::Type type);
	std::string backendName() const { return "backend '" + settings_.backend + "'"; }

	Settings settings_;
	std::unique_ptr<Policy> policy_;
	BackendState state_;
	Sample lastSample_;
	TimePoint start_;
	Sink sink_;
	Metrics metrics_;

	// The call in flight and the one to start next.
	std::optional<BackendCall> inFlight_, outbox_;
	Purpose purpose_ = Purpose::Refresh;
	Decision planned_;    // the resize a PreRead or Resize serves
	uint64_t sent_ = 0;   // what the Resize really asked
	uint64_t before_ = 0; // plugged just before it
	std::optional<TimePoint> callDeadline_;
	// Inputs held while a call ran, looked at when it ends.
	std::optional<PsiEvent> heldPressure_;
	TimePoint heldAt_;
	bool heldCheck_ = false, heldLook_ = false; // an operator's check; an early signal
	bool hostReclaim_ = false;                  // the backend said the host asks for memory back
	bool eventPending_ = false;
	bool stopping_ = false;
	std::optional<TimePoint> lastRefresh_; // PSI asks a backend that is away again at most once a second

	std::optional<TimePoint> refreshAt_; // ask a backend that is away again
	Micros refreshBackoff_{0};
	std::optional<TimePoint> correctAt_; // the next try to correct the bounds
	StallMeter stall_;
	std::deque<Recent> recent_;
};

} // namespace vmrd
