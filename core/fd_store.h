// SPDX-License-Identifier: MIT
// Keeps the backend's held fds in systemd's file descriptor store, so that what they hold outlives vmrd.
#pragma once

#include <set>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <vmrd/plugin.h>

namespace vmrd {

// One fd a backend listed in export_fds(), with its name within the backend.
struct HeldFd {
	int fd = -1;
	std::string name;
};

// The name of a struct vmrd_held_fd, as plugin.h allows it: 1 to 63
// characters of [A-Za-z0-9_.-], NUL-terminated within the array.
bool validHeldFdName(const vmrd_held_fd &held);

// A backend whose memory lives as long as some of its fds (Gunyah hints)
// lists them; the store sends each one to systemd (FDSTORE=1, named
// "<backend>.<name>") and withdraws those the backend let go.  systemd
// hands them to the next vmrd at start (LISTEN_FDS), which gives them back
// to the backend (adopt_fds).
class FdStore
{
public:
	// Takes the fds systemd passed at start and unsets $LISTEN_*.  Those
	// kept for another backend than `backend` are closed, with a warning:
	// what they held goes back.
	explicit FdStore(std::string backend);
	~FdStore();
	FdStore(const FdStore &) = delete;
	FdStore &operator=(const FdStore &) = delete;

	// Whether there is a systemd to keep them ($NOTIFY_SOCKET).
	bool enabled() const { return enabled_; }
	// The fds kept for this backend by the previous vmrd; the caller owns
	// them from now on.  Once.
	std::vector<HeldFd> takeKept();
	// Sends what is new in `held` to the store and withdraws what is gone.
	void sync(const std::vector<HeldFd> &held);
	// Withdraws `name` before the backend closes it; any thread.
	void forget(const std::string &name);

private:
	void withdraw(const std::string &name);

	std::string prefix_; // "<backend>."
	bool enabled_ = false;
	std::vector<HeldFd> kept_;
	mutable std::mutex mutex_;     // forget() comes from the worker thread
	std::set<std::string> stored_; // names within the backend: each stands for one fd until withdrawn
};

} // namespace vmrd
