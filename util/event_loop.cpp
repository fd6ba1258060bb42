// SPDX-License-Identifier: MIT
// The event loop: epoll, one timerfd for every deadline, handlers by fd.
#include "event_loop.h"

#include <cerrno>
#include <cstring>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

namespace vmrd {

EventLoop::EventLoop()
{
	epollFd_ = ::epoll_create1(EPOLL_CLOEXEC);
	timerFd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (epollFd_ >= 0 && timerFd_ >= 0) {
		epoll_event ev{};
		ev.events = EPOLLIN;
		ev.data.u64 = 0; // the timer's key
		if (::epoll_ctl(epollFd_, EPOLL_CTL_ADD, timerFd_, &ev) != 0) {
			::close(timerFd_);
			timerFd_ = -1;
		}
	}
}

EventLoop::~EventLoop()
{
	for (int fd : {epollFd_, timerFd_})
		if (fd >= 0)
			::close(fd);
}

Status EventLoop::add(int fd, uint32_t events, FdHandler handler)
{
	epoll_event ev{};
	ev.events = events;
	ev.data.u64 = nextKey_;
	if (::epoll_ctl(epollFd_, EPOLL_CTL_ADD, fd, &ev) != 0)
		return Error{-errno, "epoll_ctl(ADD, " + std::to_string(fd) + "): " + std::strerror(errno)};
	watches_[nextKey_] = Watch{fd, std::move(handler)};
	keys_[fd] = nextKey_++;
	return Ok{};
}

Status EventLoop::modify(int fd, uint32_t events)
{
	auto key = keys_.find(fd);
	if (key == keys_.end())
		return Error{-ENOENT, "fd " + std::to_string(fd) + " is not watched"};
	epoll_event ev{};
	ev.events = events;
	ev.data.u64 = key->second;
	if (::epoll_ctl(epollFd_, EPOLL_CTL_MOD, fd, &ev) != 0)
		return Error{-errno, "epoll_ctl(MOD, " + std::to_string(fd) + "): " + std::strerror(errno)};
	return Ok{};
}

void EventLoop::remove(int fd)
{
	// The fd may be closed already, which removed it from epoll.
	(void)::epoll_ctl(epollFd_, EPOLL_CTL_DEL, fd, nullptr);
	auto key = keys_.find(fd);
	if (key == keys_.end())
		return;
	watches_.erase(key->second);
	keys_.erase(key);
}

EventLoop::Timer EventLoop::addTimer(std::function<void()> handler)
{
	for (size_t i = 0; i < timers_.size(); i++)
		if (!timers_[i].second) {
			timers_[i] = {std::nullopt, std::move(handler)};
			return i;
		}
	timers_.emplace_back(std::nullopt, std::move(handler));
	return timers_.size() - 1;
}

void EventLoop::removeTimer(Timer timer)
{
	timers_.at(timer) = {std::nullopt, nullptr};
}

void EventLoop::setTimer(Timer timer, std::optional<TimePoint> at)
{
	timers_.at(timer).first = at;
}

void EventLoop::armTimerFd()
{
	std::optional<TimePoint> next;
	for (const auto &[at, handler] : timers_)
		if (at && (!next || *at < *next))
			next = at;
	itimerspec its{};
	if (next) {
		const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(next->time_since_epoch()).count();
		its.it_value.tv_sec = ns / 1000000000;
		its.it_value.tv_nsec = ns % 1000000000;
		if (ns <= 0)
			its.it_value.tv_nsec = 1;
	}
	// A zero it_value disarms the timer.
	::timerfd_settime(timerFd_, TFD_TIMER_ABSTIME, &its, nullptr);
}

void EventLoop::runTimers(TimePoint now)
{
	uint64_t expirations;
	(void)!::read(timerFd_, &expirations, sizeof(expirations));
	// By index, with the handler copied: a handler may add timers.
	for (size_t i = 0; i < timers_.size(); i++) {
		auto &at = timers_[i].first;
		if (!at || now < *at)
			continue;
		at.reset(); // a handler sets it again if it wants another turn
		const auto handler = timers_[i].second;
		handler();
		if (stopping_)
			return;
	}
}

int EventLoop::run()
{
	stopping_ = false;
	if (afterEach_)
		afterEach_();
	while (!stopping_) {
		armTimerFd();
		epoll_event events[32];
		const int n = ::epoll_wait(epollFd_, events, 32, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (int i = 0; i < n && !stopping_; i++) {
			const uint64_t key = events[i].data.u64;
			if (key == 0) {
				runTimers(std::chrono::steady_clock::now());
				continue;
			}
			auto it = watches_.find(key);
			if (it == watches_.end())
				continue; // removed by an earlier handler in this round
			// A copy: the handler may remove its own watch.
			const FdHandler handler = it->second.handler;
			handler(events[i].events);
		}
		if (afterEach_ && !stopping_)
			afterEach_();
	}
	return 0;
}

} // namespace vmrd
