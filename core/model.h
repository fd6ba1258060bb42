// SPDX-License-Identifier: MIT
// The values that flow between the parts of the core: samples, decisions, backend state and call results.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "call_result.h"
#include "mem_stats.h"
#include "units.h"

namespace vmrd {

// What the daemon measured just before a decision.
struct Sample {
	MemInfo mem;
	ZoneStats movable;           // ZONE_MOVABLE, summed over nodes
	uint64_t pgallocMovable = 0; // /proc/vmstat
	double someAvg10 = 0;        // memory PSI of the system, percent
	double someAvg60 = 0;
	double fullAvg10 = 0;
	uint64_t someTotalUs = 0; // cumulative stall time
	uint64_t fullTotalUs = 0;
};

struct Decision {
	enum class Action { None, Plug, Unplug };
	Action action = Action::None;
	uint64_t bytes = 0;
	std::string reason;
};

const char *actionName(Decision::Action a);
// "plug 128 MiB: reason" or "nothing: reason": the same words in the log and in replays.
std::string describeDecision(const Decision &d);

struct BackendState {
	bool connected = false;
	bool hotplug = false; // memory arrives as hot-plugged memory blocks
	bool reclaim = false; // the host asks for memory back (VMRD_BACKEND_RECLAIM)
	uint64_t blockSize = 0;
	uint64_t minBytes = 0;
	uint64_t maxBytes = 0;
	uint64_t plugged = 0;
};

// "1 GiB plugged (range 0 B to 8 GiB, block 2 MiB)"
std::string describeState(const BackendState &s);

} // namespace vmrd
