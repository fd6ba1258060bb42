// SPDX-License-Identifier: MIT
// Trace files: the policy's inputs as JSON lines, written by the daemon and read by vmrd-replay.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "policy.h"
#include "result.h"

namespace vmrd {

// One input to the policy.  `t` counts from the start of the recording.
struct TraceRecord {
	// Check: an operator asked for a shrink check (SIGUSR1).
	enum class Type { Pressure, Sample, Check, Result };
	Type type = Type::Sample;
	Micros t{0};
	std::string trigger; // Pressure: "some 100ms/1s"
	double severity = 0; // Pressure
	Decision asked;      // Result
	CallResult result;   // Result
	Micros call{0};      // Result: how long the backend call took
	Sample sample;       // every record: what the daemon read just before
	BackendState state;  // every record: the backend's reported state
};

class TraceWriter
{
public:
	TraceWriter() = default;
	TraceWriter(const TraceWriter &) = delete;
	TraceWriter &operator=(const TraceWriter &) = delete;
	~TraceWriter();

	// Opens (appends to) the file and writes a header line with the preset
	// and `start`, the CLOCK_MONOTONIC time that record times count from.
	Status open(const std::string &path, const std::string &preset, Micros start);
	bool enabled() const { return file_ != nullptr; }
	void write(const TraceRecord &r);

private:
	std::FILE *file_ = nullptr;
};

// Reads a whole trace; an error names the file and line.
Result<std::vector<TraceRecord>> readTrace(const std::string &path);
// One line of a trace; nothing for the header line.
Result<std::optional<TraceRecord>> parseTraceLine(const std::string &line);

} // namespace vmrd
