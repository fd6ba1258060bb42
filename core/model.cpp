// SPDX-License-Identifier: MIT
// How decisions and backend states read in the log, the event log and vmrdctl status.
#include "model.h"

namespace vmrd {

std::string describeState(const BackendState &s)
{
	return formatSize(s.plugged) + " plugged (range " + formatSize(s.minBytes) + " to " + formatSize(s.maxBytes) +
	       ", block " + formatSize(s.blockSize) + ")";
}

const char *actionName(Decision::Action a)
{
	switch (a) {
	case Decision::Action::Plug:
		return "plug";
	case Decision::Action::Unplug:
		return "unplug";
	case Decision::Action::None:
		break;
	}
	return "none";
}

std::string describeDecision(const Decision &d)
{
	if (d.action == Decision::Action::None)
		return "nothing: " + d.reason;
	return std::string(actionName(d.action)) + " " + formatSize(d.bytes) + ": " + d.reason;
}

} // namespace vmrd
