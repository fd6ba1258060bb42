// SPDX-License-Identifier: MIT
// The real system calls of the gunyah-membuf backend.
#include "kernel.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <sys/ioctl.h>
#include <unistd.h>

namespace vmrd::gunyah {

namespace {

class SystemKernel : public Kernel
{
public:
	int open(const std::string &path) override
	{
		int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
		return fd >= 0 ? fd : -errno;
	}

	void close(int fd) override { ::close(fd); }

	int hintCreate(int device, qti_virtio_mem_ioc_hint_create_arg &arg) override
	{
		int r;
		do
			r = ::ioctl(device, QTI_VIRTIO_MEM_IOC_HINT_CREATE, &arg);
		while (r < 0 && errno == EINTR);
		return r < 0 ? -errno : 0;
	}

	Result<std::string> readAttribute(const std::string &path) override
	{
		std::ifstream in(path);
		if (!in)
			return Error{-errno, path + ": " + std::strerror(errno)};
		std::stringstream s;
		s << in.rdbuf();
		return s.str();
	}

	Status writeAttribute(const std::string &path, const std::string &value) override
	{
		std::ofstream out(path);
		out << value;
		out.flush();
		if (!out)
			return Error{-EIO, path + ": cannot write '" + value + "'"};
		return Ok{};
	}
};

} // namespace

std::unique_ptr<Kernel> systemKernel()
{
	return std::make_unique<SystemKernel>();
}

} // namespace vmrd::gunyah
