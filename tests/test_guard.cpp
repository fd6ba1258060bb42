// SPDX-License-Identifier: MIT
// The memory.high guard on a fake cgroup directory: where it puts the limit, and what it does when the cgroup lies.
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>

#include "guard.h"
#include "temp_dir.h"

using namespace vmrd;

namespace {

constexpr uint64_t MiB = 1ull << 20;

class GuardTest : public testing::Test
{
protected:
	void SetUp() override
	{
		put("memory.high", "max\n");
		setUsage(100 * MiB, 20 * MiB);
		ASSERT_TRUE(guard.open({dir.path(), 64 * MiB}));
	}

	void put(const std::string &name, const std::string &text) { std::ofstream(dir.path() + "/" + name) << text; }

	// memory.current, and memory.stat with `file` on the file LRU lists.
	void setUsage(uint64_t current, uint64_t file)
	{
		put("memory.current", std::to_string(current) + "\n");
		put("memory.stat", "anon " + std::to_string(current - file) + "\nfile " + std::to_string(file) +
		                           "\nactive_file " + std::to_string(file / 2) + "\ninactive_file " +
		                           std::to_string(file - file / 2) + "\n");
	}

	// What the guard wrote, from an emptied file: nothing if it wrote nothing.
	std::string written()
	{
		std::string text;
		std::getline(std::ifstream(dir.path() + "/memory.high"), text);
		put("memory.high", "");
		return text;
	}

	TempDir dir;
	Guard guard;
};

TEST_F(GuardTest, ThrottlesWhereTheWorkloadWouldLeaveTheMarginAvailable)
{
	written();
	guard.update(1024 * MiB);
	// 80 MiB held beyond the page cache, 1 GiB available, 64 MiB kept.
	EXPECT_EQ(written(), std::to_string((80 + 1024 - 64) * MiB));
	// A grow: as much more room.
	guard.update(1536 * MiB);
	EXPECT_EQ(written(), std::to_string((80 + 1536 - 64) * MiB));
	// MemAvailable in KiB need not be whole pages: the limit is.
	guard.update(1536 * MiB + 5 * MiB + 1024);
	EXPECT_EQ(std::stoull(written()) % 4096, 0u);
}

TEST_F(GuardTest, WritesOnlyMovesOfAMiBOrMore)
{
	guard.update(1024 * MiB);
	written();
	guard.update(1024 * MiB + MiB / 2);
	EXPECT_EQ(written(), "");
	guard.update(1022 * MiB);
	EXPECT_EQ(written(), std::to_string((80 + 1022 - 64) * MiB));
}

TEST_F(GuardTest, NeverBelowNorFollowingWhatTheCgroupHoldsNorBelow64MiB)
{
	// The rest of the guest took memory: lowering memory.high below the
	// usage would make vmrd reclaim the workload's pages in its own write.
	guard.update(10 * MiB);
	EXPECT_EQ(written(), std::to_string(100 * MiB));
	// Throttled, the workload goes a little past it: the limit stays.
	setUsage(104 * MiB, 20 * MiB);
	guard.update(6 * MiB);
	EXPECT_EQ(written(), "");
	// Until the guest has room again.
	guard.update(200 * MiB);
	EXPECT_EQ(written(), std::to_string((84 + 200 - 64) * MiB));
	setUsage(8 * MiB, 0);
	guard.update(0);
	EXPECT_EQ(written(), std::to_string(64 * MiB));
}

TEST_F(GuardTest, SetsItAgainWhenSomeoneElseChangedIt)
{
	guard.update(1024 * MiB);
	written();
	put("memory.high", "max\n");
	testing::internal::CaptureStderr();
	guard.check();
	const std::string log = testing::internal::GetCapturedStderr();
	EXPECT_NE(log.find("memory.high was set to max by someone else"), std::string::npos) << log;
	EXPECT_EQ(written(), std::to_string((80 + 1024 - 64) * MiB));
}

TEST_F(GuardTest, KeepsTheLimitAndSaysOnceWhenTheUsageCannotBeRead)
{
	guard.update(1024 * MiB);
	written();
	put("memory.stat", "anon 4096\n");
	testing::internal::CaptureStderr();
	guard.update(2048 * MiB);
	guard.update(2048 * MiB);
	const std::string log = testing::internal::GetCapturedStderr();
	EXPECT_NE(log.find("not as cgroup v2 writes them; memory.high stays 1040 MiB"), std::string::npos) << log;
	EXPECT_EQ(log.find('\n'), log.rfind('\n')) << "said once:\n" << log;
	EXPECT_EQ(written(), "");
}

TEST(Guard, NamesTheMissingFileAndWhatGuardCgroupMustBe)
{
	TempDir dir;
	std::ofstream(dir.path() + "/memory.high") << "max\n";
	Guard guard;
	auto opened = guard.open({dir.path(), 64 * MiB});
	ASSERT_FALSE(opened);
	EXPECT_NE(opened.error().message.find(dir.path() + "/memory.current: "), std::string::npos)
	        << opened.error().message;
	EXPECT_NE(opened.error().message.find("must be a cgroup v2 directory with the memory controller"),
	          std::string::npos)
	        << opened.error().message;
}

} // namespace
