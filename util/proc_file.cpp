// SPDX-License-Identifier: MIT
// A kernel text file opened once and re-read into a buffer allocated at start.
#include "proc_file.h"

#include <algorithm>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace vmrd {

namespace {
// What ProcFile::open makes resident of each buffer (see there).
constexpr size_t prefaultBytes = 16384;
} // namespace

ProcFile::ProcFile(ProcFile &&o) noexcept
    : fd_(o.fd_), path_(std::move(o.path_)), buffer_(std::move(o.buffer_)), capacity_(o.capacity_)
{
	o.fd_ = -1;
	o.capacity_ = 0;
}

ProcFile &ProcFile::operator=(ProcFile &&o) noexcept
{
	if (this != &o) {
		if (fd_ >= 0)
			::close(fd_);
		fd_ = o.fd_;
		path_ = std::move(o.path_);
		buffer_ = std::move(o.buffer_);
		capacity_ = o.capacity_;
		o.fd_ = -1;
		o.capacity_ = 0;
	}
	return *this;
}

ProcFile::~ProcFile()
{
	if (fd_ >= 0)
		::close(fd_);
}

Result<ProcFile> ProcFile::open(const std::string &path, size_t capacity)
{
	ProcFile f;
	f.fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
	if (f.fd_ < 0)
		return Error{-errno, path + ": " + std::strerror(errno)};
	f.path_ = path;
	// Not zero-filled as a whole: that would make every page resident,
	// and locked under mlockall (a MiB for zoneinfo, 5 KiB on 2 CPUs).
	// The first pages are touched now, so that a file growing a little
	// (zoneinfo once ZONE_MOVABLE is populated) does not fault in a page
	// under pressure; a larger file faults in its pages at its first read.
	f.buffer_.reset(new char[capacity]);
	f.capacity_ = capacity;
	std::memset(f.buffer_.get(), 0, std::min(capacity, prefaultBytes));
	return f;
}

Result<std::string_view> ProcFile::read()
{
	size_t len = 0;
	for (;;) {
		ssize_t n = ::pread(fd_, buffer_.get() + len, capacity_ - len, static_cast<off_t>(len));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return Error{-errno, path_ + ": read: " + std::strerror(errno)};
		}
		if (n == 0)
			break;
		len += static_cast<size_t>(n);
		if (len == capacity_)
			return Error{-EOVERFLOW,
			             path_ + ": larger than the " + std::to_string(capacity_) + " byte buffer"};
	}
	return std::string_view(buffer_.get(), len);
}

Result<std::string> readKernelFile(const std::string &path, size_t capacity)
{
	auto f = ProcFile::open(path, capacity);
	if (!f)
		return f.error();
	auto text = f->read();
	if (!text)
		return text.error();
	return std::string(*text);
}

} // namespace vmrd
