// SPDX-License-Identifier: MIT
// Self-protection and the onlining check at start.
#include "hardening.h"

#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <link.h>
#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hotplug.h"
#include "log.h"

namespace vmrd {

namespace {

// Something in the executable's own image, to find that image by.
const int inExecutable = 0;

// Locks and faults in every loadable segment of the ELF object (the
// executable or a shared object) that holds `address`.  Its size in bytes,
// or -errno.
int64_t lockImageOf(const void *address)
{
	struct Search {
		uintptr_t address;
		int64_t result = -ENOENT;
	} search{reinterpret_cast<uintptr_t>(address)};
	::dl_iterate_phdr(
	        [](dl_phdr_info *info, size_t, void *data) {
		        auto &s = *static_cast<Search *>(data);
		        const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
		        auto range = [&](const ElfW(Phdr) & ph) {
			        const uintptr_t begin = info->dlpi_addr + ph.p_vaddr;
			        return std::pair(begin & ~(page - 1), (begin + ph.p_memsz + page - 1) & ~(page - 1));
		        };
		        bool holds = false;
		        for (int i = 0; i < info->dlpi_phnum; i++) {
			        const auto [begin, end] = range(info->dlpi_phdr[i]);
			        holds |= info->dlpi_phdr[i].p_type == PT_LOAD && s.address >= begin && s.address < end;
		        }
		        if (!holds)
			        return 0;
		        s.result = 0;
		        for (int i = 0; i < info->dlpi_phnum; i++) {
			        if (info->dlpi_phdr[i].p_type != PT_LOAD)
				        continue;
			        const auto [begin, end] = range(info->dlpi_phdr[i]);
			        // NOLINTNEXTLINE(performance-no-int-to-ptr): ld.so gives integers
			        if (::mlock(reinterpret_cast<const void *>(begin), end - begin) != 0) {
				        s.result = -errno;
				        break;
			        }
			        s.result += static_cast<int64_t>(end - begin);
		        }
		        return 1;
	        },
	        &search);
	return search.result;
}

// Faults in and locks all of vmrd's image and the plugin's (see protectSelf).
void lockCode(const void *plugin)
{
	for (const auto &[what, address] :
	     {std::pair<const char *, const void *>{"vmrd", &inExecutable}, {"the backend plugin", plugin}}) {
		const int64_t r = lockImageOf(address);
		if (r < 0)
			logWarning(std::string("cannot lock all of ") + what + ": " +
			           std::strerror(static_cast<int>(-r)) +
			           "; its pages are locked as they are first used instead (daemon.mlock)");
		else
			logDebug(std::string("locked all of ") + what + ": " + formatSize(static_cast<uint64_t>(r)));
	}
}

// Whether the process has the capability in its effective set.
bool hasCapability(unsigned capability)
{
	__user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
	__user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
	return ::syscall(SYS_capget, &header, data) == 0 && (data[capability / 32].effective & (1u << capability % 32));
}

} // namespace

void protectSelf(const Config &config, const void *plugin)
{
	// Growth must work when the guest is nearly out of memory: keep the
	// daemon resident and out of the OOM killer's way.
	//
	// MCL_CURRENT | MCL_FUTURE alone would fault in and lock every page of
	// every mapping, now and later: all of libc, the worker's whole stack,
	// each malloc arena as it is made writable.  With MCL_ONFAULT the
	// kernel locks the pages present now and every page later faulted in,
	// and faults in nothing itself; a page once used is never paged out,
	// but a page first used under pressure must be faulted in then, from
	// disk for code.  So the code that runs on the hot path, vmrd's own
	// (static, with the C++ runtime, meson.build) and the backend plugin's,
	// is locked and faulted in whole with mlock(); of libc, the hot path
	// uses what start-up already did (the binding is immediate: -z now).
	// Startup-only code stays locked with the rest of the image: it lies
	// among the hot code, and measured it is not worth splitting out.
	//
	// Without CAP_IPC_LOCK the kernel lets a process lock up to
	// RLIMIT_MEMLOCK (8 MiB by default), counting the whole size of locked
	// mappings, and vmrd is small enough to pass; but with MCL_FUTURE every
	// later mapping past that limit would fail (the worker's malloc arena
	// reserves 64 MiB), so there only what is mapped now is locked.
	if (config.daemon.mlock) {
		rlimit limit{};
		const bool capped = !hasCapability(CAP_IPC_LOCK) && ::getrlimit(RLIMIT_MEMLOCK, &limit) == 0 &&
		                    limit.rlim_cur != RLIM_INFINITY;
		if (::mlockall(MCL_CURRENT | MCL_ONFAULT | (capped ? 0 : MCL_FUTURE)) != 0) {
			logWarning(std::string("mlockall failed: ") + std::strerror(errno) +
			           (capped ? " (without CAP_IPC_LOCK, up to RLIMIT_MEMLOCK " +
			                             formatSize(limit.rlim_cur) + " may be locked)"
			                   : "") +
			           "; continuing, but the daemon may be paged out under pressure (daemon.mlock)");
		} else {
			lockCode(plugin);
			if (capped)
				logWarning(
				        "without CAP_IPC_LOCK, locked memory is limited to RLIMIT_MEMLOCK (" +
				        formatSize(limit.rlim_cur) +
				        "): memory mapped from now on (heap growth, thread stacks) is not locked and "
				        "may be paged out under pressure (daemon.mlock)");
		}
	}
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
