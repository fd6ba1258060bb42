// SPDX-License-Identifier: MIT
// The decision loop: when to consult the policy, how a decision becomes backend calls, and how results are booked.
#include "controller.h"

#include <algorithm>

#include "bounds.h"
#include "log.h"

namespace vmrd {

namespace {

// Decisions kept for vmrdctl status.
constexpr size_t recentDecisions = 10;

} // namespace

Controller::Controller(Settings settings, const BackendState &initial, const Sample &sample, TimePoint start, Sink sink)
    : settings_(std::move(settings)), policy_(Policy::create(settings_.policy, settings_.limits)), state_(initial),
      lastSample_(sample), start_(start), sink_(std::move(sink))
{
	TraceRecord r;
	r.type = TraceRecord::Type::Start;
	r.sample = sample;
	r.dryRun = settings_.dryRun;
	record(r, start);
	// The host's ask in the first state is taken like any (book()).
	hostReclaim_ = state_.reclaim;
	state_.reclaim = false;
	// Memory already plugged (a restart) goes back like any, once idle.
	policy_->resume(start, state_);
	if (!state_.connected)
		refreshAt_ = start;
	// Started (or restarted) with the device outside the limits.
	correctBounds(start);
	if (hostReclaim_ && !inFlight_ && state_.connected)
		runHeldCheck(start);
}

void Controller::record(TraceRecord r, TimePoint t)
{
	if (!sink_)
		return;
	r.t = std::chrono::duration_cast<Micros>(t - start_);
	if (r.type != TraceRecord::Type::Result && r.type != TraceRecord::Type::State)
		r.state = state_;
	sink_(r);
}

void Controller::mark(TimePoint t, TraceRecord::Type type)
{
	TraceRecord r;
	r.type = type;
	r.sample = lastSample_;
	record(r, t);
}

void Controller::start(TimePoint t, BackendCall call, Purpose purpose)
{
	if (call.op == BackendCall::Op::ReadState && purpose == Purpose::Refresh)
		lastRefresh_ = t;
	inFlight_ = call;
	outbox_ = call;
	purpose_ = purpose;
	callDeadline_ = t + settings_.callTimeout;
}

std::optional<BackendCall> Controller::nextCall()
{
	auto c = outbox_;
	outbox_.reset();
	return c;
}

std::optional<std::string> Controller::inFlight() const
{
	if (!inFlight_)
		return std::nullopt;
	const std::string resize = std::string(actionName(planned_.action)) + " of " + formatSize(planned_.bytes);
	if (purpose_ == Purpose::PreRead)
		return "the state read before the " + resize;
	if (purpose_ == Purpose::Resize || purpose_ == Purpose::Release)
		return "the " + resize;
	return "the " + std::string(callName(inFlight_->op)) + " call";
}

void Controller::remember(TimePoint t, const Decision &d, std::string outcome)
{
	recent_.push_back(Recent{t, d, std::move(outcome)});
	if (recent_.size() > recentDecisions)
		recent_.pop_front();
}

void Controller::setOutcome(std::string outcome)
{
	if (!recent_.empty())
		recent_.back().outcome = std::move(outcome);
}

// Every decision, from the policy, an operator or the bounds, goes
// through here: recorded, logged, and if it is a resize, started with a
// fresh read of the backend's state.  A sample that changes nothing is
// routine: in the event log, but logged at debug and not kept for status,
// or sampling would flood both.
void Controller::execute(TimePoint t, Decision d, bool routine)
{
	metrics_.decision(d.action);
	TraceRecord r;
	r.type = TraceRecord::Type::Decision;
	r.asked = d;
	r.sample = lastSample_;
	record(r, t);
	if (d.action == Decision::Action::None) {
		if (routine) {
			logDebug("decision: " + describeDecision(d));
			return;
		}
		logInfo("decision: " + describeDecision(d));
		remember(t, d, "");
		return;
	}
	if (settings_.dryRun) {
		logInfo("decision (dry run, not done): " + describeDecision(d));
		remember(t, d, "dry run: not done");
		return;
	}
	logInfo("decision: " + describeDecision(d));
	remember(t, d, "in flight");
	planned_ = std::move(d);
	start(t, {BackendCall::Op::ReadState, 0}, Purpose::PreRead);
}

void Controller::onPressure(TimePoint t, const PsiEvent &e, const Sample &s)
{
	metrics_.pressure(e.source, e.trigger);
	stall_.onEvent(t, e);
	lastSample_ = s;
	TraceRecord r;
	r.type = TraceRecord::Type::Pressure;
	r.trigger = e.trigger;
	r.source = e.source;
	r.stall = e.stall;
	r.window = e.window;
	r.totalUs = e.totalUs;
	r.severity = stall_.severity(e, t);
	r.sample = s;
	record(r, t);
	if (stopping_)
		return;
	if (!state_.connected || inFlight_) {
		// Held, the newest only, and looked at when the backend answers,
		// if it is still recent then.
		heldPressure_ = e;
		heldAt_ = t;
		if (!state_.connected && !inFlight_ &&
		    (!lastRefresh_ || t - *lastRefresh_ >= std::chrono::seconds(1))) {
			logInfo("PSI " + e.trigger + ": " + backendName() + " is not connected; asking it again now");
			start(t, {BackendCall::Op::ReadState, 0}, Purpose::Refresh);
		} else {
			logDebug("PSI " + e.trigger + ": held until " +
			         (inFlight_ ? *inFlight() + " ends" : "the backend answers"));
		}
		return;
	}
	decidePressure(t, e, false);
}

void Controller::decidePressure(TimePoint t, const PsiEvent &e, bool held)
{
	Decision d = policy_->onPressure(t, lastSample_, state_, stall_.severity(e, t));
	d.reason = "PSI " + e.trigger + (held ? " during the last call" : "") + ": " + d.reason;
	execute(t, std::move(d));
}

void Controller::onStall(TimePoint t, const std::string &source, std::optional<uint64_t> totalUs)
{
	TraceRecord r;
	r.type = TraceRecord::Type::Stall;
	r.source = source;
	r.totalUs = totalUs;
	r.sample = lastSample_;
	if (stall_.onRead(t, source, totalUs))
		record(r, t);
}

bool Controller::tickDue(TimePoint t) const
{
	const auto next = nextTick();
	return next && t >= *next;
}

std::optional<TimePoint> Controller::nextTick() const
{
	std::optional<TimePoint> next;
	auto earliest = [&](const std::optional<TimePoint> &t) {
		if (t && (!next || *t < *next))
			next = t;
	};
	if (inFlight_) {
		// The rest waits for the call: it ends in onCallDone, not on a timer.
		earliest(callDeadline_);
	} else if (!stopping_) {
		earliest(refreshAt_);
		// What needs the backend waits while it is away.
		if (state_.connected) {
			if (!settings_.dryRun)
				earliest(correctAt_);
			earliest(policy_->nextCheck());
		}
	}
	return next;
}

std::optional<TimePoint> Controller::nextDeadline() const
{
	std::optional<TimePoint> next = nextTick();
	const auto read = stall_.nextRead();
	if (read && (!next || *read < *next))
		next = read;
	return next;
}

void Controller::onTick(TimePoint t, const std::function<std::optional<Sample>()> &sample)
{
	auto due = [&](const std::optional<TimePoint> &at) { return at && t >= *at; };
	if (inFlight_) {
		if (due(callDeadline_)) {
			logWarning(*inFlight() + " has run longer than backend.call_timeout " +
			           formatDuration(settings_.callTimeout) + " in " + backendName() +
			           "; still waiting, PSI monitoring goes on");
			callDeadline_.reset();
		}
		return;
	}
	if (stopping_)
		return;
	const bool refresh = due(refreshAt_);
	const bool check = !refresh && state_.connected && due(policy_->nextCheck());
	// One record per tick, with the statistics it read, so that a replay
	// gives the same tick the same inputs.
	if (check)
		if (auto s = sample())
			lastSample_ = *s;
	mark(t, TraceRecord::Type::Sample);
	if (refresh) {
		refreshAt_.reset();
		start(t, {BackendCall::Op::ReadState, 0}, Purpose::Refresh);
		return;
	}
	if (state_.connected && due(correctAt_))
		correctBounds(t);
	if (!inFlight_ && check)
		execute(t, policy_->onTimer(t, lastSample_, state_), true);
}

void Controller::onAllocations(TimePoint t, const Sample &s)
{
	lastSample_ = s;
	mark(t, TraceRecord::Type::Allocations);
	if (stopping_ || !state_.connected)
		return;
	if (inFlight_) {
		heldLook_ = true;
		return;
	}
	Decision d = policy_->onTimer(t, s, state_);
	d.reason = "allocations: " + d.reason;
	execute(t, std::move(d), true);
}

Decision Controller::onCheck(TimePoint t, const Sample &s)
{
	lastSample_ = s;
	mark(t, TraceRecord::Type::Check);
	if (stopping_)
		return {Decision::Action::None, 0, "vmrd is stopping"};
	if (inFlight_) {
		heldCheck_ = true;
		logInfo("shrink check held until " + *inFlight() + " ends");
		return {Decision::Action::None, 0, "held until " + *inFlight() + " ends, then checked"};
	}
	Decision d = policy_->onCheck(t, s, state_);
	execute(t, d);
	return d;
}

Result<Decision> Controller::onCommand(TimePoint t, Decision::Action action, uint64_t bytes)
{
	if (stopping_)
		return Error{-ESHUTDOWN, "vmrd is stopping"};
	if (!state_.connected)
		return Error{-ENOTCONN, backendName() + " is not connected; try again later"};
	if (inFlight_)
		return Error{-EBUSY, *inFlight() + " is in flight; try again when it is done"};
	const std::string command = action == Decision::Action::Plug ? "grow" : "shrink";
	TraceRecord r;
	r.type = TraceRecord::Type::Command;
	r.asked = Decision{action, bytes, ""};
	r.sample = lastSample_;
	record(r, t);
	logInfo("vmrdctl " + command + " " + formatSize(bytes));
	Decision d = policy_->onRequest(t, {action, bytes, "vmrdctl " + command + " " + formatSize(bytes)}, state_);
	execute(t, d);
	return d;
}

void Controller::onBackendEvent(TimePoint t)
{
	mark(t, TraceRecord::Type::Event);
	eventPending_ = true;
	if (!inFlight_)
		afterCall(t);
}

bool Controller::releaseOnExit(TimePoint t)
{
	const Bounds b = bounds(settings_.limits, state_);
	if (settings_.dryRun || inFlight_ || !state_.connected || state_.plugged <= b.floor)
		return false;
	// release_all goes down to the backend's own minimum: only when that
	// is the floor the operator set.
	const bool all = b.floor <= state_.minBytes;
	planned_ = Decision{Decision::Action::Unplug,
	                    all ? state_.plugged - b.floor : b.room(Decision::Action::Unplug, state_.plugged),
	                    "daemon.release_on_exit"};
	sent_ = planned_.bytes;
	before_ = state_.plugged;
	logInfo("releasing " + formatSize(sent_) + " before exit (daemon.release_on_exit" +
	        (all ? ", with release_all" : "") + ")");
	start(t, {all ? BackendCall::Op::ReleaseAll : BackendCall::Op::Unplug, all ? 0 : sent_}, Purpose::Release);
	return true;
}

// What waited for the call, in order: the bounds, the backend's event, the
// held PSI event or check, then the policy's own timer.
void Controller::afterCall(TimePoint t)
{
	if (stopping_)
		return;
	correctBounds(t);
	if (inFlight_)
		return;
	if (eventPending_) {
		eventPending_ = false;
		start(t, {BackendCall::Op::AckEvent, 0}, Purpose::Event);
		return;
	}
	if (!state_.connected)
		return;
	if (heldPressure_) {
		const PsiEvent e = *heldPressure_;
		heldPressure_.reset();
		// An event from more than two windows ago says nothing of now.
		if (t - heldAt_ <= 2 * e.window) {
			decidePressure(t, e, true);
			if (inFlight_)
				return;
		} else {
			logDebug("PSI " + e.trigger + " from " +
			         formatDuration(std::chrono::duration_cast<Micros>(t - heldAt_)) +
			         " ago dropped: too old to act on");
		}
	}
	const auto check = policy_->nextCheck();
	if (heldCheck_ || hostReclaim_)
		runHeldCheck(t);
	else if (heldLook_ || (check && t >= *check)) {
		heldLook_ = false;
		execute(t, policy_->onTimer(t, lastSample_, state_), true);
	}
}

// The shrink check an operator or the host asked for while a call ran.
void Controller::runHeldCheck(TimePoint t)
{
	Decision d = policy_->onCheck(t, lastSample_, state_);
	if (hostReclaim_)
		d.reason = "the host asks for memory back: " + d.reason;
	heldCheck_ = hostReclaim_ = heldLook_ = false;
	execute(t, std::move(d));
}

void Controller::correctBounds(TimePoint t)
{
	if (!state_.connected || inFlight_ || settings_.dryRun)
		return;
	auto d = boundsCorrection(settings_.limits, state_);
	if (!d) {
		correctAt_.reset();
		return;
	}
	if (correctAt_ && t < *correctAt_)
		return;
	d->reason = backendName() + " has " + d->reason;
	logWarning(d->reason + "; correcting");
	// If this does not bring it back, the next try is a while later.
	correctAt_ = t + std::max<Micros>(settings_.limits.minInterval, std::chrono::seconds(5));
	execute(t, *d);
}

void Controller::reload(TimePoint t, const Settings &settings)
{
	mark(t, TraceRecord::Type::Reload);
	settings_ = settings;
	policy_ = Policy::create(settings_.policy, settings_.limits);
	policy_->resume(t, state_);
	correctBounds(t);
}

void Controller::stop(TimePoint t)
{
	mark(t, TraceRecord::Type::Stop);
	stopping_ = true;
	heldPressure_.reset();
	heldCheck_ = heldLook_ = false;
	eventPending_ = false;
}

} // namespace vmrd
