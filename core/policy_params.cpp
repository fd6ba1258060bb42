// SPDX-License-Identifier: MIT
// The presets: named sets of policy defaults.
#include "policy_params.h"

namespace vmrd {

std::vector<std::string> presetNames()
{
	return {"server"};
}

std::optional<PolicyParams> presetDefaults(const std::string &name)
{
	// `server`: grow fast (doubling steps), shrink slowly and only above a
	// headroom.  The defaults live in the struct's initialisers.
	if (name == "server")
		return PolicyParams{};
	return std::nullopt;
}

} // namespace vmrd
