// SPDX-License-Identifier: MIT
// The domains a libvirt broker serves, found on a thread of its own: those with a virtio-mem device and the vmrd
// channel.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "broker.h"
#include "device_link.h"
#include "libvirt.h"

namespace vmrd::vmem {

// Lists the running domains at start, when one starts, and every 10 s;
// each that has a virtio-mem device and a unix channel named org.vmrd.0
// (and is in the config's list, if it has one) is served.  Its range is
// the config's, else vmrd's metadata in its XML (domain_xml.h), else from 0
// to the device's size.  A domain passed over is logged once with why.
class LibvirtDiscovery
{
public:
	// `found` runs on the loop's thread with a served domain, and again
	// when what it says changed; `gone` with the name of a served domain
	// that no longer runs (stopped, migrated away, undefined).  One that
	// starts again is found again.
	LibvirtDiscovery(const BrokerConfig &config, Mailbox &mailbox, std::function<void(const VmConfig &)> found,
	                 std::function<void(const std::string &)> gone);
	~LibvirtDiscovery();
	LibvirtDiscovery(const LibvirtDiscovery &) = delete;
	LibvirtDiscovery &operator=(const LibvirtDiscovery &) = delete;
	bool ok() const { return thread_.joinable(); }

private:
	void run();
	void scan();
	Result<VmConfig> serve(virDomainPtr dom, const std::string &name);
	void passOver(const std::string &name, const std::string &why);

	const BrokerConfig &config_;
	Mailbox &mailbox_;
	std::function<void(const VmConfig &)> found_;
	std::function<void(const std::string &)> gone_;
	std::set<std::string> served_; // found_ and not gone_ since
	std::unique_ptr<LibvirtConnection> conn_;
	std::map<std::string, std::string> told_; // per domain: what was last posted or logged

	int wakeFd_ = -1; // an eventfd: stop
	std::mutex mutex_;
	bool stop_ = false;
	std::thread thread_;
};

} // namespace vmrd::vmem
