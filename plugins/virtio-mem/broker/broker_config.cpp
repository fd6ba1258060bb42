// SPDX-License-Identifier: MIT
// vmrd-broker's config file: the host's limits and the VMs it serves.
#include "broker.h"

#include "yaml_reader.h"

namespace vmrd::vmem {

namespace {

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
			r.onlyKeys(h, "host", {"reserve", "budget", "requests_per_second", "procfs"});
			r.size(h, "reserve", "host", c.reserve);
			r.size(h, "budget", "host", c.budget);
			r.count(h, "requests_per_second", "host", 1, 1000, c.requestsPerSecond);
			r.text(h, "procfs", "host", c.procfs);
		}
	}
	r.logging(root, c.logLevel);
	YAML::Node vms = root["vms"];
	if (!vms || !vms.IsSequence() || vms.size() == 0) {
		r.fail(vms ? vms : root, "vms", "expected a non-empty list of VMs");
		return c;
	}
	for (size_t i = 0; i < vms.size(); i++) {
		const std::string key = "vms[" + std::to_string(i) + "]";
		const YAML::Node n = vms[i];
		if (!r.map(n, key))
			continue;
		r.onlyKeys(n, key, {"name", "qmp", "device", "channel", "min", "max"});
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
		if (vm.min > vm.max)
			r.fail(n["min"] ? n["min"] : n, key + ".min", "is more than max");
		for (const auto &other : c.vms)
			if (other.name == vm.name)
				r.fail(n["name"], key + ".name", "'" + vm.name + "' is listed twice");
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
