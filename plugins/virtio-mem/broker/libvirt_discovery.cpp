// SPDX-License-Identifier: MIT
// The domains a libvirt broker serves, found on a thread of its own.
#include "libvirt_discovery.h"

#include <algorithm>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "domain_xml.h"
#include "log.h"
#include "units.h"

namespace vmrd::vmem {

namespace {

constexpr int rescanMs = 10000;   // besides each domain start: domains that changed otherwise
constexpr int reconnectMs = 1000; // while libvirtd cannot be reached

std::string describe(const VmConfig &vm)
{
	return "device " + vm.device + ", channel " + vm.channel + ", range " + formatSize(vm.min) + " to " +
	       formatSize(vm.max) + ", weight " + std::to_string(vm.weight);
}

} // namespace

LibvirtDiscovery::LibvirtDiscovery(const BrokerConfig &config, Mailbox &mailbox,
                                   std::function<void(const VmConfig &)> found,
                                   std::function<void(const std::string &)> gone)
    : config_(config), mailbox_(mailbox), found_(std::move(found)), gone_(std::move(gone)),
      wakeFd_(::eventfd(0, EFD_CLOEXEC))
{
	if (wakeFd_ >= 0)
		thread_ = std::thread([this] { run(); });
}

LibvirtDiscovery::~LibvirtDiscovery()
{
	{
		std::lock_guard lock(mutex_);
		stop_ = true;
	}
	const uint64_t one = 1;
	[[maybe_unused]] auto n = ::write(wakeFd_, &one, sizeof(one));
	if (thread_.joinable())
		thread_.join();
	if (wakeFd_ >= 0)
		::close(wakeFd_);
}

void LibvirtDiscovery::run()
{
	bool warned = false;
	for (;;) {
		if (!conn_ || conn_->closed()) {
			if (conn_)
				logWarning("the connection to libvirt at " + config_.libvirtUri +
				           " ended; reconnecting");
			conn_.reset();
			auto c = LibvirtConnection::open(config_.libvirtUri);
			Status watching = c ? (*c)->watch(nullptr) : Status(c.error());
			if (watching) {
				conn_ = std::move(*c);
				logInfo("connected to libvirt at " + config_.libvirtUri);
				warned = false;
				scan();
			} else if (!warned) {
				logWarning(watching.error().message + "; retrying every second");
				warned = true;
			}
		}
		pollfd fds[2] = {{wakeFd_, POLLIN, 0}, {conn_ ? conn_->eventFd() : -1, POLLIN, 0}};
		::poll(fds, conn_ ? 2 : 1, conn_ ? rescanMs : reconnectMs);
		{
			std::lock_guard lock(mutex_);
			if (stop_)
				return;
		}
		if (conn_ && !conn_->closed()) {
			auto &e = conn_->events();
			e.started = false;
			e.stopped = false;
			scan();
		}
	}
}

void LibvirtDiscovery::scan()
{
	virDomainPtr *doms = nullptr;
	const int n = virConnectListAllDomains(conn_->get(), &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
	if (n < 0) {
		logWarning(libvirtError("listing libvirt's domains").message);
		return;
	}
	std::set<std::string> running;
	for (int i = 0; i < n; i++) {
		const char *name = virDomainGetName(doms[i]);
		const std::string domain = name ? name : "";
		running.insert(domain);
		auto vm = serve(doms[i], domain);
		if (!vm)
			passOver(domain, vm.error().message);
		else if (told_[domain] != describe(*vm)) {
			told_[domain] = describe(*vm);
			served_.insert(domain);
			logInfo("vm " + domain + ": found in libvirt: " + describe(*vm));
			mailbox_.post([this, vm = *vm] { found_(vm); });
		}
		virDomainFree(doms[i]);
	}
	free(doms); // NOLINT(cppcoreguidelines-no-malloc): libvirt's allocation
	// What stopped is forgotten: found (or passed over) anew if it starts.
	for (auto it = told_.begin(); it != told_.end();)
		it = running.count(it->first) ? std::next(it) : told_.erase(it);
	for (auto it = served_.begin(); it != served_.end();) {
		if (running.count(*it)) {
			++it;
			continue;
		}
		mailbox_.post([this, name = *it] { gone_(name); });
		it = served_.erase(it);
	}
}

// What the broker serves of a running domain, or why it passes it over.
Result<VmConfig> LibvirtDiscovery::serve(virDomainPtr dom, const std::string &name)
{
	const auto &list = config_.domains;
	auto choice = std::find_if(list.begin(), list.end(), [&](const DomainChoice &d) { return d.name == name; });
	if (!list.empty() && choice == list.end())
		return Error{-ENOENT, "not in the config's list of vms"};
	char *text = virDomainGetXMLDesc(dom, 0);
	if (!text)
		return libvirtError("reading its XML");
	const std::string xml(text);
	free(text); // NOLINT(cppcoreguidelines-no-malloc): libvirt's allocation
	auto d = parseDomainXml(xml, choice != list.end() ? choice->device : "");
	if (!d)
		return d.error();
	if (d->channel.empty())
		return Error{-ENODEV,
		             std::string("the domain has no <channel type='unix'> whose <target type='virtio' name='") +
		                     vmrdChannelName + "'/>: add one for vmrd in the guest to talk to the broker"};
	VmConfig vm;
	vm.name = name;
	vm.device = d->alias;
	vm.channel = d->channel;
	const bool listed = choice != list.end();
	vm.min = (listed && choice->min) ? *choice->min : d->min.value_or(0);
	vm.max = std::min((listed && choice->max) ? *choice->max : d->max.value_or(d->deviceSize), d->deviceSize);
	vm.weight = (listed && choice->weight) ? *choice->weight : d->weight.value_or(vm.weight);
	if (vm.min > vm.max)
		return Error{-EINVAL, "the domain's min " + formatSize(vm.min) + " is more than its max " +
		                              formatSize(vm.max) +
		                              " (the config's, vmrd's metadata or the device's size)"};
	return vm;
}

// Logged once for each reason: a domain listed in the config as a warning.
void LibvirtDiscovery::passOver(const std::string &name, const std::string &why)
{
	if (std::exchange(told_[name], why) == why)
		return;
	const std::string line = "domain '" + name + "' is not served: " + why;
	if (config_.domains.empty() || why.rfind("not in the config's list", 0) == 0)
		logInfo(line);
	else
		logWarning(line);
}

} // namespace vmrd::vmem
