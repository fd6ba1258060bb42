// SPDX-License-Identifier: MIT
// One epoll loop with fd handlers and deadlines, which the daemon, its control server and the broker run on.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <vector>

#include "result.h"
#include "units.h"

namespace vmrd {

// Waits on events, never polls: with no deadline set it sleeps until an fd
// is ready, so an idle process does not wake up.  Handlers run on the
// loop's thread, one at a time, and may add, change or remove fds and
// deadlines, their own included.
class EventLoop
{
public:
	using FdHandler = std::function<void(uint32_t events)>;
	using Timer = size_t;

	EventLoop();
	~EventLoop();
	EventLoop(const EventLoop &) = delete;
	EventLoop &operator=(const EventLoop &) = delete;

	// False (with errno) if the loop's own epoll or timer fd could not be made.
	bool ok() const { return epollFd_ >= 0 && timerFd_ >= 0; }
	// Watches `fd` for `events` (EPOLLIN, EPOLLPRI, EPOLLONESHOT...).
	Status add(int fd, uint32_t events, FdHandler handler);
	// New events for a watched fd: after EPOLLONESHOT, or to add EPOLLOUT.
	Status modify(int fd, uint32_t events);
	void remove(int fd);

	// A deadline slot: its handler runs once when the time set comes.
	Timer addTimer(std::function<void()> handler);
	// Sets or moves the slot's deadline; nothing clears it.
	void setTimer(Timer timer, std::optional<TimePoint> at);
	// Frees the slot (its handler is dropped); addTimer() may reuse it.
	void removeTimer(Timer timer);

	// Runs after every round of handlers: where a user re-computes the
	// deadlines that follow from what the handlers did.
	void afterEach(std::function<void()> hook) { afterEach_ = std::move(hook); }

	// Runs until stop(); 0, or a negative errno if epoll failed.
	int run();
	void stop() { stopping_ = true; }

private:
	void armTimerFd();
	void runTimers(TimePoint now);

	int epollFd_ = -1;
	int timerFd_ = -1;
	// Each watch has its own key, so that an event for an fd removed and
	// reused in the same round never reaches the new watch's handler.
	struct Watch {
		int fd;
		FdHandler handler;
	};
	std::map<uint64_t, Watch> watches_;
	std::map<int, uint64_t> keys_; // fd -> its watch
	uint64_t nextKey_ = 1;
	std::vector<std::pair<std::optional<TimePoint>, std::function<void()>>> timers_;
	std::function<void()> afterEach_;
	bool stopping_ = false;
};

} // namespace vmrd
