// SPDX-License-Identifier: MIT
// The daemon: one epoll loop over PSI triggers, a timer, signals and the backend worker.
#include "daemon.h"

#include <cstring>
#include <csignal>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "log.h"

namespace vmrd {

namespace {

// epoll data tags; PSI triggers use their index, below this.
constexpr uint64_t tagTimer = 1ull << 32;
constexpr uint64_t tagSignal = tagTimer + 1;
constexpr uint64_t tagWorker = tagTimer + 2;

std::string describeState(const BackendState &s)
{
	return formatSize(s.plugged) + " plugged (range " + formatSize(s.minBytes) + " to " + formatSize(s.maxBytes) +
	       ", block " + formatSize(s.blockSize) + ")";
}

} // namespace

BackendWorker::BackendWorker(Backend &backend) : backend_(backend)
{
	eventFd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (eventFd_ < 0)
		throw std::system_error(errno, std::generic_category(), "eventfd");
	thread_ = std::thread([this] { run(); });
}

BackendWorker::~BackendWorker()
{
	{
		std::lock_guard<std::mutex> lock(mutex_);
		stop_ = true;
	}
	cv_.notify_all();
	thread_.join();
	::close(eventFd_);
}

void BackendWorker::submit(const Decision &d)
{
	{
		std::lock_guard<std::mutex> lock(mutex_);
		job_ = d;
	}
	busy_ = true;
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
		Decision d = *job_;
		lock.unlock();
		Done done{d, {}, Error{}};
		done.result = d.action == Decision::Action::Plug ? backend_.plug(d.bytes) : backend_.unplug(d.bytes);
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
    : config_(config), backend_(std::move(backend)), options_(options), policy_(config.policy, config.limits)
{
}

Daemon::~Daemon()
{
	worker_.reset();
	for (int fd : {epollFd_, timerFd_, signalFd_})
		if (fd >= 0)
			::close(fd);
}

std::optional<MemInfo> Daemon::sample()
{
	auto text = meminfo_->read();
	if (!text) {
		logError(text.error().message);
		return std::nullopt;
	}
	auto m = parseMeminfo(*text);
	if (!m)
		logError(meminfo_->path() + ": cannot parse (MemTotal, MemFree or MemAvailable missing or malformed)");
	return m;
}

int Daemon::run()
{
	auto st = backend_->state();
	if (!st) {
		logError(st.error().message);
		return 1;
	}
	state_ = *st;
	auto mi = ProcFile::open(config_.paths.procfs + "/meminfo");
	if (!mi) {
		logError(mi.error().message);
		return 1;
	}
	meminfo_ = std::move(*mi);

	std::vector<std::string> sources = config_.psi.cgroups;
	if (config_.psi.system)
		sources.insert(sources.begin(), config_.paths.procfs + "/pressure/memory");
	auto psi = PsiMonitor::arm(sources, config_.psi.triggers);
	if (!psi) {
		logError(psi.error().message);
		return 1;
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
	worker_ = std::make_unique<BackendWorker>(*backend_);

	auto watch = [&](int fd, uint32_t events, uint64_t tag) {
		epoll_event ev{};
		ev.events = events;
		ev.data.u64 = tag;
		return ::epoll_ctl(epollFd_, EPOLL_CTL_ADD, fd, &ev) == 0;
	};
	bool ok = watch(timerFd_, EPOLLIN, tagTimer) && watch(signalFd_, EPOLLIN, tagSignal) &&
	          watch(worker_->eventFd(), EPOLLIN, tagWorker);
	for (size_t i = 0; ok && i < psi->armed().size(); i++)
		ok = watch(psi->armed()[i].fd, EPOLLPRI, i);
	if (!ok) {
		logError(std::string("epoll_ctl: ") + std::strerror(errno));
		return 1;
	}

	logInfo("running with backend '" + backend_->name() + "': " + describeState(state_) +
	        (options_.dryRun ? "; dry run: plug and unplug are logged, never called" : ""));

	for (;;) {
		epoll_event events[16];
		int n = ::epoll_wait(epollFd_, events, 16, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			logError(std::string("epoll_wait: ") + std::strerror(errno));
			return 1;
		}
		for (int i = 0; i < n; i++) {
			const uint64_t tag = events[i].data.u64;
			if (tag == tagTimer) {
				onTimer();
			} else if (tag == tagWorker) {
				onWorkerDone();
			} else if (tag == tagSignal) {
				signalfd_siginfo si;
				if (::read(signalFd_, &si, sizeof(si)) != sizeof(si))
					continue;
				if (si.ssi_signo == SIGUSR1) {
					logInfo("SIGUSR1: shrink check now");
					if (auto mem = sample())
						execute(policy_.onTimer(now(), *mem, state_));
					rearmTimer();
					continue;
				}
				if (si.ssi_signo == SIGHUP) {
					logWarning("SIGHUP: configuration reload is not available yet; restart vmrd to "
					           "apply changes");
					continue;
				}
				logInfo(std::string("received ") + strsignal(static_cast<int>(si.ssi_signo)) +
				        ", stopping");
				if (worker_->busy() && !worker_->waitIdle(std::chrono::milliseconds(900))) {
					logWarning("abandoning the backend call in flight; memory stays as the backend "
					           "leaves it");
					std::fflush(nullptr);
					::_exit(0);
				}
				return 0;
			} else {
				const auto &armed = psi->armed()[tag];
				if (events[i].events & EPOLLERR) {
					logError("PSI source " + armed.source +
					         " went away (cgroup removed?); no longer watched");
					::epoll_ctl(epollFd_, EPOLL_CTL_DEL, armed.fd, nullptr);
					continue;
				}
				onPressure(armed);
			}
		}
	}
}

void Daemon::onPressure(const PsiMonitor::Armed &trigger)
{
	logDebug("PSI event: " + describeTrigger(trigger.trigger) + " on " + trigger.source);
	auto mem = sample();
	if (!mem)
		return;
	Decision d = policy_.onPressure(now(), *mem, state_);
	d.reason = "PSI " + describeTrigger(trigger.trigger) + ": " + d.reason;
	execute(d);
	rearmTimer();
}

void Daemon::onTimer()
{
	uint64_t expirations;
	if (::read(timerFd_, &expirations, sizeof(expirations)) < 0 && errno == EAGAIN)
		return;
	const TimePoint t = now();
	if (callDeadline_ && t >= *callDeadline_ && worker_->busy()) {
		logWarning("backend '" + backend_->name() + "' call exceeded backend.call_timeout " +
		           formatDuration(config_.backend.callTimeout) + "; still waiting for it");
		callDeadline_.reset();
	}
	if (policy_.nextCheck() && t >= *policy_.nextCheck()) {
		if (auto mem = sample())
			execute(policy_.onTimer(t, *mem, state_));
	}
	rearmTimer();
}

void Daemon::execute(const Decision &d)
{
	if (d.action == Decision::Action::None) {
		logInfo("decision: nothing: " + d.reason);
		return;
	}
	const std::string what = std::string(actionName(d.action)) + " " + formatSize(d.bytes);
	if (options_.dryRun) {
		logInfo("decision: " + what + " (dry run, not done): " + d.reason);
		return;
	}
	if (worker_->busy()) {
		logInfo("decision: " + what + " deferred, a backend call is in flight: " + d.reason);
		return;
	}
	logInfo("decision: " + what + ": " + d.reason);
	worker_->submit(d);
	callDeadline_ = now() + config_.backend.callTimeout;
}

void Daemon::onWorkerDone()
{
	auto done = worker_->collect();
	if (!done)
		return;
	callDeadline_.reset();
	const std::string what = std::string(actionName(done->asked.action)) + " of " + formatSize(done->asked.bytes);
	if (done->result.code != 0)
		logWarning(what + " failed after " + formatSize(done->result.done) + ": " + done->result.message);
	else if (done->result.done < done->asked.bytes)
		logInfo(what + " partly done: " + formatSize(done->result.done));
	if (done->state) {
		state_ = done->state.value();
		logInfo(what + " done: " + describeState(state_));
	} else {
		logError(done->state.error().message + "; keeping the last known state");
	}
	policy_.onResult(now(), done->asked, done->result);
	rearmTimer();
}

void Daemon::rearmTimer()
{
	std::optional<TimePoint> next = policy_.nextCheck();
	if (callDeadline_ && (!next || *callDeadline_ < *next))
		next = callDeadline_;
	itimerspec its{};
	if (next) {
		auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(next->time_since_epoch()).count();
		if (ns <= 0)
			ns = 1;
		its.it_value.tv_sec = ns / 1000000000;
		its.it_value.tv_nsec = ns % 1000000000;
	}
	// A zero it_value disarms the timer: an idle daemon does not wake up.
	::timerfd_settime(timerFd_, TFD_TIMER_ABSTIME, &its, nullptr);
}

} // namespace vmrd
