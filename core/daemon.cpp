// SPDX-License-Identifier: MIT
// The daemon: one epoll loop over PSI triggers, a timer, signals, the backend worker and its event fd.
#include "daemon.h"

#include <csignal>
#include <cstring>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sysexits.h>
#include <unistd.h>

#include "hardening.h"
#include "log.h"
#include "notify.h"
#include "status.h"

namespace vmrd {

Daemon::Daemon(const Config &config, std::unique_ptr<Backend> backend, Options options)
    : config_(config), backend_(std::move(backend)), options_(std::move(options))
{
}

Daemon::~Daemon()
{
	control_.reset();
	worker_.reset();
	if (signalFd_ >= 0)
		::close(signalFd_);
}

Controller::Settings Daemon::settings() const
{
	return {config_.policy, config_.limits, config_.backend.callTimeout, options_.dryRun, backend_->name()};
}

int Daemon::setUp()
{
	start_ = now();
	protectSelf(config_, &backend_->plugin().ops());
	setUpFdStore();
	auto st = backend_->state();
	if (!st) {
		logError(st.error().message);
		return 1;
	}
	if (st->hotplug)
		if (auto ok = prepareOnlining(config_); !ok) {
			logError(ok.error().message);
			return EX_CONFIG;
		}
	auto sampler = Sampler::open(config_.paths.procfs);
	if (!sampler) {
		logError(sampler.error().message);
		return 1;
	}
	sampler_ = std::move(*sampler);
	if (auto g = guard_.open(config_.guard); !g) {
		logError(config_.where.at("guard.cgroup") + ": " + g.error().message);
		return EX_CONFIG;
	}
	if (!config_.daemon.trace.empty()) {
		auto t = trace_.open(config_.daemon.trace, config_.policy.preset,
		                     std::chrono::duration_cast<Micros>(start_.time_since_epoch()),
		                     config_.daemon.traceMaxSize);
		if (!t) {
			logError(config_.where.at("daemon.trace") + ": " + t.error().message);
			return EX_CONFIG;
		}
	}
	if (auto loop = setUpLoop(); !loop) {
		logError(loop.error().message);
		return loop.error().code == -EINVAL ? EX_CONFIG : 1;
	}
	const Sample first = sample().value_or(Sample{});
	controller_ = std::make_unique<Controller>(settings(), *st, first, start_,
	                                           [this](const TraceRecord &r) { record(r); });
	armEarlySignal();
	watchdog_ = watchdogInterval();
	if (watchdog_)
		loop_.setTimer(watchdogTimer_, now() + *watchdog_);
	logInfo("running with backend '" + backend_->name() + "': " + describeState(*st) + "; policy " +
	        config_.policy.preset + (options_.dryRun ? "; dry run: plug and unplug are logged, never called" : "") +
	        (backendEventFd_ >= 0 ? "; following the backend's size changes" : "") +
	        (config_.control.socket.empty() ? "" : "; control socket " + config_.control.socket) +
	        (config_.control.http.empty() ? "" : "; metrics on http://" + config_.control.http + "/metrics"));
	notifySystemd("READY=1");
	return 0;
}

// Signals, the timer, the control socket, the worker, the backend's event fd and PSI.
Status Daemon::setUpLoop()
{
	// Block the signals before the worker thread starts, so that only the
	// signalfd sees them.
	sigset_t mask;
	sigemptyset(&mask);
	for (int s : {SIGTERM, SIGINT, SIGHUP, SIGUSR1})
		sigaddset(&mask, s);
	pthread_sigmask(SIG_BLOCK, &mask, nullptr);
	signalFd_ = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (signalFd_ < 0 || !loop_.ok())
		return Error{-errno, std::string("cannot set up the event loop: ") + std::strerror(errno)};
	controllerTimer_ = loop_.addTimer([this] { onControllerTimer(); });
	rearmTimer_ = loop_.addTimer([this] { rearmSources(); });
	watchdogTimer_ = loop_.addTimer([this] { onWatchdog(); });
	loop_.afterEach([this] { pump(); });
	if (!config_.control.socket.empty() || !config_.control.http.empty()) {
		// Before the worker thread exists: binding changes the umask for a moment.
		auto control = ControlServer::open(config_.control, config_.where, loop_,
		                                   [this](const ControlRequest &r) { return onControl(r); });
		if (!control)
			return Error{-EINVAL, control.error().message};
		control_ = std::move(*control);
	}
	worker_ = std::make_unique<BackendWorker>(*backend_, [this] { syncFdStore(std::nullopt); });
	backendEventFd_ = backend_->eventFd().value_or(-1);
	for (const auto &st : {loop_.add(signalFd_, EPOLLIN, [this](uint32_t) { onSignal(); }),
	                       loop_.add(worker_->eventFd(), EPOLLIN, [this](uint32_t) { onWorkerDone(); })})
		if (!st)
			return st.error();
	if (backendEventFd_ >= 0)
		if (auto st = loop_.add(backendEventFd_, EPOLLIN | EPOLLONESHOT,
		                        [this](uint32_t) { controller_->onBackendEvent(now()); });
		    !st)
			return st.error();
	std::vector<std::string> sources = config_.psi.cgroups;
	if (config_.psi.system)
		sources.insert(sources.begin(), config_.paths.procfs + "/pressure/memory");
	auto psi = PsiMonitor::arm(sources, config_.psi.triggers);
	if (!psi)
		return psi.error();
	if (!armPsi(std::move(*psi)))
		return Error{-EIO, "cannot watch the PSI triggers"};
	return Ok{};
}

int Daemon::run()
{
	if (int r = setUp())
		return r;
	if (int err = loop_.run(); err < 0) {
		logError(std::string("epoll_wait: ") + std::strerror(-err));
		return 1;
	}
	return stop();
}

void Daemon::pump()
{
	if (!callRunning_)
		if (auto call = controller_->nextCall()) {
			worker_->submit(*call);
			callRunning_ = true;
		}
	loop_.setTimer(controllerTimer_, controller_->nextDeadline());
	pauseEarlySignal();
	if (std::string line = statusLine(*controller_); line != statusLine_) {
		notifySystemd("STATUS=" + line);
		statusLine_ = std::move(line);
	}
}

void Daemon::onControllerTimer()
{
	const TimePoint t = now();
	for (const auto &source : controller_->stallReadsDue(t))
		controller_->onStall(t, source, stallTotal(source));
	if (controller_->tickDue(t)) {
		guard_.check();
		controller_->onTick(t, [this] { return sample(); });
	}
}

void Daemon::onWatchdog()
{
	notifySystemd("WATCHDOG=1");
	// systemd's daemon-reload resets memory.high; the ticks that check it
	// stop while vmrd idles, the watchdog's do not.
	guard_.check();
	loop_.setTimer(watchdogTimer_, now() + *watchdog_);
}

void Daemon::onWorkerDone()
{
	auto done = worker_->collect();
	if (!done)
		return;
	callRunning_ = false;
	const Sample s = sample().value_or(controller_->lastSample());
	controller_->onCallDone(now(), *done, s);
	// The event fd is one-shot: watched again once its event is consumed.
	if (done->call.op == BackendCall::Op::AckEvent)
		(void)loop_.modify(backendEventFd_, EPOLLIN | EPOLLONESHOT);
}

std::optional<Sample> Daemon::sample()
{
	auto s = sampler_->read();
	if (s)
		guard_.update(s->mem.memAvailable);
	return s;
}

void Daemon::record(const TraceRecord &r)
{
	const bool subscribers = control_ && control_->hasSubscribers();
	if (!trace_.enabled() && !subscribers)
		return;
	const std::string line = TraceWriter::formatTraceRecord(r);
	trace_.writeLine(line);
	if (subscribers)
		control_->publish(line);
}

int Daemon::stop()
{
	notifySystemd("STOPPING=1");
	controller_->stop(now());
	// Finish what is in flight, within a second; with daemon.release_on_exit
	// within backend.call_timeout, then give the memory back.
	const bool release = config_.daemon.releaseOnExit;
	const Micros wait = release ? config_.backend.callTimeout : Micros(std::chrono::milliseconds(900));
	for (bool released = false;;) {
		if (callRunning_) {
			if (!worker_->waitIdle(wait)) {
				logWarning("abandoning " + controller_->inFlight().value_or("the call") +
				           " in flight; memory stays as the backend leaves it");
				std::fflush(nullptr);
				// The worker thread is inside plugin code: neither join it
				// nor destroy the backend under it.
				::_exit(0);
			}
			onWorkerDone();
		}
		if (auto call = controller_->nextCall()) {
			worker_->submit(*call);
			callRunning_ = true;
			continue;
		}
		if (released || !release || !controller_->releaseOnExit(now()))
			break;
		released = true;
	}
	logInfo("stopped; " + describeState(controller_->state()));
	return 0;
}

} // namespace vmrd
