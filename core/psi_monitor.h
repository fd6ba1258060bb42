// SPDX-License-Identifier: MIT
// PSI triggers: arms what the running kernel accepts and owns their fds.
#pragma once

#include <string>
#include <vector>

#include "config.h"
#include "result.h"

namespace vmrd {

// The text written to a PSI file: "some 100000 1000000" (microseconds).
std::string triggerText(const TriggerConfig &t);
std::string describeTrigger(const TriggerConfig &t); // "some 100ms/1s"

// The triggers to try, in order, when the kernel refuses the configured one:
//  1. as configured;
//  2. a 500 ms window with the stall scaled in proportion: kernels before 6.4
//     refuse windows below 500 ms;
//  3. the next multiple of 2 s, stall scaled: from 6.4 a process without
//     CAP_SYS_RESOURCE may only use such windows.
// Each entry after the first says why it differs.
struct TriggerAttempt {
	TriggerConfig trigger;
	std::string why;
};
std::vector<TriggerAttempt> triggerFallbacks(const TriggerConfig &configured);

class PsiMonitor
{
public:
	struct Armed {
		int fd = -1;        // -1 while the source is gone
		std::string source; // the pressure file
		TriggerConfig configured;
		TriggerConfig trigger; // what the kernel accepted
	};

	PsiMonitor() = default;
	PsiMonitor(PsiMonitor &&o) noexcept : armed_(std::move(o.armed_)) { o.armed_.clear(); }
	PsiMonitor &operator=(PsiMonitor &&o) noexcept;
	PsiMonitor(const PsiMonitor &) = delete;
	PsiMonitor &operator=(const PsiMonitor &) = delete;
	~PsiMonitor();

	// Opens every source once and arms every trigger on it, falling back as
	// triggerFallbacks() says; logs what it armed and why.  Fails, naming
	// the file and the kernel parameter, where PSI is missing.
	static Result<PsiMonitor> arm(const std::vector<std::string> &sources,
	                              const std::vector<TriggerConfig> &triggers);

	const std::vector<Armed> &armed() const { return armed_; }
	// The source of trigger i went away (EPOLLERR): close its fd.
	void disarm(size_t i);
	// Try to arm trigger i again, after its source came back.
	Status rearm(size_t i);

private:
	std::vector<Armed> armed_;
};

} // namespace vmrd
