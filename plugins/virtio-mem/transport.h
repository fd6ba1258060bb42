// SPDX-License-Identifier: MIT
// The guest side's channel to the host broker, behind a small interface so that vsock can follow.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "result.h"

namespace vmrd::vmem {

class Transport
{
public:
	virtual ~Transport() = default;
	// Sends a whole line.  -ENOTCONN when no broker is on the other end.
	virtual Status send(const std::string &line, std::chrono::milliseconds timeout) = 0;
	// Reads what is there, waiting up to `timeout` for the first byte.
	// -ENOTCONN on EOF (no broker), -ETIMEDOUT when nothing came.
	virtual Result<std::string> receive(std::chrono::milliseconds timeout) = 0;
	virtual std::string describe() const = 0;
	// The fd that turns readable when bytes arrive, or -1 while closed: it
	// changes when the transport reopens.
	virtual int pollFd() const = 0;
};

// A virtio-serial port (/dev/virtio-ports/<name>).  With no host program on
// the port's socket, a non-blocking write returns EAGAIN and a read EOF.
std::unique_ptr<Transport> openVirtioSerial(const std::string &path);

} // namespace vmrd::vmem
