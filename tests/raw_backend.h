// SPDX-License-Identifier: MIT
// A backend driven through its plugin's raw ops table, for plugin tests of the ops core's Backend does not wrap.
#pragma once

#include <cerrno>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <poll.h>

#include "plugin_loader.h"

namespace vmrd::test {

// Loads `name` from `dir` and creates one backend with `options`; the host
// services log into logs().  Tests call the ops through the public members
// as vmrd would, one at a time.
class RawBackend
{
public:
	using Options = std::vector<std::pair<std::string, std::string>>;

	RawBackend(const std::string &dir, const std::string &name, const Options &options,
	           const std::string &procfs = "/proc")
	    : procfs_(procfs)
	{
		auto plugin = PluginLoader({dir}).load(name);
		if (!plugin) {
			error_ = plugin.error().message;
			return;
		}
		plugin_ = *plugin;
		host_.struct_size = sizeof(host_);
		host_.host_data = this;
		host_.log = [](void *self, int, const char *line) {
			static_cast<RawBackend *>(self)->logs_.emplace_back(line);
		};
		host_.monotonic_ns = [](void *) -> uint64_t { return 0; };
		host_.procfs_root = procfs_.c_str();
		host_.sysfs_root = "/sys";
		std::vector<vmrd_option> opts;
		for (const auto &[k, v] : options)
			opts.push_back({k.c_str(), v.c_str()});
		char msg[512] = "";
		code_ = ops().create(&host_, opts.data(), static_cast<uint32_t>(opts.size()), &object_, msg,
		                     sizeof(msg));
		if (code_)
			error_ = msg;
	}
	~RawBackend()
	{
		if (object_)
			ops().destroy(object_);
	}
	RawBackend(const RawBackend &) = delete;
	RawBackend &operator=(const RawBackend &) = delete;

	explicit operator bool() const { return object_ != nullptr; }
	int code() const { return code_; }
	const std::string &error() const { return error_; }
	const vmrd_backend_ops &ops() const { return plugin_->ops(); }
	vmrd_backend *object() const { return object_; }
	const std::vector<std::string> &logs() const { return logs_; }

	// get_event_fd: the fd, or the negative errno (-EOPNOTSUPP when the op is absent).
	int eventFd()
	{
		if (!plugin_->hasOp(&vmrd_backend_ops::get_event_fd))
			return -EOPNOTSUPP;
		int fd = -1;
		char msg[256] = "";
		int r = ops().get_event_fd(object_, &fd, msg, sizeof(msg));
		return r ? r : fd;
	}
	int ack()
	{
		char msg[256] = "";
		return ops().ack_event(object_, msg, sizeof(msg));
	}
	vmrd_backend_state state()
	{
		vmrd_backend_state s{};
		s.struct_size = sizeof(s);
		char msg[256] = "";
		lastCode_ = ops().get_state(object_, &s, msg, sizeof(msg));
		return s;
	}
	int lastCode() const { return lastCode_; }

private:
	std::string procfs_;
	std::shared_ptr<Plugin> plugin_;
	vmrd_host host_{};
	vmrd_backend *object_ = nullptr;
	int code_ = 0;
	int lastCode_ = 0;
	std::string error_;
	std::vector<std::string> logs_;
};

// Whether `fd` is readable within `ms` milliseconds.
inline bool readable(int fd, int ms)
{
	pollfd p{fd, POLLIN, 0};
	return ::poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

} // namespace vmrd::test
