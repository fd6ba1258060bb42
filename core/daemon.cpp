// SPDX-License-Identifier: MIT
// The daemon: one epoll loop over PSI triggers, a timer, signals and the backend worker.
#include "daemon.h"

#include <algorithm>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sysexits.h>
#include <unistd.h>

#include "hotplug.h"
#include "log.h"
#include "notify.h"

namespace vmrd {

namespace {

// epoll data tags; PSI triggers use their index, below these.
constexpr uint64_t tagTimer = 1ull << 32;
constexpr uint64_t tagSignal = tagTimer + 1;
constexpr uint64_t tagWorker = tagTimer + 2;
constexpr uint64_t tagControl = tagTimer + 3;

// How often a PSI source that went away (a removed cgroup) is looked for.
constexpr auto rearmInterval = std::chrono::seconds(5);
// Samples of the stall total across one window after an event.
constexpr int burstSamples = 4;
// The backend worker's stack (see BackendWorker::BackendWorker).
constexpr size_t workerStack = 256 << 10;
// Decisions kept for vmrdctl status.
constexpr size_t recentDecisions = 10;

std::string describeState(const BackendState &s)
{
	return formatSize(s.plugged) + " plugged (range " + formatSize(s.minBytes) + " to " + formatSize(s.maxBytes) +
	       ", block " + formatSize(s.blockSize) + ")";
}

double seconds(Micros d)
{
	return static_cast<double>(d.count()) / 1e6;
}

bool sameTriggers(const std::vector<TriggerConfig> &a, const std::vector<TriggerConfig> &b)
{
	return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const auto &x, const auto &y) {
		return x.kind == y.kind && x.stall == y.stall && x.window == y.window;
	});
}

} // namespace

BackendWorker::BackendWorker(Backend &backend) : backend_(backend)
{
	eventFd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (eventFd_ < 0)
		throw std::system_error(errno, std::generic_category(), "eventfd");
	// A small stack: with mlockall(MCL_FUTURE) all of it is resident, and
	// glibc's default (8 MiB, from RLIMIT_STACK) would be most of the
	// daemon's RSS.  Plugin calls get 256 KiB, like a typical thread.
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, workerStack);
	const int err = pthread_create(
	        &thread_, &attr,
	        [](void *self) -> void * {
		        static_cast<BackendWorker *>(self)->run();
		        return nullptr;
	        },
	        this);
	pthread_attr_destroy(&attr);
	if (err != 0) {
		::close(eventFd_);
		throw std::system_error(err, std::generic_category(), "pthread_create");
	}
}

BackendWorker::~BackendWorker()
{
	{
		std::lock_guard<std::mutex> lock(mutex_);
		stop_ = true;
	}
	cv_.notify_all();
	pthread_join(thread_, nullptr);
	::close(eventFd_);
}

void BackendWorker::submit(const Job &job)
{
	{
		std::lock_guard<std::mutex> lock(mutex_);
		job_ = job;
	}
	busy_ = true;
	current_ = job.decision;
	cv_.notify_all();
}

std::optional<BackendWorker::Done> BackendWorker::collect()
{
	uint64_t n;
	while (::read(eventFd_, &n, sizeof(n)) < 0 && errno == EINTR)
		;
	std::lock_guard<std::mutex> lock(mutex_);
	std::optional<Done> d = std::move(done_);
	done_.reset();
	if (d)
		busy_ = false;
	return d;
}

bool BackendWorker::waitIdle(Micros timeout)
{
	std::unique_lock<std::mutex> lock(mutex_);
	return cv_.wait_for(lock, timeout, [this] { return !job_; });
}

void BackendWorker::run()
{
	std::unique_lock<std::mutex> lock(mutex_);
	for (;;) {
		cv_.wait(lock, [this] { return stop_ || job_; });
		if (stop_)
			return;
		const Job job = *job_;
		const Decision &d = job.decision;
		lock.unlock();
		Done done{d, {}, Error{}, Micros(0), 0, std::nullopt};
		// Action None: only re-read the state (a backend that was not connected).
		const auto started = std::chrono::steady_clock::now();
		if (d.action != Decision::Action::None) {
			done.sent = d.bytes;
			if (auto before = backend_.state(); before && before->connected) {
				done.before = before->plugged;
				const uint64_t block = std::max<uint64_t>(before->blockSize, 1);
				const uint64_t p = before->plugged;
				const uint64_t room =
				        d.action == Decision::Action::Plug
				                ? (job.ceiling > p ? (job.ceiling - p) / block * block : 0)
				                : (p > job.floor ? (p - job.floor) / block * block : 0);
				done.sent = std::min(d.bytes, room);
			}
		}
		if (d.action != Decision::Action::None && done.sent == 0)
			done.result = CallResult{0, 0,
			                         "not called: the backend already has " + formatSize(*done.before) +
			                                 " plugged, at the limit"};
		else if (d.action == Decision::Action::Plug)
			done.result = backend_.plug(done.sent);
		else if (d.action == Decision::Action::Unplug)
			done.result = backend_.unplug(done.sent);
		done.call = std::chrono::duration_cast<Micros>(std::chrono::steady_clock::now() - started);
		// Book what the backend reports, never what was asked.
		done.state = backend_.state();
		lock.lock();
		done_ = std::move(done);
		job_.reset();
		cv_.notify_all();
		uint64_t one = 1;
		if (::write(eventFd_, &one, sizeof(one)) < 0)
			logError(std::string("worker eventfd write: ") + std::strerror(errno));
	}
}

Daemon::Daemon(const Config &config, std::unique_ptr<Backend> backend, Options options)
    : config_(config), backend_(std::move(backend)), options_(std::move(options)),
      policy_(Policy::create(config.policy, config.limits))
{
}

Daemon::~Daemon()
{
	worker_.reset();
	for (int fd : {epollFd_, timerFd_, signalFd_, guardFd_})
		if (fd >= 0)
			::close(fd);
}

void Daemon::protectSelf()
{
	// Growth must work when the guest is nearly out of memory: keep the
	// daemon resident and out of the OOM killer's way.
	// MCL_ONFAULT: lock each page once it is used rather than all of every
	// mapped library (most of libstdc++ and friends is never run), so the
	// daemon stays resident at the size it really uses.
	if (config_.daemon.mlock && ::mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0)
		logWarning(std::string("mlockall failed: ") + std::strerror(errno) +
		           "; continuing, but the daemon may be paged out under pressure (daemon.mlock)");
	const std::string adj = config_.paths.procfs + "/self/oom_score_adj";
	int fd = ::open(adj.c_str(), O_WRONLY | O_CLOEXEC);
	const std::string value = std::to_string(config_.daemon.oomScoreAdj);
	if (fd < 0 || ::write(fd, value.c_str(), value.size()) < 0)
		logWarning(adj + ": cannot set " + value + ": " + std::strerror(errno) +
		           "; continuing (daemon.oom_score_adj)");
	if (fd >= 0)
		::close(fd);
}

bool Daemon::armPsi(PsiMonitor monitor)
{
	for (const auto &a : psi_.armed())
		if (a.fd >= 0)
			::epoll_ctl(epollFd_, EPOLL_CTL_DEL, a.fd, nullptr);
	psi_ = std::move(monitor);
	sources_.clear();
	triggerSource_.clear();
	for (size_t i = 0; i < psi_.armed().size(); i++) {
		const auto &a = psi_.armed()[i];
		auto it = std::find_if(sources_.begin(), sources_.end(),
		                       [&](const Source &s) { return s.path == a.source; });
		if (it == sources_.end()) {
			Source s;
			s.path = a.source;
			if (auto f = ProcFile::open(a.source, 4096))
				s.file = std::move(*f);
			sources_.push_back(std::move(s));
			it = sources_.end() - 1;
		}
		triggerSource_.push_back(static_cast<size_t>(it - sources_.begin()));
		epoll_event ev{};
		ev.events = EPOLLPRI;
		ev.data.u64 = i;
		if (::epoll_ctl(epollFd_, EPOLL_CTL_ADD, a.fd, &ev) != 0) {
			logError("epoll_ctl on " + a.source + ": " + std::strerror(errno));
			return false;
		}
	}
	return true;
}

int Daemon::setUp()
{
	start_ = now();
	protectSelf();
	auto st = backend_->state();
	if (!st) {
		logError(st.error().message);
		return 1;
	}
	state_ = *st;
	if (state_.hotplug) {
		OnliningVerdict v = checkOnlining(config_.paths.sysfs);
		if (!v.ok && config_.daemon.onlineMovable) {
			auto n = makeOnliningMovable(config_.paths.sysfs);
			if (!n) {
				logError(n.error().message);
				return EX_CONFIG;
			}
			logInfo("daemon.online_movable: new memory blocks now go to ZONE_MOVABLE; onlined " +
			        std::to_string(*n) + " offline block(s)");
		} else if (!v.ok) {
			logError(v.message);
			return EX_CONFIG;
		} else {
			logInfo(v.message);
		}
	}
	auto sampler = Sampler::open(config_.paths.procfs);
	if (!sampler) {
		logError(sampler.error().message);
		return 1;
	}
	sampler_ = std::move(*sampler);
	if (auto s = sampler_->read())
		lastSample_ = *s;
	if (!config_.guard.cgroup.empty()) {
		const std::string high = config_.guard.cgroup + "/memory.high";
		guardFd_ = ::open(high.c_str(), O_WRONLY | O_CLOEXEC);
		if (guardFd_ < 0) {
			logError(high + ": cannot open: " + std::strerror(errno) +
			         " (guard.cgroup must be a cgroup v2 directory with the memory controller)");
			return EX_CONFIG;
		}
		updateGuard();
	}
	if (!config_.daemon.trace.empty()) {
		auto t = trace_.open(config_.daemon.trace, config_.policy.preset,
		                     std::chrono::duration_cast<Micros>(start_.time_since_epoch()),
		                     config_.daemon.traceMaxSize);
		if (!t) {
			logError(t.error().message);
			return EX_CONFIG;
		}
	}

	// Block the signals before the worker thread starts, so that only the
	// signalfd sees them.
	sigset_t mask;
	sigemptyset(&mask);
	for (int s : {SIGTERM, SIGINT, SIGHUP, SIGUSR1})
		sigaddset(&mask, s);
	pthread_sigmask(SIG_BLOCK, &mask, nullptr);
	signalFd_ = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	timerFd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	epollFd_ = ::epoll_create1(EPOLL_CLOEXEC);
	if (signalFd_ < 0 || timerFd_ < 0 || epollFd_ < 0) {
		logError(std::string("cannot set up the event loop: ") + std::strerror(errno));
		return 1;
	}
	if (!config_.control.socket.empty() || !config_.control.http.empty()) {
		// Before the worker thread exists: binding changes the umask for a moment.
		auto control =
		        ControlServer::open(config_.control, [this](const ControlRequest &r) { return onControl(r); });
		if (!control) {
			logError(control.error().message);
			return EX_CONFIG;
		}
		control_ = std::move(*control);
	}
	worker_ = std::make_unique<BackendWorker>(*backend_);
	auto watch = [&](int fd, uint64_t tag) {
		epoll_event ev{};
		ev.events = EPOLLIN;
		ev.data.u64 = tag;
		return ::epoll_ctl(epollFd_, EPOLL_CTL_ADD, fd, &ev) == 0;
	};
	if (!watch(timerFd_, tagTimer) || !watch(signalFd_, tagSignal) || !watch(worker_->eventFd(), tagWorker) ||
	    (control_ && !watch(control_->fd(), tagControl))) {
		logError(std::string("epoll_ctl: ") + std::strerror(errno));
		return 1;
	}
	std::vector<std::string> sources = config_.psi.cgroups;
	if (config_.psi.system)
		sources.insert(sources.begin(), config_.paths.procfs + "/pressure/memory");
	auto psi = PsiMonitor::arm(sources, config_.psi.triggers);
	if (!psi) {
		logError(psi.error().message);
		return 1;
	}
	if (!armPsi(std::move(*psi)))
		return 1;
	if (!state_.connected)
		refreshAt_ = now();
	watchdog_ = watchdogInterval();
	if (watchdog_)
		watchdogAt_ = now() + *watchdog_;
	rearmTimer();
	logInfo("running with backend '" + backend_->name() + "': " + describeState(state_) + "; policy " +
	        config_.policy.preset + (options_.dryRun ? "; dry run: plug and unplug are logged, never called" : "") +
	        (config_.control.socket.empty() ? "" : "; control socket " + config_.control.socket) +
	        (config_.control.http.empty() ? "" : "; metrics on http://" + config_.control.http + "/metrics"));
	notifySystemd("READY=1");
	notifyStatus();
	// Started (or restarted) with the device outside the limits.
	correctBounds();
	rearmTimer();
	return 0;
}

int Daemon::run()
{
	if (int r = setUp())
		return r;
	while (!stopping_) {
		epoll_event events[32];
		int n = ::epoll_wait(epollFd_, events, 32, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			logError(std::string("epoll_wait: ") + std::strerror(errno));
			return 1;
		}
		for (int i = 0; i < n && !stopping_; i++) {
			const uint64_t tag = events[i].data.u64;
			if (tag == tagTimer)
				onTimer();
			else if (tag == tagWorker)
				onWorkerDone();
			else if (tag == tagSignal)
				onSignal();
			else if (tag == tagControl) {
				control_->process();
				rearmTimer();
			} else if (events[i].events & EPOLLERR)
				onPsiError(tag);
			else
				onPressure(tag);
		}
	}
	return stop();
}

void Daemon::onSignal()
{
	signalfd_siginfo si;
	while (::read(signalFd_, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGUSR1:
			logInfo("SIGUSR1: shrink check now");
			checkNow();
			break;
		case SIGHUP:
			(void)reload("SIGHUP");
			break;
		default:
			logInfo(std::string("received ") + strsignal(static_cast<int>(si.ssi_signo)) + ", stopping");
			stopping_ = true;
			return;
		}
	}
}

Decision Daemon::checkNow()
{
	Decision d{Decision::Action::None, 0, "cannot read the memory statistics"};
	if (auto s = sampler_->read()) {
		lastSample_ = *s;
		TraceRecord r;
		r.type = TraceRecord::Type::Check;
		r.sample = *s;
		record(r, now());
		d = policy_->onTimer(now(), *s, state_);
		execute(d);
	}
	rearmTimer();
	return d;
}

int Daemon::stop()
{
	notifySystemd("STOPPING=1");
	if (worker_->busy() && !worker_->waitIdle(std::chrono::milliseconds(900))) {
		logWarning("abandoning the " + describeDecision(worker_->current()) +
		           " in flight; memory stays as the backend leaves it");
		std::fflush(nullptr);
		// The worker thread is inside plugin code: neither join it nor
		// destroy the backend under it.
		::_exit(exitCode_);
	}
	if (worker_->busy())
		onWorkerDone();
	const uint64_t floor = std::max(config_.limits.min, state_.minBytes);
	if (config_.daemon.releaseOnExit && state_.plugged > floor && !options_.dryRun) {
		Decision d{Decision::Action::Unplug, state_.plugged - floor, "daemon.release_on_exit"};
		logInfo("releasing " + formatSize(d.bytes) + " before exit (daemon.release_on_exit)");
		worker_->submit({d, floor});
		if (!worker_->waitIdle(config_.backend.callTimeout)) {
			logWarning("release on exit did not finish within backend.call_timeout; exiting anyway");
			std::fflush(nullptr);
			::_exit(exitCode_);
		}
		onWorkerDone();
	}
	logInfo("stopped; " + describeState(state_));
	return exitCode_;
}

Status Daemon::reload(const std::string &origin)
{
	const std::string &path = options_.configPath;
	auto next = loadConfig(path);
	if (!next) {
		logError(origin + ": the new config is rejected, the running one is kept:\n" + next.error().message);
		return Error{next.error().code,
		             "the new config is rejected, the running one is kept:\n" + next.error().message};
	}
	Config &n = *next;
	const auto &o = config_;
	if (n.backend.name != o.backend.name || n.backend.options != o.backend.options ||
	    n.backend.pluginDir != o.backend.pluginDir || n.paths.procfs != o.paths.procfs ||
	    n.paths.sysfs != o.paths.sysfs || n.daemon.mlock != o.daemon.mlock ||
	    n.daemon.oomScoreAdj != o.daemon.oomScoreAdj || n.daemon.trace != o.daemon.trace ||
	    n.daemon.traceMaxSize != o.daemon.traceMaxSize || n.control.socket != o.control.socket ||
	    n.control.http != o.control.http || n.guard.cgroup != o.guard.cgroup)
		logWarning(
		        origin +
		        ": changes to backend, paths, daemon.mlock, daemon.oom_score_adj, daemon.trace, "
		        "daemon.trace_max_size, control and guard.cgroup take effect on restart; the rest is applied");
	if (n.psi.system != o.psi.system || n.psi.cgroups != o.psi.cgroups ||
	    !sameTriggers(n.psi.triggers, o.psi.triggers)) {
		std::vector<std::string> sources = n.psi.cgroups;
		if (n.psi.system)
			sources.insert(sources.begin(), o.paths.procfs + "/pressure/memory");
		auto psi = PsiMonitor::arm(sources, n.psi.triggers);
		if (!psi) {
			logError(origin + ": cannot arm the new PSI triggers, the running config is kept: " +
			         psi.error().message);
			return Error{psi.error().code, "cannot arm the new PSI triggers, the running config is kept: " +
			                                       psi.error().message};
		}
		armPsi(std::move(*psi));
		config_.psi = n.psi;
	}
	config_.policy = n.policy;
	config_.limits = n.limits;
	config_.backend.callTimeout = n.backend.callTimeout;
	config_.daemon.onlineMovable = n.daemon.onlineMovable;
	config_.daemon.releaseOnExit = n.daemon.releaseOnExit;
	config_.guard.margin = n.guard.margin;
	config_.logLevel = n.logLevel;
	setLogLevel(n.logLevel);
	policy_ = Policy::create(config_.policy, config_.limits);
	updateGuard();
	logInfo(origin + ": reloaded " + path + "; policy " + config_.policy.preset + " starts afresh");
	rearmTimer();
	notifyStatus();
	return Ok{};
}

double Daemon::severityFor(size_t trigger, TimePoint t) const
{
	const auto &a = psi_.armed()[trigger];
	// A burst measured in the last two windows says more than the
	// threshold that the kernel just reported crossing.
	if (lastSeverityAt_ && t - *lastSeverityAt_ < 2 * a.trigger.window)
		return lastSeverity_;
	return static_cast<double>(a.trigger.stall.count()) / static_cast<double>(a.trigger.window.count());
}

void Daemon::onPressure(size_t i)
{
	const auto &a = psi_.armed()[i];
	const TimePoint t = now();
	logDebug("PSI event: " + describeTrigger(a.trigger) + " on " + a.source);
	metrics_.pressure(a.source, describeTrigger(a.trigger));
	Source &src = sources_[triggerSource_[i]];
	if (!src.burst && src.file) {
		if (auto total = readPsiTotal(*src.file, false)) {
			Micros step = a.trigger.window / burstSamples;
			src.burst = Burst{t, *total, t + step, step, burstSamples};
		}
	}
	auto s = sampler_->read();
	if (!s)
		return;
	lastSample_ = *s;
	if (!state_.connected) {
		logInfo("PSI " + describeTrigger(a.trigger) + ": backend '" + backend_->name() +
		        "' is not connected; asking it again now");
		refreshAt_ = t;
		onTimer();
		return;
	}
	const double severity = severityFor(i, t);
	TraceRecord r;
	r.type = TraceRecord::Type::Pressure;
	r.trigger = describeTrigger(a.trigger);
	r.severity = severity;
	r.sample = *s;
	record(r, t);
	Decision d = policy_->onPressure(t, *s, state_, severity);
	d.reason = "PSI " + describeTrigger(a.trigger) + ": " + d.reason;
	execute(d);
	rearmTimer();
}

void Daemon::onPsiError(size_t i)
{
	const auto &a = psi_.armed()[i];
	logError("PSI source " + a.source +
	         " went away (cgroup removed?); the other sources are still watched, "
	         "and this one is re-armed when it comes back");
	::epoll_ctl(epollFd_, EPOLL_CTL_DEL, a.fd, nullptr);
	psi_.disarm(i);
	rearmAt_ = now() + rearmInterval;
	rearmTimer();
}

void Daemon::advanceBursts(TimePoint t)
{
	for (auto &src : sources_) {
		if (!src.burst || t < src.burst->next)
			continue;
		auto total = src.file ? readPsiTotal(*src.file, false) : std::nullopt;
		if (!total) {
			src.burst.reset();
			continue;
		}
		if (--src.burst->left > 0) {
			src.burst->next += src.burst->step;
			continue;
		}
		const auto elapsed = std::chrono::duration_cast<Micros>(t - src.burst->start).count();
		if (elapsed > 0) {
			lastSeverity_ = static_cast<double>(*total - std::min(*total, src.burst->startTotal)) /
			                static_cast<double>(elapsed);
			lastSeverityAt_ = t;
			logDebug("stall on " + src.path + " over the last window: " +
			         std::to_string(static_cast<int>(lastSeverity_ * 100)) + "%");
		}
		src.burst.reset();
	}
}

void Daemon::onTimer()
{
	// Also called directly; a spurious wakeup finds nothing due.
	uint64_t expirations;
	(void)!::read(timerFd_, &expirations, sizeof(expirations));
	const TimePoint t = now();
	advanceBursts(t);
	if (watchdogAt_ && t >= *watchdogAt_) {
		notifySystemd("WATCHDOG=1");
		watchdogAt_ = t + *watchdog_;
	}
	if (control_ && control_->nextDeadline() && t >= *control_->nextDeadline())
		control_->process();
	if (callDeadline_ && t >= *callDeadline_ && worker_->busy()) {
		logWarning(describeDecision(worker_->current()) + " has run longer than backend.call_timeout " +
		           formatDuration(config_.backend.callTimeout) + " in backend '" + backend_->name() +
		           "'; still waiting, PSI monitoring goes on");
		callDeadline_.reset();
	}
	if (rearmAt_ && t >= *rearmAt_) {
		rearmAt_.reset();
		for (size_t i = 0; i < psi_.armed().size(); i++) {
			if (psi_.armed()[i].fd >= 0)
				continue;
			if (psi_.rearm(i)) {
				epoll_event ev{};
				ev.events = EPOLLPRI;
				ev.data.u64 = i;
				::epoll_ctl(epollFd_, EPOLL_CTL_ADD, psi_.armed()[i].fd, &ev);
				Source &src = sources_[triggerSource_[i]];
				if (auto f = ProcFile::open(src.path, 4096))
					src.file = std::move(*f);
				logInfo("PSI source " + src.path + " is back; trigger re-armed");
			} else {
				rearmAt_ = t + rearmInterval;
			}
		}
	}
	if (correctAt_ && t >= *correctAt_)
		correctBounds();
	if (refreshAt_ && t >= *refreshAt_ && !worker_->busy()) {
		refreshAt_.reset();
		worker_->submit({Decision{Decision::Action::None, 0, "re-read the backend's state"}});
	}
	if (policy_->nextCheck() && t >= *policy_->nextCheck()) {
		if (auto s = sampler_->read()) {
			lastSample_ = *s;
			TraceRecord r;
			r.type = TraceRecord::Type::Sample;
			r.sample = *s;
			record(r, t);
			execute(policy_->onTimer(t, *s, state_));
		}
	}
	rearmTimer();
}

void Daemon::execute(const Decision &d)
{
	metrics_.decision(d.action);
	TraceRecord r;
	r.type = TraceRecord::Type::Decision;
	r.asked = d;
	r.sample = lastSample_;
	record(r, now());
	if (d.action == Decision::Action::None) {
		logInfo("decision: " + describeDecision(d));
		remember(d, "");
		return;
	}
	if (options_.dryRun) {
		logInfo("decision (dry run, not done): " + describeDecision(d));
		remember(d, "dry run: not done");
		return;
	}
	if (worker_->busy()) {
		const Decision &busy = worker_->current();
		const std::string inFlight = std::string(actionName(busy.action)) + " of " + formatSize(busy.bytes);
		logInfo("decision deferred (" + inFlight + " in flight): " + describeDecision(d));
		remember(d, "not done: " + inFlight + " was in flight");
		return;
	}
	logInfo("decision: " + describeDecision(d));
	remember(d, "in flight");
	inFlightSeq_ = recentSeq_;
	worker_->submit({d, config_.limits.min, config_.limits.max ? config_.limits.max : UINT64_MAX});
	callDeadline_ = now() + config_.backend.callTimeout;
}

void Daemon::remember(const Decision &d, std::string outcome)
{
	recent_.push_back(Recent{++recentSeq_, now(), d, std::move(outcome)});
	if (recent_.size() > recentDecisions)
		recent_.pop_front();
}

void Daemon::onWorkerDone()
{
	auto done = worker_->collect();
	if (!done)
		return;
	callDeadline_.reset();
	metrics_.call(done->asked, done->result, done->call);
	const std::string what = std::string(actionName(done->asked.action)) + " of " + formatSize(done->asked.bytes);
	for (auto &rec : recent_)
		if (rec.seq == inFlightSeq_ && done->asked.action != Decision::Action::None)
			rec.outcome = (done->result.code != 0 ? "failed after " + formatSize(done->result.done) + ": " +
			                                                done->result.message
			                                      : formatSize(done->result.done) + " done") +
			              " in " + formatDuration(done->call);
	const std::string backend = "backend '" + backend_->name() + "'";
	// What vmrd saw last and what the backend says now differ: something
	// else resized the device, or the backend lost track.  The backend's
	// word is booked.
	if (done->before && *done->before != state_.plugged && state_.connected)
		logWarning(backend + " has " + formatSize(*done->before) + " plugged where vmrd last saw " +
		           formatSize(state_.plugged) +
		           ": the device changed outside vmrd; booking the backend's state");
	if (done->sent < done->asked.bytes)
		logInfo(what + " trimmed to " + formatSize(done->sent) + " to stay within limits.min/max: " + backend +
		        " has " + formatSize(done->before.value_or(0)) + " plugged");
	if (done->result.code != 0)
		logWarning(what + " failed after " + formatSize(done->result.done) + ": " + done->result.message);
	else if (done->result.done > done->sent)
		logWarning(backend + " did more than asked: " + formatSize(done->result.done) + " for a " +
		           actionName(done->asked.action) + " of " + formatSize(done->sent) +
		           "; booking the state it reports");
	else if (done->result.done < done->sent)
		logInfo(what + " partly done: " + formatSize(done->result.done) + " (a partial result is normal)");
	const bool wasConnected = state_.connected;
	if (done->state) {
		state_ = done->state.value();
		if (done->asked.action != Decision::Action::None)
			logInfo(what + " finished in " + formatDuration(done->call) + ": " + describeState(state_));
	} else {
		logError(done->state.error().message + "; keeping the last known state");
	}
	const TimePoint t = now();
	// A backend that lost its host (the broker is away) is asked again with
	// a doubling pause; decisions wait until it is back.
	if (!state_.connected) {
		if (wasConnected || refreshBackoff_.count() == 0)
			logWarning("backend '" + backend_->name() +
			           "' is not connected; asking again with a growing pause");
		refreshBackoff_ = std::min<Micros>(std::max<Micros>(refreshBackoff_ * 2, std::chrono::seconds(1)),
		                                   std::chrono::seconds(30));
		refreshAt_ = t + refreshBackoff_;
	} else if (!wasConnected) {
		logInfo("backend '" + backend_->name() + "' is connected: " + describeState(state_));
		refreshBackoff_ = Micros(0);
	}
	if (done->asked.action == Decision::Action::None) {
		rearmTimer();
		return;
	}
	if (auto s = sampler_->read())
		lastSample_ = *s;
	TraceRecord r;
	r.type = TraceRecord::Type::Result;
	r.asked = done->asked;
	r.result = done->result;
	r.call = done->call;
	r.sample = lastSample_;
	record(r, t);
	policy_->onResult(t, done->asked, done->result, lastSample_, state_);
	updateGuard();
	correctBounds();
	rearmTimer();
	notifyStatus();
}

// A backend that did more than asked, or a device resized outside vmrd, can
// leave the plugged total outside limits.min/max.  The way back ignores
// the rate limit and step_max: the limits are the promise to the operator.
std::optional<Decision> Daemon::boundsCorrection() const
{
	const Limits &l = config_.limits;
	const uint64_t block = std::max<uint64_t>(state_.blockSize, 1);
	const uint64_t floor = std::min(std::max(l.min, state_.minBytes), state_.maxBytes);
	auto roundUp = [&](uint64_t v) { return (v + block - 1) / block * block; };
	if (l.max && state_.plugged > l.max && state_.plugged > floor)
		return Decision{Decision::Action::Unplug,
		                std::min(roundUp(state_.plugged - l.max), state_.plugged - floor),
		                "backend '" + backend_->name() + "' has " + formatSize(state_.plugged) +
		                        " plugged, above limits.max " + formatSize(l.max)};
	if (state_.plugged < floor)
		return Decision{Decision::Action::Plug, roundUp(floor - state_.plugged),
		                "backend '" + backend_->name() + "' has " + formatSize(state_.plugged) +
		                        " plugged, below limits.min " + formatSize(l.min)};
	return std::nullopt;
}

void Daemon::correctBounds()
{
	if (!state_.connected || worker_->busy() || options_.dryRun)
		return;
	auto d = boundsCorrection();
	if (!d) {
		correctAt_.reset();
		return;
	}
	const TimePoint t = now();
	if (correctAt_ && t < *correctAt_)
		return;
	logWarning(d->reason + "; correcting");
	// If this does not bring it back, the next try is a while later.
	correctAt_ = t + std::max<Micros>(config_.limits.minInterval, std::chrono::seconds(5));
	execute(*d);
}

void Daemon::updateGuard()
{
	if (guardFd_ < 0)
		return;
	auto s = sampler_->read();
	if (!s)
		return;
	// Keep the workload's cgroup a margin below the guest's memory: near
	// the limit it is throttled, which PSI reports, instead of OOM-killed.
	constexpr uint64_t floor = 64ull << 20;
	const uint64_t high =
	        std::max(s->mem.memTotal > config_.guard.margin ? s->mem.memTotal - config_.guard.margin : 0, floor);
	const std::string text = std::to_string(high);
	if (::pwrite(guardFd_, text.c_str(), text.size(), 0) < 0)
		logWarning(config_.guard.cgroup + "/memory.high: cannot write " + text + ": " + std::strerror(errno));
	else
		logDebug("guard: " + config_.guard.cgroup + "/memory.high = " + formatSize(high));
}

void Daemon::record(TraceRecord r, TimePoint t)
{
	const bool subscribers = control_ && control_->hasSubscribers();
	if (!trace_.enabled() && !subscribers)
		return;
	r.t = std::chrono::duration_cast<Micros>(t - start_);
	r.state = state_;
	const std::string line = TraceWriter::formatTraceRecord(r);
	trace_.writeLine(line);
	if (subscribers)
		control_->publish(line);
}

void Daemon::rearmTimer()
{
	std::optional<TimePoint> next = policy_->nextCheck();
	auto earliest = [&](const std::optional<TimePoint> &t) {
		if (t && (!next || *t < *next))
			next = t;
	};
	earliest(callDeadline_);
	earliest(rearmAt_);
	earliest(refreshAt_);
	earliest(correctAt_);
	earliest(watchdogAt_);
	if (control_)
		earliest(control_->nextDeadline());
	for (const auto &src : sources_)
		if (src.burst)
			earliest(src.burst->next);
	itimerspec its{};
	if (next) {
		auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(next->time_since_epoch()).count();
		its.it_value.tv_sec = ns / 1000000000;
		its.it_value.tv_nsec = ns % 1000000000;
		if (ns <= 0)
			its.it_value.tv_nsec = 1;
	}
	// A zero it_value disarms the timer: an idle daemon does not wake up.
	::timerfd_settime(timerFd_, TFD_TIMER_ABSTIME, &its, nullptr);
}

Result<nlohmann::json> Daemon::onControl(const ControlRequest &request)
{
	const std::string &command = request.command;
	if (command == "status")
		return status(now());
	if (command == "metrics")
		return nlohmann::json{{"text", metricsText()}};
	if (command == "reclaim") {
		logInfo("vmrdctl reclaim: shrink check now");
		return nlohmann::json{{"decision", describeDecision(checkNow())}};
	}
	if (command == "reload") {
		auto r = reload("vmrdctl reload");
		if (!r)
			return r.error();
		return nlohmann::json{{"reloaded", options_.configPath}};
	}
	// grow or shrink: an operator's resize, within the same limits as any.
	if (!state_.connected)
		return Error{-ENOTCONN, "backend '" + backend_->name() + "' is not connected; try again later"};
	if (worker_->busy())
		return Error{-EBUSY, describeDecision(worker_->current()) + " is in flight; try again when it is done"};
	const bool grow = command == "grow";
	Decision d{grow ? Decision::Action::Plug : Decision::Action::Unplug, request.bytes,
	           "vmrdctl " + command + " " + formatSize(request.bytes)};
	logInfo("vmrdctl " + command + " " + formatSize(request.bytes));
	d = policy_->onRequest(now(), d, state_);
	execute(d);
	rearmTimer();
	return nlohmann::json{{"decision", describeDecision(d)}};
}

nlohmann::json Daemon::status(TimePoint t) const
{
	using json = nlohmann::json;
	auto since = [&](TimePoint at) { return seconds(std::chrono::duration_cast<Micros>(at - start_)); };
	json backend{{"name", backend_->name()},
	             {"connected", state_.connected},
	             {"plugged", state_.plugged},
	             {"min", state_.minBytes},
	             {"max", state_.maxBytes},
	             {"block_size", state_.blockSize},
	             {"in_flight", worker_->busy() ? json(describeDecision(worker_->current())) : json(nullptr)}};
	json policyState = json::object();
	for (const auto &[key, value] : policy_->describeState(t))
		policyState[key] = value;
	json triggers = json::array();
	for (const auto &a : psi_.armed()) {
		json tr{{"source", a.source}, {"trigger", describeTrigger(a.trigger)}, {"armed", a.fd >= 0}};
		if (!sameTriggers({a.trigger}, {a.configured}))
			tr["configured"] = describeTrigger(a.configured);
		triggers.push_back(tr);
	}
	json decisions = json::array();
	for (const auto &r : recent_)
		decisions.push_back({{"t_s", since(r.at)},
		                     {"action", actionName(r.decision.action)},
		                     {"bytes", r.decision.bytes},
		                     {"reason", r.decision.reason},
		                     {"outcome", r.outcome}});
	return json{{"version", VMRD_VERSION},
	            {"pid", ::getpid()},
	            {"uptime_s", since(t)},
	            {"dry_run", options_.dryRun},
	            {"backend", backend},
	            {"limits", {{"min", config_.limits.min}, {"max", config_.limits.max}}},
	            {"memory",
	             {{"mem_total", lastSample_.mem.memTotal},
	              {"mem_available", lastSample_.mem.memAvailable},
	              {"psi_some_avg10", lastSample_.someAvg10},
	              {"psi_full_avg10", lastSample_.fullAvg10}}},
	            {"policy", {{"preset", config_.policy.preset}, {"state", policyState}}},
	            {"psi", triggers},
	            {"decisions", decisions}};
}

std::string Daemon::metricsText() const
{
	MetricGauges g;
	g.state = state_;
	g.sample = lastSample_;
	if (auto statm = ProcFile::open(config_.paths.procfs + "/self/statm", 256)) {
		unsigned long long size = 0, resident = 0;
		auto text = statm->read();
		if (text && std::sscanf(std::string(*text).c_str(), "%llu %llu", &size, &resident) == 2)
			g.residentBytes = resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
	}
	rusage ru{};
	if (::getrusage(RUSAGE_SELF, &ru) == 0)
		g.cpuSeconds = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
		               static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
	return metrics_.render(g);
}

void Daemon::notifyStatus()
{
	std::string last = "none yet";
	for (auto it = recent_.rbegin(); it != recent_.rend(); ++it)
		if (it->decision.action != Decision::Action::None) {
			last = std::string(actionName(it->decision.action)) + " " + formatSize(it->decision.bytes) +
			       (it->outcome.empty() ? "" : " (" + it->outcome + ")");
			break;
		}
	notifySystemd("STATUS=" + formatSize(state_.plugged) + " plugged of " + formatSize(state_.maxBytes) +
	              (state_.connected ? "" : ", backend not connected") + "; last resize: " + last);
}

} // namespace vmrd
