// SPDX-License-Identifier: MIT
// Tests of the gunyah-membuf backend against an emulated qti_virtio_mem device and fake sysfs trees.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>

#include "config.h"
#include "emulated_device.h"
#include "membuf.h"
#include "replay.h"
#include "trace.h"

using namespace vmrd;
using namespace vmrd::gunyah;

namespace {

constexpr uint64_t MiB = 1ull << 20;
const std::string sysRoot = "/sys";
const std::string sysDir = "/sys/devices/virtual/qti_virtio_mem/qti_virtio_mem";

struct Fixture {
	EmulatedDevice dev{"/dev/qti_virtio_mem", sysDir, 4 * MiB, 64 * MiB};
	std::vector<std::string> logs;
	std::unique_ptr<Membuf> m;

	Fixture()
	{
		auto r = Membuf::create(dev, MembufOptions{}, sysRoot,
		                        [this](int, const std::string &t) { logs.push_back(t); });
		EXPECT_TRUE(r) << r.error().message;
		if (r)
			m = std::move(*r);
	}
};

} // namespace

TEST(Membuf, ReadsItsLimitsFromSysfs)
{
	Fixture f;
	EXPECT_EQ(f.m->blockSize(), 4 * MiB);
	EXPECT_EQ(f.m->maxBytes(), 64 * MiB);
	EXPECT_EQ(*f.m->plugged(), 0u);
}

TEST(Membuf, OneHintPerBlockAndTheDeviceSumsThem)
{
	Fixture f;
	auto o = f.m->plug(12 * MiB);
	EXPECT_EQ(o.code, 0) << o.message;
	EXPECT_EQ(o.done, 12 * MiB);
	EXPECT_EQ(f.dev.hints.size(), 3u);
	EXPECT_EQ(f.dev.requested(), 12 * MiB);
	EXPECT_EQ(*f.m->plugged(), 12 * MiB);
	EXPECT_EQ(f.dev.badCalls, 0) << "sizes > 0, reserved fields zero, names terminated";
}

TEST(Membuf, UnplugClosesTheNewestHintsFirst)
{
	Fixture f;
	f.m->plug(12 * MiB);
	const int oldest = f.dev.hints.begin()->first;
	auto o = f.m->unplug(8 * MiB);
	EXPECT_EQ(o.done, 8 * MiB);
	ASSERT_EQ(f.dev.hints.size(), 1u);
	EXPECT_EQ(f.dev.hints.begin()->first, oldest);
	EXPECT_EQ(f.dev.requested(), 4 * MiB);
}

TEST(Membuf, KernelPluggedBlocksAreReleasedFirst)
{
	Fixture f;
	f.m->plug(8 * MiB);
	f.dev.kernelBlocks = 3; // the kernel's OOM notifier plugged 12 MiB
	EXPECT_EQ(*f.m->plugged(), 20 * MiB);
	auto o = f.m->unplug(16 * MiB);
	EXPECT_EQ(o.done, 16 * MiB);
	EXPECT_EQ(f.dev.kernelBlocks, 0u);
	EXPECT_EQ(f.dev.hints.size(), 1u) << "three kernel blocks, then one of ours";
}

TEST(Membuf, TheMaximumStopsAPlugPartWay)
{
	Fixture f;
	auto o = f.m->plug(80 * MiB);
	EXPECT_EQ(o.code, -ENOSPC);
	EXPECT_EQ(o.done, 64 * MiB) << "a partial plug reports what it got";
	EXPECT_NE(o.message.find("QTI_VIRTIO_MEM_IOC_HINT_CREATE of 4 MiB on /dev/qti_virtio_mem failed after 64 MiB"),
	          std::string::npos)
	        << o.message;
	EXPECT_EQ(f.m->plug(6 * MiB).code, -EINVAL) << "not a whole number of blocks";
}

TEST(Membuf, NothingToReleaseIsBusy)
{
	Fixture f;
	EXPECT_EQ(f.m->unplug(4 * MiB).code, -EBUSY);
}

TEST(Membuf, ReleaseAllGivesEverythingBack)
{
	Fixture f;
	f.m->plug(20 * MiB);
	f.dev.kernelBlocks = 2;
	auto o = f.m->releaseAll();
	EXPECT_EQ(o.code, 0);
	EXPECT_EQ(o.done, 28 * MiB);
	EXPECT_EQ(f.dev.requested(), 0u);
}

// Memory lifetime is fd lifetime: a daemon that dies gives its hints back,
// and the next one starts from what the device reports.
TEST(Membuf, ARestartStartsFromTheDevicesState)
{
	EmulatedDevice dev("/dev/qti_virtio_mem", sysDir, 4 * MiB, 64 * MiB);
	{
		auto m = Membuf::create(dev, MembufOptions{}, sysRoot, [](int, const std::string &) {});
		ASSERT_TRUE(m);
		(*m)->plug(16 * MiB);
		dev.kernelBlocks = 1;
	} // the process ends: the kernel closes its fds
	EXPECT_EQ(dev.hints.size(), 0u);
	auto m = Membuf::create(dev, MembufOptions{}, sysRoot, [](int, const std::string &) {});
	ASSERT_TRUE(m);
	EXPECT_EQ(*(*m)->plugged(), 4 * MiB) << "only the kernel's own block remains";
}

// With a copy of each hint kept outside the daemon (systemd's fd store), a
// restart keeps the memory: the next daemon adopts the hints, in order.
TEST(Membuf, KeptHintsOutliveARestart)
{
	EmulatedDevice dev("/dev/qti_virtio_mem", sysDir, 4 * MiB, 64 * MiB);
	std::vector<Membuf::Hint> kept;
	{
		auto m = Membuf::create(dev, MembufOptions{}, sysRoot, [](int, const std::string &) {});
		ASSERT_TRUE(m);
		(*m)->plug(16 * MiB);
		kept = (*m)->hints();
		for (const auto &h : kept)
			dev.keep(h.fd); // the store's copy
	}                               // the daemon ends
	ASSERT_EQ(kept.size(), 4u);
	EXPECT_EQ(kept.front().name, "hint-1");
	EXPECT_EQ(kept.back().name, "hint-4");
	EXPECT_EQ(dev.requested(), 16 * MiB) << "the store still holds every hint";

	std::vector<std::string> logs;
	auto m = Membuf::create(dev, MembufOptions{}, sysRoot, [&](int, const std::string &t) { logs.push_back(t); });
	ASSERT_TRUE(m);
	std::map<std::string, int> stored;
	for (const auto &h : kept) {
		dev.keep(h.fd); // systemd passes the new daemon a copy and keeps its own
		stored[h.name] = h.fd;
	}
	std::reverse(kept.begin(), kept.end());
	kept.push_back({dev.keep(999), "vmrd-other"});
	(*m)->adopt(kept);
	ASSERT_EQ(logs.size(), 1u);
	EXPECT_NE(logs[0].find("'vmrd-other' is not a hint this backend exported: closed"), std::string::npos);
	EXPECT_EQ(*(*m)->plugged(), 16 * MiB);

	std::vector<std::string> forgotten;
	(*m)->onForget([&](const std::string &name) {
		forgotten.push_back(name);
		if (stored.count(name))
			dev.close(stored[name]); // the store lets its copy go
	});
	(*m)->plug(4 * MiB);
	EXPECT_EQ((*m)->hints().back().name, "hint-5");
	EXPECT_EQ((*m)->unplug(8 * MiB).done, 8 * MiB);
	EXPECT_EQ(forgotten, (std::vector<std::string>{"hint-5", "hint-4"}));
	EXPECT_EQ(dev.requested(), 12 * MiB) << "the newest went back, the adopted ones by their numbers";
}

TEST(Membuf, MissingDeviceSaysWhatIsWrong)
{
	EmulatedDevice dev("/dev/other", sysDir, 4 * MiB, 64 * MiB);
	auto m = Membuf::create(dev, MembufOptions{}, sysRoot, [](int, const std::string &) {});
	ASSERT_FALSE(m);
	EXPECT_EQ(m.error().code, -ENODEV);
	EXPECT_NE(m.error().message.find("not a Gunyah guest with qti_virtio_mem"), std::string::npos);
}

TEST(Membuf, OptionsAreChecked)
{
	EXPECT_TRUE(parseMembufOptions({{"device", "/dev/x"}, {"sysfs_dir", "a/b"}, {"hint_name", "vmrd-1"}}));
	auto o = parseMembufOptions({{"devcie", "/dev/x"}});
	ASSERT_FALSE(o);
	EXPECT_NE(o.error().message.find("unknown option 'devcie'"), std::string::npos);
	EXPECT_FALSE(parseMembufOptions({{"hint_name", std::string(200, 'x')}}));
	EXPECT_FALSE(parseMembufOptions({{"device", ""}}));
}

// The real attribute reading (systemKernel) on fake sysfs trees.
TEST(Membuf, ReadsAFakeSysfsTree)
{
	auto kernel = systemKernel();
	MembufOptions o;
	o.device = FIXTURES "/qti_virtio_mem"; // a plain file stands in for the node: no ioctl here
	auto m = Membuf::create(*kernel, o, FIXTURES "/sysfs", [](int, const std::string &) {});
	ASSERT_TRUE(m) << m.error().message;
	EXPECT_EQ((*m)->blockSize(), 4 * MiB);
	EXPECT_EQ((*m)->maxBytes(), 256 * MiB);
	EXPECT_EQ(*(*m)->plugged(), 12 * MiB);
	auto bad = Membuf::create(*kernel, o, FIXTURES "/broken-sysfs", [](int, const std::string &) {});
	ASSERT_FALSE(bad);
	EXPECT_NE(bad.error().message.find("device_block_size: 'four megabytes' is not a number"), std::string::npos)
	        << bad.error().message;
	auto none = Membuf::create(*kernel, o, FIXTURES "/nonexistent", [](int, const std::string &) {});
	ASSERT_FALSE(none);
	EXPECT_NE(none.error().message.find("is this Qualcomm's qti_virtio_mem driver?"), std::string::npos);
}

// systemKernel keeps an attribute open after its first read: a later read
// must still see the value the kernel shows now.
TEST(Membuf, AKeptAttributeShowsTheCurrentValue)
{
	std::string dir = ::testing::TempDir() + "vmrd-membuf-XXXXXX";
	ASSERT_NE(mkdtemp(dir.data()), nullptr);
	const std::string path = dir + "/device_block_plugged";
	auto kernel = systemKernel();
	std::ofstream(path) << "3\n";
	auto first = kernel->readAttribute(path);
	std::ofstream(path, std::ios::trunc) << "17\n";
	auto second = kernel->readAttribute(path);
	std::filesystem::remove_all(dir);
	ASSERT_TRUE(first) << first.error().message;
	EXPECT_EQ(*first, "3\n");
	ASSERT_TRUE(second) << second.error().message;
	EXPECT_EQ(*second, "17\n");
	auto none = kernel->readAttribute(dir + "/device_block_size");
	ASSERT_FALSE(none);
	EXPECT_NE(none.error().message.find(dir + "/device_block_size"), std::string::npos) << none.error().message;
}

// The rfc-reference preset's scenario, replayed with this backend over the
// emulated device instead of the built-in simulation: the same decisions,
// and the device holds exactly what the daemon booked at every step.
TEST(Membuf, EmbeddedScenarioReplaysAgainstTheEmulatedDevice)
{
	auto config = loadConfig(TRACES "/rfc-reference-cycle.yaml");
	ASSERT_TRUE(config) << config.error().message;
	auto trace = readTrace(TRACES "/rfc-reference-cycle.jsonl");
	ASSERT_TRUE(trace) << trace.error().message;
	EmulatedDevice dev("/dev/qti_virtio_mem", sysDir, 2 * MiB, 4096 * MiB);
	auto m = Membuf::create(dev, MembufOptions{}, sysRoot, [](int, const std::string &) {});
	ASSERT_TRUE(m);
	int calls = 0;
	ReplayOptions options{std::chrono::seconds(30), true, [&](const Decision &d, BackendState &sim) {
		                      auto o = d.action == Decision::Action::Plug ? (*m)->plug(d.bytes)
		                                                                  : (*m)->unplug(d.bytes);
		                      sim.plugged = *(*m)->plugged();
		                      EXPECT_EQ(sim.plugged, dev.requested());
		                      calls++;
		                      return CallResult{o.code, o.done, o.message};
	                      }};
	auto lines = replay(config->policy, config->limits, *trace, options).decisions;
	std::ifstream expected(TRACES "/rfc-reference-cycle.expected");
	std::vector<std::string> want;
	for (std::string l; std::getline(expected, l);)
		want.push_back(l);
	EXPECT_EQ(lines, want);
	EXPECT_GT(calls, 10);
	EXPECT_EQ(dev.badCalls, 0);
}
