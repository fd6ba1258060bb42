// SPDX-License-Identifier: MIT
// An emulated qti_virtio_mem device that follows the kernel's contract, behind the Kernel seam.
#pragma once

#include <cstring>
#include <map>
#include <string>

#include "kernel.h"

namespace vmrd::gunyah {

// The contract (design.md section 5): the device's requested size is the sum
// of the live hints; a hint's size must be > 0 and its reserved fields zero
// (EINVAL); the maximum is enforced; closing a hint fd releases its memory;
// kernel_unplug releases blocks the kernel plugged itself.  Assumed where the
// UAPI is silent: a hint beyond the maximum fails with ENOSPC and a size
// that is not a whole number of blocks with EINVAL.
class EmulatedDevice : public Kernel
{
public:
	EmulatedDevice(std::string device, std::string sysfs, uint64_t block, uint64_t max)
	    : device_(std::move(device)), sysfs_(std::move(sysfs)), block_(block), max_(max)
	{
	}

	uint64_t kernelBlocks = 0;     // plugged by the kernel's OOM notifier
	int badCalls = 0;              // ioctls the emulation refused for bad arguments
	std::map<int, uint64_t> hints; // fd -> bytes

	uint64_t requested() const
	{
		uint64_t sum = kernelBlocks * block_;
		for (const auto &h : hints)
			sum += h.second;
		return sum;
	}

	int open(const std::string &path) override { return path == device_ ? deviceFd : -ENOENT; }

	// A hint lives while any process holds its file: closing one of
	// several references releases nothing.
	void close(int fd) override
	{
		if (--references_[fd] <= 0) {
			references_.erase(fd);
			hints.erase(fd);
		}
	}
	// Another reference to `fd`'s file, as systemd's fd store keeps.
	int keep(int fd)
	{
		references_[fd]++;
		return fd;
	}

	int hintCreate(int device, qti_virtio_mem_ioc_hint_create_arg &arg) override
	{
		if (device != deviceFd)
			return -ENOTTY;
		if (arg.size <= 0 || arg.reserved0 != 0 || arg.reserved1 != 0 ||
		    std::memchr(arg.name, '\0', sizeof(arg.name)) == nullptr ||
		    static_cast<uint64_t>(arg.size) % block_ != 0) {
			badCalls++;
			return -EINVAL;
		}
		if (requested() + static_cast<uint64_t>(arg.size) > max_)
			return -ENOSPC;
		arg.fd = static_cast<__u32>(nextFd_++);
		hints[static_cast<int>(arg.fd)] = static_cast<uint64_t>(arg.size);
		references_[static_cast<int>(arg.fd)] = 1;
		return 0;
	}

	Result<std::string> readAttribute(const std::string &path) override
	{
		const std::string name = path.substr(path.rfind('/') + 1);
		if (path.compare(0, sysfs_.size(), sysfs_) != 0)
			return Error{-ENOENT, path + ": No such file or directory"};
		if (name == "device_block_size")
			return std::to_string(block_) + "\n";
		if (name == "max_plugin_threshold")
			return std::to_string(max_) + "\n";
		if (name == "device_block_plugged")
			return std::to_string(requested() / block_) + "\n";
		if (name == "kernel_plugged")
			return std::to_string(kernelBlocks) + "\n";
		return Error{-ENOENT, path + ": No such file or directory"};
	}

	Status writeAttribute(const std::string &path, const std::string &value) override
	{
		if (path != sysfs_ + "/kernel_unplug")
			return Error{-EACCES, path + ": Permission denied"};
		const uint64_t n = std::stoull(value);
		if (n > kernelBlocks)
			return Error{-EINVAL, path + ": Invalid argument"};
		kernelBlocks -= n;
		return Ok{};
	}

	static constexpr int deviceFd = 3;

private:
	std::string device_, sysfs_;
	uint64_t block_, max_;
	int nextFd_ = 100;
	std::map<int, int> references_; // fd -> references to its file
};

} // namespace vmrd::gunyah
