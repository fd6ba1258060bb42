// SPDX-License-Identifier: MIT
// The gunyah-membuf backend's logic: memory as qti_virtio_mem hint fds, behind the Kernel seam.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "call_result.h"
#include "kernel.h"
#include "result.h"

namespace vmrd::gunyah {

struct MembufOptions {
	std::string device = "/dev/qti_virtio_mem";
	std::string sysfsDir = "devices/virtual/qti_virtio_mem/qti_virtio_mem"; // under the sysfs root
	std::string hintName = "vmrd";
};

// Parses backend.options; an unknown key or a bad value is an error naming it.
Result<MembufOptions> parseMembufOptions(const std::vector<std::pair<std::string, std::string>> &options);

// The probe (ABI 1.2): the device node and its sysfs directory both exist.
// Only looks (stat), opens nothing.  -ENODEV names what is missing.
Status membufPresent(const MembufOptions &options, const std::string &sysfsRoot);

// Memory lifetime equals hint fd lifetime: if the daemon dies, the kernel
// closes its fds and the memory goes back to the host, unless a copy of
// each fd is kept outside the daemon (systemd's fd store, through vmrd's
// export_fds and adopt_fds).  Each hint has a name, "hint-N", N counting up
// from the oldest, so a restarted backend adopts the kept ones in order.
class Membuf
{
public:
	using Log = std::function<void(int level, const std::string &)>;
	// Called with a hint's name just before its fd is closed.
	using Forget = std::function<void(const std::string &)>;
	struct Hint {
		int fd;
		std::string name;
	};

	// Opens the device and reads its limits from sysfs.
	static Result<std::unique_ptr<Membuf>> create(Kernel &kernel, const MembufOptions &options,
	                                              const std::string &sysfsRoot, Log log);
	~Membuf();
	Membuf(const Membuf &) = delete;
	Membuf &operator=(const Membuf &) = delete;

	uint64_t blockSize() const { return blockSize_; }
	uint64_t maxBytes() const { return maxBytes_; }
	// Bytes plugged as the device reports it (device_block_plugged), which
	// counts our hints and the kernel's own blocks.
	Result<uint64_t> plugged();

	// One hint per block; stops at the first refusal and reports what it got.
	CallResult plug(uint64_t bytes);
	// Kernel-plugged blocks first (kernel_unplug), then our newest hints.
	CallResult unplug(uint64_t bytes);
	CallResult releaseAll();

	// The live hints, oldest first; the fds stay Membuf's.
	std::vector<Hint> hints() const;
	// Takes hints kept by a previous daemon; those whose name is not a
	// hint's are closed, with a warning.  Owns every fd from the call on.
	void adopt(const std::vector<Hint> &kept);
	void onForget(Forget forget) { forget_ = std::move(forget); }

private:
	Membuf(Kernel &kernel, MembufOptions options, std::string sysfs, Log log)
	    : kernel_(kernel), options_(std::move(options)), sysfs_(std::move(sysfs)), log_(std::move(log))
	{
	}
	Result<uint64_t> readNumber(const char *attribute);

	Kernel &kernel_;
	MembufOptions options_;
	std::string sysfs_; // the device's sysfs directory
	Log log_;
	int device_ = -1;
	uint64_t blockSize_ = 0;
	uint64_t maxBytes_ = 0;
	Forget forget_;
	std::vector<std::pair<uint64_t, int>> hints_; // (number, fd), oldest first, one block each
	uint64_t nextHint_ = 1;
};

} // namespace vmrd::gunyah
