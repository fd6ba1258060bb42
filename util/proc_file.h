// SPDX-License-Identifier: MIT
// A kernel text file opened once and re-read into a buffer allocated at start.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "result.h"

namespace vmrd {

// Opening files under memory pressure allocates, so the daemon opens its
// /proc files once and re-reads them with pread() into a fixed buffer.
class ProcFile
{
public:
	ProcFile() = default;
	ProcFile(ProcFile &&other) noexcept;
	ProcFile &operator=(ProcFile &&other) noexcept;
	ProcFile(const ProcFile &) = delete;
	ProcFile &operator=(const ProcFile &) = delete;
	~ProcFile();

	static Result<ProcFile> open(const std::string &path, size_t capacity = 16384);

	// The whole file as it is now; valid until the next read().  A file
	// larger than the capacity is an error, not a silent truncation.
	Result<std::string_view> read();
	const std::string &path() const { return path_; }

private:
	int fd_ = -1;
	std::string path_;
	// Allocated but zero-filled only at its start (see open()): pages no
	// read reaches stay out of RSS, and out of what mlockall locks.
	std::unique_ptr<char[]> buffer_;
	size_t capacity_ = 0;
};

// For a file read once or seldom, such as a sysfs attribute at start: opens,
// reads and closes, so the buffer is allocated each time.  Files read again
// and again keep a ProcFile open instead.  A sysfs attribute is at most a
// page; the default leaves room for 4 KiB pages.
inline constexpr size_t sysfsAttributeCapacity = 8192;
Result<std::string> readKernelFile(const std::string &path, size_t capacity = sysfsAttributeCapacity);

} // namespace vmrd
