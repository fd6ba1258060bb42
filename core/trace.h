// SPDX-License-Identifier: MIT
// Trace files (the event log): the policy's inputs and the daemon's decisions as JSON lines,
// written by the daemon, read by vmrd-replay and vmrd-plot.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "policy.h"
#include "result.h"

namespace vmrd {

// One event.  `t` counts from the start of the recording.  Decision records
// are the daemon's output; the others are the policy's inputs.
struct TraceRecord {
	// Check: an operator asked for a shrink check (SIGUSR1, vmrdctl reclaim).
	enum class Type { Pressure, Sample, Check, Decision, Result };
	Type type = Type::Sample;
	Micros t{0};
	std::string trigger; // Pressure: "some 100ms/1s"
	double severity = 0; // Pressure
	Decision asked;      // Decision, Result
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
	// Before a line would take the file past `maxSize` bytes (0: no bound),
	// it is renamed to PATH.1, replacing the previous one, and a new file
	// with its own header is begun.
	Status open(const std::string &path, const std::string &preset, Micros start, uint64_t maxSize = 0);
	bool enabled() const { return file_ != nullptr; }
	void write(const TraceRecord &r) { writeLine(formatTraceRecord(r)); }
	// A line made by formatTraceRecord().
	void writeLine(const std::string &line);
	static std::string formatTraceRecord(const TraceRecord &r);

private:
	Status begin();

	std::FILE *file_ = nullptr;
	std::string path_, header_;
	uint64_t maxSize_ = 0;
	uint64_t size_ = 0;
};

// Reads a whole trace's policy inputs; an error names the file and line.
Result<std::vector<TraceRecord>> readTrace(const std::string &path);
// One line of a trace; nothing for the header and for decisions.
Result<std::optional<TraceRecord>> parseTraceLine(const std::string &line);

} // namespace vmrd
