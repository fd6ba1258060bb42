// SPDX-License-Identifier: MIT
// Replays a trace through the policy with a simulated backend.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "policy.h"
#include "trace.h"

namespace vmrd {

// Feeds the recorded events and samples through a fresh policy.  The
// simulated backend starts from the first record's state and grants every
// request in full at once; samples are shifted by the difference between
// the simulated and the recorded size, so that a different decision still
// sees a consistent MemAvailable.  Timers run as the policy asks, and for
// `tail` after the last record.  Returns one line per decision.
// `backend` (optional) performs each resize instead of the built-in
// simulation: it gets the decision and the simulated state to update, and
// returns what happened (tests put a backend over an emulated device here).
using SimulatedBackend = std::function<CallResult(const Decision &, BackendState &)>;
std::vector<std::string> replay(const PolicyParams &params, const Limits &limits,
                                const std::vector<TraceRecord> &records, Micros tail = std::chrono::minutes(2),
                                const SimulatedBackend &backend = nullptr);

} // namespace vmrd
