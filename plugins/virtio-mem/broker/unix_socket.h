// SPDX-License-Identifier: MIT
// The broker's one way to connect to a unix stream socket: QEMU's QMP socket and a guest's channel.
#pragma once

#include <string>

namespace vmrd::vmem {

// A connected, non-blocking, close-on-exec socket, or -1 with errno set
// (ENAMETOOLONG for a path too long; EAGAIN when the listener's backlog is
// full, at once rather than after a wait).
int connectUnix(const std::string &path);

} // namespace vmrd::vmem
