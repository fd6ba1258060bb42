// SPDX-License-Identifier: MIT
// The QMP driver: a VM's virtio-mem-pci device through QEMU's QMP socket (qom-get, qom-set, size-change events).
#include "broker.h"
#include "driver.h"
#include "qmp.h"

namespace vmrd::vmem {

namespace {

using namespace std::chrono_literals;

// Answers take milliseconds; a QEMU that takes this long is stuck, and the
// connection is made again (what the device did meanwhile is read then).
constexpr auto qmpTimeout = 10000ms;

class QmpDriver : public Driver
{
public:
	explicit QmpDriver(const VmConfig &vm) : path_(vm.qmp), device_(vm.device) {}

	Status connect() override { return qmp_.connect(path_, qmpTimeout); }
	void disconnect() override { qmp_.close(); }
	bool connected() const override { return qmp_.connected(); }

	Result<DeviceState> state() override
	{
		DeviceState s;
		auto size = qmp_.getSize(device_, "size");
		auto requested = size ? qmp_.getSize(device_, "requested-size") : size;
		auto block = requested ? qmp_.getSize(device_, "block-size") : requested;
		if (!block)
			return block.error();
		s.size = *size;
		s.requested = *requested;
		s.blockSize = *block;
		return s;
	}

	Status setRequested(uint64_t bytes) override { return qmp_.setRequestedSize(device_, bytes); }
	int eventFd() const override { return qmp_.fd(); }

	bool takeEvents() override
	{
		qmp_.drain();
		return qmp_.takeSizeChange(device_);
	}

private:
	std::string path_, device_;
	Qmp qmp_;
};

} // namespace

std::unique_ptr<Driver> makeQmpDriver(const VmConfig &vm)
{
	return std::make_unique<QmpDriver>(vm);
}

} // namespace vmrd::vmem
