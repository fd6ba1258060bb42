// SPDX-License-Identifier: MIT
// The real system calls of the gunyah-membuf backend.
#include "kernel.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <sys/ioctl.h>
#include <unistd.h>

#include "proc_file.h"

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

	// Each attribute is opened at its first read and kept: get_state reads
	// device_block_plugged every time, perhaps under memory pressure.  A
	// failed open is not kept, so the next read tries again.
	Result<std::string> readAttribute(const std::string &path) override
	{
		auto it = attributes_.find(path);
		if (it == attributes_.end()) {
			auto f = ProcFile::open(path, sysfsAttributeCapacity);
			if (!f)
				return f.error();
			it = attributes_.emplace(path, std::move(*f)).first;
		}
		auto text = it->second.read();
		if (!text)
			return text.error();
		return std::string(*text);
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

private:
	// The backend calls from one worker thread at a time, so no lock.
	std::map<std::string, ProcFile> attributes_;
};

} // namespace

std::unique_ptr<Kernel> systemKernel()
{
	return std::make_unique<SystemKernel>();
}

} // namespace vmrd::gunyah
