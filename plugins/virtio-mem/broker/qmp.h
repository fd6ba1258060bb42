// SPDX-License-Identifier: MIT
// A small synchronous QMP client: capabilities negotiation, qom-get and qom-set, size-change events noted.
#pragma once

#include <chrono>
#include <cstdint>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "result.h"

namespace vmrd::vmem {

class Qmp
{
public:
	Qmp() = default;
	Qmp(const Qmp &) = delete;
	Qmp &operator=(const Qmp &) = delete;
	~Qmp() { close(); }

	// Connects to QEMU's QMP unix socket and leaves capabilities negotiation.
	Status connect(const std::string &path, std::chrono::milliseconds timeout);
	void close();
	bool connected() const { return fd_ >= 0; }
	int fd() const { return fd_; }

	// Runs one command; asynchronous events read meanwhile are noted (see
	// takeSizeChange) or dropped.
	Result<nlohmann::json> execute(const std::string &command, const nlohmann::json &arguments);
	// Reads pending events, also those that came in with a command's
	// answer; false when QEMU closed the socket.
	bool drain();
	// Whether QEMU reported MEMORY_DEVICE_SIZE_CHANGE for `device` since the
	// last call (or for a device without an id: QEMU omits it for some).
	bool takeSizeChange(const std::string &device);

	Result<uint64_t> getSize(const std::string &device, const char *property);
	Status setRequestedSize(const std::string &device, uint64_t bytes);

private:
	Result<nlohmann::json> readMessage();
	void noteEvent(const nlohmann::json &event);

	int fd_ = -1;
	std::string path_;
	std::string buffer_;
	std::set<std::string> sizeChanged_; // device ids; "" for an event without one
	std::chrono::milliseconds timeout_{2000};
};

} // namespace vmrd::vmem
