// SPDX-License-Identifier: MIT
// The backend worker thread: runs one call and the state read after it.
#include "backend_worker.h"

#include <cstring>
#include <sys/eventfd.h>
#include <system_error>
#include <unistd.h>

#include "log.h"

namespace vmrd {

namespace {

// A small stack: with mlockall(MCL_FUTURE) all of it is resident, and
// glibc's default (8 MiB, from RLIMIT_STACK) would be most of the daemon's
// RSS.  Plugin calls get 256 KiB, like a typical thread.
constexpr size_t workerStack = 256 << 10;

} // namespace

BackendWorker::BackendWorker(Backend &backend, std::function<void()> afterResize)
    : backend_(backend), afterResize_(std::move(afterResize))
{
	eventFd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (eventFd_ < 0)
		throw std::system_error(errno, std::generic_category(), "eventfd");
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

void BackendWorker::submit(const BackendCall &call)
{
	{
		std::lock_guard<std::mutex> lock(mutex_);
		job_ = call;
	}
	cv_.notify_all();
}

std::optional<CallDone> BackendWorker::collect()
{
	uint64_t n;
	while (::read(eventFd_, &n, sizeof(n)) < 0 && errno == EINTR)
		;
	std::lock_guard<std::mutex> lock(mutex_);
	std::optional<CallDone> d = std::move(done_);
	done_.reset();
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
		const BackendCall call = *job_;
		lock.unlock();
		CallDone done{call, {}, Error{}, Micros(0)};
		const auto started = std::chrono::steady_clock::now();
		switch (call.op) {
		case BackendCall::Op::Plug:
			done.result = backend_.plug(call.bytes);
			break;
		case BackendCall::Op::Unplug:
			done.result = backend_.unplug(call.bytes);
			break;
		case BackendCall::Op::ReleaseAll:
			done.result = backend_.releaseAll();
			break;
		case BackendCall::Op::AckEvent:
			done.result = backend_.ackEvent();
			break;
		case BackendCall::Op::ReadState:
			break;
		}
		done.took = std::chrono::duration_cast<Micros>(std::chrono::steady_clock::now() - started);
		const bool resize = call.op == BackendCall::Op::Plug || call.op == BackendCall::Op::Unplug ||
		                    call.op == BackendCall::Op::ReleaseAll;
		if (resize && afterResize_)
			afterResize_();
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

} // namespace vmrd
