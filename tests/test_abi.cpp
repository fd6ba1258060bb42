// SPDX-License-Identifier: MIT
// Pins the layout of every ABI struct: a change here breaks every built plugin.
#include <cstddef>
#include <gtest/gtest.h>

#include <vmrd/plugin.h>

#define EXPECT_FIELD(type, field, offset) EXPECT_EQ(offsetof(type, field), size_t{offset}) << #type "." #field

TEST(Abi, Version)
{
	EXPECT_EQ(VMRD_ABI_MAJOR, 1);
}

TEST(Abi, ManifestIsFrozen)
{
	EXPECT_EQ(sizeof(vmrd_manifest), 176u);
	EXPECT_FIELD(vmrd_manifest, magic, 0);
	EXPECT_FIELD(vmrd_manifest, abi_major, 8);
	EXPECT_FIELD(vmrd_manifest, abi_minor, 12);
	EXPECT_FIELD(vmrd_manifest, name, 16);
	EXPECT_FIELD(vmrd_manifest, version, 80);
	EXPECT_FIELD(vmrd_manifest, vendor, 112);
	// "VMRDPLUG" in memory, whatever the reader's language.
	uint64_t magic = VMRD_MANIFEST_MAGIC;
	EXPECT_EQ(std::string(reinterpret_cast<const char *>(&magic), 8), "VMRDPLUG");
}

TEST(Abi, Host)
{
	EXPECT_EQ(sizeof(vmrd_host), 56u);
	EXPECT_FIELD(vmrd_host, struct_size, 0);
	EXPECT_FIELD(vmrd_host, host_data, 8);
	EXPECT_FIELD(vmrd_host, log, 16);
	EXPECT_FIELD(vmrd_host, monotonic_ns, 24);
	EXPECT_FIELD(vmrd_host, procfs_root, 32);
	EXPECT_FIELD(vmrd_host, sysfs_root, 40);
	EXPECT_FIELD(vmrd_host, forget_fd, 48); // 1.1
}

TEST(Abi, OptionAndState)
{
	EXPECT_EQ(sizeof(vmrd_option), 16u);
	EXPECT_FIELD(vmrd_option, value, 8);
	EXPECT_EQ(sizeof(vmrd_backend_state), 40u);
	EXPECT_FIELD(vmrd_backend_state, struct_size, 0);
	EXPECT_FIELD(vmrd_backend_state, flags, 4);
	EXPECT_FIELD(vmrd_backend_state, block_size, 8);
	EXPECT_FIELD(vmrd_backend_state, min_bytes, 16);
	EXPECT_FIELD(vmrd_backend_state, max_bytes, 24);
	EXPECT_FIELD(vmrd_backend_state, plugged_bytes, 32);
}

TEST(Abi, Ops)
{
	EXPECT_EQ(sizeof(vmrd_backend_ops), 96u);
	EXPECT_FIELD(vmrd_backend_ops, struct_size, 0);
	EXPECT_FIELD(vmrd_backend_ops, create, 8);
	EXPECT_FIELD(vmrd_backend_ops, destroy, 16);
	EXPECT_FIELD(vmrd_backend_ops, get_state, 24);
	EXPECT_FIELD(vmrd_backend_ops, plug, 32);
	EXPECT_FIELD(vmrd_backend_ops, unplug, 40);
	EXPECT_FIELD(vmrd_backend_ops, release_all, 48);
	EXPECT_FIELD(vmrd_backend_ops, get_event_fd, 56);
	EXPECT_FIELD(vmrd_backend_ops, ack_event, 64);
	EXPECT_FIELD(vmrd_backend_ops, export_fds, 72); // 1.1
	EXPECT_FIELD(vmrd_backend_ops, adopt_fds, 80);  // 1.1
	EXPECT_FIELD(vmrd_backend_ops, probe, 88);      // 1.2
}

TEST(Abi, HeldFd)
{
	EXPECT_EQ(sizeof(vmrd_held_fd), 72u);
	EXPECT_FIELD(vmrd_held_fd, fd, 0);
	EXPECT_FIELD(vmrd_held_fd, reserved, 4);
	EXPECT_FIELD(vmrd_held_fd, name, 8);
}

TEST(Abi, PluginInfo)
{
	EXPECT_EQ(sizeof(vmrd_plugin_info), 32u);
	EXPECT_FIELD(vmrd_plugin_info, description, 8);
	EXPECT_FIELD(vmrd_plugin_info, ops, 16);
	EXPECT_FIELD(vmrd_plugin_info, flags, 24); // 1.2
}
