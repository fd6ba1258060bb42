// SPDX-License-Identifier: MIT
// How the broker reaches one VM's virtio-mem device: QEMU's QMP (qmp_driver.cpp) or libvirt (libvirt_driver.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "protocol.h"
#include "result.h"

namespace vmrd::vmem {

struct VmConfig;

// Synchronous, and used by one thread only: each VM's driver runs on a
// thread of its own (DeviceLink), so a hypervisor that is slow to answer
// delays only its own VM.
class Driver
{
public:
	virtual ~Driver() = default;
	// (Re)connects; Ok once the device can be read and set.
	virtual Status connect() = 0;
	virtual void disconnect() = 0;
	virtual bool connected() const = 0;
	// The device's block, size and requested size (min and max are the
	// broker's, from its config).
	virtual Result<DeviceState> state() = 0;
	virtual Status setRequested(uint64_t bytes) = 0;
	// Readable when the hypervisor sent something unasked; -1 when not
	// connected.
	virtual int eventFd() const = 0;
	// Reads it: true when the device's size may have changed.  Afterwards
	// connected() says whether the connection survived.
	virtual bool takeEvents() = 0;
};

std::unique_ptr<Driver> makeQmpDriver(const VmConfig &vm);
// The domain `vm.name` of the libvirtd at `uri`, its virtio-mem device
// `vm.device` (libvirt_driver.cpp).
std::unique_ptr<Driver> makeLibvirtDriver(const std::string &uri, const VmConfig &vm);

} // namespace vmrd::vmem
