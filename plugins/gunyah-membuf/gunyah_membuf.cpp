// SPDX-License-Identifier: MIT
// gunyah-membuf backend: the C ABI around Membuf, with the real system calls.
#include <memory>

#include <vmrd/plugin.h>

#include "backend_adapter.h"
#include "membuf.h"

VMRD_PLUGIN_MANIFEST("gunyah-membuf", "1.0.0", "vmrd project");

using namespace vmrd;
using namespace vmrd::gunyah;

struct vmrd_backend {
	std::unique_ptr<Kernel> kernel;
	std::unique_ptr<Membuf> membuf;

	static Result<std::unique_ptr<vmrd_backend>> create(const vmrd_host &host, const plugin::Options &options)
	{
		auto o = parseMembufOptions(options);
		if (!o)
			return o.error();
		auto b = std::make_unique<vmrd_backend>();
		b->kernel = systemKernel();
		auto m = Membuf::create(*b->kernel, *o, host.sysfs_root, [host](int level, const std::string &text) {
			host.log(host.host_data, level, text.c_str());
		});
		if (!m)
			return m.error();
		b->membuf = std::move(*m);
		// A 1.0 host has no fd store, and zero here (the adapter's copy).
		if (host.forget_fd)
			b->membuf->onForget(
			        [host](const std::string &name) { host.forget_fd(host.host_data, name.c_str()); });
		return b;
	}

	static Status probe(const vmrd_host &host, const plugin::Options &options)
	{
		auto o = parseMembufOptions(options);
		if (!o)
			return o.error();
		return membufPresent(*o, host.sysfs_root);
	}

	Result<vmrd_backend_state> getState()
	{
		auto plugged = membuf->plugged();
		if (!plugged)
			return plugged.error();
		vmrd_backend_state st{};
		st.flags = VMRD_BACKEND_CONNECTED | VMRD_BACKEND_HOTPLUG;
		st.block_size = membuf->blockSize();
		st.min_bytes = 0;
		st.max_bytes = membuf->maxBytes();
		st.plugged_bytes = *plugged;
		return st;
	}

	CallResult plug(uint64_t bytes) { return membuf->plug(bytes); }
	CallResult unplug(uint64_t bytes) { return membuf->unplug(bytes); }
	CallResult releaseAll() { return membuf->releaseAll(); }

	std::vector<plugin::HeldFd> exportFds()
	{
		std::vector<plugin::HeldFd> out;
		for (auto &h : membuf->hints())
			out.push_back({h.fd, std::move(h.name)});
		return out;
	}

	void adoptFds(std::vector<plugin::HeldFd> fds)
	{
		std::vector<Membuf::Hint> kept;
		kept.reserve(fds.size());
		for (auto &f : fds)
			kept.push_back({f.fd, std::move(f.name)});
		membuf->adopt(kept);
	}
};

namespace {

const vmrd_backend_ops ops = plugin::backendOps<vmrd_backend>();

const vmrd_plugin_info info = plugin::pluginInfo("Qualcomm Gunyah guests: qti_virtio_mem hint fds", &ops);

} // namespace

VMRD_PLUGIN_EXPORT const vmrd_plugin_info *vmrd_plugin_entry_v1(void)
{
	return &info;
}
