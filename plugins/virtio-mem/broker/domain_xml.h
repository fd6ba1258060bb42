// SPDX-License-Identifier: MIT
// A libvirt domain's XML as the broker reads it: its virtio-mem device, the vmrd channel and vmrd's metadata.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "protocol.h"
#include "result.h"

namespace vmrd::vmem {

// The namespace of vmrd's element in a domain's <metadata>:
//   <vmrd:vm xmlns:vmrd='urn:vmrd:domain:1' min='1G' max='8G' weight='100'/>
// min and max (sizes as in the broker's YAML) are the range the host lets
// the VM's virtio-mem device take, weight its claim on contended memory;
// each may be left out.
inline constexpr const char *vmrdMetadataNs = "urn:vmrd:domain:1";
// The name of the guest's virtio-serial port that vmrd talks on.
inline constexpr const char *vmrdChannelName = "org.vmrd.0";

struct DomainXml {
	std::string name;
	std::string alias;                // the virtio-mem device's, as libvirt names it (e.g. virtiomem0)
	DeviceState device;               // block, size (<current>) and requested; no range
	uint64_t deviceSize = 0;          // <target><size>: the most the device can plug
	std::string channel;              // the unix socket of the org.vmrd.0 channel; empty without one
	std::optional<uint64_t> min, max; // from vmrd's metadata
	std::optional<unsigned> weight;
};

// Reads a domain's live XML.  `alias`: the virtio-mem device to take,
// empty for the first one.  An error names the domain and what it lacks.
Result<DomainXml> parseDomainXml(const std::string &xml, const std::string &alias = "");

// The XML of the domain's virtio-mem device `alias` with its <requested>
// set to `bytes` (rounded down to KiB), for virDomainUpdateDeviceFlags.
Result<std::string> requestedSizeXml(const std::string &domainXml, const std::string &alias, uint64_t bytes);

} // namespace vmrd::vmem
