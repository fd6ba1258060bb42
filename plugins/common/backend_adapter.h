// SPDX-License-Identifier: MIT
// The C ABI around a C++ backend: exception barrier, message buffers, struct_size checks and the ops table.
//
// The in-tree C++ plugins each wrote this by hand, slightly differently
// (one wrote messages with snprintf, one caught only std::exception). The
// mock stays plain C: it is the vendors' reference for the bare ABI.
//
// A plugin defines `struct vmrd_backend` with
//   static Result<std::unique_ptr<vmrd_backend>> create(const vmrd_host &, const Options &);
//   Result<vmrd_backend_state> getState();
//   CallResult plug(uint64_t bytes);
//   CallResult unplug(uint64_t bytes);
// and optionally
//   CallResult releaseAll();
//   Result<int> getEventFd();
//   Status ackEvent();
//   std::vector<HeldFd> exportFds();            with adoptFds: memory held in fds
//   void adoptFds(std::vector<HeldFd> fds);     (ABI 1.1), owning them all
//   static Status probe(const vmrd_host &, const Options &);   ABI 1.2: is the device there
// and returns pluginInfo(description, &ops) with ops = backendOps<vmrd_backend>().
// A member it lacks is a NULL in the ops table, which vmrd reports as not
// supported. Header-only, so it takes the plugin's hidden visibility.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <unistd.h>
#include <utility>
#include <vector>

#include <vmrd/plugin.h>

#include "call_result.h"
#include "result.h"

namespace vmrd::plugin {

// One fd that holds memory, with its name (export_fds, adopt_fds).
struct HeldFd {
	int fd = -1;
	std::string name;
};

using Options = std::vector<std::pair<std::string, std::string>>;

// Never writes past `size` (which may be 0) and always ends with a NUL.
inline void writeMessage(char *msg, uint32_t size, std::string_view text)
{
	if (!msg || size == 0)
		return;
	const size_t n = std::min<size_t>(text.size(), size - 1);
	std::memcpy(msg, text.data(), n);
	msg[n] = '\0';
}

// A negative errno for the ABI, whatever the error carried.
inline int fail(char *msg, uint32_t size, const Error &e)
{
	writeMessage(msg, size, e.message);
	return e.code < 0 ? e.code : -EIO;
}

inline CallResult callFailed(const Error &e, uint64_t done = 0)
{
	return CallResult{e.code < 0 ? e.code : -EIO, done, e.message};
}

// No C++ exception may cross the C boundary (plugin.h).
template <typename F> int barrier(char *msg, uint32_t size, F &&f) noexcept
{
	try {
		return f();
	} catch (const std::bad_alloc &) {
		return fail(msg, size, Error{-ENOMEM, "out of memory"});
	} catch (const std::exception &e) {
		return fail(msg, size, Error{-EIO, e.what()});
	} catch (...) {
		return fail(msg, size, Error{-EIO, "unknown exception"});
	}
}

namespace detail {

// What this adapter reads of the host table: everything ABI 1.0 has.
constexpr size_t minHostSize = offsetof(vmrd_host, sysfs_root) + sizeof(const char *);
// The host must leave room for the members every 1.0 plugin fills.
constexpr size_t minStateSize = offsetof(vmrd_backend_state, plugged_bytes) + sizeof(uint64_t);

template <typename B, typename = void> struct HasReleaseAll : std::false_type {
};
template <typename B> struct HasReleaseAll<B, std::void_t<decltype(&B::releaseAll)>> : std::true_type {
};
template <typename B, typename = void> struct HasEventFd : std::false_type {
};
template <typename B> struct HasEventFd<B, std::void_t<decltype(&B::getEventFd)>> : std::true_type {
};
template <typename B, typename = void> struct HasAckEvent : std::false_type {
};
template <typename B> struct HasAckEvent<B, std::void_t<decltype(&B::ackEvent)>> : std::true_type {
};
template <typename B, typename = void> struct HasProbe : std::false_type {
};
template <typename B> struct HasProbe<B, std::void_t<decltype(&B::probe)>> : std::true_type {
};
template <typename B, typename = void> struct HoldsFds : std::false_type {
};
template <typename B>
struct HoldsFds<B, std::void_t<decltype(&B::exportFds), decltype(&B::adoptFds)>> : std::true_type {
};

inline int report(const CallResult &r, uint64_t *done, char *msg, uint32_t size)
{
	if (done)
		*done = r.done;
	if (r.code == 0)
		return 0;
	writeMessage(msg, size, r.message);
	return r.code < 0 ? r.code : -EIO;
}

template <typename B> struct Ops {
	// Dependent on B, so the adapter compiles before the plugin defines it.
	static B &self(vmrd_backend *b) { return *b; }

	// What create() and probe() hand the plugin: the host's table as this
	// plugin knows it, the members an older host lacks zeroed (a plugin
	// that copies it whole would otherwise read past the host's), and the
	// options as strings.
	static Result<std::pair<vmrd_host, Options>> arguments(const vmrd_host *host, const vmrd_option *options,
	                                                       uint32_t n)
	{
		if (!host || host->struct_size < minHostSize)
			return Error{-EINVAL, "the host's service table is shorter than ABI 1.0's"};
		vmrd_host full{};
		std::memcpy(&full, host, std::min<size_t>(host->struct_size, sizeof(full)));
		Options opts;
		for (uint32_t i = 0; i < n; i++)
			opts.emplace_back(options[i].key ? options[i].key : "",
			                  options[i].value ? options[i].value : "");
		return std::make_pair(full, std::move(opts));
	}

	static int create(const vmrd_host *host, const vmrd_option *options, uint32_t n, vmrd_backend **out, char *msg,
	                  uint32_t size)
	{
		return barrier(msg, size, [&] {
			auto args = arguments(host, options, n);
			if (!args)
				return fail(msg, size, args.error());
			auto b = B::create(args->first, args->second);
			if (!b)
				return fail(msg, size, b.error());
			*out = b->release();
			return 0;
		});
	}

	static int probe(const vmrd_host *host, const vmrd_option *options, uint32_t n, char *msg, uint32_t size)
	{
		return barrier(msg, size, [&] {
			auto args = arguments(host, options, n);
			if (!args)
				return fail(msg, size, args.error());
			auto present = B::probe(args->first, args->second);
			return present ? 0 : fail(msg, size, present.error());
		});
	}

	static void destroy(vmrd_backend *b) { delete &self(b); }

	// Copies only what lies within the host's struct_size, which it keeps.
	static int getState(vmrd_backend *b, vmrd_backend_state *st, char *msg, uint32_t size)
	{
		return barrier(msg, size, [&] {
			if (!st || st->struct_size < minStateSize)
				return fail(msg, size, Error{-EINVAL, "the state struct is shorter than ABI 1.0's"});
			auto s = self(b).getState();
			if (!s)
				return fail(msg, size, s.error());
			const uint32_t hostSize = st->struct_size;
			std::memcpy(st, &*s, std::min<size_t>(hostSize, sizeof(*st)));
			st->struct_size = hostSize;
			return 0;
		});
	}

	static int plug(vmrd_backend *b, uint64_t bytes, uint64_t *done, char *msg, uint32_t size)
	{
		if (done)
			*done = 0;
		return barrier(msg, size, [&] { return report(self(b).plug(bytes), done, msg, size); });
	}

	static int unplug(vmrd_backend *b, uint64_t bytes, uint64_t *done, char *msg, uint32_t size)
	{
		if (done)
			*done = 0;
		return barrier(msg, size, [&] { return report(self(b).unplug(bytes), done, msg, size); });
	}

	static int releaseAll(vmrd_backend *b, uint64_t *done, char *msg, uint32_t size)
	{
		if (done)
			*done = 0;
		return barrier(msg, size, [&] { return report(self(b).releaseAll(), done, msg, size); });
	}

	static int getEventFd(vmrd_backend *b, int *fd, char *msg, uint32_t size)
	{
		return barrier(msg, size, [&] {
			auto r = self(b).getEventFd();
			if (!r)
				return fail(msg, size, r.error());
			*fd = *r;
			return 0;
		});
	}

	static int ackEvent(vmrd_backend *b, char *msg, uint32_t size)
	{
		return barrier(msg, size, [&] {
			auto r = self(b).ackEvent();
			return r ? 0 : fail(msg, size, r.error());
		});
	}

	static int exportFds(vmrd_backend *b, vmrd_held_fd *fds, uint32_t capacity, uint32_t *count, char *msg,
	                     uint32_t size)
	{
		return barrier(msg, size, [&] {
			const std::vector<HeldFd> held = self(b).exportFds();
			*count = static_cast<uint32_t>(held.size());
			if (held.size() > capacity)
				return fail(msg, size, Error{-ENOSPC, std::to_string(held.size()) + " fds held"});
			for (size_t i = 0; i < held.size(); i++) {
				fds[i] = vmrd_held_fd{};
				fds[i].fd = held[i].fd;
				held[i].name.copy(fds[i].name, sizeof(fds[i].name) - 1);
			}
			return 0;
		});
	}

	// The fds are the plugin's from the call on: if they cannot even be
	// listed for it, they are closed here.
	static int adoptFds(vmrd_backend *b, const vmrd_held_fd *fds, uint32_t count, char *msg, uint32_t size)
	{
		std::vector<HeldFd> held;
		const int listed = barrier(msg, size, [&] {
			for (uint32_t i = 0; i < count; i++)
				held.push_back({fds[i].fd,
				                std::string(fds[i].name, strnlen(fds[i].name, sizeof(fds[i].name)))});
			return 0;
		});
		if (listed != 0) {
			for (uint32_t i = 0; i < count; i++)
				::close(fds[i].fd);
			return listed;
		}
		return barrier(msg, size, [&] {
			self(b).adoptFds(std::move(held));
			return 0;
		});
	}
};

} // namespace detail

// The plugin's vmrd_plugin_info.  Built here rather than listed in braces:
// C++17 has no designated initializers, and a positional list misses the
// members a later minor appends (-Wmissing-field-initializers).
constexpr vmrd_plugin_info pluginInfo(const char *description, const vmrd_backend_ops *ops, uint32_t flags = 0)
{
	vmrd_plugin_info info{};
	info.struct_size = sizeof(vmrd_plugin_info);
	info.description = description;
	info.ops = ops;
	info.flags = flags;
	return info;
}

template <typename B> constexpr vmrd_backend_ops backendOps()
{
	using O = detail::Ops<B>;
	vmrd_backend_ops ops{};
	ops.struct_size = sizeof(vmrd_backend_ops);
	ops.create = O::create;
	ops.destroy = O::destroy;
	ops.get_state = O::getState;
	ops.plug = O::plug;
	ops.unplug = O::unplug;
	if constexpr (detail::HasReleaseAll<B>::value)
		ops.release_all = O::releaseAll;
	if constexpr (detail::HasEventFd<B>::value)
		ops.get_event_fd = O::getEventFd;
	if constexpr (detail::HasAckEvent<B>::value)
		ops.ack_event = O::ackEvent;
	if constexpr (detail::HoldsFds<B>::value) {
		ops.export_fds = O::exportFds;
		ops.adopt_fds = O::adoptFds;
	}
	if constexpr (detail::HasProbe<B>::value)
		ops.probe = O::probe;
	return ops;
}

} // namespace vmrd::plugin
