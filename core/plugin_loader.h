// SPDX-License-Identifier: MIT
// Finds, checks and loads backend plugins through Boost.DLL, and wraps backend objects.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <vmrd/plugin.h>

#include "fd_store.h"
#include "model.h"
#include "result.h"

namespace boost::dll {
class shared_library;
}

namespace vmrd {

// What a plugin says of itself: its manifest, read without running its
// code, and once it is loaded the description from its entry point.
struct PluginInfo {
	std::string name;
	std::string version;
	std::string vendor;
	std::string description;  // only from load(): it takes running the plugin's code
	bool testBackend = false; // VMRD_PLUGIN_TEST_BACKEND, also only from load()
	std::string path;
	uint32_t abiMajor = 0;
	uint32_t abiMinor = 0;
};

// A loaded plugin library.  Backends keep it alive through shared ownership,
// so the code they point into is never unloaded under them.
class Plugin
{
public:
	Plugin(std::shared_ptr<boost::dll::shared_library> lib, const vmrd_plugin_info *info, PluginInfo meta);
	~Plugin();
	const PluginInfo &info() const { return meta_; }
	const vmrd_backend_ops &ops() const { return *info_->ops; }

	// Whether the plugin's ops table is long enough to hold `member`.
	template <typename F> bool hasOp(F vmrd_backend_ops::*member) const
	{
		const auto &o = ops();
		const auto offset = reinterpret_cast<const char *>(&(o.*member)) - reinterpret_cast<const char *>(&o);
		return static_cast<size_t>(offset) + sizeof(F) <= o.struct_size && o.*member != nullptr;
	}

private:
	std::shared_ptr<boost::dll::shared_library> lib_;
	const vmrd_plugin_info *info_;
	PluginInfo meta_;
};

// One backend object created by a plugin.  Not thread-safe: the daemon calls
// it from one thread at a time, as the ABI requires.
class Backend
{
public:
	struct Paths {
		std::string procfs = "/proc";
		std::string sysfs = "/sys";
	};

	using Options = std::vector<std::pair<std::string, std::string>>;

	static Result<std::unique_ptr<Backend>> create(std::shared_ptr<Plugin> plugin, const Options &options,
	                                               Paths paths);
	// Whether the plugin's device is there (probe, ABI 1.2), without
	// creating a backend: Ok, or -ENODEV saying what is missing, or
	// another error; -EOPNOTSUPP for a plugin without probe.
	static Status probe(std::shared_ptr<Plugin> plugin, const Options &options, Paths paths);
	~Backend();
	Backend(const Backend &) = delete;
	Backend &operator=(const Backend &) = delete;

	const std::string &name() const { return plugin_->info().name; }
	const Plugin &plugin() const { return *plugin_; }

	Result<BackendState> state();
	CallResult plug(uint64_t bytes);
	CallResult unplug(uint64_t bytes);
	bool canReleaseAll() const { return plugin_->hasOp(&vmrd_backend_ops::release_all); }
	CallResult releaseAll();
	// The plugin's event fd (get_event_fd), if it has one; main thread.
	std::optional<int> eventFd();
	// Consumes the event fd's readiness (ack_event, where the plugin has it).
	CallResult ackEvent();
	// Whether the plugin holds memory in fds it can hand over (export_fds
	// and adopt_fds, ABI 1.1).
	bool holdsFds() const;
	// Those fds now, the backend's still; worker thread.
	Result<std::vector<HeldFd>> exportFds();
	// Hands back the fds a previous vmrd exported; the backend owns them
	// from the call on.  Main thread, before any other call.
	Status adoptFds(const std::vector<HeldFd> &fds);
	// Called when the backend is about to close an fd it exported
	// (host->forget_fd), on the thread that closes it.
	void onForgetFd(std::function<void(const std::string &)> forget) { forget_ = std::move(forget); }

private:
	Backend(std::shared_ptr<Plugin> plugin, Paths paths);
	std::string describe(const char *op, int code, const char *msg) const;
	// The host callbacks; host_data is the Backend.
	static void hostLog(void *data, int level, const char *message);
	static void hostForgetFd(void *data, const char *name);
	using ResizeOp = int (*)(vmrd_backend *, uint64_t, uint64_t *, char *, uint32_t);
	CallResult resize(const char *name, ResizeOp op, uint64_t bytes);

	std::shared_ptr<Plugin> plugin_;
	Paths paths_;
	vmrd_host host_{};
	vmrd_backend *object_ = nullptr;
	std::function<void(const std::string &)> forget_;
};

class PluginLoader
{
public:
	// Directories are searched in order; the first vmrd-backend-<name>.so wins.
	explicit PluginLoader(std::vector<std::string> dirs);

	const std::vector<std::string> &dirs() const { return dirs_; }

	Result<std::shared_ptr<Plugin>> load(const std::string &name) const;
	// Checks and loads one file; `name` is what the file name promises.
	static Result<std::shared_ptr<Plugin>> loadFile(const std::string &path, const std::string &name);
	// Loads a file whose manifest was checked (inspect(), or
	// vmrd-plugin-check): dlopen, then the entry point and its tables.
	static Result<std::shared_ptr<Plugin>> loadLibrary(PluginInfo meta);
	// The checks that need no plugin code: the name, who may write the
	// file, its ELF manifest and ABI.  The way libcamera reads its IPA
	// module info: a file that is not a plugin never runs in vmrd.
	static Result<PluginInfo> inspect(const std::string &path, const std::string &name);

	struct Listing {
		std::string path;
		bool ok = false;
		PluginInfo info;     // when ok; without description (see inspect)
		std::string problem; // when not
	};
	// Every file in the directories, with its manifest or why it was
	// rejected; loads none of them, so a file that passes here can still
	// fail to load (no entry point, a short ops table).
	std::vector<Listing> list() const;

private:
	std::vector<std::string> dirs_;
};

// The built-in plugin directory, from the build (libdir/vmrd/plugins).
std::string defaultPluginDir();

} // namespace vmrd
