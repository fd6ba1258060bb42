// SPDX-License-Identifier: MIT
// One VM's driver on a thread of its own, reporting to the broker's loop.
#include "device_link.h"

#include <cerrno>
#include <cstring>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "units.h"

namespace vmrd::vmem {

namespace {

void poke(int fd)
{
	const uint64_t one = 1;
	[[maybe_unused]] auto n = ::write(fd, &one, sizeof(one));
}

void consume(int fd)
{
	uint64_t count;
	[[maybe_unused]] auto n = ::read(fd, &count, sizeof(count));
}

constexpr int reconnectMs = 1000; // while the driver cannot connect

} // namespace

Mailbox::Mailbox(EventLoop &loop) : loop_(loop), fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK))
{
	if (fd_ >= 0 && !loop_.add(fd_, EPOLLIN, [this](uint32_t) { run(); })) {
		::close(fd_);
		fd_ = -1;
	}
}

Mailbox::~Mailbox()
{
	if (fd_ >= 0) {
		loop_.remove(fd_);
		::close(fd_);
	}
}

void Mailbox::post(std::function<void()> f)
{
	{
		std::lock_guard lock(mutex_);
		queue_.push_back(std::move(f));
	}
	poke(fd_);
}

void Mailbox::run()
{
	consume(fd_);
	std::vector<std::function<void()>> now;
	{
		std::lock_guard lock(mutex_);
		now.swap(queue_);
	}
	for (auto &f : now)
		f();
}

DeviceLink::DeviceLink(std::string name, std::unique_ptr<Driver> driver, Mailbox &mailbox,
                       std::function<void()> changed)
    : name_(std::move(name)), driver_(std::move(driver)), mailbox_(mailbox), changed_(std::move(changed)),
      wakeFd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK))
{
	if (wakeFd_ >= 0)
		thread_ = std::thread([this] { run(); });
}

DeviceLink::~DeviceLink()
{
	stop();
	if (thread_.joinable())
		thread_.join();
	if (wakeFd_ >= 0)
		::close(wakeFd_);
}

void DeviceLink::stop()
{
	{
		std::lock_guard lock(mutex_);
		stop_ = true;
	}
	if (wakeFd_ >= 0)
		poke(wakeFd_);
}

void DeviceLink::retire(std::function<void()> ended)
{
	if (!ok()) { // no thread to end
		mailbox_.post(std::move(ended));
		return;
	}
	{
		std::lock_guard lock(mutex_);
		ended_ = std::move(ended);
	}
	stop();
}

void DeviceLink::update(std::optional<uint64_t> set, std::function<void(const Status &)> done)
{
	{
		std::lock_guard lock(mutex_);
		// Calls not started yet are one: the newest size, a read after it,
		// and every request waiting on it is answered with its result.
		if (jobs_.empty())
			jobs_.emplace_back();
		if (set)
			jobs_.back().set = set;
		jobs_.back().done.push_back(std::move(done));
	}
	poke(wakeFd_);
}

// The link's thread.
void DeviceLink::run()
{
	bool warned = false;
	for (;;) {
		if (!driver_->connected())
			connect(warned);
		// Events also come in with a command's answer and while the
		// state is read: take them all before sleeping.
		while (driver_->connected() && driver_->takeEvents())
			refresh();
		if (!driver_->connected())
			lost("the connection to its hypervisor ended (QEMU stopped or restarted?)");
		pollfd fds[2] = {{wakeFd_, POLLIN, 0}, {driver_->eventFd(), POLLIN, 0}};
		const bool up = driver_->connected();
		::poll(fds, up ? 2 : 1, up ? -1 : reconnectMs);
		consume(wakeFd_);
		std::deque<Job> jobs;
		{
			std::lock_guard lock(mutex_);
			if (stop_) {
				if (ended_) {
					driver_->disconnect(); // here, not where the loop destroys the link
					mailbox_.post(std::move(ended_));
				}
				return;
			}
			jobs.swap(jobs_);
		}
		for (auto &job : jobs) {
			Status result = Error{-ENOTCONN, "the broker is not connected to this VM's hypervisor now; "
			                                 "try again"};
			if (driver_->connected())
				result = job.set ? set(*job.set) : Ok{};
			if (driver_->connected()) {
				auto read = refresh();
				if (result && !read)
					result = read;
			}
			for (auto &done : job.done)
				mailbox_.post([done = std::move(done), result] { done(result); });
		}
	}
}

// Sets the requested size; how long the hypervisor took is logged at debug
// level (bench/broker.py reads it).
Status DeviceLink::set(uint64_t bytes)
{
	const auto t0 = std::chrono::steady_clock::now();
	Status s = driver_->setRequested(bytes);
	const auto took = std::chrono::duration_cast<Micros>(std::chrono::steady_clock::now() - t0);
	logDebug(name_ + ": setting the requested size to " + formatSize(bytes) + " took " + formatDuration(took) +
	         (s ? "" : ": " + s.error().message));
	return s;
}

void DeviceLink::connect(bool &warned)
{
	auto s = driver_->connect();
	if (s) {
		auto st = driver_->state();
		if (st) {
			logInfo(name_ + ": connected to its device");
			warned = false;
			down_ = false;
			publish(*st);
			return;
		}
		s = st.error();
		driver_->disconnect();
	}
	if (!warned)
		logWarning(name_ + ": " + s.error().message + "; retrying every second");
	warned = true;
}

// Reads the device's state and hands it to the loop's thread.  A device
// that cannot be read is out of reach: the connection is made again.
Status DeviceLink::refresh()
{
	auto s = driver_->state();
	if (s) {
		publish(*s);
		return Ok{};
	}
	driver_->disconnect();
	lost("cannot read the device: " + s.error().message);
	return s.error();
}

void DeviceLink::publish(const DeviceState &s)
{
	mailbox_.post([this, s] {
		state_ = s;
		changed_();
	});
}

// The driver went down: the loop's thread forgets the state, once.
void DeviceLink::lost(const std::string &why)
{
	if (down_)
		return;
	down_ = true;
	logWarning(name_ + ": " + why + "; reconnecting");
	mailbox_.post([this] {
		state_.reset();
		changed_();
	});
}

} // namespace vmrd::vmem
