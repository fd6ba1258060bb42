// SPDX-License-Identifier: MIT
// Tests of the memory statistics parsers, the PSI fallback order, and PSI on this machine's kernel.
#include <fstream>
#include <gtest/gtest.h>
#include <unistd.h>

#include "mem_stats.h"
#include "proc_file.h"
#include "psi_monitor.h"
#include "temp_dir.h"

using namespace vmrd;
using namespace std::chrono_literals;

TEST(Meminfo, ParsesTheKernelFormat)
{
	auto m = parseMeminfo("MemTotal:        1003020 kB\nMemFree:          712340 kB\n"
	                      "MemAvailable:     801234 kB\nBuffers:            1234 kB\n"
	                      "SwapTotal:       2097148 kB\nSwapFree:        2097148 kB\nHugePages_Total:       0\n");
	ASSERT_TRUE(m);
	EXPECT_EQ(m->memTotal, 1003020ull * 1024);
	EXPECT_EQ(m->memAvailable, 801234ull * 1024);
	EXPECT_EQ(m->swapFree, 2097148ull * 1024);
}

TEST(Meminfo, RejectsMalformedAndTruncated)
{
	const char *bad[] = {
	        "",
	        "MemTotal: 1 kB\nMemFree: 1 kB\n",                                        // no MemAvailable
	        "MemTotal: x kB\nMemFree: 1 kB\nMemAvailable: 1 kB\n",                    // not a number
	        "MemTotal: 1 kB\nMemFree: 1 kB\nMemAvailable: 18446744073709551615 kB\n", // overflow
	        "MemTotal: -1 kB\nMemFree: 1 kB\nMemAvailable: 1 kB\n",
	};
	for (const char *text : bad)
		EXPECT_FALSE(parseMeminfo(text)) << text;
}

TEST(Psi, ParsesBothLines)
{
	auto s = parsePsi("some avg10=1.50 avg60=0.30 avg300=0.00 total=123456\n"
	                  "full avg10=0.25 avg60=0.00 avg300=0.00 total=789\n");
	ASSERT_TRUE(s);
	EXPECT_DOUBLE_EQ(s->some.avg10, 1.5);
	EXPECT_EQ(s->some.totalUs, 123456u);
	ASSERT_TRUE(s->full);
	EXPECT_DOUBLE_EQ(s->full->avg10, 0.25);
	EXPECT_EQ(s->full->totalUs, 789u);
}

TEST(Psi, RejectsMalformed)
{
	for (const char *text :
	     {"", "some avg10=1.00 avg60=0.00 avg300=0.00\n", "most avg10=0 avg60=0 avg300=0 total=0\n",
	      "some avg10=x avg60=0 avg300=0 total=0\n", "some avg10=1. avg60=0 avg300=0 total=0\n",
	      "full avg10=0.00 avg60=0.00 avg300=0.00 total=1\n"})
		EXPECT_FALSE(parsePsi(text)) << text;
}

TEST(Psi, TriggerTextIsMicroseconds)
{
	EXPECT_EQ(triggerText({TriggerConfig::Kind::Some, 150ms, 1s}), "some 150000 1000000");
	EXPECT_EQ(triggerText({TriggerConfig::Kind::Full, 5ms, 50ms}), "full 5000 50000");
}

TEST(Psi, FallbackOrder)
{
	// 50 ms window: 500 ms (pre-6.4 kernels), then 2 s (no CAP_SYS_RESOURCE).
	auto f = triggerFallbacks({TriggerConfig::Kind::Some, 5ms, 50ms});
	ASSERT_EQ(f.size(), 3u);
	EXPECT_EQ(f[0].trigger.window, 50ms);
	EXPECT_EQ(f[1].trigger.window, 500ms);
	EXPECT_EQ(f[1].trigger.stall, 50ms) << "stall scales with the window";
	EXPECT_NE(f[1].why.find("before 6.4"), std::string::npos);
	EXPECT_EQ(f[2].trigger.window, 2s);
	EXPECT_EQ(f[2].trigger.stall, 200ms);
	EXPECT_NE(f[2].why.find("CAP_SYS_RESOURCE"), std::string::npos);

	f = triggerFallbacks({TriggerConfig::Kind::Some, 300ms, 3s});
	ASSERT_EQ(f.size(), 2u);
	EXPECT_EQ(f[1].trigger.window, 4s);
	EXPECT_EQ(f[1].trigger.stall, 400ms);

	EXPECT_EQ(triggerFallbacks({TriggerConfig::Kind::Some, 1s, 4s}).size(), 1u);
}

TEST(ProcFile, RereadsTheSameFd)
{
	TempDir dir;
	const std::string path = dir.path() + "/f";
	std::ofstream(path) << "one";
	auto f = ProcFile::open(path, 64);
	ASSERT_TRUE(f);
	EXPECT_EQ(*f->read(), "one");
	std::ofstream(path, std::ios::trunc) << "two and more";
	EXPECT_EQ(*f->read(), "two and more");
	std::ofstream(path, std::ios::trunc) << std::string(100, 'x');
	auto r = f->read();
	ASSERT_FALSE(r);
	EXPECT_EQ(r.error().code, -EOVERFLOW);
}

TEST(ProcFile, ReadKernelFileNamesTheFile)
{
	TempDir dir;
	const std::string path = dir.path() + "/online";
	std::ofstream(path) << "1\n";
	auto text = readKernelFile(path);
	ASSERT_TRUE(text) << text.error().message;
	EXPECT_EQ(*text, "1\n");
	auto missing = readKernelFile(dir.path() + "/absent");
	ASSERT_FALSE(missing);
	EXPECT_EQ(missing.error().code, -ENOENT);
	EXPECT_NE(missing.error().message.find(dir.path() + "/absent"), std::string::npos) << missing.error().message;
}

TEST(PsiKernel, MissingSourceNamesTheKernelParameter)
{
	auto m = PsiMonitor::arm({"/nonexistent/pressure/memory"}, {{TriggerConfig::Kind::Some, 100ms, 1s}});
	ASSERT_FALSE(m);
	EXPECT_NE(m.error().message.find("psi=1"), std::string::npos) << m.error().message;
}

// On this machine's real kernel: arm a trigger and read the real file.
TEST(PsiKernel, ArmsOnTheRunningKernel)
{
	if (access("/proc/pressure/memory", R_OK) != 0)
		GTEST_SKIP() << "/proc/pressure/memory is absent: this kernel has no PSI (boot with psi=1)";
	if (geteuid() != 0)
		GTEST_SKIP() << "PSI triggers need root here";
	auto m = PsiMonitor::arm({"/proc/pressure/memory"},
	                         {{TriggerConfig::Kind::Some, 100ms, 1s}, {TriggerConfig::Kind::Full, 5ms, 50ms}});
	ASSERT_TRUE(m) << m.error().message;
	ASSERT_EQ(m->armed().size(), 2u);
	for (const auto &a : m->armed()) {
		EXPECT_GE(a.fd, 0);
		EXPECT_LE(a.trigger.window, 10s);
	}
	auto f = ProcFile::open("/proc/pressure/memory");
	ASSERT_TRUE(f);
	auto text = f->read();
	ASSERT_TRUE(text);
	EXPECT_TRUE(parsePsi(*text)) << *text;
	auto mi = ProcFile::open("/proc/meminfo");
	ASSERT_TRUE(mi);
	auto mt = mi->read();
	ASSERT_TRUE(mt);
	auto parsed = parseMeminfo(*mt);
	ASSERT_TRUE(parsed);
	EXPECT_GT(parsed->memTotal, 0u);
}
