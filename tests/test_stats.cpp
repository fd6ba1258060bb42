// SPDX-License-Identifier: MIT
// Table-driven tests of the zoneinfo, vmstat, cgroup memory and memory-block parsers, and of the onlining verdict.
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>

#include "hotplug.h"
#include "mem_stats.h"
#include "temp_dir.h"

using namespace vmrd;

namespace {

// Shaped like a 6.1 guest's /proc/zoneinfo with hot-plugged memory in ZONE_MOVABLE.
const char *zoneinfo = R"(Node 0, zone      DMA
  per-node stats
      nr_inactive_anon 590
      nr_inactive_file 49520
  pages free     3840
        boost    0
        min      49
        spanned  4095
        present  3998
        managed  3840
        cma      0
        protection: (0, 2950, 3915, 3915)
      nr_free_pages 3840
      nr_zone_inactive_anon 0
      nr_zone_active_anon 0
      nr_zone_inactive_file 0
  pagesets
    cpu: 0
              count: 0
              high:  0
  node_unreclaimable:  0
  start_pfn:           1
Node 0, zone   Normal
  pages free     100000
        present  200000
        managed  190000
      nr_zone_inactive_anon 1000
      nr_zone_inactive_file 2000
Node 0, zone  Movable
  pages free     500
        present  32768
        managed  32768
      nr_zone_inactive_anon 4096
      nr_zone_inactive_file 8192
Node 1, zone  Movable
  pages free     100
        present  1024
        managed  1024
      nr_zone_inactive_anon 1
      nr_zone_inactive_file 2
)";

} // namespace

TEST(Zoneinfo, ParsesEveryZone)
{
	auto zones = parseZoneinfo(zoneinfo, 4096);
	ASSERT_TRUE(zones);
	ASSERT_EQ(zones->size(), 4u);
	EXPECT_EQ((*zones)[0].name, "DMA");
	EXPECT_EQ((*zones)[0].free, 3840u * 4096) << "'pages free' is not confused with per-node stats";
	EXPECT_EQ((*zones)[0].inactiveFile, 0u) << "per-node nr_inactive_file is not a zone counter";
	EXPECT_EQ((*zones)[1].name, "Normal");
	EXPECT_EQ((*zones)[1].managed, 190000u * 4096);
	EXPECT_EQ((*zones)[3].node, 1u);
	ZoneStats movable = sumZones(*zones, "Movable");
	EXPECT_EQ(movable.free, 600u * 4096);
	EXPECT_EQ(movable.present, 33792u * 4096);
	EXPECT_EQ(movable.inactiveAnon, 4097u * 4096);
	EXPECT_EQ(movable.inactiveFile, 8194u * 4096);
	EXPECT_EQ(sumZones(*zones, "HighMem").free, 0u);
}

TEST(Zoneinfo, RejectsMalformed)
{
	const char *bad[] = {
	        "",
	        "no zones here\n",
	        "Node x, zone Normal\n  pages free 1\n",
	        "Node 0, zone \n  pages free 1\n",
	        "Node 0, zone Normal\n  pages free lots\n",
	        "Node 0, zone Normal\n        present 99999999999999999999\n",
	        "Node 0, zone Normal\n        managed 9007199254740993\n", // overflows once in bytes
	};
	for (const char *text : bad)
		EXPECT_FALSE(parseZoneinfo(text, 4096)) << text;
}

TEST(Vmstat, ParsesTheCounters)
{
	auto v = parseVmstat("nr_free_pages 123\npgalloc_dma 1\npgalloc_movable 4567\npgscan_kswapd 8\n"
	                     "pgscan_direct 9\npgsteal_kswapd 10\npgsteal_direct 11\nworkingset_refault_anon 12\n"
	                     "workingset_refault_file 13\nsomething_new 14\n");
	ASSERT_TRUE(v);
	EXPECT_EQ(v->pgallocMovable, 4567u);
	EXPECT_EQ(v->pgscanKswapd, 8u);
	EXPECT_EQ(v->pgstealDirect, 11u);
	EXPECT_EQ(v->workingsetRefaultAnon, 12u);
	EXPECT_EQ(v->workingsetRefaultFile, 13u);
}

TEST(Vmstat, RejectsMalformed)
{
	for (const char *text : {"", "pgalloc_dma 1\n", "pgalloc_movable x\n", "pgalloc_movable -1\n",
	                         "pgalloc_movable 1\npgscan_kswapd 1.5\n"})
		EXPECT_FALSE(parseVmstat(text)) << text;
}

TEST(CgroupMemory, UsageAndFileLru)
{
	const char *stat = "anon 52428800\nfile 20971520\nshmem 4096\nactive_file 8388608\ninactive_file 12578816\n";
	auto m = parseCgroupMemory("104857600\n", stat);
	ASSERT_TRUE(m);
	EXPECT_EQ(m->current, 104857600u);
	EXPECT_EQ(m->fileLru, 8388608u + 12578816u) << "shmem is not on the file LRU lists";
	EXPECT_FALSE(parseCgroupMemory("max\n", stat));
	EXPECT_FALSE(parseCgroupMemory("4096\n", "anon 4096\nactive_file 0\n")) << "no inactive_file";
	EXPECT_FALSE(parseCgroupMemory("4096\n", "active_file x\ninactive_file 0\n"));
}

TEST(MemoryBlocks, BlockSizeIsHex)
{
	EXPECT_EQ(parseBlockSize("8000000\n"), 128u << 20);
	EXPECT_EQ(parseBlockSize("80000000"), 2ull << 30);
	for (const char *bad : {"", "0", "xyz", "0x8000000", "12345678901234567"})
		EXPECT_FALSE(parseBlockSize(bad)) << bad;
}

TEST(MemoryBlocks, OnlinePolicyNames)
{
	EXPECT_EQ(parseOnlinePolicy("offline\n"), OnlinePolicy::Offline);
	EXPECT_EQ(parseOnlinePolicy("online"), OnlinePolicy::Online);
	EXPECT_EQ(parseOnlinePolicy("online_kernel"), OnlinePolicy::OnlineKernel);
	EXPECT_EQ(parseOnlinePolicy("online_movable\n"), OnlinePolicy::OnlineMovable);
	EXPECT_FALSE(parseOnlinePolicy("movable"));
}

TEST(Onlining, Verdicts)
{
	EXPECT_TRUE(judgeOnlining(OnlinePolicy::OnlineMovable, "contig-zones").ok);
	EXPECT_TRUE(judgeOnlining(OnlinePolicy::Online, "auto-movable").ok);
	for (auto [policy, param, words] :
	     {std::tuple{std::optional<OnlinePolicy>(OnlinePolicy::Online), "contig-zones", "ZONE_NORMAL"},
	      std::tuple{std::optional<OnlinePolicy>(OnlinePolicy::Online), "", "ZONE_NORMAL"},
	      std::tuple{std::optional<OnlinePolicy>(OnlinePolicy::OnlineKernel), "", "kernel zone"},
	      std::tuple{std::optional<OnlinePolicy>(OnlinePolicy::Offline), "", "stay offline"}}) {
		OnliningVerdict v = judgeOnlining(policy, param);
		EXPECT_FALSE(v.ok);
		EXPECT_NE(v.message.find(words), std::string::npos) << v.message;
		EXPECT_NE(v.message.find("memhp_default_state=online_movable"), std::string::npos) << v.message;
	}
	EXPECT_FALSE(judgeOnlining(std::nullopt, "").ok);
}

// A fake sysfs tree, as the kernel lays it out.
TEST(Onlining, OnlinesOfflineBlocksOnAFakeTree)
{
	TempDir dir;
	const std::string mem = dir.path() + "/devices/system/memory";
	std::filesystem::create_directories(mem);
	std::ofstream(mem + "/auto_online_blocks") << "offline\n";
	std::ofstream(mem + "/block_size_bytes") << "8000000\n";
	for (int i : {0, 1, 8, 9}) {
		std::filesystem::create_directories(mem + "/memory" + std::to_string(i));
		std::ofstream(mem + "/memory" + std::to_string(i) + "/state") << (i < 8 ? "online\n" : "offline\n");
		std::ofstream(mem + "/memory" + std::to_string(i) + "/valid_zones")
		        << (i < 8 ? "Normal\n" : "Movable\n");
	}
	std::filesystem::create_directories(mem + "/power"); // not a block
	EXPECT_FALSE(checkOnlining(dir.path()).ok);
	auto blocks = readMemoryBlocks(dir.path());
	ASSERT_EQ(blocks.size(), 4u);
	EXPECT_EQ(blocks[2].index, 8u);
	EXPECT_FALSE(blocks[2].online);
	auto n = makeOnliningMovable(dir.path());
	ASSERT_TRUE(n) << n.error().message;
	EXPECT_EQ(*n, 2u);
	std::ifstream state(mem + "/memory9/state");
	std::string s;
	std::getline(state, s);
	EXPECT_EQ(s, "online_movable");
	EXPECT_TRUE(checkOnlining(dir.path()).ok);
}
