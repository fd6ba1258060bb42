// SPDX-License-Identifier: MIT
// gunyah-membuf backend: the C ABI around Membuf, with the real system calls.
#include <cstdio>
#include <memory>

#include <vmrd/plugin.h>

#include "membuf.h"

VMRD_PLUGIN_MANIFEST("gunyah-membuf", "1.0.0", "vmrd project");

using namespace vmrd;
using namespace vmrd::gunyah;

struct vmrd_backend {
	vmrd_host host{};
	std::unique_ptr<Kernel> kernel;
	std::unique_ptr<Membuf> membuf;
};

namespace {

int fail(char *msg, uint32_t size, int code, const std::string &text)
{
	if (size > 0)
		std::snprintf(msg, size, "%s", text.c_str());
	return code < 0 ? code : -EIO;
}

int gmCreate(const vmrd_host *host, const vmrd_option *options, uint32_t n, vmrd_backend **out, char *msg,
             uint32_t msgSize)
{
	try {
		std::vector<std::pair<std::string, std::string>> opts;
		for (uint32_t i = 0; i < n; i++)
			opts.emplace_back(options[i].key, options[i].value);
		auto o = parseMembufOptions(opts);
		if (!o)
			return fail(msg, msgSize, o.error().code, o.error().message);
		auto b = std::make_unique<vmrd_backend>();
		b->host = *host;
		b->kernel = systemKernel();
		vmrd_host h = *host;
		auto m = Membuf::create(*b->kernel, *o, host->sysfs_root, [h](int level, const std::string &text) {
			h.log(h.host_data, level, text.c_str());
		});
		if (!m)
			return fail(msg, msgSize, m.error().code, m.error().message);
		b->membuf = std::move(*m);
		*out = b.release();
		return 0;
	} catch (const std::exception &e) {
		return fail(msg, msgSize, -ENOMEM, e.what());
	}
}

void gmDestroy(vmrd_backend *b)
{
	delete b;
}

int gmGetState(vmrd_backend *b, vmrd_backend_state *st, char *msg, uint32_t msgSize)
{
	auto plugged = b->membuf->plugged();
	if (!plugged)
		return fail(msg, msgSize, plugged.error().code, plugged.error().message);
	st->flags = VMRD_BACKEND_CONNECTED | VMRD_BACKEND_HOTPLUG;
	st->block_size = b->membuf->blockSize();
	st->min_bytes = 0;
	st->max_bytes = b->membuf->maxBytes();
	st->plugged_bytes = *plugged;
	return 0;
}

int report(const Membuf::Outcome &o, uint64_t *done, char *msg, uint32_t msgSize)
{
	*done = o.done;
	return o.code ? fail(msg, msgSize, o.code, o.message) : 0;
}

int gmPlug(vmrd_backend *b, uint64_t bytes, uint64_t *done, char *msg, uint32_t msgSize)
{
	return report(b->membuf->plug(bytes), done, msg, msgSize);
}

int gmUnplug(vmrd_backend *b, uint64_t bytes, uint64_t *done, char *msg, uint32_t msgSize)
{
	return report(b->membuf->unplug(bytes), done, msg, msgSize);
}

int gmReleaseAll(vmrd_backend *b, uint64_t *done, char *msg, uint32_t msgSize)
{
	return report(b->membuf->releaseAll(), done, msg, msgSize);
}

const vmrd_backend_ops ops = {
        sizeof(vmrd_backend_ops), 0, gmCreate, gmDestroy, gmGetState, gmPlug, gmUnplug, gmReleaseAll, nullptr, nullptr,
};

const vmrd_plugin_info info = {
        sizeof(vmrd_plugin_info),
        0,
        "Qualcomm Gunyah guests: qti_virtio_mem hint fds",
        &ops,
};

} // namespace

VMRD_PLUGIN_EXPORT const vmrd_plugin_info *vmrd_plugin_entry_v1(void)
{
	return &info;
}
