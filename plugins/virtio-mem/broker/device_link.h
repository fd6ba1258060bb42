// SPDX-License-Identifier: MIT
// One VM's driver on a thread of its own, reporting to the broker's loop: one slow VM never delays another.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "driver.h"
#include "event_loop.h"

namespace vmrd::vmem {

// Runs functions on an event loop's thread, posted from any thread.
class Mailbox
{
public:
	explicit Mailbox(EventLoop &loop);
	~Mailbox();
	Mailbox(const Mailbox &) = delete;
	Mailbox &operator=(const Mailbox &) = delete;
	bool ok() const { return fd_ >= 0; }
	void post(std::function<void()> f);

private:
	void run();

	EventLoop &loop_;
	int fd_ = -1; // an eventfd the loop watches
	std::mutex mutex_;
	std::vector<std::function<void()>> queue_;
};

// The driver connects, reconnects every second while it cannot, sets the
// requested size and follows the hypervisor's events on the link's thread.
// What it learns reaches the loop's thread through the mailbox: the state
// (read after each connect, set and size-change event) and the result of
// each set.  The link must outlive the loop's run.
class DeviceLink
{
public:
	// `changed` runs on the loop's thread whenever state() changed.
	DeviceLink(std::string name, std::unique_ptr<Driver> driver, Mailbox &mailbox, std::function<void()> changed);
	~DeviceLink(); // waits for a command under way (each is limited by the driver)
	DeviceLink(const DeviceLink &) = delete;
	DeviceLink &operator=(const DeviceLink &) = delete;

	// False when the link could not be set up (no eventfd): it does nothing.
	bool ok() const { return thread_.joinable(); }
	// Tells the thread to end after the command under way; the destructor
	// waits for it.  Many links stop faster stopped first, then destroyed.
	void stop();
	// Stops, and once the thread has ended (after everything it posted),
	// runs `ended` on the loop's thread: where the link can be destroyed
	// without waiting.
	void retire(std::function<void()> ended);

	// The device as last read; nullopt while the driver is not connected.
	// Loop thread only.
	const std::optional<DeviceState> &state() const { return state_; }
	// Sets the requested size to `set`, if given, and reads the device
	// again; `done` runs on the loop's thread with the result, once
	// state() has what was read.  Calls run in order; those not started
	// yet are merged into one, with the newest size.
	void update(std::optional<uint64_t> set, std::function<void(const Status &)> done);

private:
	void run();
	void connect(bool &warned);
	Status set(uint64_t bytes);
	Status refresh();
	void publish(const DeviceState &s);
	void lost(const std::string &why);

	std::string name_; // "vm NAME"
	std::unique_ptr<Driver> driver_;
	Mailbox &mailbox_;
	std::function<void()> changed_;
	std::optional<DeviceState> state_; // the loop's copy
	bool down_ = true;                 // the thread's: not connected since lost() or the start

	int wakeFd_ = -1; // an eventfd: a job or stop
	std::mutex mutex_;
	struct Job {
		std::optional<uint64_t> set;
		std::vector<std::function<void(const Status &)>> done;
	};
	std::deque<Job> jobs_;
	bool stop_ = false;
	std::function<void()> ended_; // retire()'s
	std::thread thread_;
};

} // namespace vmrd::vmem
