// SPDX-License-Identifier: MIT
// A kernel text file opened once and re-read into a buffer allocated at start.
#include "proc_file.h"

#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace vmrd {

ProcFile::ProcFile(ProcFile &&o) noexcept : fd_(o.fd_), path_(std::move(o.path_)), buffer_(std::move(o.buffer_))
{
	o.fd_ = -1;
}

ProcFile &ProcFile::operator=(ProcFile &&o) noexcept
{
	if (this != &o) {
		if (fd_ >= 0)
			::close(fd_);
		fd_ = o.fd_;
		path_ = std::move(o.path_);
		buffer_ = std::move(o.buffer_);
		o.fd_ = -1;
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
	f.buffer_.resize(capacity);
	return f;
}

Result<std::string_view> ProcFile::read()
{
	size_t len = 0;
	for (;;) {
		ssize_t n = ::pread(fd_, buffer_.data() + len, buffer_.size() - len, static_cast<off_t>(len));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return Error{-errno, path_ + ": read: " + std::strerror(errno)};
		}
		if (n == 0)
			break;
		len += static_cast<size_t>(n);
		if (len == buffer_.size())
			return Error{-EOVERFLOW,
			             path_ + ": larger than the " + std::to_string(buffer_.size()) + " byte buffer"};
	}
	return std::string_view(buffer_.data(), len);
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
