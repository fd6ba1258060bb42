// SPDX-License-Identifier: MIT
// A libvirt domain's XML as the broker reads it, with libxml2 (what libvirt itself parses it with).
#include "domain_xml.h"

#include <cstring>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>
#include <memory>

#include "broker.h"
#include "units.h"

namespace vmrd::vmem {

namespace {

struct FreeDoc {
	void operator()(xmlDoc *d) const { xmlFreeDoc(d); }
};
struct FreeContext {
	void operator()(xmlXPathContext *c) const { xmlXPathFreeContext(c); }
};
struct FreeObject {
	void operator()(xmlXPathObject *o) const { xmlXPathFreeObject(o); }
};
struct FreeString {
	void operator()(xmlChar *s) const { xmlFree(s); }
};
using Doc = std::unique_ptr<xmlDoc, FreeDoc>;
using Text = std::unique_ptr<xmlChar, FreeString>;

const xmlChar *x(const char *s)
{
	return reinterpret_cast<const xmlChar *>(s);
}

std::string str(const xmlChar *s)
{
	return s ? reinterpret_cast<const char *>(s) : "";
}

// A parsed document and XPath over it, with vmrd's metadata namespace as `vmrd:`.
class Xml
{
public:
	explicit Xml(const std::string &text)
	    : doc_(xmlReadMemory(text.data(), static_cast<int>(text.size()), "domain.xml", nullptr,
	                         XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING))
	{
		if (doc_) {
			ctx_.reset(xmlXPathNewContext(doc_.get()));
			if (ctx_)
				xmlXPathRegisterNs(ctx_.get(), x("vmrd"), x(vmrdMetadataNs));
		}
	}
	bool ok() const { return ctx_ != nullptr; }
	xmlDoc *doc() const { return doc_.get(); }

	// The first node `path` finds below `from` (the document when null).
	xmlNode *node(const std::string &path, xmlNode *from = nullptr) const
	{
		ctx_->node = from ? from : xmlDocGetRootElement(doc_.get());
		std::unique_ptr<xmlXPathObject, FreeObject> o(xmlXPathEvalExpression(x(path.c_str()), ctx_.get()));
		if (!o || !o->nodesetval || o->nodesetval->nodeNr == 0)
			return nullptr;
		return o->nodesetval->nodeTab[0];
	}
	std::string text(const std::string &path, xmlNode *from = nullptr) const
	{
		xmlNode *n = node(path, from);
		return n ? str(Text(xmlNodeGetContent(n)).get()) : "";
	}

private:
	Doc doc_;
	std::unique_ptr<xmlXPathContext, FreeContext> ctx_;
};

// libvirt's memory units (virScaleInteger): the default is KiB; "KB" and
// the like are powers of 1000.
std::optional<uint64_t> scaled(const std::string &value, std::string unit)
{
	if (value.empty() || value.find_first_not_of("0123456789") != std::string::npos || value.size() > 19)
		return std::nullopt;
	const uint64_t n = std::stoull(value);
	if (unit.empty())
		unit = "KiB";
	static const struct {
		const char *name;
		uint64_t factor;
	} units[] = {{"b", 1},
	             {"byte", 1},
	             {"bytes", 1},
	             {"KB", 1000ull},
	             {"k", 1ull << 10},
	             {"KiB", 1ull << 10},
	             {"MB", 1000000ull},
	             {"M", 1ull << 20},
	             {"MiB", 1ull << 20},
	             {"GB", 1000000000ull},
	             {"G", 1ull << 30},
	             {"GiB", 1ull << 30},
	             {"T", 1ull << 40},
	             {"TiB", 1ull << 40}};
	for (const auto &u : units)
		if (unit == u.name)
			return n <= UINT64_MAX / u.factor ? std::optional(n * u.factor) : std::nullopt;
	return std::nullopt;
}

// A size element such as <size unit='KiB'>4194304</size>; nullopt when
// missing or not a size.
std::optional<uint64_t> sizeOf(const Xml &xml, xmlNode *device, const char *element)
{
	xmlNode *n = xml.node(std::string("target/") + element, device);
	if (!n)
		return std::nullopt;
	return scaled(str(Text(xmlNodeGetContent(n)).get()), str(Text(xmlGetProp(n, x("unit"))).get()));
}

std::string devicePath(const std::string &alias)
{
	std::string path = "devices/memory[@model='virtio-mem']";
	if (!alias.empty())
		path += "[alias/@name='" + alias + "']";
	return path;
}

Error lacks(const std::string &what)
{
	return Error{-ENODEV, "the domain " + what};
}

} // namespace

Result<DomainXml> parseDomainXml(const std::string &text, const std::string &alias)
{
	Xml xml(text);
	if (!xml.ok())
		return Error{-EINVAL, "the domain XML libvirt gave does not parse"};
	DomainXml d;
	d.name = xml.text("name");
	if (alias.find('\'') != std::string::npos)
		return Error{-EINVAL, "device '" + alias + "': not a libvirt device alias"};
	xmlNode *mem = xml.node(devicePath(alias));
	if (!mem)
		return lacks(alias.empty() ? "has no <memory model='virtio-mem'> device"
		                           : "has no virtio-mem device with alias '" + alias + "'");
	d.alias = xml.text("alias/@name", mem);
	const auto size = sizeOf(xml, mem, "size"), block = sizeOf(xml, mem, "block");
	const auto requested = sizeOf(xml, mem, "requested");
	if (!size || !block || !requested || *block == 0)
		return lacks("has a virtio-mem device without a readable <size>, <block> and <requested>");
	d.deviceSize = *size;
	d.device.blockSize = *block;
	d.device.requested = *requested;
	// <current> comes with QEMU's size-change events; before the first, the
	// device has plugged nothing.
	d.device.size = sizeOf(xml, mem, "current").value_or(0);
	d.channel = xml.text(std::string("devices/channel[@type='unix'][target/@type='virtio'][target/@name='") +
	                     vmrdChannelName + "']/source/@path");
	if (xmlNode *meta = xml.node("metadata/vmrd:vm")) {
		for (auto [attr, out] : {std::pair{"min", &d.min}, std::pair{"max", &d.max}}) {
			Text value(xmlGetProp(meta, x(attr)));
			if (!value)
				continue;
			*out = parseSize(str(value.get()));
			if (!*out)
				return lacks(std::string("has vmrd metadata whose ") + attr + " '" + str(value.get()) +
				             "' is not a size (such as 512M or 4G)");
		}
		if (Text value(xmlGetProp(meta, x("weight"))); value) {
			const std::string w = str(value.get());
			const bool digits =
			        !w.empty() && w.size() <= 5 && w.find_first_not_of("0123456789") == std::string::npos;
			if (!digits || std::stoul(w) < minWeight || std::stoul(w) > maxWeight)
				return lacks("has vmrd metadata whose weight '" + w + "' is not a whole number from " +
				             std::to_string(minWeight) + " to " + std::to_string(maxWeight));
			d.weight = static_cast<unsigned>(std::stoul(w));
		}
	}
	return d;
}

Result<std::string> requestedSizeXml(const std::string &domainXml, const std::string &alias, uint64_t bytes)
{
	Xml xml(domainXml);
	if (!xml.ok())
		return Error{-EINVAL, "the domain XML libvirt gave does not parse"};
	xmlNode *mem = xml.node(devicePath(alias));
	xmlNode *requested = mem ? xml.node("target/requested", mem) : nullptr;
	if (!requested)
		return lacks("lost its virtio-mem device '" + alias + "'");
	xmlNodeSetContent(requested, x(std::to_string(bytes >> 10).c_str()));
	xmlSetProp(requested, x("unit"), x("KiB"));
	std::unique_ptr<xmlBuffer, decltype(&xmlBufferFree)> buf(xmlBufferCreate(), xmlBufferFree);
	if (!buf || xmlNodeDump(buf.get(), xml.doc(), mem, 0, 0) < 0)
		return Error{-ENOMEM, "cannot write the device's XML"};
	return str(xmlBufferContent(buf.get()));
}

} // namespace vmrd::vmem
