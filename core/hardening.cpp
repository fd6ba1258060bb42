// SPDX-License-Identifier: MIT
// Self-protection and the onlining check at start.
#include "hardening.h"

#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hotplug.h"
#include "log.h"

namespace vmrd {

void protectSelf(const Config &config)
{
	// Growth must work when the guest is nearly out of memory: keep the
	// daemon resident and out of the OOM killer's way.
	// MCL_ONFAULT: lock each page once it is used rather than all of every
	// mapped library (most of libstdc++ and friends is never run), so the
	// daemon stays resident at the size it really uses.
	if (config.daemon.mlock && ::mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0)
		logWarning(std::string("mlockall failed: ") + std::strerror(errno) +
		           "; continuing, but the daemon may be paged out under pressure (daemon.mlock)");
	const std::string adj = config.paths.procfs + "/self/oom_score_adj";
	int fd = ::open(adj.c_str(), O_WRONLY | O_CLOEXEC);
	const std::string value = std::to_string(config.daemon.oomScoreAdj);
	if (fd < 0 || ::write(fd, value.c_str(), value.size()) < 0)
		logWarning(adj + ": cannot set " + value + ": " + std::strerror(errno) +
		           "; continuing (daemon.oom_score_adj)");
	if (fd >= 0)
		::close(fd);
}

Status prepareOnlining(const Config &config)
{
	OnliningVerdict v = checkOnlining(config.paths.sysfs);
	if (v.ok) {
		logInfo(v.message);
		return Ok{};
	}
	if (!config.daemon.onlineMovable)
		return Error{-EINVAL, v.message};
	auto n = makeOnliningMovable(config.paths.sysfs);
	if (!n)
		return n.error();
	logInfo("daemon.online_movable: new memory blocks now go to ZONE_MOVABLE; onlined " + std::to_string(*n) +
	        " offline block(s)");
	return Ok{};
}

} // namespace vmrd
