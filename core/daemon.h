// SPDX-License-Identifier: MIT
// The daemon: wires PSI, the kernel's statistics, the backend worker, signals and the control socket
// to the Controller through one EventLoop.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backend_selection.h"
#include "backend_worker.h"
#include "config.h"
#include "control.h"
#include "controller.h"
#include "event_loop.h"
#include "guard.h"
#include "tracepoint_watch.h"
#include "plugin_loader.h"
#include "proc_file.h"
#include "psi_monitor.h"
#include "sampler.h"
#include "trace.h"

namespace vmrd {

class Daemon
{
public:
	struct Options {
		bool dryRun = false;
		std::string configPath;                  // re-read on SIGHUP
		std::vector<CandidateVerdict> selection; // how backend.name chose, for vmrdctl status
	};

	Daemon(const Config &config, std::unique_ptr<Backend> backend, Options options);
	~Daemon();

	// Sets up and runs until SIGTERM or SIGINT.  Returns the exit code.
	int run();

private:
	// A pressure file, kept open to read its stall total (severity bursts).
	struct Source {
		std::string path;
		std::optional<ProcFile> file;
	};

	int setUp();
	Status setUpLoop();
	bool armPsi(PsiMonitor monitor);
	bool watchTrigger(size_t trigger);
	void onPressure(size_t trigger);
	void onPsiError(size_t trigger);
	void rearmSources();
	// The early signal, for a policy that wants it (daemon_early_signal.cpp).
	void armEarlySignal();
	void onAllocations();
	void pauseEarlySignal();
	std::string describeEarlySignal() const;
	void onControllerTimer();
	void onWatchdog();
	void onSignal();
	void onWorkerDone();
	// `origin` says who asked, in the log: "SIGHUP", "vmrdctl reload".
	Status reload(const std::string &origin);
	Result<nlohmann::json> onControl(const ControlRequest &request);
	int stop();
	// After every round of the loop: start the controller's next call,
	// set its deadline, tell systemd the status if it changed.
	void pump();
	void record(const TraceRecord &r);
	std::optional<uint64_t> stallTotal(const std::string &source);
	// Hands the backend the fds the previous vmrd kept and keeps its own:
	// before the backend's first call.
	void setUpFdStore();
	// Sends `held`, or what export_fds() lists now, to the store.
	void syncFdStore(std::optional<std::vector<HeldFd>> held);
	// A sample of /proc; the guard follows every one.
	std::optional<Sample> sample();
	Controller::Settings settings() const;
	// In whole microseconds, as the event log writes times: a replay then
	// feeds the controller exactly the times the daemon did.
	TimePoint now() const { return std::chrono::time_point_cast<Micros>(std::chrono::steady_clock::now()); }

	Config config_;
	std::unique_ptr<Backend> backend_;
	Options options_;
	EventLoop loop_;
	EventLoop::Timer controllerTimer_ = 0, rearmTimer_ = 0, watchdogTimer_ = 0;
	std::unique_ptr<Controller> controller_;
	std::optional<Sampler> sampler_;
	PsiMonitor psi_;
	std::vector<Source> sources_;
	std::vector<size_t> triggerSource_; // armed trigger -> index in sources_
	std::optional<TracepointWatch> earlySignal_;
	std::string earlySignalNote_; // why there is none
	std::unique_ptr<BackendWorker> worker_;
	int backendEventFd_ = -1; // owned by the backend
	bool callRunning_ = false;
	Guard guard_;
	std::unique_ptr<FdStore> fdStore_;
	TraceWriter trace_;
	std::unique_ptr<ControlServer> control_;
	std::optional<Micros> watchdog_;
	std::string statusLine_; // the last STATUS= sent
	TimePoint start_;
	int signalFd_ = -1;
};

} // namespace vmrd
