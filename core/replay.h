// SPDX-License-Identifier: MIT
// Replays an event log through a Controller: exactly as the daemon ran, or what another config would decide.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "policy_params.h"
#include "trace.h"

namespace vmrd {

// Performs one resize of a simulated replay: gets the decision and the
// simulated state to update, returns what happened (tests put a backend
// over an emulated device here).
using SimulatedBackend = std::function<CallResult(const Decision &, BackendState &)>;

struct ReplayOptions {
	Micros tail{std::chrono::minutes(2)}; // simulate: keep running timers this long after the last record
	// false: feed every recorded input, backend results included, to a
	// Controller: the decisions the daemon made, if the config is the one
	// it ran with.  true: feed only the kernel's and the operator's inputs;
	// timers run as the controller asks and a simulated backend grants
	// every request at once (or `backend` does); samples are shifted by the
	// difference between the simulated and the recorded size, so that a
	// different decision still sees a consistent MemAvailable.
	bool simulate = false;
	SimulatedBackend backend;
};

struct ReplayResult {
	std::vector<std::string> decisions; // "  12.345s plug 256 MiB: reason"
	std::string divergence;             // not simulated: where the trace stopped matching, if it did
	// Not simulated: where the replay stopped short of the trace's end, and
	// why: the daemon reloaded its config (what follows used a config the
	// replay does not have) or started again (a log appended to by two runs).
	std::optional<Micros> endedAt;
	std::string endReason;
};

ReplayResult replay(const PolicyParams &params, const Limits &limits, const std::vector<TraceRecord> &records,
                    const ReplayOptions &options = {});

// The decisions a trace recorded, in replay()'s format; before `until` if given.
std::vector<std::string> recordedDecisions(const std::vector<TraceRecord> &records,
                                           std::optional<Micros> until = std::nullopt);

} // namespace vmrd
