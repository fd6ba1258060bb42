// SPDX-License-Identifier: MIT
// The virtio-serial transport of the guest side.
#include "transport.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

namespace vmrd::vmem {

namespace {

using Clock = std::chrono::steady_clock;

int remainingMs(Clock::time_point end)
{
	auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count();
	return left > 0 ? static_cast<int>(left) : 0;
}

class VirtioSerial : public Transport
{
public:
	explicit VirtioSerial(std::string path) : path_(std::move(path)) {}
	~VirtioSerial() override { close(); }

	Status send(const std::string &line, std::chrono::milliseconds timeout) override
	{
		if (auto s = ensureOpen(); !s)
			return s;
		const auto end = Clock::now() + timeout;
		size_t done = 0;
		while (done < line.size()) {
			ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
			if (n > 0) {
				done += static_cast<size_t>(n);
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno != EAGAIN)
				return fail(errno, "write");
			// EAGAIN: the host end is not connected, or its buffer is full.
			pollfd p{fd_, POLLOUT, 0};
			if (remainingMs(end) == 0 || ::poll(&p, 1, std::min(remainingMs(end), 50)) < 0) {
				if (done == 0)
					return Error{-ENOTCONN,
					             "host broker not connected (" + path_ + " does not take writes)"};
				close(); // half a line went out: start afresh
				return Error{-ETIMEDOUT, "write to " + path_ + " stalled"};
			}
		}
		return Ok{};
	}

	Result<std::string> receive(std::chrono::milliseconds timeout) override
	{
		if (auto s = ensureOpen(); !s)
			return s.error();
		const auto end = Clock::now() + timeout;
		for (;;) {
			char buf[4096];
			ssize_t n = ::read(fd_, buf, sizeof(buf));
			if (n > 0)
				return std::string(buf, static_cast<size_t>(n));
			if (n == 0)
				return Error{-ENOTCONN, "host broker not connected (EOF on " + path_ + ")"};
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return fail(errno, "read").error();
			pollfd p{fd_, POLLIN, 0};
			int left = remainingMs(end);
			if (left == 0 || ::poll(&p, 1, left) == 0)
				return Error{-ETIMEDOUT, "no reply from the host broker on " + path_};
		}
	}

	std::string describe() const override { return path_; }
	int pollFd() const override { return fd_; }

private:
	Status ensureOpen()
	{
		if (fd_ >= 0)
			return Ok{};
		fd_ = ::open(path_.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
		if (fd_ < 0) {
			int err = errno;
			return Error{
			        err == ENOENT ? -ENODEV : -err,
			        path_ + ": " + std::strerror(err) +
			                (err == ENOENT
			                         ? " (no virtio-serial port: add a virtserialport named org.vmrd.0 "
			                           "to the VM, or set the backend option port)"
			                         : "")};
		}
		return Ok{};
	}

	Status fail(int err, const char *op)
	{
		close();
		return Error{-err, std::string(op) + " on " + path_ + ": " + std::strerror(err)};
	}

	void close()
	{
		if (fd_ >= 0)
			::close(fd_);
		fd_ = -1;
	}

	std::string path_;
	int fd_ = -1;
};

} // namespace

std::unique_ptr<Transport> openVirtioSerial(const std::string &path)
{
	return std::make_unique<VirtioSerial>(path);
}

} // namespace vmrd::vmem
