// SPDX-License-Identifier: MIT
// The daemon: one epoll loop over PSI triggers, a timer, signals and the backend worker.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <pthread.h>

#include "config.h"
#include "control.h"
#include "metrics.h"
#include "plugin_loader.h"
#include "policy.h"
#include "proc_file.h"
#include "psi_monitor.h"
#include "sampler.h"
#include "trace.h"

namespace vmrd {

// Runs backend calls on one thread, one at a time, so that a slow plug never
// blocks pressure monitoring.  Completion is signalled on an eventfd that the
// main loop waits on.
class BackendWorker
{
public:
	// A resize with the bounds on the total it must keep.  The worker reads
	// the backend's state first and trims the call to them, so a backend
	// that changed since the decision cannot be pushed out of bounds.
	struct Job {
		Decision decision;
		uint64_t floor = 0;
		uint64_t ceiling = UINT64_MAX;
	};
	struct Done {
		Decision asked;
		CallResult result;
		Result<BackendState> state{Error{}};
		Micros call{0};                 // how long the plug or unplug took
		uint64_t sent = 0;              // the bytes really asked of the backend
		std::optional<uint64_t> before; // plugged just before the call, as the backend said
	};

	explicit BackendWorker(Backend &backend);
	~BackendWorker();

	int eventFd() const { return eventFd_; }
	bool busy() const { return busy_; }
	const Decision &current() const { return current_; }
	// Starts a call; the worker must not be busy.
	void submit(const Job &job);
	// After eventFd() became readable: the finished call.
	std::optional<Done> collect();
	// Waits up to `timeout` for the current call; false if it still runs.
	bool waitIdle(Micros timeout);

private:
	void run();

	Backend &backend_;
	int eventFd_ = -1;
	bool busy_ = false; // main thread only
	Decision current_;  // main thread only
	std::mutex mutex_;
	std::condition_variable cv_;
	std::optional<Job> job_;
	std::optional<Done> done_;
	bool stop_ = false;
	pthread_t thread_;
};

class Daemon
{
public:
	struct Options {
		bool dryRun = false;
		std::string configPath; // re-read on SIGHUP
	};

	Daemon(const Config &config, std::unique_ptr<Backend> backend, Options options);
	~Daemon();

	// Sets up and runs until SIGTERM or SIGINT.  Returns the exit code.
	int run();

private:
	// After a PSI event, the source's stall total is read a few times across
	// one window (as lmkd does) to measure how severe the stall is.
	struct Burst {
		TimePoint start;
		uint64_t startTotal = 0;
		TimePoint next;
		Micros step{0};
		int left = 0;
	};
	struct Source {
		std::string path;
		std::optional<ProcFile> file;
		std::optional<Burst> burst;
	};
	// The last decisions, for vmrdctl status.
	struct Recent {
		uint64_t seq = 0;
		TimePoint at;
		Decision decision;
		std::string outcome;
	};

	int setUp();
	void protectSelf();
	bool armPsi(PsiMonitor monitor);
	void onPressure(size_t trigger);
	void onPsiError(size_t trigger);
	void onTimer();
	void onSignal();
	void onWorkerDone();
	// `origin` says who asked, in the log: "SIGHUP", "vmrdctl reload".
	Status reload(const std::string &origin);
	Decision checkNow(); // SIGUSR1 and vmrdctl reclaim
	int stop();
	Result<nlohmann::json> onControl(const ControlRequest &request);
	nlohmann::json status(TimePoint now) const;
	std::string metricsText() const;
	void notifyStatus();
	void execute(const Decision &d);
	// Brings a plugged size outside limits.min/max back inside (see .cpp).
	std::optional<Decision> boundsCorrection() const;
	void correctBounds();
	void remember(const Decision &d, std::string outcome);
	void advanceBursts(TimePoint now);
	double severityFor(size_t trigger, TimePoint now) const;
	void updateGuard();
	void record(TraceRecord r, TimePoint now);
	void rearmTimer();
	TimePoint now() const { return std::chrono::steady_clock::now(); }

	Config config_;
	std::unique_ptr<Backend> backend_;
	Options options_;
	std::unique_ptr<Policy> policy_;
	BackendState state_;
	std::optional<Sampler> sampler_;
	Sample lastSample_;
	PsiMonitor psi_;
	std::vector<Source> sources_;
	std::vector<size_t> triggerSource_;  // armed trigger -> index in sources_
	std::optional<TimePoint> rearmAt_;   // retry sources that went away
	std::optional<TimePoint> refreshAt_; // ask a backend that is not connected again
	Micros refreshBackoff_{0};
	double lastSeverity_ = 0;
	std::optional<TimePoint> lastSeverityAt_;
	std::unique_ptr<BackendWorker> worker_;
	std::optional<TimePoint> callDeadline_;
	std::optional<TimePoint> correctAt_; // the next try to correct the bounds
	int guardFd_ = -1;
	TraceWriter trace_;
	std::unique_ptr<ControlServer> control_;
	Metrics metrics_;
	std::deque<Recent> recent_;
	uint64_t recentSeq_ = 0;
	uint64_t inFlightSeq_ = 0; // the Recent entry of the call the worker runs
	std::optional<Micros> watchdog_;
	std::optional<TimePoint> watchdogAt_;
	TimePoint start_;
	bool stopping_ = false;
	int exitCode_ = 0;
	int epollFd_ = -1;
	int timerFd_ = -1;
	int signalFd_ = -1;
};

} // namespace vmrd
