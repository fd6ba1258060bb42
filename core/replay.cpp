// SPDX-License-Identifier: MIT
// Replays an event log through a Controller with the recorded or a simulated backend.
#include "replay.h"

#include <algorithm>
#include <cstdio>
#include <memory>

#include "controller.h"

namespace vmrd {

namespace {

std::string line(Micros t, const Decision &d)
{
	char buf[32];
	std::snprintf(buf, sizeof(buf), "%9.3fs ", static_cast<double>(t.count()) / 1e6);
	return buf + describeDecision(d);
}

// Where no trace record says otherwise: the controller's first view.
const TraceRecord *startRecord(const std::vector<TraceRecord> &records)
{
	for (const auto &r : records)
		if (r.type == TraceRecord::Type::Start)
			return &r;
	return &records.front();
}

class Replayer
{
public:
	Replayer(const PolicyParams &params, const Limits &limits, const std::vector<TraceRecord> &records,
	         const ReplayOptions &options)
	    : records_(records), options_(options)
	{
		const TraceRecord &first = *startRecord(records);
		start_ = &first;
		sim_ = first.state;
		sim_.reclaim = false; // the host's ask was in that one state only
		recorded_ = first.sample;
		recordedPlugged_ = first.state.plugged;
		Controller::Settings s{params, limits, std::chrono::seconds(30), first.dryRun, "replay"};
		ctl_ = std::make_unique<Controller>(s, first.state, first.sample, base_, [this](const TraceRecord &r) {
			if (r.type == TraceRecord::Type::Decision)
				out_.decisions.push_back(line(r.t, r.asked));
		});
	}

	ReplayResult run()
	{
		for (const auto &r : records_) {
			if (!out_.divergence.empty() || out_.endedAt || stopped_)
				break;
			if (options_.simulate) {
				// A tick's record holds what the timer due then saw.
				const bool tick = r.type == TraceRecord::Type::Sample;
				if (tick)
					noteRecorded(r);
				runTimers(r.t, tick);
				simulateCalls(r.t);
			}
			feed(r);
			if (auto c = ctl_->nextCall())
				inFlight_ = c;
			if (options_.simulate)
				simulateCalls(r.t);
		}
		if (options_.simulate && !records_.empty())
			runTimers(records_.back().t + options_.tail, true);
		return std::move(out_);
	}

private:
	TimePoint at(Micros t) const { return base_ + t; }

	void feed(const TraceRecord &r)
	{
		using T = TraceRecord::Type;
		const TimePoint t = at(r.t);
		noteRecorded(r);
		switch (r.type) {
		case T::Pressure:
			ctl_->onPressure(t, {r.source, r.trigger, r.stall, r.window, r.totalUs}, sample());
			break;
		case T::Stall:
			ctl_->onStall(t, r.source, r.totalUs);
			break;
		case T::Sample:
			if (!options_.simulate)
				ctl_->onTick(t, [&] { return std::optional<Sample>(r.sample); });
			break;
		case T::Check:
			ctl_->onCheck(t, sample());
			break;
		case T::Allocations:
			ctl_->onAllocations(t, sample());
			break;
		case T::Command:
			(void)ctl_->onCommand(t, r.asked.action, r.asked.bytes);
			break;
		case T::Event:
			ctl_->onBackendEvent(t);
			break;
		case T::Result:
		case T::State:
			if (!options_.simulate) {
				finishRecordedCall(r);
			} else if (r.state.reclaim) {
				// The host asked for memory back: so it does of the simulation.
				sim_.reclaim = true;
				ctl_->onBackendEvent(t);
			}
			break;
		case T::Reload:
			if (!options_.simulate)
				end(r.t, "the daemon reloaded its config");
			break;
		case T::Start:
			if (&r != start_ && !options_.simulate)
				end(r.t, "the daemon started again (this log holds more than one run)");
			break;
		case T::Stop:
			// What the daemon does on its way out is not a decision.
			stopped_ = true;
			break;
		case T::Decision:
			break;
		}
	}

	void end(Micros t, const char *why)
	{
		out_.endedAt = t;
		out_.endReason = why;
	}

	void finishRecordedCall(const TraceRecord &r)
	{
		char when[32];
		std::snprintf(when, sizeof(when), "%.3fs", static_cast<double>(r.t.count()) / 1e6);
		if (!inFlight_) {
			out_.divergence = std::string("at ") + when + " the trace has the result of a " +
			                  r.asked.reason + " call, but the controller started none";
			return;
		}
		const BackendCall call = *inFlight_;
		inFlight_.reset();
		CallDone done{call, r.result, Error{}, r.call};
		if (r.stateError.empty())
			done.state = r.state;
		else
			done.state = Error{-EIO, r.stateError};
		if (r.asked.reason != callName(call.op) || r.asked.bytes != call.bytes) {
			out_.divergence = std::string("at ") + when + " the trace has a " + r.asked.reason + " of " +
			                  formatSize(r.asked.bytes) + " where the controller asked for a " +
			                  callName(call.op) + " of " + formatSize(call.bytes);
			return;
		}
		ctl_->onCallDone(at(r.t), done, r.sample);
	}

	void noteRecorded(const TraceRecord &r)
	{
		if (r.type == TraceRecord::Type::Result || r.type == TraceRecord::Type::State ||
		    r.type == TraceRecord::Type::Decision)
			return;
		recorded_ = r.sample;
		recordedPlugged_ = r.state.plugged;
	}

	// The recorded statistics, shifted by what the simulation plugged differently.
	Sample sample() const
	{
		if (!options_.simulate)
			return recorded_;
		Sample s = recorded_;
		auto shift = [&](uint64_t &v) {
			if (sim_.plugged >= recordedPlugged_)
				v += sim_.plugged - recordedPlugged_;
			else
				v -= std::min(v, recordedPlugged_ - sim_.plugged);
		};
		shift(s.mem.memTotal);
		shift(s.mem.memFree);
		shift(s.mem.memAvailable);
		shift(s.movable.free);
		return s;
	}

	// Runs the controller's timers due before `until`, or at it too
	// (stall reads wait for the recorded ones: they come from the kernel).
	void runTimers(Micros until, bool inclusive)
	{
		for (int guard = 0; guard < 100000; guard++) {
			auto next = ctl_->nextTick();
			if (!next || *next > at(until) || (!inclusive && *next == at(until)))
				return;
			ctl_->onTick(*next, [&] { return std::optional<Sample>(sample()); });
			simulateCalls(std::chrono::duration_cast<Micros>(*next - base_));
		}
	}

	void simulateCalls(Micros t)
	{
		if (auto c = ctl_->nextCall())
			inFlight_ = c;
		while (inFlight_) {
			const BackendCall call = *inFlight_;
			inFlight_.reset();
			CallDone done{call, {}, Error{}, Micros(0)};
			const bool plug = call.op == BackendCall::Op::Plug;
			if (plug || call.op == BackendCall::Op::Unplug || call.op == BackendCall::Op::ReleaseAll) {
				const uint64_t bytes =
				        call.op == BackendCall::Op::ReleaseAll ? sim_.plugged : call.bytes;
				Decision d{plug ? Decision::Action::Plug : Decision::Action::Unplug, bytes, ""};
				if (options_.backend) {
					done.result = options_.backend(d, sim_);
				} else if (plug) {
					done.result.done =
					        std::min(bytes, sim_.maxBytes - std::min(sim_.maxBytes, sim_.plugged));
					sim_.plugged += done.result.done;
				} else {
					done.result.done =
					        std::min(bytes, sim_.plugged - std::min(sim_.plugged, sim_.minBytes));
					sim_.plugged -= done.result.done;
				}
			}
			done.state = sim_;
			sim_.reclaim = false; // told in one state
			ctl_->onCallDone(at(t), done, sample());
			inFlight_ = ctl_->nextCall();
		}
	}

	const std::vector<TraceRecord> &records_;
	const ReplayOptions &options_;
	const TraceRecord *start_ = nullptr;
	bool stopped_ = false;
	const TimePoint base_{std::chrono::hours(1)};
	std::unique_ptr<Controller> ctl_;
	std::optional<BackendCall> inFlight_;
	BackendState sim_;
	Sample recorded_;
	uint64_t recordedPlugged_ = 0;
	ReplayResult out_;
};

} // namespace

ReplayResult replay(const PolicyParams &params, const Limits &limits, const std::vector<TraceRecord> &records,
                    const ReplayOptions &options)
{
	if (records.empty())
		return {};
	return Replayer(params, limits, records, options).run();
}

std::vector<std::string> recordedDecisions(const std::vector<TraceRecord> &records, std::optional<Micros> until)
{
	std::vector<std::string> out;
	for (const auto &r : records)
		if (r.type == TraceRecord::Type::Decision && (!until || r.t < *until))
			out.push_back(line(r.t, r.asked));
	return out;
}

} // namespace vmrd
