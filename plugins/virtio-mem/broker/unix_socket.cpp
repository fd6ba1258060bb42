// SPDX-License-Identifier: MIT
// The broker's one way to connect to a unix stream socket.
#include "unix_socket.h"

#include <cerrno>
#include <cstring>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace vmrd::vmem {

int connectUnix(const std::string &path)
{
	sockaddr_un addr{};
	addr.sun_family = AF_UNIX;
	if (path.size() >= sizeof(addr.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
	int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0) {
		int err = errno;
		::close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

} // namespace vmrd::vmem
