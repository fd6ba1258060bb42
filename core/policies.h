// SPDX-License-Identifier: MIT
// The presets' policies, each in its own file; Policy::create picks one.
#pragma once

#include <memory>

#include "policy.h"

namespace vmrd {

std::unique_ptr<Policy> makeServerPolicy(const PolicyParams &params, const Limits &limits);
std::unique_ptr<Policy> makeRfcReferencePolicy(const PolicyParams &params, const Limits &limits);

} // namespace vmrd
