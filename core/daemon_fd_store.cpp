// SPDX-License-Identifier: MIT
// The daemon's part of the file descriptor store: what the backend holds in fds outlives vmrd.
#include <sys/resource.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"

namespace vmrd {

void Daemon::setUpFdStore()
{
	fdStore_ = std::make_unique<FdStore>(backend_->name());
	std::vector<HeldFd> kept = fdStore_->takeKept();
	if (!backend_->holdsFds()) {
		for (const auto &k : kept) {
			logWarning("fd store: backend '" + backend_->name() + "' cannot adopt '" + k.name +
			           "' (no adopt_fds): closed, and what it held goes back");
			::close(k.fd);
		}
		if (!kept.empty())
			syncFdStore({});
		return;
	}
	backend_->onForgetFd([this](const std::string &name) { fdStore_->forget(name); });
	// One fd per block: more than the 1024 a process gets by default.
	rlimit files{};
	if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
		files.rlim_cur = files.rlim_max;
		(void)::setrlimit(RLIMIT_NOFILE, &files);
	}
	if (!kept.empty()) {
		if (auto adopted = backend_->adoptFds(kept); !adopted)
			logWarning(adopted.error().message);
		else
			logInfo("fd store: backend '" + backend_->name() + "' adopted " + std::to_string(kept.size()) +
			        " fd(s) that the previous vmrd kept");
	}
	if (!fdStore_->enabled())
		logWarning("backend '" + backend_->name() +
		           "' holds its memory in file descriptors, and no systemd keeps them ($NOTIFY_SOCKET is "
		           "unset): when vmrd stops, crashes or restarts, every block it grew goes back to the host "
		           "(run it as vmrd.service, whose FileDescriptorStoreMax= keeps them)");
	syncFdStore(std::nullopt);
}

void Daemon::syncFdStore(std::optional<std::vector<HeldFd>> held)
{
	if (!fdStore_ || !fdStore_->enabled() || (!held && !backend_->holdsFds()))
		return;
	if (!held) {
		auto listed = backend_->exportFds();
		if (!listed) {
			logWarning(listed.error().message + "; the fd store keeps what it had");
			return;
		}
		held = std::move(*listed);
	}
	fdStore_->sync(*held);
}

} // namespace vmrd
