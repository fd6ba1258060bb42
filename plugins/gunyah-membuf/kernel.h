// SPDX-License-Identifier: MIT
// The narrow seam between the gunyah-membuf backend and the kernel: every system call it makes.
#pragma once

#include <memory>
#include <string>

#include "qti_virtio_mem.h"
#include "result.h"

namespace vmrd::gunyah {

class Kernel
{
public:
	virtual ~Kernel() = default;
	// open(2) read-write; a file descriptor or a negative errno.
	virtual int open(const std::string &path) = 0;
	virtual void close(int fd) = 0;
	// QTI_VIRTIO_MEM_IOC_HINT_CREATE on the device fd: 0 or a negative errno.
	virtual int hintCreate(int device, qti_virtio_mem_ioc_hint_create_arg &arg) = 0;
	// A sysfs attribute's text, or an error naming it.
	virtual Result<std::string> readAttribute(const std::string &path) = 0;
	virtual Status writeAttribute(const std::string &path, const std::string &value) = 0;
};

// The real thing: open(2), close(2), ioctl(2), and files under /sys.
std::unique_ptr<Kernel> systemKernel();

} // namespace vmrd::gunyah
