// SPDX-License-Identifier: MIT
// Tests of the mock backend, loaded through the ABI like any vendor plugin.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <sstream>

#include "plugin_loader.h"
#include "raw_backend.h"
#include "temp_dir.h"

using namespace vmrd;

namespace {

constexpr uint64_t MiB = 1ull << 20;

using Options = std::vector<std::pair<std::string, std::string>>;

Result<std::unique_ptr<Backend>> mock(const Options &options)
{
	auto plugin = PluginLoader({MOCK_PLUGIN_DIR}).load("mock");
	if (!plugin)
		return plugin.error();
	return Backend::create(*plugin, options, {});
}

std::unique_ptr<Backend> mockOk(const Options &options)
{
	auto b = mock(options);
	EXPECT_TRUE(b) << b.error().message;
	return b ? std::move(b.value()) : nullptr;
}

} // namespace

TEST(Mock, PlugsAndUnplugsWithinItsRange)
{
	auto b = mockOk({{"block_size", "2M"}, {"max", "64M"}, {"initial", "8M"}});
	ASSERT_TRUE(b);
	auto r = b->plug(16 * MiB);
	EXPECT_EQ(r.code, 0);
	EXPECT_EQ(r.done, 16 * MiB);
	EXPECT_EQ(b->state()->plugged, 24 * MiB);
	r = b->plug(64 * MiB); // only 40 MiB of room
	EXPECT_EQ(r.code, 0);
	EXPECT_EQ(r.done, 40 * MiB);
	r = b->plug(2 * MiB);
	EXPECT_EQ(r.code, -ENOSPC);
	EXPECT_NE(r.message.find("device full"), std::string::npos) << r.message;
	r = b->unplug(100 * MiB);
	EXPECT_EQ(r.done, 64 * MiB);
	EXPECT_EQ(b->state()->plugged, 0u);
	r = b->unplug(2 * MiB);
	EXPECT_EQ(r.code, -EBUSY);
}

TEST(Mock, RefusesUnalignedSizes)
{
	auto b = mockOk({{"block_size", "2M"}});
	auto r = b->plug(3 * MiB);
	EXPECT_EQ(r.code, -EINVAL);
	EXPECT_NE(r.message.find("not a positive multiple of the block size"), std::string::npos) << r.message;
}

TEST(Mock, OptionErrorsNameTheOption)
{
	auto b = mock({{"blocksize", "2M"}});
	ASSERT_FALSE(b);
	EXPECT_NE(b.error().message.find("unknown option 'blocksize'"), std::string::npos) << b.error().message;
	b = mock({{"max", "lots"}});
	ASSERT_FALSE(b);
	EXPECT_NE(b.error().message.find("bad value 'lots' for option 'max'"), std::string::npos);
	b = mock({{"block_size", "3M"}});
	ASSERT_FALSE(b);
	EXPECT_NE(b.error().message.find("not a power of two"), std::string::npos);
	b = mock({{"initial", "8G"}, {"max", "4G"}});
	ASSERT_FALSE(b);
	EXPECT_NE(b.error().message.find("need min <= initial <= max"), std::string::npos);
}

TEST(Mock, FailsTheNthCall)
{
	auto b = mockOk({{"fail_call", "2"}, {"fail_errno", "16"}});
	EXPECT_EQ(b->plug(2 * MiB).code, 0);
	auto r = b->plug(2 * MiB);
	EXPECT_EQ(r.code, -EBUSY);
	EXPECT_NE(r.message.find("injected failure of call 2 (plug)"), std::string::npos) << r.message;
	EXPECT_EQ(b->plug(2 * MiB).code, 0);
	EXPECT_EQ(b->state()->plugged, 4 * MiB);
}

TEST(Mock, GrantsPartOfARequest)
{
	auto b = mockOk({{"grant_percent", "50"}});
	auto r = b->plug(10 * MiB);
	EXPECT_EQ(r.code, 0);
	EXPECT_EQ(r.done, 4 * MiB); // half, rounded down to the 2 MiB block
	EXPECT_EQ(b->state()->plugged, 4 * MiB);
}

TEST(Mock, SeededFailuresRepeat)
{
	auto run = [] {
		auto b = mockOk({{"fail_probability", "0.5"}, {"seed", "7"}});
		std::string pattern;
		for (int i = 0; i < 32; i++)
			pattern += b->plug(2 * MiB).code == 0 ? '.' : 'x';
		return pattern;
	};
	std::string a = run();
	EXPECT_EQ(a, run());
	EXPECT_NE(a.find('x'), std::string::npos);
	EXPECT_NE(a.find('.'), std::string::npos);
}

TEST(Mock, HangsAndAddsLatency)
{
	auto b = mockOk({{"latency_ms", "5"}, {"hang_call", "2"}, {"hang_ms", "100"}});
	auto t0 = std::chrono::steady_clock::now();
	b->plug(2 * MiB);
	auto t1 = std::chrono::steady_clock::now();
	b->plug(2 * MiB);
	auto t2 = std::chrono::steady_clock::now();
	// Lower bounds only: a loaded machine can only make them longer.
	EXPECT_GE(t1 - t0, std::chrono::milliseconds(5));
	EXPECT_GE(t2 - t1, std::chrono::milliseconds(105));
}

TEST(Mock, TracesEveryCall)
{
	TempDir dir;
	const std::string trace = dir.path() + "/trace.jsonl";
	{
		auto b = mockOk({{"trace", trace}, {"fail_call", "2"}});
		b->plug(4 * MiB);
		b->unplug(2 * MiB);
		b->releaseAll();
	}
	std::ifstream in(trace);
	std::vector<std::string> lines;
	for (std::string l; std::getline(in, l);)
		lines.push_back(l);
	ASSERT_EQ(lines.size(), 3u);
	EXPECT_NE(lines[0].find("\"op\":\"plug\",\"bytes\":4194304,\"ret\":0,\"done\":4194304,\"plugged\":4194304"),
	          std::string::npos)
	        << lines[0];
	EXPECT_NE(lines[1].find("\"op\":\"unplug\",\"bytes\":2097152,\"ret\":-5,\"done\":0"), std::string::npos)
	        << lines[1];
	EXPECT_NE(lines[2].find("\"op\":\"release_all\",\"bytes\":0,\"ret\":0,\"done\":4194304,\"plugged\":0"),
	          std::string::npos)
	        << lines[2];
}

TEST(Mock, EventsSayTheStateFileChanged)
{
	TempDir dir;
	const std::string state = dir.path() + "/device";
	test::RawBackend b(MOCK_PLUGIN_DIR, "mock",
	                   {{"max", "1G"}, {"initial", "128M"}, {"state_file", state}, {"events", "true"}});
	ASSERT_TRUE(b) << b.error();
	const int fd = b.eventFd();
	ASSERT_GE(fd, 0) << strerror(-fd);
	EXPECT_FALSE(test::readable(fd, 0)) << "nothing changed yet";

	// A change vmrd asked for is no event.
	uint64_t done = 0;
	char msg[256] = "";
	ASSERT_EQ(b.ops().plug(b.object(), 64 * MiB, &done, msg, sizeof(msg)), 0) << msg;
	EXPECT_FALSE(test::readable(fd, 0)) << "the mock's own write raised an event";

	// Resized behind vmrd's back, as tests/test_faults.cpp does it: in place.
	std::ofstream(state) << 512 * MiB << "\n";
	EXPECT_TRUE(test::readable(fd, 1000));
	EXPECT_EQ(b.ack(), 0);
	EXPECT_FALSE(test::readable(fd, 0)) << "ack_event left the fd readable";
	EXPECT_EQ(b.state().plugged_bytes, 512 * MiB);

	// And replaced atomically, as the mock itself writes it.
	std::ofstream(state + ".new") << 256 * MiB << "\n";
	std::filesystem::rename(state + ".new", state);
	EXPECT_TRUE(test::readable(fd, 1000));
	EXPECT_EQ(b.ack(), 0);
	EXPECT_FALSE(test::readable(fd, 0));
	EXPECT_EQ(b.state().plugged_bytes, 256 * MiB);
}

TEST(Mock, NoEventFdWithoutTheOption)
{
	TempDir dir;
	test::RawBackend b(MOCK_PLUGIN_DIR, "mock", {{"state_file", dir.path() + "/device"}});
	ASSERT_TRUE(b) << b.error();
	EXPECT_EQ(b.eventFd(), -EOPNOTSUPP);
	test::RawBackend off(MOCK_PLUGIN_DIR, "mock", {{"state_file", dir.path() + "/d2"}, {"events", "false"}});
	ASSERT_TRUE(off) << off.error();
	EXPECT_EQ(off.eventFd(), -EOPNOTSUPP);
}

TEST(Mock, EventsNeedAStateFile)
{
	test::RawBackend b(MOCK_PLUGIN_DIR, "mock", {{"events", "true"}});
	EXPECT_FALSE(b);
	EXPECT_EQ(b.code(), -EINVAL);
	EXPECT_NE(b.error().find("events needs state_file"), std::string::npos) << b.error();
	test::RawBackend bad(MOCK_PLUGIN_DIR, "mock", {{"events", "yes"}});
	EXPECT_NE(bad.error().find("bad value 'yes' for option 'events'"), std::string::npos) << bad.error();
}
