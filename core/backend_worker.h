// SPDX-License-Identifier: MIT
// Runs backend calls on one thread, one at a time, so that a slow plug never blocks pressure monitoring.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <pthread.h>

#include "controller.h"
#include "plugin_loader.h"

namespace vmrd {

// Completion is signalled on an eventfd that the main loop waits on.
class BackendWorker
{
public:
	// `afterResize` runs on the worker after every plug, unplug and
	// release_all, whatever their result.
	explicit BackendWorker(Backend &backend, std::function<void()> afterResize = {});
	~BackendWorker();
	BackendWorker(const BackendWorker &) = delete;
	BackendWorker &operator=(const BackendWorker &) = delete;

	int eventFd() const { return eventFd_; }
	// Starts a call; the previous one must have been collected.
	void submit(const BackendCall &call);
	// After eventFd() became readable: the finished call.
	std::optional<CallDone> collect();
	// Waits up to `timeout` for the current call; false if it still runs.
	bool waitIdle(Micros timeout);

private:
	void run();

	Backend &backend_;
	std::function<void()> afterResize_;
	int eventFd_ = -1;
	std::mutex mutex_;
	std::condition_variable cv_;
	std::optional<BackendCall> job_;
	std::optional<CallDone> done_;
	bool stop_ = false;
	pthread_t thread_;
};

} // namespace vmrd
