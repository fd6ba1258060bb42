// SPDX-License-Identifier: MIT
// Replays a trace through the policy with a simulated backend.
#include "replay.h"

#include <algorithm>
#include <cstdio>

namespace vmrd {

namespace {

std::string stamp(Micros t)
{
	char buf[32];
	std::snprintf(buf, sizeof(buf), "%9.3fs ", static_cast<double>(t.count()) / 1e6);
	return buf;
}

} // namespace

std::vector<std::string> replay(const PolicyParams &params, const Limits &limits,
                                const std::vector<TraceRecord> &records, Micros tail, const SimulatedBackend &backend)
{
	std::vector<std::string> out;
	if (records.empty())
		return out;
	auto policy = Policy::create(params, limits);
	BackendState sim = records.front().state;
	const TimePoint base{std::chrono::hours(1)};
	Sample recorded = records.front().sample;
	uint64_t recordedPlugged = records.front().state.plugged;

	auto adjusted = [&] {
		Sample s = recorded;
		auto shift = [&](uint64_t &v) {
			if (sim.plugged >= recordedPlugged)
				v += sim.plugged - recordedPlugged;
			else
				v -= std::min(v, recordedPlugged - sim.plugged);
		};
		shift(s.mem.memTotal);
		shift(s.mem.memFree);
		shift(s.mem.memAvailable);
		shift(s.movable.free);
		return s;
	};
	auto execute = [&](Micros t, const Decision &d) {
		out.push_back(stamp(t) + describeDecision(d));
		if (d.action == Decision::Action::None)
			return;
		CallResult r{0, d.bytes, ""};
		if (backend) {
			r = backend(d, sim);
		} else if (d.action == Decision::Action::Plug) {
			r.done = std::min(d.bytes, sim.maxBytes - std::min(sim.maxBytes, sim.plugged));
			sim.plugged += r.done;
		} else {
			r.done = std::min(d.bytes, sim.plugged - std::min(sim.plugged, sim.minBytes));
			sim.plugged -= r.done;
		}
		policy->onResult(base + t, d, r, adjusted(), sim);
	};
	// Runs the timers due before `until` (or at it, with `inclusive`).
	auto runTimers = [&](Micros until, bool inclusive) {
		for (int guard = 0; guard < 100000; guard++) {
			auto next = policy->nextCheck();
			if (!next || *next > base + until || (!inclusive && *next == base + until))
				return;
			Micros t = std::chrono::duration_cast<Micros>(*next - base);
			execute(t, policy->onTimer(*next, adjusted(), sim));
		}
	};

	for (const auto &r : records) {
		runTimers(r.t, false);
		if (r.type == TraceRecord::Type::Result)
			continue; // the simulated backend makes its own results
		recorded = r.sample;
		recordedPlugged = r.state.plugged;
		// The daemon records a sample when a timer fires: that timer
		// sees this sample.
		if (r.type == TraceRecord::Type::Sample)
			runTimers(r.t, true);
		if (r.type == TraceRecord::Type::Check)
			execute(r.t, policy->onTimer(base + r.t, adjusted(), sim));
		if (r.type == TraceRecord::Type::Pressure) {
			Decision d = policy->onPressure(base + r.t, adjusted(), sim, r.severity);
			d.reason = "PSI " + r.trigger + ": " + d.reason;
			execute(r.t, d);
		}
	}
	runTimers(records.back().t + tail, true);
	return out;
}

} // namespace vmrd
