// SPDX-License-Identifier: MIT
// vmrd-broker's config file: the host's limits and the VMs it serves.
#include "broker.h"

#include "yaml_reader.h"

namespace vmrd::vmem {

namespace {

void checkRange(YamlReader &r, const YAML::Node &n, const std::string &key, uint64_t min, uint64_t max)
{
	if (min > max)
		r.fail(n["min"] ? n["min"] : n, key + ".min", "is more than max");
}

template <typename T>
void uniqueName(YamlReader &r, const YAML::Node &n, const std::string &key, const std::string &name,
                const std::vector<T> &before)
{
	for (const auto &other : before)
		if (other.name == name)
			r.fail(n["name"], key + ".name", "'" + name + "' is listed twice");
}

// A libvirt broker's list: the domains to serve, by name, with what the
// config says instead of their XML.
void readDomains(YamlReader &r, const YAML::Node &vms, BrokerConfig &c)
{
	for (size_t i = 0; i < vms.size(); i++) {
		const std::string key = "vms[" + std::to_string(i) + "]";
		const YAML::Node n = vms[i];
		if (!r.map(n, key))
			continue;
		r.onlyKeys(n, key, {"name", "device", "min", "max", "weight"});
		DomainChoice d;
		if (!n["name"])
			r.fail(n, key + ".name", "missing: the libvirt domain's name");
		r.text(n, "name", key, d.name);
		r.text(n, "device", key, d.device);
		for (auto [field, out] : {std::pair{"min", &d.min}, std::pair{"max", &d.max}})
			if (n[field]) {
				uint64_t v = 0;
				r.size(n, field, key, v);
				*out = v;
			}
		if (n["weight"]) {
			unsigned w = 0;
			r.count(n, "weight", key, minWeight, maxWeight, w);
			d.weight = w;
		}
		checkRange(r, n, key, d.min.value_or(0), d.max.value_or(UINT64_MAX));
		uniqueName(r, n, key, d.name, c.domains);
		c.domains.push_back(d);
	}
}

BrokerConfig readBroker(YamlReader &r, const YAML::Node &root, const std::string &file)
{
	BrokerConfig c;
	c.file = file;
	if (!root || root.IsNull()) {
		r.fail(YAML::Mark(), "", "the file is empty; it needs 'version: 1' and a list of vms");
		return c;
	}
	if (!r.map(root, ""))
		return c;
	r.onlyKeys(root, "", {"version", "host", "vms", "logging"});
	r.version(root, "this broker");
	if (YAML::Node h = root["host"]) {
		if (r.map(h, "host")) {
			r.onlyKeys(h, "host",
			           {"reserve", "budget", "requests_per_second", "procfs", "driver", "libvirt"});
			r.size(h, "reserve", "host", c.reserve);
			r.size(h, "budget", "host", c.budget);
			r.count(h, "requests_per_second", "host", 1, 1000, c.requestsPerSecond);
			r.text(h, "procfs", "host", c.procfs);
			std::string driver = "qmp";
			r.text(h, "driver", "host", driver);
			if (driver == "libvirt")
				c.hypervisor = Hypervisor::Libvirt;
			else if (driver != "qmp")
				r.fail(h["driver"], "host.driver", "'" + driver + "' is not a driver: qmp or libvirt");
			if (h["libvirt"] && c.hypervisor != Hypervisor::Libvirt)
				r.fail(h["libvirt"], "host.libvirt", "is for 'driver: libvirt'");
			r.text(h, "libvirt", "host", c.libvirtUri);
		}
	}
	r.logging(root, c.logLevel);
	YAML::Node vms = root["vms"];
	if (c.hypervisor == Hypervisor::Libvirt) {
		if (vms && (!vms.IsSequence() || vms.size() == 0))
			r.fail(vms, "vms",
			       "expected a non-empty list of domains, or no vms: to serve every domain "
			       "with a virtio-mem device and the org.vmrd.0 channel");
		else if (vms)
			readDomains(r, vms, c);
		return c;
	}
	if (!vms || !vms.IsSequence() || vms.size() == 0) {
		r.fail(vms ? vms : root, "vms", "expected a non-empty list of VMs");
		return c;
	}
	for (size_t i = 0; i < vms.size(); i++) {
		const std::string key = "vms[" + std::to_string(i) + "]";
		const YAML::Node n = vms[i];
		if (!r.map(n, key))
			continue;
		r.onlyKeys(n, key, {"name", "qmp", "device", "channel", "min", "max", "weight"});
		VmConfig vm;
		for (auto [field, out] : {std::pair<const char *, std::string *>{"name", &vm.name},
		                          {"qmp", &vm.qmp},
		                          {"device", &vm.device},
		                          {"channel", &vm.channel}}) {
			if (!n[field])
				r.fail(n, key + "." + field, "missing");
			else
				r.text(n, field, key, *out);
		}
		if (!n["max"])
			r.fail(n, key + ".max", "missing: the most memory the host lets this VM plug");
		r.size(n, "min", key, vm.min);
		r.size(n, "max", key, vm.max);
		r.count(n, "weight", key, minWeight, maxWeight, vm.weight);
		checkRange(r, n, key, vm.min, vm.max);
		uniqueName(r, n, key, vm.name, c.vms);
		c.vms.push_back(vm);
	}
	return c;
}

} // namespace

Result<BrokerConfig> parseBrokerConfig(const std::string &text, const std::string &file)
{
	return readYaml<BrokerConfig>(text, file,
	                              [&](YamlReader &r, const YAML::Node &root) { return readBroker(r, root, file); });
}

Result<BrokerConfig> loadBrokerConfig(const std::string &path)
{
	return loadConfigFile<BrokerConfig>(path, parseBrokerConfig);
}

} // namespace vmrd::vmem
