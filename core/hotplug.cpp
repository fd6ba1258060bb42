// SPDX-License-Identifier: MIT
// Where hot-added memory lands: the onlining policy check and onlining blocks to ZONE_MOVABLE.
#include "hotplug.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "log.h"
#include "proc_file.h"

namespace vmrd {

namespace fs = std::filesystem;

namespace {

// Read at start only, so each file is opened, read and closed.  A file that
// cannot be read counts as absent: the callers judge what that means.
std::optional<std::string> readText(const std::string &path)
{
	auto r = readKernelFile(path);
	if (!r)
		return std::nullopt;
	std::string t = std::move(*r);
	while (!t.empty() && (t.back() == '\n' || t.back() == ' '))
		t.pop_back();
	return t;
}

bool writeText(const std::string &path, const std::string &text)
{
	std::ofstream out(path);
	out << text;
	out.flush();
	return static_cast<bool>(out);
}

const char *fixHint = "boot the guest with memhp_default_state=online_movable (or "
                      "memory_hotplug.online_policy=auto-movable), or set daemon.online_movable: true";

} // namespace

OnliningVerdict judgeOnlining(std::optional<OnlinePolicy> autoOnline, std::string_view onlinePolicy)
{
	if (!autoOnline)
		return {false, std::string("cannot read the kernel's memory onlining policy (auto_online_blocks): "
		                           "is this kernel built with memory hotplug?")};
	switch (*autoOnline) {
	case OnlinePolicy::OnlineMovable:
		return {true, "hot-added memory is onlined to ZONE_MOVABLE"};
	case OnlinePolicy::Online:
		if (onlinePolicy == "auto-movable")
			return {true, "hot-added memory is onlined with online_policy=auto-movable"};
		return {false, std::string("hot-added memory would be onlined to ZONE_NORMAL, where it may never "
		                           "unplug: ") +
		                       fixHint};
	case OnlinePolicy::OnlineKernel:
		return {false, std::string("hot-added memory would be onlined to a kernel zone, where it may never "
		                           "unplug: ") +
		                       fixHint};
	case OnlinePolicy::Offline:
		break;
	}
	return {false, std::string("hot-added memory would stay offline and never reach the workload: ") + fixHint};
}

OnliningVerdict checkOnlining(const std::string &sysfs)
{
	auto autoOnline = readText(sysfs + "/devices/system/memory/auto_online_blocks");
	auto policy = readText(sysfs + "/module/memory_hotplug/parameters/online_policy");
	return judgeOnlining(autoOnline ? parseOnlinePolicy(*autoOnline) : std::nullopt, policy.value_or(""));
}

std::vector<MemoryBlock> readMemoryBlocks(const std::string &sysfs)
{
	std::vector<MemoryBlock> blocks;
	std::error_code ec;
	for (const auto &e : fs::directory_iterator(sysfs + "/devices/system/memory", ec)) {
		const std::string name = e.path().filename().string();
		if (name.rfind("memory", 0) != 0 || name.size() == 6 ||
		    name.find_first_not_of("0123456789", 6) != std::string::npos)
			continue;
		MemoryBlock b;
		b.index = static_cast<unsigned>(std::stoul(name.substr(6)));
		b.online = readText(e.path().string() + "/state").value_or("") == "online";
		b.movable = b.online && readText(e.path().string() + "/valid_zones").value_or("") == "Movable";
		blocks.push_back(b);
	}
	std::sort(blocks.begin(), blocks.end(), [](const auto &a, const auto &b) { return a.index < b.index; });
	return blocks;
}

Result<unsigned> makeOnliningMovable(const std::string &sysfs)
{
	const std::string autoOnline = sysfs + "/devices/system/memory/auto_online_blocks";
	if (!writeText(autoOnline, "online_movable"))
		return Error{-EIO, autoOnline + ": cannot write online_movable: " + std::strerror(errno)};
	unsigned onlined = 0;
	for (const auto &b : readMemoryBlocks(sysfs)) {
		if (b.online)
			continue;
		const std::string state = sysfs + "/devices/system/memory/memory" + std::to_string(b.index) + "/state";
		if (writeText(state, "online_movable"))
			onlined++;
		else
			logWarning(state + ": cannot online to ZONE_MOVABLE: " + std::strerror(errno));
	}
	return onlined;
}

} // namespace vmrd
