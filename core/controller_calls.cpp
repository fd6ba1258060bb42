// SPDX-License-Identifier: MIT
// How the Controller books what the backend did: the state read before a resize, the resize's result,
// state re-reads, and the backend's connection.
#include <algorithm>

#include "bounds.h"
#include "controller.h"
#include "log.h"

namespace vmrd {

namespace {

Decision::Action actionOf(BackendCall::Op op)
{
	return op == BackendCall::Op::Plug                                          ? Decision::Action::Plug
	       : op == BackendCall::Op::Unplug || op == BackendCall::Op::ReleaseAll ? Decision::Action::Unplug
	                                                                            : Decision::Action::None;
}

// A state no backend can be in: acting on it could push the device anywhere.
std::optional<std::string> nonsense(const BackendState &s)
{
	if (s.blockSize == 0 || (s.blockSize & (s.blockSize - 1)) != 0)
		return "block size " + std::to_string(s.blockSize) + " is not a power of two";
	if (s.minBytes > s.maxBytes)
		return "minimum " + formatSize(s.minBytes) + " is above the maximum " + formatSize(s.maxBytes);
	return std::nullopt;
}

} // namespace

const char *callName(BackendCall::Op op)
{
	switch (op) {
	case BackendCall::Op::Plug:
		return "plug";
	case BackendCall::Op::Unplug:
		return "unplug";
	case BackendCall::Op::ReleaseAll:
		return "release_all";
	case BackendCall::Op::AckEvent:
		return "ack_event";
	case BackendCall::Op::ReadState:
		break;
	}
	return "get_state";
}

bool Controller::book(const Result<BackendState> &st, const char *when, std::optional<uint64_t> expected)
{
	if (!st) {
		logError(st.error().message + " (" + when + "); keeping the last known state, " +
		         formatSize(state_.plugged) + " plugged");
		return false;
	}
	if (auto why = nonsense(*st)) {
		logError(backendName() + " reported a state that makes no sense (" + *why + ", " + when +
		         "); keeping the last known state, " + formatSize(state_.plugged) + " plugged");
		return false;
	}
	// What vmrd saw last and what the backend says now differ: something
	// else resized the device, or the backend lost track.  The backend's
	// word is booked.
	const uint64_t seen = expected.value_or(state_.plugged);
	if (st->plugged != seen && state_.connected && st->connected)
		logWarning(backendName() + " has " + formatSize(st->plugged) + " plugged where vmrd " +
		           (expected ? "expected " : "last saw ") + formatSize(seen) +
		           ": the device changed outside vmrd; booking the backend's state");
	state_ = *st;
	// The host's ask is acted on once the call under way is done
	// (afterCall), like a check an operator asked for.
	if (st->reclaim && !hostReclaim_)
		logInfo(backendName() + ": the host asks for memory back; a shrink check follows");
	hostReclaim_ = hostReclaim_ || st->reclaim;
	state_.reclaim = false; // an ask, not a state: taken once
	return true;
}

void Controller::onCallDone(TimePoint t, const CallDone &done, const Sample &s)
{
	if (!inFlight_)
		return;
	inFlight_.reset();
	callDeadline_.reset();
	lastSample_ = s;
	TraceRecord r;
	r.type = done.call.op == BackendCall::Op::ReadState || done.call.op == BackendCall::Op::AckEvent
	                 ? TraceRecord::Type::State
	                 : TraceRecord::Type::Result;
	r.asked = Decision{actionOf(done.call.op), done.call.bytes, callName(done.call.op)};
	r.result = done.result;
	r.call = done.took;
	r.sample = s;
	if (done.state)
		r.state = *done.state;
	else
		r.stateError = done.state.error().message;
	record(r, t);

	const bool wasConnected = state_.connected;
	switch (purpose_) {
	case Purpose::PreRead:
		preReadDone(t, done);
		break;
	case Purpose::Resize:
	case Purpose::Release:
		concludeResize(t, done.result, done.took, &done.state);
		break;
	case Purpose::Refresh:
	case Purpose::Event:
		stateRead(t, done);
		break;
	}
	connectionChanged(t, wasConnected);
	if (!inFlight_)
		afterCall(t);
}

void Controller::preReadDone(TimePoint t, const CallDone &done)
{
	// No resize is sent on a state vmrd cannot read: it could push the
	// device past the bounds.  The policy is told it was not done.
	if (!book(done.state, "read before a resize") || !state_.connected) {
		const bool away = done.state && !done.state->connected;
		const std::string why =
		        away ? backendName() + " is not connected" : "the backend's state cannot be read";
		concludeResize(t, {away ? -ENOTCONN : -EIO, 0, "not called: " + why}, Micros(0), nullptr);
		return;
	}
	if (stopping_) {
		concludeResize(t, {-ESHUTDOWN, 0, "not called: vmrd is stopping"}, Micros(0), nullptr);
		return;
	}
	const uint64_t room = bounds(settings_.limits, state_).room(planned_.action, state_.plugged);
	sent_ = std::min(planned_.bytes, room);
	before_ = state_.plugged;
	if (sent_ == 0) {
		concludeResize(t,
		               {0, 0,
		                "not called: the backend already has " + formatSize(state_.plugged) +
		                        " plugged, at the limit"},
		               Micros(0), nullptr);
		return;
	}
	if (sent_ < planned_.bytes)
		logInfo(std::string(actionName(planned_.action)) + " of " + formatSize(planned_.bytes) +
		        " trimmed to " + formatSize(sent_) + " to stay within the bounds: " + backendName() + " has " +
		        formatSize(state_.plugged) + " plugged");
	start(t, {planned_.action == Decision::Action::Plug ? BackendCall::Op::Plug : BackendCall::Op::Unplug, sent_},
	      Purpose::Resize);
}

void Controller::concludeResize(TimePoint t, const CallResult &res, Micros took, const Result<BackendState> *after)
{
	const std::string what = std::string(actionName(planned_.action)) + " of " + formatSize(sent_);
	setOutcome((res.code != 0 ? "failed after " + formatSize(res.done) + ": " + res.message
	            : after       ? formatSize(res.done) + " done"
	                          : res.message) +
	           (after ? " in " + formatDuration(took) : ""));
	if (!after) {
		logWarning(describeDecision(planned_) + ": " + res.message);
	} else {
		metrics_.call(planned_, res, took);
		if (res.code != 0)
			logWarning(what + " failed after " + formatSize(res.done) + ": " + res.message);
		else if (res.done > sent_)
			logWarning(backendName() + " did more than asked: " + formatSize(res.done) + " for a " + what +
			           "; booking the state it reports");
		else if (res.done < sent_)
			logInfo(what + " partly done: " + formatSize(res.done) + " (a partial result is normal)");
		// Every result is booked: from the backend's state if it can be
		// read, else from what the call itself reported.
		const uint64_t expected = planned_.action == Decision::Action::Plug
		                                  ? before_ + res.done
		                                  : before_ - std::min(before_, res.done);
		if (book(*after, "read after the call", expected))
			logInfo(what + " finished in " + formatDuration(took) + ": " + describeState(state_));
		else {
			state_.plugged = expected;
			logWarning("booking the call's own result instead: " + formatSize(state_.plugged) + " plugged");
		}
	}
	if (purpose_ != Purpose::Release)
		policy_->onResult(t, planned_, res, took, lastSample_, state_);
}

void Controller::stateRead(TimePoint t, const CallDone &done)
{
	if (purpose_ == Purpose::Event && done.result.code != 0)
		logWarning(backendName() + ": ack_event failed: " + done.result.message);
	(void)book(done.state, purpose_ == Purpose::Event ? "after the backend's event" : "re-read");
	(void)t;
}

// A backend that lost its host (the broker is away) is asked again with a
// doubling pause; decisions wait until it is back.
void Controller::connectionChanged(TimePoint t, bool wasConnected)
{
	if (!state_.connected) {
		if (wasConnected || refreshBackoff_.count() == 0)
			logWarning(backendName() + " is not connected; asking again with a growing pause");
		refreshBackoff_ = std::min<Micros>(std::max<Micros>(refreshBackoff_ * 2, std::chrono::seconds(1)),
		                                   std::chrono::seconds(30));
		refreshAt_ = t + refreshBackoff_;
	} else if (!wasConnected) {
		logInfo(backendName() + " is connected: " + describeState(state_));
		refreshBackoff_ = Micros(0);
		refreshAt_.reset();
	}
}

} // namespace vmrd
