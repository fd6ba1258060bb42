// SPDX-License-Identifier: MIT
// Trace files (the event log): the controller's inputs and decisions as JSON lines,
// written by the daemon, read by vmrd-replay and vmrd-plot.
#pragma once

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "model.h"
#include "result.h"

namespace vmrd {

// One record.  `t` counts from the start of the recording.  Decision records
// are the controller's output; the others are its inputs, so that
// vmrd-replay can feed them to a Controller again.
struct TraceRecord {
	enum class Type {
		Start,       // the controller began, with the state and statistics it began with
		Pressure,    // a PSI trigger fired
		Stall,       // a source's stall total, read to measure a burst's severity
		Sample,      // a timer tick, with the statistics it read
		Check,       // an operator asked for a shrink check (SIGUSR1, vmrdctl reclaim)
		Allocations, // the early signal: the CPUs allocated a set volume of pages
		Command,     // vmrdctl grow or shrink
		Event,       // the backend's event fd: its size changed outside vmrd
		Decision,    // the controller decided
		Result,      // a plug, unplug or release_all returned, with the state read after it
		State,       // a state read (before a resize, a re-read, after an event) returned
		Reload,      // the config was reloaded: what follows used another one
		Stop,        // SIGTERM: no new decisions from here on
	};
	Type type = Type::Sample;
	Micros t{0};
	std::string trigger;             // Pressure: "some 100ms/1s"
	std::string source;              // Pressure, Stall: the pressure file
	Micros stall{0};                 // Pressure: the trigger's threshold
	Micros window{0};                // Pressure: and its window
	std::optional<uint64_t> totalUs; // Pressure, Stall: the source's stall total
	double severity = 0;             // Pressure: the share of time stalled it was judged by
	bool dryRun = false;             // Start: decisions are logged, never done
	Decision asked;                  // Decision; Command; Result and State: the call
	CallResult result;               // Result
	Micros call{0};                  // Result: how long the backend call took
	std::string stateError;          // Result, State: get_state failed, and why
	Sample sample;                   // every record: what the daemon read last
	BackendState state;              // Result, State: what the backend reported; else what vmrd had booked
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

// Reads a whole trace; an error names the file and line.
Result<std::vector<TraceRecord>> readTrace(const std::string &path);
// One line of a trace; nothing for the header.
Result<std::optional<TraceRecord>> parseTraceLine(const std::string &line);

} // namespace vmrd
