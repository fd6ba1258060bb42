// SPDX-License-Identifier: MIT
// Keeps the backend's held fds in systemd's file descriptor store.
#include "fd_store.h"

#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"

namespace vmrd {

bool validHeldFdName(const vmrd_held_fd &held)
{
	const std::string_view name(held.name, strnlen(held.name, sizeof(held.name)));
	return !name.empty() && name.size() < sizeof(held.name) &&
	       name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") ==
	               std::string_view::npos;
}

FdStore::FdStore(std::string backend) : prefix_(std::move(backend) + "."), enabled_(notifySocketSet())
{
	const auto passed = parseListenFds(std::getenv("LISTEN_PID"), std::getenv("LISTEN_FDS"),
	                                   std::getenv("LISTEN_FDNAMES"), ::getpid());
	for (const char *name : {"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"})
		::unsetenv(name);
	for (const auto &p : passed) {
		(void)::fcntl(p.fd, F_SETFD, FD_CLOEXEC);
		struct stat st {
		};
		if (p.name.compare(0, prefix_.size(), prefix_) != 0 || ::fstat(p.fd, &st) != 0) {
			logWarning("fd store: '" + p.name + "' was not kept for backend '" +
			           prefix_.substr(0, prefix_.size() - 1) + "': closed, and what it held goes back");
			::close(p.fd);
			(void)notifySystemdWithFds("FDSTOREREMOVE=1\nFDNAME=" + p.name, {});
			continue;
		}
		const std::string name = p.name.substr(prefix_.size());
		stored_.insert(name);
		kept_.push_back({p.fd, name});
	}
}

FdStore::~FdStore()
{
	for (const auto &k : kept_)
		::close(k.fd);
}

std::vector<HeldFd> FdStore::takeKept()
{
	return std::exchange(kept_, {});
}

void FdStore::sync(const std::vector<HeldFd> &held)
{
	std::lock_guard<std::mutex> lock(mutex_);
	// A name stands for one fd until the backend lets it go (forget(), or
	// no longer listing it): names are unique within a backend.
	std::set<std::string> now;
	for (const auto &h : held) {
		now.insert(h.name);
		if (stored_.count(h.name))
			continue;
		if (auto sent = notifySystemdWithFds("FDSTORE=1\nFDNAME=" + prefix_ + h.name, {h.fd}); !sent) {
			logWarning("fd store: cannot keep '" + prefix_ + h.name + "': " + sent.error().message +
			           "; a restart of vmrd gives back what it holds");
			now.erase(h.name);
		}
	}
	for (const auto &name : stored_)
		if (!now.count(name))
			withdraw(name);
	stored_ = std::move(now);
}

void FdStore::forget(const std::string &name)
{
	std::lock_guard<std::mutex> lock(mutex_);
	if (stored_.erase(name))
		withdraw(name);
}

void FdStore::withdraw(const std::string &name)
{
	if (auto sent = notifySystemdWithFds("FDSTOREREMOVE=1\nFDNAME=" + prefix_ + name, {}); !sent)
		logWarning("fd store: cannot withdraw '" + prefix_ + name + "': " + sent.error().message);
}

} // namespace vmrd
