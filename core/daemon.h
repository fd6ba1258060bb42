// SPDX-License-Identifier: MIT
// The daemon: one epoll loop over PSI triggers, a timer, signals and the backend worker.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "config.h"
#include "plugin_loader.h"
#include "policy.h"
#include "proc_file.h"
#include "psi_monitor.h"

namespace vmrd {

// Runs backend calls on one thread, one at a time, so that a slow plug never
// blocks pressure monitoring.  Completion is signalled on an eventfd that the
// main loop waits on.
class BackendWorker
{
public:
	struct Done {
		Decision asked;
		CallResult result;
		Result<BackendState> state{Error{}};
	};

	explicit BackendWorker(Backend &backend);
	~BackendWorker();

	int eventFd() const { return eventFd_; }
	bool busy() const { return busy_; }
	// Starts a call; the worker must not be busy.
	void submit(const Decision &d);
	// After eventFd() became readable: the finished call.
	std::optional<Done> collect();
	// Waits up to `timeout` for the current call; false if it is still running.
	bool waitIdle(Micros timeout);

private:
	void run();

	Backend &backend_;
	int eventFd_ = -1;
	bool busy_ = false; // main thread only
	std::mutex mutex_;
	std::condition_variable cv_;
	std::optional<Decision> job_;
	std::optional<Done> done_;
	bool stop_ = false;
	std::thread thread_;
};

class Daemon
{
public:
	struct Options {
		bool dryRun = false;
	};

	Daemon(const Config &config, std::unique_ptr<Backend> backend, Options options);
	~Daemon();

	// Arms PSI and runs until SIGTERM or SIGINT.  Returns the exit code.
	int run();

private:
	void onPressure(const PsiMonitor::Armed &trigger);
	void onTimer();
	void onWorkerDone();
	void execute(const Decision &d);
	void rearmTimer();
	std::optional<MemInfo> sample();
	TimePoint now() const { return std::chrono::steady_clock::now(); }

	Config config_;
	std::unique_ptr<Backend> backend_;
	Options options_;
	Policy policy_;
	BackendState state_;
	std::optional<ProcFile> meminfo_;
	std::unique_ptr<BackendWorker> worker_;
	std::optional<TimePoint> callDeadline_;
	int epollFd_ = -1;
	int timerFd_ = -1;
	int signalFd_ = -1;
};

} // namespace vmrd
