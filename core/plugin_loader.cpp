// SPDX-License-Identifier: MIT
// Finds, checks and loads backend plugins through Boost.DLL, and wraps backend objects.
#include "plugin_loader.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <sys/stat.h>
#include <system_error>
#include <time.h>
#include <unistd.h>

#include <boost/dll/shared_library.hpp>

#include "log.h"
#include "manifest.h"

namespace vmrd {

namespace fs = std::filesystem;

namespace {

constexpr const char *filePrefix = "vmrd-backend-";
constexpr const char *fileSuffix = ".so";

// The smallest tables a 1.0 plugin can have.
constexpr size_t minInfoSize = offsetof(vmrd_plugin_info, ops) + sizeof(void *);
constexpr size_t minOpsSize = offsetof(vmrd_backend_ops, unplug) + sizeof(void *);
// More than any backend should hold: a plugin that asks for room for more
// is broken, not busy.
constexpr size_t maxHeldFds = 4096;

std::string abiString(uint32_t major, uint32_t minor)
{
	return std::to_string(major) + "." + std::to_string(minor);
}

uint64_t hostMonotonicNs(void *)
{
	timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

// A message buffer the plugin writes into; always NUL-terminated after use.
struct MessageBuffer {
	std::array<char, 512> buf{};
	char *data()
	{
		buf[0] = '\0';
		return buf.data();
	}
	uint32_t size() const { return static_cast<uint32_t>(buf.size()); }
	const char *text()
	{
		buf.back() = '\0';
		return buf.data();
	}
};

} // namespace

std::string defaultPluginDir()
{
	return VMRD_PLUGIN_DIR;
}

Plugin::Plugin(std::shared_ptr<boost::dll::shared_library> lib, const vmrd_plugin_info *info, PluginInfo meta)
    : lib_(std::move(lib)), info_(info), meta_(std::move(meta))
{
}

Plugin::~Plugin() = default;

PluginLoader::PluginLoader(std::vector<std::string> dirs) : dirs_(std::move(dirs)) {}

namespace {

// Whoever can write a plugin, or any directory above it, can run code as
// root in vmrd: each must belong to root (or to the user vmrd runs as) and
// be writable by nobody else.  A directory writable by all with the sticky
// bit, such as /tmp, is fine (its owner passed the check above): there only
// the owner of an entry can rename or remove it, and the entries below are
// checked too.
// Both the path as given and where its symlinks lead are checked, since
// whoever can write a directory that holds a symlink can point it elsewhere.
Status checkOwner(const fs::path &p)
{
	struct stat st;
	if (::stat(p.c_str(), &st) != 0)
		return Error{-errno, p.string() + ": " + std::strerror(errno)};
	const char *what = S_ISDIR(st.st_mode) ? "the directory " : "";
	if (st.st_uid != 0 && st.st_uid != ::geteuid())
		return Error{-EPERM, std::string("refused: ") + what + p.string() + " belongs to uid " +
		                             std::to_string(st.st_uid) +
		                             ", not root: whoever owns it could run code as root in vmrd (chown root)"};
	const bool sticky = S_ISDIR(st.st_mode) && (st.st_mode & S_ISVTX);
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !sticky) {
		char mode[8];
		std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
		return Error{-EPERM, std::string("refused: ") + what + p.string() + " is writable by " +
		                             ((st.st_mode & S_IWOTH) ? "everyone" : "its group") + " (mode " + mode +
		                             "): whoever can write it could run code as root in vmrd (chmod go-w)"};
	}
	return Ok{};
}

Status checkTrusted(const std::string &path)
{
	std::error_code ec;
	const fs::path real = fs::canonical(path, ec);
	if (ec)
		return Error{-ec.value(), "cannot resolve: " + ec.message()};
	const fs::path given = fs::absolute(path, ec).lexically_normal();
	if (ec)
		return Error{-ec.value(), "cannot resolve: " + ec.message()};
	for (const fs::path &start : {real, given})
		for (fs::path p = start;; p = p.parent_path()) {
			if (auto st = checkOwner(p); !st)
				return st;
			if (p == p.root_path())
				break;
		}
	return Ok{};
}
} // namespace

Result<PluginInfo> PluginLoader::inspect(const std::string &path, const std::string &name)
{
	auto fail = [&](int code, const std::string &what) {
		return Error{code, "plugin '" + name + "' (" + path + "): " + what};
	};

	if (!validPluginName(name))
		return fail(-EINVAL, "not a plugin name (only a-z, 0-9 and -)");
	if (auto trusted = checkTrusted(path); !trusted)
		return fail(trusted.error().code, trusted.error().message);
	auto manifest = readManifest(path);
	if (!manifest)
		return fail(manifest.error().code, manifest.error().message);
	const vmrd_manifest &m = *manifest;
	if (auto rules = checkManifest(m); !rules)
		return fail(rules.error().code, rules.error().message);
	PluginInfo meta;
	meta.name = manifestString(m.name, sizeof(m.name));
	meta.version = manifestString(m.version, sizeof(m.version));
	meta.vendor = manifestString(m.vendor, sizeof(m.vendor));
	meta.path = path;
	meta.abiMajor = m.abi_major;
	meta.abiMinor = m.abi_minor;
	if (meta.name != name)
		return fail(-EBADMSG, "its manifest names it '" + meta.name +
		                              "'; the file must be called vmrd-backend-" + meta.name + ".so");
	return meta;
}

Result<std::shared_ptr<Plugin>> PluginLoader::loadFile(const std::string &path, const std::string &name)
{
	// Check the manifest before any of the plugin's code runs.
	auto inspected = inspect(path, name);
	if (!inspected)
		return inspected.error();
	if (inspected->abiMinor > uint32_t{VMRD_ABI_MINOR} + 0)
		logInfo("plugin '" + name + "' is built for ABI " +
		        abiString(inspected->abiMajor, inspected->abiMinor) + ", newer than this vmrd's " +
		        abiString(VMRD_ABI_MAJOR, VMRD_ABI_MINOR) + ": what it added since is not used");
	return loadLibrary(std::move(*inspected));
}

Result<std::shared_ptr<Plugin>> PluginLoader::loadLibrary(PluginInfo meta)
{
	const std::string &path = meta.path, &name = meta.name;
	auto fail = [&](int code, const std::string &what) {
		return Error{code, "plugin '" + name + "' (" + path + "): " + what};
	};

	auto lib = std::make_shared<boost::dll::shared_library>();
	try {
		lib->load(path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
	} catch (const std::exception &e) {
		return fail(-ELIBBAD, std::string("cannot load: ") + e.what());
	}
	if (!lib->has(VMRD_PLUGIN_ENTRY_SYMBOL))
		return fail(-ENOEXEC, "has a manifest but no " VMRD_PLUGIN_ENTRY_SYMBOL " function");
	auto entry = lib->get<const vmrd_plugin_info *()>(VMRD_PLUGIN_ENTRY_SYMBOL);
	const vmrd_plugin_info *info = entry();
	if (!info)
		return fail(-EBADMSG, VMRD_PLUGIN_ENTRY_SYMBOL "() returned NULL");
	if (info->struct_size < minInfoSize)
		return fail(-EBADMSG, "plugin info struct is " + std::to_string(info->struct_size) +
		                              " bytes, shorter than the " + std::to_string(minInfoSize) +
		                              " of ABI 1.0");
	if (!info->ops)
		return fail(-EBADMSG, "plugin info has no ops table");
	if (info->ops->struct_size < minOpsSize)
		return fail(-EBADMSG, "ops table is " + std::to_string(info->ops->struct_size) +
		                              " bytes, shorter than the " + std::to_string(minOpsSize) + " of ABI 1.0");
	const vmrd_backend_ops &ops = *info->ops;
	std::string missing;
	for (auto [op, fn] : {std::pair<const char *, bool>{"create", ops.create},
	                      {"destroy", ops.destroy},
	                      {"get_state", ops.get_state},
	                      {"plug", ops.plug},
	                      {"unplug", ops.unplug}})
		if (!fn)
			missing += (missing.empty() ? "" : ", ") + std::string(op);
	if (!missing.empty())
		return fail(-EBADMSG, "required operations missing: " + missing);
	meta.description = info->description ? info->description : "";
	if (info->struct_size >= offsetof(vmrd_plugin_info, flags) + sizeof(info->flags))
		meta.testBackend = info->flags & VMRD_PLUGIN_TEST_BACKEND;
	return std::make_shared<Plugin>(std::move(lib), info, std::move(meta));
}

Result<std::shared_ptr<Plugin>> PluginLoader::load(const std::string &name) const
{
	if (!validPluginName(name))
		return Error{-EINVAL, "'" + name + "' is not a plugin name (only a-z, 0-9 and -)"};
	const std::string file = filePrefix + name + fileSuffix;
	std::string searched;
	for (const auto &dir : dirs_) {
		fs::path p = fs::path(dir) / file;
		std::error_code ec;
		if (fs::exists(p, ec))
			return loadFile(p.string(), name);
		searched += (searched.empty() ? "" : ", ") + dir;
	}
	return Error{-ENOENT, "plugin '" + name + "' not found: no " + file + " in " +
	                              (searched.empty() ? std::string("(no directories)") : searched) +
	                              " (install it there or pass --plugin-dir DIR)"};
}

std::vector<PluginLoader::Listing> PluginLoader::list() const
{
	std::vector<Listing> out;
	for (const auto &dir : dirs_) {
		std::error_code ec;
		std::vector<fs::path> files;
		for (const auto &e : fs::directory_iterator(dir, ec))
			if (!e.is_directory(ec))
				files.push_back(e.path());
		std::sort(files.begin(), files.end());
		for (const auto &p : files) {
			Listing l;
			l.path = p.string();
			const std::string f = p.filename().string();
			const size_t pre = std::strlen(filePrefix), suf = std::strlen(fileSuffix);
			if (f.size() <= pre + suf || f.compare(0, pre, filePrefix) != 0 ||
			    f.compare(f.size() - suf, suf, fileSuffix) != 0) {
				l.problem = "ignored: not named vmrd-backend-<name>.so";
			} else if (auto info = inspect(l.path, f.substr(pre, f.size() - pre - suf))) {
				l.ok = true;
				l.info = std::move(*info);
			} else {
				l.problem = info.error().message;
			}
			out.push_back(std::move(l));
		}
	}
	return out;
}

Backend::Backend(std::shared_ptr<Plugin> plugin, Paths paths) : plugin_(std::move(plugin)), paths_(std::move(paths))
{
	host_.struct_size = sizeof(host_);
	host_.host_data = this;
	host_.log = hostLog;
	host_.forget_fd = hostForgetFd;
	host_.monotonic_ns = hostMonotonicNs;
	host_.procfs_root = paths_.procfs.c_str();
	host_.sysfs_root = paths_.sysfs.c_str();
}

void Backend::hostLog(void *data, int level, const char *message)
{
	const auto *self = static_cast<const Backend *>(data);
	LogLevel l = level <= VMRD_LOG_ERROR     ? LogLevel::Error
	             : level == VMRD_LOG_WARNING ? LogLevel::Warning
	             : level >= VMRD_LOG_DEBUG   ? LogLevel::Debug
	                                         : LogLevel::Info;
	log(l, "backend '" + self->name() + "': " + (message ? message : "(null)"));
}

void Backend::hostForgetFd(void *data, const char *name)
{
	const auto *self = static_cast<const Backend *>(data);
	if (self->forget_ && name)
		self->forget_(name);
}

namespace {

// The options as the ABI passes them; they point into `options`.
std::vector<vmrd_option> optionTable(const Backend::Options &options)
{
	std::vector<vmrd_option> opts;
	opts.reserve(options.size());
	for (const auto &[k, v] : options)
		opts.push_back({k.c_str(), v.c_str()});
	return opts;
}

} // namespace

Status Backend::probe(std::shared_ptr<Plugin> plugin, const Options &options, Paths paths)
{
	// A backend without an object: the host table and the messages.
	const Backend b(std::move(plugin), std::move(paths));
	if (!b.plugin_->hasOp(&vmrd_backend_ops::probe))
		return Error{-EOPNOTSUPP, "it has no probe"};
	const std::vector<vmrd_option> opts = optionTable(options);
	MessageBuffer msg;
	const int ret = b.plugin_->ops().probe(&b.host_, opts.data(), static_cast<uint32_t>(opts.size()), msg.data(),
	                                       msg.size());
	if (ret == 0)
		return Ok{};
	const char *text = msg.text();
	return Error{ret < 0 ? ret : -EIO, *text ? text : std::strerror(ret < 0 ? -ret : ret)};
}

Result<std::unique_ptr<Backend>> Backend::create(std::shared_ptr<Plugin> plugin, const Options &options, Paths paths)
{
	std::unique_ptr<Backend> b(new Backend(std::move(plugin), std::move(paths)));
	const std::vector<vmrd_option> opts = optionTable(options);
	MessageBuffer msg;
	int ret = b->plugin_->ops().create(&b->host_, opts.data(), static_cast<uint32_t>(opts.size()), &b->object_,
	                                   msg.data(), msg.size());
	if (ret != 0 || !b->object_) {
		b->object_ = nullptr;
		return Error{ret < 0 ? ret : -EINVAL, b->describe("create", ret, msg.text())};
	}
	return b;
}

Backend::~Backend()
{
	if (object_)
		plugin_->ops().destroy(object_);
}

std::string Backend::describe(const char *op, int code, const char *msg) const
{
	std::string s = std::string(op) + " failed in backend '" + name() + "': ";
	s += msg && *msg ? msg : std::strerror(code < 0 ? -code : code);
	s += " (" + std::to_string(code) + ")";
	return s;
}

Result<BackendState> Backend::state()
{
	vmrd_backend_state s{};
	s.struct_size = sizeof(s);
	MessageBuffer msg;
	int ret = plugin_->ops().get_state(object_, &s, msg.data(), msg.size());
	if (ret != 0)
		return Error{ret < 0 ? ret : -EIO, describe("get_state", ret, msg.text())};
	BackendState st;
	st.connected = s.flags & VMRD_BACKEND_CONNECTED;
	st.hotplug = s.flags & VMRD_BACKEND_HOTPLUG;
	st.reclaim = s.flags & VMRD_BACKEND_RECLAIM;
	st.blockSize = s.block_size;
	st.minBytes = s.min_bytes;
	st.maxBytes = s.max_bytes;
	st.plugged = s.plugged_bytes;
	return st;
}

CallResult Backend::resize(const char *name, ResizeOp op, uint64_t bytes)
{
	CallResult r;
	MessageBuffer msg;
	r.code = op(object_, bytes, &r.done, msg.data(), msg.size());
	if (r.code != 0)
		r.message = describe(name, r.code, msg.text());
	return r;
}

CallResult Backend::plug(uint64_t bytes)
{
	return resize("plug", plugin_->ops().plug, bytes);
}

CallResult Backend::unplug(uint64_t bytes)
{
	return resize("unplug", plugin_->ops().unplug, bytes);
}

CallResult Backend::releaseAll()
{
	CallResult r;
	if (!canReleaseAll()) {
		r.code = -EOPNOTSUPP;
		r.message = describe("release_all", r.code, "not supported by this backend");
		return r;
	}
	MessageBuffer msg;
	r.code = plugin_->ops().release_all(object_, &r.done, msg.data(), msg.size());
	if (r.code != 0)
		r.message = describe("release_all", r.code, msg.text());
	return r;
}

std::optional<int> Backend::eventFd()
{
	if (!plugin_->hasOp(&vmrd_backend_ops::get_event_fd))
		return std::nullopt;
	int fd = -1;
	MessageBuffer msg;
	const int ret = plugin_->ops().get_event_fd(object_, &fd, msg.data(), msg.size());
	if (ret == -EOPNOTSUPP)
		return std::nullopt;
	if (ret != 0 || fd < 0) {
		logWarning(describe("get_event_fd", ret != 0 ? ret : -EBADF, msg.text()) +
		           "; changes made outside vmrd are seen at its next call only");
		return std::nullopt;
	}
	return fd;
}

bool Backend::holdsFds() const
{
	return plugin_->hasOp(&vmrd_backend_ops::export_fds) && plugin_->hasOp(&vmrd_backend_ops::adopt_fds);
}

Result<std::vector<HeldFd>> Backend::exportFds()
{
	if (!holdsFds())
		return Error{-EOPNOTSUPP, describe("export_fds", -EOPNOTSUPP, "not supported by this backend")};
	std::vector<vmrd_held_fd> fds(16);
	for (;;) {
		uint32_t count = 0;
		MessageBuffer msg;
		const int ret = plugin_->ops().export_fds(object_, fds.data(), static_cast<uint32_t>(fds.size()),
		                                          &count, msg.data(), msg.size());
		if (ret == -ENOSPC && count > fds.size() && count <= maxHeldFds) {
			fds.resize(count);
			continue;
		}
		if (ret != 0)
			return Error{ret < 0 ? ret : -EIO, describe("export_fds", ret, msg.text())};
		if (count > fds.size())
			return Error{-EBADMSG,
			             describe("export_fds", -EBADMSG, "it listed more fds than there was room for")};
		std::vector<HeldFd> out;
		for (uint32_t i = 0; i < count; i++) {
			if (!validHeldFdName(fds[i]))
				return Error{-EBADMSG, describe("export_fds", -EBADMSG,
				                                ("fd " + std::to_string(fds[i].fd) +
				                                 " has no valid name (1 to 63 of A-Z a-z 0-9 _ . -)")
				                                        .c_str())};
			out.push_back({fds[i].fd, fds[i].name});
		}
		return out;
	}
}

Status Backend::adoptFds(const std::vector<HeldFd> &fds)
{
	if (!holdsFds())
		return Error{-EOPNOTSUPP, describe("adopt_fds", -EOPNOTSUPP, "not supported by this backend")};
	std::vector<vmrd_held_fd> table(fds.size());
	for (size_t i = 0; i < fds.size(); i++) {
		table[i].fd = fds[i].fd;
		fds[i].name.copy(table[i].name, sizeof(table[i].name) - 1);
	}
	MessageBuffer msg;
	const int ret = plugin_->ops().adopt_fds(object_, table.data(), static_cast<uint32_t>(table.size()), msg.data(),
	                                         msg.size());
	if (ret != 0)
		return Error{ret < 0 ? ret : -EIO, describe("adopt_fds", ret, msg.text())};
	return Ok{};
}

CallResult Backend::ackEvent()
{
	CallResult r;
	if (!plugin_->hasOp(&vmrd_backend_ops::ack_event))
		return r;
	MessageBuffer msg;
	r.code = plugin_->ops().ack_event(object_, msg.data(), msg.size());
	if (r.code != 0)
		r.message = describe("ack_event", r.code, msg.text());
	return r;
}

} // namespace vmrd
