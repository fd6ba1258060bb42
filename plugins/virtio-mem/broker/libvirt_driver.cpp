// SPDX-License-Identifier: MIT
// The libvirt driver: a domain's virtio-mem device through libvirt (its live XML, virDomainUpdateDeviceFlags, events).
#include "broker.h"
#include "domain_xml.h"
#include "driver.h"
#include "libvirt.h"

namespace vmrd::vmem {

namespace {

struct FreeDomain {
	void operator()(virDomain *d) const { virDomainFree(d); }
};

class LibvirtDriver : public Driver
{
public:
	LibvirtDriver(std::string uri, const VmConfig &vm) : uri_(std::move(uri)), name_(vm.name), alias_(vm.device) {}

	// A fresh connection each time: a domain that is not running yet is
	// asked again a second later, and libvirtd may have restarted.
	Status connect() override
	{
		disconnect();
		auto c = LibvirtConnection::open(uri_);
		if (!c)
			return c.error();
		conn_ = std::move(*c);
		dom_.reset(virDomainLookupByName(conn_->get(), name_.c_str()));
		Status s = Ok{};
		if (!dom_)
			s = libvirtError("domain '" + name_ + "'");
		// Watched before asking whether it runs: a stop meanwhile is seen.
		else if (s = conn_->watch(dom_.get()); s && virDomainIsActive(dom_.get()) != 1)
			s = Error{-ENOTCONN, "domain '" + name_ + "' is not running"};
		if (!s)
			disconnect();
		return s;
	}

	void disconnect() override
	{
		dom_.reset();
		conn_.reset();
	}

	bool connected() const override { return dom_ && conn_ && !conn_->closed(); }

	Result<DeviceState> state() override
	{
		auto xml = liveXml();
		if (!xml)
			return xml.error();
		auto d = parseDomainXml(*xml, alias_);
		if (!d)
			return d.error();
		alias_ = d->alias;
		return d->device;
	}

	Status setRequested(uint64_t bytes) override
	{
		auto xml = liveXml();
		if (!xml)
			return xml.error();
		auto device = requestedSizeXml(*xml, alias_, bytes);
		if (!device)
			return device.error();
		if (virDomainUpdateDeviceFlags(dom_.get(), device->c_str(), VIR_DOMAIN_AFFECT_LIVE) < 0)
			return libvirtError("domain '" + name_ + "': setting the requested size of " + alias_);
		return Ok{};
	}

	int eventFd() const override { return conn_ ? conn_->eventFd() : -1; }

	bool takeEvents() override
	{
		auto &e = conn_->events();
		const bool changed = e.sizeChanged.exchange(false);
		if (e.stopped.exchange(false) || e.closed)
			disconnect();
		return changed;
	}

private:
	Result<std::string> liveXml()
	{
		char *xml = virDomainGetXMLDesc(dom_.get(), 0);
		if (!xml)
			return libvirtError("domain '" + name_ + "': reading its XML");
		std::string s(xml);
		free(xml); // NOLINT(cppcoreguidelines-no-malloc): libvirt's allocation
		return s;
	}

	std::string uri_, name_, alias_;
	std::unique_ptr<LibvirtConnection> conn_;
	std::unique_ptr<virDomain, FreeDomain> dom_;
};

} // namespace

std::unique_ptr<Driver> makeLibvirtDriver(const std::string &uri, const VmConfig &vm)
{
	return std::make_unique<LibvirtDriver>(uri, vm);
}

} // namespace vmrd::vmem
