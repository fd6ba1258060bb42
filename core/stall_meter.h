// SPDX-License-Identifier: MIT
// How severe a memory stall is: after a PSI event, the source's stall total is read a few times across one
// window, as Android's lmkd does, instead of trusting the threshold the kernel reported crossing.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "model.h"

namespace vmrd {

// A PSI trigger that fired, with what the daemon read of its source then.
struct PsiEvent {
	std::string source;  // the pressure file
	std::string trigger; // "some 100ms/1s"
	Micros stall{0};
	Micros window{0};
	std::optional<uint64_t> totalUs; // the source's stall total, if it could be read
};

class StallMeter
{
public:
	// Starts measuring `e.source` unless it is measured already.
	void onEvent(TimePoint t, const PsiEvent &e);
	// The sources whose stall total should be read now.
	std::vector<std::string> readsDue(TimePoint t) const;
	std::optional<TimePoint> nextRead() const;
	// A reading of a source readsDue() named; false if none is measured.
	bool onRead(TimePoint t, const std::string &source, std::optional<uint64_t> totalUs);
	// The share of time stalled (0 to 1) to judge `e` by: what the last
	// two windows measured, else the trigger's own threshold.
	double severity(const PsiEvent &e, TimePoint t) const;

private:
	struct Burst {
		std::string source;
		TimePoint start;
		uint64_t startTotal = 0;
		TimePoint next;
		Micros step{0};
		int left = 0;
	};
	std::vector<Burst> bursts_;
	double last_ = 0;
	std::optional<TimePoint> lastAt_;
};

} // namespace vmrd
