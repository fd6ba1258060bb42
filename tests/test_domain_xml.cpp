// SPDX-License-Identifier: MIT
// Tests of how the broker reads a libvirt domain's XML: the virtio-mem device, the vmrd channel, vmrd's metadata.
#include <gtest/gtest.h>

#include "domain_xml.h"

using namespace vmrd::vmem;

namespace {

constexpr uint64_t MiB = 1ull << 20;
constexpr uint64_t GiB = 1ull << 30;

// As libvirt 9.0's live XML has them, cut to what the broker reads.
std::string domain(const std::string &metadata, const std::string &devices)
{
	return "<domain type='qemu' id='3'><name>g1</name><uuid>0b2f6a2e-5d1c-4a57-9a9d-3f1c2b7e8d10</uuid>" +
	       metadata + "<devices>" + devices + "</devices></domain>";
}

const std::string channel = R"(<channel type='unix'>
  <source mode='bind' path='/run/vmrd/g1.sock'/>
  <target type='virtio' name='org.vmrd.0' state='connected'/>
  <alias name='channel0'/>
</channel>)";

std::string virtioMem(const std::string &alias, const std::string &requested = "262144",
                      const std::string &current = "<current unit='KiB'>131072</current>")
{
	return "<memory model='virtio-mem'><target><size unit='KiB'>4194304</size><node>0</node>"
	       "<block unit='KiB'>2048</block><requested unit='KiB'>" +
	       requested + "</requested>" + current + "</target><alias name='" + alias +
	       "'/><address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/></memory>";
}

const std::string metadata =
        R"(<metadata><vmrd:vm xmlns:vmrd="urn:vmrd:domain:1" min="256M" max="2G" weight="300"/></metadata>)";

} // namespace

TEST(DomainXml, ReadsTheDeviceTheChannelAndTheRange)
{
	auto d = parseDomainXml(domain(metadata, channel + virtioMem("virtiomem0")));
	ASSERT_TRUE(d) << d.error().message;
	EXPECT_EQ(d->name, "g1");
	EXPECT_EQ(d->alias, "virtiomem0");
	EXPECT_EQ(d->deviceSize, 4 * GiB);
	EXPECT_EQ(d->device.blockSize, 2 * MiB);
	EXPECT_EQ(d->device.requested, 256 * MiB);
	EXPECT_EQ(d->device.size, 128 * MiB);
	EXPECT_EQ(d->channel, "/run/vmrd/g1.sock");
	EXPECT_EQ(d->min, 256 * MiB);
	EXPECT_EQ(d->max, 2 * GiB);
	EXPECT_EQ(d->weight, 300u);
}

TEST(DomainXml, WhatIsLeftOut)
{
	// No metadata, no channel, no <current> yet (before QEMU's first size
	// event): the caller decides.
	auto d = parseDomainXml(domain("", virtioMem("virtiomem0", "0", "")));
	ASSERT_TRUE(d) << d.error().message;
	EXPECT_FALSE(d->min);
	EXPECT_FALSE(d->max);
	EXPECT_FALSE(d->weight);
	EXPECT_EQ(d->channel, "");
	EXPECT_EQ(d->device.size, 0u);
	// Another channel is not vmrd's.
	auto other = parseDomainXml(domain("", "<channel type='unix'><source mode='bind' path='/a'/>"
	                                       "<target type='virtio' name='org.qemu.guest_agent.0'/></channel>" +
	                                               virtioMem("virtiomem0")));
	ASSERT_TRUE(other);
	EXPECT_EQ(other->channel, "");
}

TEST(DomainXml, TheDeviceByAlias)
{
	const auto xml = domain("", virtioMem("virtiomem0") + virtioMem("virtiomem1", "524288"));
	auto first = parseDomainXml(xml);
	ASSERT_TRUE(first);
	EXPECT_EQ(first->alias, "virtiomem0");
	auto second = parseDomainXml(xml, "virtiomem1");
	ASSERT_TRUE(second);
	EXPECT_EQ(second->device.requested, 512 * MiB);
	auto none = parseDomainXml(xml, "virtiomem7");
	ASSERT_FALSE(none);
	EXPECT_EQ(none.error().message, "the domain has no virtio-mem device with alias 'virtiomem7'");
	EXPECT_FALSE(parseDomainXml(xml, "x' or '1'='1"));
}

TEST(DomainXml, UnitsAsLibvirtWritesThem)
{
	auto size = [](const std::string &unit, const std::string &value) {
		auto d = parseDomainXml(
		        domain("", "<memory model='virtio-mem'><target><size unit='" + unit + "'>" + value +
		                           "</size><block unit='KiB'>2048</block><requested>0</requested>"
		                           "</target></memory>"));
		return d ? std::optional(d->deviceSize) : std::nullopt;
	};
	EXPECT_EQ(size("GiB", "4"), 4 * GiB);
	EXPECT_EQ(size("G", "4"), 4 * GiB);
	EXPECT_EQ(size("MB", "3"), 3000000u);
	EXPECT_EQ(size("bytes", "4096"), 4096u);
	EXPECT_FALSE(size("parsecs", "4"));
	EXPECT_FALSE(size("KiB", "-1"));
	EXPECT_FALSE(size("EiB", "99999999999999999999"));
}

TEST(DomainXml, ErrorsSayWhatTheDomainLacks)
{
	struct {
		std::string xml, expected;
	} cases[] = {
	        {"<domain><name>g1", "the domain XML libvirt gave does not parse"},
	        {domain(metadata, channel), "the domain has no <memory model='virtio-mem'> device"},
	        {domain("", "<memory model='virtio-mem'><target><size unit='KiB'>4</size></target></memory>"),
	         "the domain has a virtio-mem device without a readable <size>, <block> and <requested>"},
	        {domain(R"(<metadata><v:vm xmlns:v="urn:vmrd:domain:1" max="lots"/></metadata>)", virtioMem("m")),
	         "the domain has vmrd metadata whose max 'lots' is not a size (such as 512M or 4G)"},
	        {domain(R"(<metadata><v:vm xmlns:v="urn:vmrd:domain:1" weight="0"/></metadata>)", virtioMem("m")),
	         "the domain has vmrd metadata whose weight '0' is not a whole number from 1 to 10000"},
	        {domain(R"(<metadata><v:vm xmlns:v="urn:vmrd:domain:1" weight="1.5"/></metadata>)", virtioMem("m")),
	         "the domain has vmrd metadata whose weight '1.5' is not a whole number from 1 to 10000"},
	};
	for (const auto &c : cases) {
		auto d = parseDomainXml(c.xml);
		ASSERT_FALSE(d) << c.xml;
		EXPECT_EQ(d.error().message, c.expected);
	}
	// Another namespace's element of the same name is not vmrd's.
	auto foreign =
	        parseDomainXml(domain(R"(<metadata><vm xmlns="urn:other" max="lots"/></metadata>)", virtioMem("m")));
	ASSERT_TRUE(foreign);
	EXPECT_FALSE(foreign->max);
}

TEST(DomainXml, RequestedSizeXmlIsTheDeviceWithTheNewSize)
{
	const auto xml = domain(metadata, channel + virtioMem("virtiomem0") + virtioMem("virtiomem1"));
	auto device = requestedSizeXml(xml, "virtiomem1", 768 * MiB + 100);
	ASSERT_TRUE(device) << device.error().message;
	// What libvirt reads back is the same device with the new size.
	auto again = parseDomainXml(domain("", *device));
	ASSERT_TRUE(again) << *device;
	EXPECT_EQ(again->alias, "virtiomem1");
	EXPECT_EQ(again->device.requested, 768 * MiB);
	EXPECT_EQ(again->deviceSize, 4 * GiB);
	EXPECT_EQ(device->find("channel"), std::string::npos) << *device;
	EXPECT_FALSE(requestedSizeXml(xml, "virtiomem9", GiB));
}
