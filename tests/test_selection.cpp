// SPDX-License-Identifier: MIT
// Tests of backend selection (one name, a list, auto) with the real plugins, probing fake sysfs and /dev trees.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>
#include <gtest/gtest.h>

#include "backend_selection.h"
#include "config.h"
#include "plugin_loader.h"
#include "temp_dir.h"

using namespace vmrd;
namespace fs = std::filesystem;

namespace {

const std::string gunyahFixtures = VMRD_SOURCE_DIR "/plugins/gunyah-membuf/tests/fixtures";

// A plugin directory with the in-tree backends, and a guest's files to
// probe: the vmrd port and the qti_virtio_mem device each there or not.
class Choosing : public testing::Test
{
protected:
	void SetUp() override
	{
		fs::create_directories(plugins());
		for (const char *dir : {MOCK_PLUGIN_DIR, VIRTIO_MEM_PLUGIN_DIR, GUNYAH_PLUGIN_DIR})
			for (const auto &e : fs::directory_iterator(dir))
				if (e.path().extension() == ".so")
					fs::create_symlink(e.path(), plugins() / e.path().filename());
		fs::create_directories(tmp_.path() + "/sys");
		fs::create_directories(tmp_.path() + "/proc");
	}

	fs::path plugins() const { return fs::path(tmp_.path()) / "plugins"; }
	std::string port() const { return tmp_.path() + "/org.vmrd.0"; }
	void addPort() const { std::ofstream(port()).put('\n'); }
	void addPlugin(const std::string &file) const
	{
		fs::create_symlink(fs::path(BROKEN_PLUGIN_DIR) / file, plugins() / file);
	}

	// backend.name as given, the devices' paths as options of the listed
	// backends, and sysfs with the qti_virtio_mem directory or without.
	Config config(const std::string &name, bool gunyahSysfs, const std::string &virtioExtra = "",
	              const std::string &moreOptions = "") const
	{
		auto lists = [&](const char *plugin) {
			return name == "auto" || (name[0] == '[' && name.find(plugin) != std::string::npos);
		};
		std::string text = "version: 1\nbackend:\n  name: " + name + "\n  options:\n";
		if (lists("virtio-mem"))
			text += "    virtio-mem: {port: " + port() + virtioExtra + "}\n";
		if (lists("gunyah-membuf"))
			text += "    gunyah-membuf: {device: " + gunyahFixtures + "/qti_virtio_mem}\n";
		text += moreOptions + "paths:\n  procfs: " + tmp_.path() +
		        "/proc\n  sysfs: " + (gunyahSysfs ? gunyahFixtures + "/sysfs" : tmp_.path() + "/sys") + "\n";
		auto c = parseConfig(text, "test.yaml");
		EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().message);
		return c.ok() ? *c : Config{};
	}

	Selection select(const Config &c) const
	{
		auto s = selectBackend(c, PluginLoader({plugins().string()}));
		EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
		return s.ok() ? *s : Selection{};
	}

	static std::string chosen(const Selection &s) { return s.plugin ? s.plugin->info().name : "(none)"; }

	TempDir tmp_;
};

using Kind = CandidateVerdict::Kind;

} // namespace

TEST_F(Choosing, AutoTriesEveryInstalledPluginInNameOrder)
{
	const Config c = config("auto", false);
	EXPECT_EQ(candidateNames(c.backend, PluginLoader({plugins().string()}).list()),
	          (std::vector<std::string>{"gunyah-membuf", "mock", "virtio-mem"}));
}

TEST_F(Choosing, AutoPicksGunyahMembufWhereItsDeviceIs)
{
	addPort(); // a Gunyah guest that has the vmrd port as well: the documented order decides
	const auto s = select(config("auto", true));
	EXPECT_EQ(chosen(s), "gunyah-membuf");
	ASSERT_EQ(s.verdicts.size(), 1u);
	EXPECT_EQ(s.verdicts[0].kind, Kind::Chosen);
}

TEST_F(Choosing, AutoSkipsTheMockAndPicksVirtioMemWhereThePortIs)
{
	addPort();
	const auto s = select(config("auto", false));
	EXPECT_EQ(chosen(s), "virtio-mem");
	ASSERT_EQ(s.verdicts.size(), 3u);
	EXPECT_EQ(s.verdicts[0].kind, Kind::Absent);
	EXPECT_NE(s.verdicts[0].reason.find("/sys/devices/virtual/qti_virtio_mem/qti_virtio_mem is missing"),
	          std::string::npos)
	        << s.verdicts[0].reason;
	EXPECT_EQ(s.verdicts[1].name, "mock");
	EXPECT_EQ(s.verdicts[1].kind, Kind::Skipped);
	EXPECT_NE(s.verdicts[1].reason.find("a test backend"), std::string::npos);
}

TEST_F(Choosing, NothingPresentNamesWhatEachCandidateSaid)
{
	const auto s = select(config("auto", false));
	EXPECT_FALSE(s.plugin);
	const std::string why = describeNoBackend(s);
	EXPECT_NE(why.find("none of the backends is present:"), std::string::npos) << why;
	EXPECT_NE(why.find("\n  gunyah-membuf: absent: "), std::string::npos) << why;
	EXPECT_NE(why.find("\n  mock: skipped: a test backend"), std::string::npos) << why;
	EXPECT_NE(why.find("\n  virtio-mem: absent: no virtio-serial port " + port()), std::string::npos) << why;
}

TEST_F(Choosing, AListIsTriedInTheOperatorsOrder)
{
	addPort();
	EXPECT_EQ(chosen(select(config("[virtio-mem, gunyah-membuf]", true))), "virtio-mem");
	EXPECT_EQ(chosen(select(config("[gunyah-membuf, virtio-mem]", true))), "gunyah-membuf");
}

TEST_F(Choosing, TheMockIsChosenWhenNamed)
{
	EXPECT_EQ(chosen(select(config("mock", false))), "mock");
	EXPECT_EQ(chosen(select(config("[virtio-mem, mock]", false))), "mock");
}

TEST_F(Choosing, AnUninstalledCandidateIsAbsent)
{
	const auto s = select(config("[nosuch, mock]", false));
	EXPECT_EQ(chosen(s), "mock");
	ASSERT_EQ(s.verdicts.size(), 2u);
	EXPECT_EQ(s.verdicts[0].kind, Kind::Absent);
	EXPECT_NE(s.verdicts[0].reason.find("plugin 'nosuch' not found"), std::string::npos);
}

TEST_F(Choosing, AFailingProbeIsPassedOverWithItsMessage)
{
	addPort();
	const auto s = select(config("[virtio-mem, mock]", false, ", colour: blue"));
	EXPECT_EQ(chosen(s), "mock");
	ASSERT_EQ(s.verdicts.size(), 2u);
	EXPECT_EQ(s.verdicts[0].kind, Kind::Failed);
	EXPECT_NE(s.verdicts[0].reason.find("probe failed: unknown option 'colour'"), std::string::npos)
	        << s.verdicts[0].reason;
}

TEST_F(Choosing, APluginWithoutProbeCountsOnlyWhenNamed)
{
	addPlugin("vmrd-backend-abi-minor.so"); // an older plugin: no probe
	const auto named = select(config("abi-minor", false));
	EXPECT_EQ(chosen(named), "abi-minor");
	const auto automatic = select(config("auto", false));
	EXPECT_FALSE(automatic.plugin);
	ASSERT_FALSE(automatic.verdicts.empty());
	EXPECT_EQ(automatic.verdicts[0].name, "abi-minor");
	EXPECT_EQ(automatic.verdicts[0].kind, Kind::Skipped);
	EXPECT_NE(automatic.verdicts[0].reason.find("it has no probe"), std::string::npos);
}

TEST_F(Choosing, AutoRefusesOptionsForAPluginNotInstalled)
{
	const Config c = config("auto", false, "", "    nosuch: {a: b}\n");
	auto s = selectBackend(c, PluginLoader({plugins().string()}));
	ASSERT_FALSE(s.ok());
	EXPECT_NE(s.error().message.find("test.yaml:7:13: backend.options.nosuch: no plugin 'nosuch' is installed"),
	          std::string::npos)
	        << s.error().message;
}
