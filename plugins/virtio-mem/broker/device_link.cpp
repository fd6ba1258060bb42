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

namespace vmrd::vmem {

namespace {

void signal(int fd)
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
	signal(fd_);
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
	thread_ = std::thread([this] { run(); });
}

DeviceLink::~DeviceLink()
{
	{
		std::lock_guard lock(mutex_);
		stop_ = true;
	}
	signal(wakeFd_);
	thread_.join();
	::close(wakeFd_);
}

void DeviceLink::setRequested(uint64_t bytes, std::function<void(const Status &)> done)
{
	{
		std::lock_guard lock(mutex_);
		jobs_.push_back(Job{bytes, std::move(done)});
	}
	signal(wakeFd_);
}

// The link's thread.
void DeviceLink::run()
{
	bool warned = false;
	for (;;) {
		if (!driver_->connected())
			connect(warned);
		pollfd fds[2] = {{wakeFd_, POLLIN, 0}, {driver_->eventFd(), POLLIN, 0}};
		const bool up = driver_->connected();
		::poll(fds, up ? 2 : 1, up ? -1 : reconnectMs);
		consume(wakeFd_);
		std::deque<Job> jobs;
		{
			std::lock_guard lock(mutex_);
			if (stop_)
				return;
			jobs.swap(jobs_);
		}
		for (auto &job : jobs) {
			Status result = driver_->connected()
			                        ? driver_->setRequested(job.bytes)
			                        : Status(Error{-ENOTCONN, "the broker is not connected to this VM's "
			                                                  "hypervisor now; try again"});
			if (driver_->connected())
				refresh();
			mailbox_.post([done = std::move(job.done), result] { done(result); });
		}
		// Events also come in with a command's answer: look after every round.
		if (driver_->connected() && driver_->takeEvents())
			refresh();
		if (!driver_->connected() && up) {
			logWarning(name_ + ": the connection to its hypervisor ended (QEMU stopped or restarted?); "
			                   "reconnecting");
			mailbox_.post([this] {
				state_.reset();
				changed_();
			});
		}
	}
}

void DeviceLink::connect(bool &warned)
{
	if (auto s = driver_->connect(); !s) {
		if (!warned)
			logWarning(name_ + ": " + s.error().message + "; retrying every second");
		warned = true;
		return;
	}
	logInfo(name_ + ": connected to its device");
	warned = false;
	refresh();
}

// Reads the device's state and hands it to the loop's thread.
void DeviceLink::refresh()
{
	auto s = driver_->state();
	if (!s)
		logWarning(name_ + ": cannot read the device: " + s.error().message);
	mailbox_.post([this, s = s ? std::optional(*s) : std::nullopt] {
		state_ = s;
		changed_();
	});
}

} // namespace vmrd::vmem
