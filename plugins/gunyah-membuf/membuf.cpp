// SPDX-License-Identifier: MIT
// The gunyah-membuf backend's logic: memory as qti_virtio_mem hint fds, behind the Kernel seam.
#include "membuf.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <cstring>
#include <sys/stat.h>

#include <vmrd/plugin.h>

#include "units.h"

namespace vmrd::gunyah {

Result<MembufOptions> parseMembufOptions(const std::vector<std::pair<std::string, std::string>> &options)
{
	MembufOptions o;
	for (const auto &[key, value] : options) {
		if (key == "device")
			o.device = value;
		else if (key == "sysfs_dir")
			o.sysfsDir = value;
		else if (key == "hint_name")
			o.hintName = value;
		else
			return Error{-EINVAL, "unknown option '" + key + "' (known: device, sysfs_dir, hint_name)"};
		if (value.empty())
			return Error{-EINVAL, "option '" + key + "' is empty"};
	}
	if (o.hintName.size() >= QTI_VIRTIO_MEM_IOC_MAX_NAME_LEN)
		return Error{-EINVAL, "hint_name is longer than " +
		                              std::to_string(QTI_VIRTIO_MEM_IOC_MAX_NAME_LEN - 1) + " bytes"};
	return o;
}

namespace {

std::string deviceSysfs(const MembufOptions &options, const std::string &sysfsRoot)
{
	return options.sysfsDir.rfind('/', 0) == 0 ? sysfsRoot + options.sysfsDir : sysfsRoot + "/" + options.sysfsDir;
}

// The one wording of "this is no Gunyah guest", for probe and create.
Error missing(const std::string &what)
{
	return Error{-ENODEV,
	             what + " is missing: not a Gunyah guest with qti_virtio_mem (this backend needs Qualcomm's "
	                    "guest kernel)"};
}

} // namespace

Status membufPresent(const MembufOptions &options, const std::string &sysfsRoot)
{
	struct stat st {
	};
	for (const std::string &path : {options.device, deviceSysfs(options, sysfsRoot)})
		if (::stat(path.c_str(), &st) != 0) {
			const int err = errno;
			if (err == ENOENT || err == ENOTDIR)
				return missing(path);
			return Error{-err, path + ": " + std::strerror(err)};
		}
	return Ok{};
}

Result<std::unique_ptr<Membuf>> Membuf::create(Kernel &kernel, const MembufOptions &options,
                                               const std::string &sysfsRoot, Log log)
{
	const std::string sysfs = deviceSysfs(options, sysfsRoot);
	std::unique_ptr<Membuf> m(new Membuf(kernel, options, sysfs, std::move(log)));
	m->device_ = kernel.open(options.device);
	if (m->device_ < 0) {
		const int err = m->device_;
		if (err == -ENOENT || err == -ENODEV || err == -ENXIO)
			return missing(options.device);
		return Error{err, options.device + ": " + std::strerror(-err)};
	}
	auto block = m->readNumber("device_block_size");
	if (!block)
		return block.error();
	auto max = m->readNumber("max_plugin_threshold");
	if (!max)
		return max.error();
	if (*block == 0 || (*block & (*block - 1)))
		return Error{-EINVAL,
		             sysfs + "/device_block_size: " + std::to_string(*block) + " is not a power of two"};
	m->blockSize_ = *block;
	m->maxBytes_ = *max / *block * *block;
	return m;
}

Membuf::~Membuf()
{
	// Closing the hints gives their memory back, as a crash would: the
	// daemon destroys its backend only when it stops, and documents that.
	// A copy kept in the fd store still holds it.
	for (const auto &[n, fd] : hints_)
		kernel_.close(fd);
	if (device_ >= 0)
		kernel_.close(device_);
}

Result<uint64_t> Membuf::readNumber(const char *attribute)
{
	const std::string path = sysfs_ + "/" + attribute;
	auto text = kernel_.readAttribute(path);
	if (!text)
		return Error{text.error().code, text.error().message + " (is this Qualcomm's qti_virtio_mem driver?)"};
	std::string_view v = *text;
	while (!v.empty() && (v.back() == '\n' || v.back() == ' '))
		v.remove_suffix(1);
	uint64_t n = 0;
	auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
	if (v.empty() || ec != std::errc() || p != v.data() + v.size())
		return Error{-EINVAL, path + ": '" + std::string(v) + "' is not a number"};
	return n;
}

Result<uint64_t> Membuf::plugged()
{
	auto blocks = readNumber("device_block_plugged");
	if (!blocks)
		return blocks.error();
	return *blocks * blockSize_;
}

CallResult Membuf::plug(uint64_t bytes)
{
	CallResult o;
	if (bytes == 0 || bytes % blockSize_) {
		o.code = -EINVAL;
		o.message = std::to_string(bytes) + " bytes is not a positive multiple of the block size " +
		            formatSize(blockSize_);
		return o;
	}
	for (uint64_t i = 0; i < bytes / blockSize_; i++) {
		qti_virtio_mem_ioc_hint_create_arg arg{};
		std::strncpy(arg.name, options_.hintName.c_str(), sizeof(arg.name) - 1);
		arg.size = static_cast<__s64>(blockSize_);
		// The ioctl blocks until the memory is plugged.
		int r = kernel_.hintCreate(device_, arg);
		if (r < 0) {
			o.code = r;
			o.message = "QTI_VIRTIO_MEM_IOC_HINT_CREATE of " + formatSize(blockSize_) + " on " +
			            options_.device + " failed after " + formatSize(o.done) + ": " + std::strerror(-r);
			break;
		}
		hints_.emplace_back(nextHint_++, static_cast<int>(arg.fd));
		o.done += blockSize_;
	}
	return o;
}

CallResult Membuf::unplug(uint64_t bytes)
{
	CallResult o;
	uint64_t blocks = bytes / blockSize_;
	// The kernel's own blocks (plugged by its OOM notifier) go first, as
	// the product daemon does.
	auto kernelBlocks = readNumber("kernel_plugged");
	if (kernelBlocks && *kernelBlocks > 0 && blocks > 0) {
		const uint64_t n = std::min(*kernelBlocks, blocks);
		if (auto w = kernel_.writeAttribute(sysfs_ + "/kernel_unplug", std::to_string(n)); w) {
			blocks -= n;
			o.done += n * blockSize_;
		} else {
			log_(VMRD_LOG_WARNING, w.error().message + "; releasing vmrd's own hints only");
		}
	}
	// Then the newest hints: closing a hint fd releases its memory, once
	// no copy of it is kept elsewhere.
	while (blocks > 0 && !hints_.empty()) {
		if (forget_)
			forget_("hint-" + std::to_string(hints_.back().first));
		kernel_.close(hints_.back().second);
		hints_.pop_back();
		blocks--;
		o.done += blockSize_;
	}
	if (o.done == 0) {
		o.code = -EBUSY;
		o.message = "nothing to release: no hint held and no kernel-plugged block";
	}
	return o;
}

std::vector<Membuf::Hint> Membuf::hints() const
{
	std::vector<Hint> out;
	for (const auto &[n, fd] : hints_)
		out.push_back({fd, "hint-" + std::to_string(n)});
	return out;
}

void Membuf::adopt(const std::vector<Hint> &kept)
{
	for (const auto &k : kept) {
		uint64_t n = 0;
		const char *digits = k.name.c_str() + 5;
		auto [end, ec] = std::from_chars(digits, k.name.c_str() + k.name.size(), n);
		if (k.name.compare(0, 5, "hint-") != 0 || ec != std::errc() || *end != '\0' || n == 0) {
			log_(VMRD_LOG_WARNING, "'" + k.name + "' is not a hint this backend exported: closed");
			kernel_.close(k.fd);
			continue;
		}
		hints_.emplace_back(n, k.fd);
		nextHint_ = std::max(nextHint_, n + 1);
	}
	std::sort(hints_.begin(), hints_.end());
}

CallResult Membuf::releaseAll()
{
	CallResult o = unplug(std::numeric_limits<uint64_t>::max() / blockSize_ * blockSize_);
	if (o.code == -EBUSY)
		o = CallResult{};
	return o;
}

} // namespace vmrd::gunyah
