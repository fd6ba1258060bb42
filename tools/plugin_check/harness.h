// SPDX-License-Identifier: MIT
// What a clause's child uses to call a plugin as vmrd would, but with buffers and structs placed to catch a plugin that
// oversteps.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <vmrd/plugin.h>

#include "plugin_loader.h"

namespace vmrd::check {

// The sizes of the structs as ABI 1.0 defined them: a plugin built for a
// newer minor may meet a host of 1.0.
constexpr size_t host10Size = offsetof(vmrd_host, sysfs_root) + sizeof(const char *);
constexpr size_t state10Size = offsetof(vmrd_backend_state, plugged_bytes) + sizeof(uint64_t);

// `size` bytes that end where an inaccessible page begins: a read or a
// write past them crashes at once.  Each buffer has its own mapping.
class GuardedBuffer
{
public:
	explicit GuardedBuffer(size_t size);
	~GuardedBuffer();
	GuardedBuffer(const GuardedBuffer &) = delete;
	GuardedBuffer &operator=(const GuardedBuffer &) = delete;
	char *data() { return data_; }

private:
	char *base_ = nullptr;
	size_t mapped_ = 0;
	char *data_ = nullptr;
};

// The buffer a call writes its message into: msg[0] is NUL and the rest is
// 'X', so a message written without its NUL shows.  The guard page follows
// `slack` bytes after it: 0 catches any write past the size (a size of 0
// passes a pointer to the guard page itself), more lets a clause that
// judges something else go on.
class MessageBuffer
{
public:
	MessageBuffer(uint32_t size, size_t slack);
	char *data();
	uint32_t size() const { return size_; }
	// Whether a NUL lies within the size (trivially so for size 0).
	bool terminated() const;
	std::string text() const;

private:
	uint32_t size_;
	size_t slack_;
	GuardedBuffer buf_;
};

// One call's result, for the clauses that judge every call.
struct Call {
	std::string what; // "plug(2 MiB)"
	int ret = 0;
	bool terminated = true;
	std::string message;
};

// The host services vmrd lends.  By default as vmrd lends them, with room
// after the struct; with a size, in a struct of that size before a guard
// page, its members past sizeof(vmrd_host) garbage.
class Host
{
public:
	Host(std::optional<size_t> size, const std::string &procfs, const std::string &sysfs);
	const vmrd_host *get() const { return host_; }
	// The names the plugin passed to forget_fd(), oldest first.
	const std::vector<std::string> &forgotten() const { return forgotten_; }

private:
	static void forget(void *data, const char *name);
	std::string procfs_, sysfs_;
	std::vector<std::string> forgotten_;
	GuardedBuffer buf_;
	vmrd_host *host_;
};

using Options = std::vector<std::pair<std::string, std::string>>;

// The plugin, the options, and one backend created with them.
class Harness
{
public:
	Harness(const Plugin &plugin, Options options, std::string procfs, std::string sysfs)
	    : plugin_(plugin), ops_(plugin.ops()), options_(std::move(options)), procfs_(std::move(procfs)),
	      sysfs_(std::move(sysfs))
	{
	}
	~Harness() { destroy(); }
	Harness(const Harness &) = delete;
	Harness &operator=(const Harness &) = delete;

	// Room after every message buffer (see MessageBuffer); 0 by default.
	void setMessageSlack(size_t slack) { slack_ = slack; }
	// Whether the ops table holds `member` and sets it, as vmrd judges it.
	template <typename F> bool has(F vmrd_backend_ops::*member) const { return plugin_.hasOp(member); }

	// create() with the options (plus `extra`) and a host (see Host).
	Call create(uint32_t msgSize = 512, std::optional<size_t> hostSize = std::nullopt, const Options &extra = {});
	bool created() const { return backend_ != nullptr; }
	void destroy();

	// get_state() into a copy of `state` with room after it, so that a
	// plugin writing past the struct is the state-size clause's alone.
	Call getState(vmrd_backend_state &state, uint32_t msgSize = 512);
	// get_state() into `state` where it lies (the state-size clause).
	Call getStateAt(vmrd_backend_state *state);
	Call plug(uint64_t bytes, uint64_t &done, uint32_t msgSize = 512);
	Call unplug(uint64_t bytes, uint64_t &done, uint32_t msgSize = 512);
	Call releaseAll(uint64_t &done, uint32_t msgSize = 512);
	Call getEventFd(int &fd, uint32_t msgSize = 512);
	Call ackEvent(uint32_t msgSize = 512);
	// export_fds() with room for `capacity`; `fds` gets what it listed.
	Call exportFds(std::vector<vmrd_held_fd> &fds, uint32_t capacity = 64);
	Call adoptFds(const std::vector<vmrd_held_fd> &fds);
	// probe() with the options and a host of its own: no backend needed.
	Call probe(uint32_t msgSize = 512);
	const std::vector<std::string> &forgotten() const { return host_->forgotten(); }
	vmrd_backend *backend() { return backend_; }

private:
	const Plugin &plugin_;
	const vmrd_backend_ops &ops_;
	Options options_;
	std::string procfs_, sysfs_;
	// The options, then `extra`, as the ABI passes them; they point into both.
	std::vector<vmrd_option> optionTable(const Options &extra) const;
	template <typename F> Call call(std::string what, uint32_t msgSize, F f);

	std::unique_ptr<Host> host_; // alive until destroy(), as the ABI promises
	size_t slack_ = 0;
	vmrd_backend *backend_ = nullptr;
};

} // namespace vmrd::check
