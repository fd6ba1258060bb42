// SPDX-License-Identifier: MIT
// Reads the kernel's memory statistics into a Sample, from files opened once at start.
#pragma once

#include <optional>
#include <string>

#include "model.h"
#include "proc_file.h"

namespace vmrd {

class Sampler
{
public:
	// Opens <procfs>/meminfo, zoneinfo, vmstat and pressure/memory.  Only
	// meminfo is required; the others degrade to zeros with one warning.
	static Result<Sampler> open(const std::string &procfs);

	// A fresh sample, or nothing (logged) if meminfo cannot be read.
	std::optional<Sample> read();

private:
	ProcFile meminfo_;
	std::optional<ProcFile> zoneinfo_, vmstat_, psi_;
	uint64_t pageSize_ = 4096;
};

// The cumulative stall time (us) of a PSI file, `full` or `some` line.
std::optional<uint64_t> readPsiTotal(ProcFile &file, bool full);

} // namespace vmrd
