// SPDX-License-Identifier: MIT
// A small synchronous QMP client: capabilities negotiation, qom-get and qom-set, events skipped.
#pragma once

#include <chrono>
#include <cstdint>
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

	// Runs one command; asynchronous events read meanwhile are dropped.
	Result<nlohmann::json> execute(const std::string &command, const nlohmann::json &arguments);
	// Reads and drops pending events; false when QEMU closed the socket.
	bool drain();

	Result<uint64_t> getSize(const std::string &device, const char *property);
	Status setRequestedSize(const std::string &device, uint64_t bytes);

private:
	Result<nlohmann::json> readMessage();

	int fd_ = -1;
	std::string path_;
	std::string buffer_;
	std::chrono::milliseconds timeout_{2000};
};

} // namespace vmrd::vmem
