// SPDX-License-Identifier: MIT
// What the daemon does to itself and to the guest at start: stay resident, stay out of the OOM killer's way,
// and make sure hot-added memory lands in ZONE_MOVABLE.
#pragma once

#include "config.h"
#include "result.h"

namespace vmrd {

// mlockall and oom_score_adj as daemon.mlock and daemon.oom_score_adj say;
// with daemon.mlock, the images of vmrd and of the backend plugin (the ELF
// object that holds `plugin`) are also faulted in whole.  A failure is
// logged and the daemon goes on.
void protectSelf(const Config &config, const void *plugin);

// For a backend that hot-plugs memory: checks the onlining policy and, with
// daemon.online_movable, fixes it; an error (EX_CONFIG) names the kernel
// parameter to set.
Status prepareOnlining(const Config &config);

} // namespace vmrd
