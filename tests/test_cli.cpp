// SPDX-License-Identifier: MIT
// Tests of the vmrd command line, and of the daemon on this machine's real PSI.
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <sysexits.h>

#include "process.h"

using namespace std::chrono_literals;

namespace {

const std::string vmrd = VMRD_BINARY;

Outcome run(std::vector<std::string> args)
{
	return runProgram(vmrd, std::move(args));
}

// The control socket goes into the test's directory: tests run in parallel.
std::string writeConfig(const TempDir &dir, const std::string &text)
{
	std::string path = dir.path() + "/vmrd.yaml";
	std::ofstream(path) << text << "control: {socket: " << dir.path() << "/control.sock}\n";
	return path;
}

const std::string mockConfig = "version: 1\nbackend:\n  name: mock\n  options: {max: 1G}\n";

} // namespace

TEST(Cli, HelpAndVersion)
{
	Outcome r = run({"--help"});
	EXPECT_EQ(r.code, 0);
	for (const char *opt :
	     {"--config", "--check-config", "--list-plugins", "--plugin-dir", "--log-level", "--dry-run", "--version"})
		EXPECT_NE(r.out.find(opt), std::string::npos) << opt;
	r = run({"--version"});
	EXPECT_EQ(r.code, 0);
	EXPECT_NE(r.out.find("plugin ABI 1.2"), std::string::npos) << r.out;
}

TEST(Cli, BadUsageIsExUsage)
{
	Outcome r = run({"--no-such-option"});
	EXPECT_EQ(r.code, EX_USAGE);
	EXPECT_NE(r.err.find("no-such-option"), std::string::npos) << r.err;
	r = run({"--log-level", "loud"});
	EXPECT_EQ(r.code, EX_USAGE);
	EXPECT_NE(r.err.find("'loud' is not error, warning, info or debug"), std::string::npos) << r.err;
}

TEST(Cli, CheckConfigPrintsThePlan)
{
	TempDir dir;
	Outcome r = run({"--config", writeConfig(dir, mockConfig), "--plugin-dir", MOCK_PLUGIN_DIR, "--check-config"});
	EXPECT_EQ(r.code, 0) << r.err;
	EXPECT_NE(r.out.find("is valid"), std::string::npos) << r.out;
	EXPECT_NE(r.out.find("backend: mock 1.0.0"), std::string::npos) << r.out;
	EXPECT_NE(r.out.find("range 0 B to 1 GiB, block 2 MiB"), std::string::npos) << r.out;
	EXPECT_NE(r.out.find("policy: server"), std::string::npos) << r.out;
}

TEST(Cli, MissingConfigIsExConfigWithThePath)
{
	Outcome r = run({"--config", "/nonexistent/vmrd.yaml", "--check-config"});
	EXPECT_EQ(r.code, EX_CONFIG);
	EXPECT_NE(r.err.find("/nonexistent/vmrd.yaml: cannot read the config file"), std::string::npos) << r.err;
}

TEST(Cli, InvalidConfigIsExConfigWithPosition)
{
	TempDir dir;
	std::string path = writeConfig(dir, mockConfig + "limits:\n  max: huge\n");
	Outcome r = run({"--config", path, "--check-config"});
	EXPECT_EQ(r.code, EX_CONFIG);
	EXPECT_NE(r.err.find(path + ":6:8: limits.max: 'huge' is not a size"), std::string::npos) << r.err;
}

TEST(Cli, UnknownPluginIsExConfigAndListsTheSearch)
{
	TempDir dir;
	std::string path = writeConfig(dir, "version: 1\nbackend: {name: nosuch}\n");
	Outcome r = run({"--config", path, "--plugin-dir", MOCK_PLUGIN_DIR, "--check-config"});
	EXPECT_EQ(r.code, EX_CONFIG);
	EXPECT_NE(
	        r.err.find(
	                path +
	                ":2:17: backend.name: plugin 'nosuch' not found: no vmrd-backend-nosuch.so in " MOCK_PLUGIN_DIR
	                ", "),
	        std::string::npos)
	        << r.err;
}

TEST(Cli, BadBackendOptionIsExConfig)
{
	TempDir dir;
	std::string path = writeConfig(dir, "version: 1\nbackend:\n  name: mock\n  options: {colour: blue}\n");
	Outcome r = run({"--config", path, "--plugin-dir", MOCK_PLUGIN_DIR, "--check-config"});
	EXPECT_EQ(r.code, EX_CONFIG);
	EXPECT_NE(r.err.find(path + ":4:12: backend.options: create failed in backend 'mock': unknown option 'colour'"),
	          std::string::npos)
	        << r.err;
}

TEST(Cli, BrokenPluginIsExConfig)
{
	TempDir dir;
	std::string path = writeConfig(dir, "version: 1\nbackend: {name: abi-major}\n");
	Outcome r = run({"--config", path, "--plugin-dir", BROKEN_PLUGIN_DIR, "--check-config"});
	EXPECT_EQ(r.code, EX_CONFIG);
	EXPECT_NE(r.err.find("built for vmrd plugin ABI 2"), std::string::npos) << r.err;
}

TEST(Cli, ListPluginsShowsGoodAndRejected)
{
	Outcome r = run({"--list-plugins", "--plugin-dir", MOCK_PLUGIN_DIR, "--plugin-dir", BROKEN_PLUGIN_DIR});
	EXPECT_EQ(r.code, 0) << r.err;
	EXPECT_NE(r.out.find("mock\t1.0.0\tvmrd project\tABI 1.2\t" MOCK_PLUGIN_DIR "/vmrd-backend-mock.so"),
	          std::string::npos)
	        << r.out;
	EXPECT_NE(r.out.find("rejected\t" BROKEN_PLUGIN_DIR "/vmrd-backend-no-manifest.so: "), std::string::npos)
	        << r.out;
	EXPECT_NE(r.out.find("built for vmrd plugin ABI 2"), std::string::npos) << r.out;
	// From its manifest alone: the missing entry point shows only on loading.
	EXPECT_NE(r.out.find("no-entry\t1.0\ttest\tABI 1.2\t"), std::string::npos) << r.out;
}

// The daemon in the foreground on this machine's real PSI with the mock
// backend: it must arm, run, and stop cleanly within a second of SIGTERM.
TEST(Daemon, RunsOnRealPsiAndStopsOnSigterm)
{
	if (const std::string why = realPsiMissing(); !why.empty())
		GTEST_SKIP() << why;
	TempDir dir;
	std::string path = writeConfig(dir, mockConfig);
	for (int sig : {SIGTERM, SIGINT}) {
		Process p({vmrd, "--config", path, "--plugin-dir", MOCK_PLUGIN_DIR});
		ASSERT_TRUE(p.waitForReady(10s)) << p.err();
		EXPECT_NE(p.err().find("PSI trigger"), std::string::npos) << p.err();
		p.signal(sig);
		auto t0 = std::chrono::steady_clock::now();
		int code = p.wait(5s);
		EXPECT_EQ(code, 0) << p.err();
		EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s) << "did not stop within a second";
		EXPECT_NE(p.err().find("stopping"), std::string::npos) << p.err();
	}
}

// SIGHUP with a good config applies it; with a bad one keeps the running
// config and says why; SIGUSR1 runs a shrink check; SIGTERM stops within a
// second.  On the real /proc, with the guard writing a fake cgroup's
// memory.high and the inputs recorded for replay.
TEST(Daemon, ReloadsOnSighupAndKeepsTheOldConfigWhenTheNewIsBad)
{
	if (const std::string why = realPsiMissing(); !why.empty())
		GTEST_SKIP() << why;
	TempDir dir;
	const std::string cgroup = dir.path() + "/cgroup", trace = dir.path() + "/trace.jsonl";
	std::filesystem::create_directories(cgroup);
	std::ofstream(cgroup + "/memory.high") << "max\n";
	std::ofstream(cgroup + "/memory.current") << "0\n";
	std::ofstream(cgroup + "/memory.stat") << "anon 0\nactive_file 0\ninactive_file 0\n";
	const std::string base = "version: 1\nbackend:\n  name: mock\n  options: {max: 8G, initial: 4G}\n"
	                         "daemon: {trace: " +
	                         trace + "}\nguard: {cgroup: " + cgroup + ", margin: 32M}\n";
	std::string path = writeConfig(dir, base);
	Process p({vmrd, "--config", path, "--plugin-dir", MOCK_PLUGIN_DIR});
	ASSERT_TRUE(p.waitForReady(10s)) << p.err();

	std::ifstream high(cgroup + "/memory.high");
	uint64_t value = 0;
	high >> value;
	EXPECT_GE(value, 64u << 20) << "the guard wrote MemAvailable - margin, or its floor";
	// Someone else resets it, as systemctl daemon-reload does on the slices
	// systemd manages: the guard sets it again and says so.
	std::ofstream(cgroup + "/memory.high") << "max\n";
	ASSERT_TRUE(p.waitForStderr("/memory.high was set to max by someone else", 10s)) << p.err();
	// It follows this machine's MemAvailable, which may have moved since.
	uint64_t again = 0;
	std::ifstream(cgroup + "/memory.high") >> again;
	EXPECT_GE(again, 64u << 20);

	writeConfig(dir, base + "policy:\n  shrink_step_max: 1G\n");
	p.signal(SIGHUP);
	ASSERT_TRUE(p.waitForStderr("SIGHUP: reloaded", 5s)) << p.err();

	writeConfig(dir, base + "policy:\n  shrink_step_max: [oops]\n");
	p.signal(SIGHUP);
	ASSERT_TRUE(p.waitForStderr("the new config is rejected, the running one is kept", 5s)) << p.err();
	EXPECT_NE(p.err().find(":8:20: policy.shrink_step_max: expected a single value"), std::string::npos) << p.err();

	// The host has far more than the headroom available: the shrink check
	// releases, 1 GiB at a time as the reloaded config says.
	p.signal(SIGUSR1);
	ASSERT_TRUE(p.waitForStderr("decision: unplug 1 GiB", 5s)) << p.err();
	ASSERT_TRUE(p.waitForStderr("3 GiB plugged (range", 5s)) << p.err();
	EXPECT_NE(p.err().find("unplug of 1 GiB finished in "), std::string::npos) << p.err();

	p.signal(SIGTERM);
	auto t0 = std::chrono::steady_clock::now();
	EXPECT_EQ(p.wait(5s), 0) << p.err();
	EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s) << "did not stop within a second";

	// The recording replays through the same controller.  Fed back as it
	// ran, it stops at the reload, past which it has not the config; a
	// simulated replay with the reloaded config goes on to the unplug.
	path = writeConfig(dir, base + "policy:\n  shrink_step_max: 1G\n");
	Process faithful({VMRD_REPLAY_BINARY, "--config", path, trace});
	EXPECT_EQ(faithful.wait(10s), 0) << faithful.err();
	EXPECT_NE(faithful.err().find("reloaded its config at"), std::string::npos) << faithful.err();
	Process r({VMRD_REPLAY_BINARY, "--config", path, "--simulate", "--tail", "0", trace});
	EXPECT_EQ(r.wait(10s), 0) << r.err();
	EXPECT_NE(r.out().find("unplug"), std::string::npos) << r.out();
}

TEST(Daemon, ReleaseOnExitGivesMemoryBack)
{
	if (const std::string why = realPsiMissing(); !why.empty())
		GTEST_SKIP() << why;
	TempDir dir;
	std::string path = writeConfig(dir, "version: 1\nbackend:\n  name: mock\n  options: {initial: 1G}\n"
	                                    "daemon: {release_on_exit: true}\n");
	Process p({vmrd, "--config", path, "--plugin-dir", MOCK_PLUGIN_DIR});
	ASSERT_TRUE(p.waitForReady(10s)) << p.err();
	p.signal(SIGTERM);
	EXPECT_EQ(p.wait(5s), 0) << p.err();
	EXPECT_NE(p.err().find("releasing 1 GiB before exit"), std::string::npos) << p.err();
	EXPECT_NE(p.err().find("stopped; 0 B plugged"), std::string::npos) << p.err();
}

TEST(Daemon, HungBackendCallIsAbandonedOnStop)
{
	if (const std::string why = realPsiMissing(); !why.empty())
		GTEST_SKIP() << why;
	TempDir dir;
	std::string path = writeConfig(dir, "version: 1\nbackend:\n  name: mock\n  call_timeout: 200ms\n"
	                                    "  options: {initial: 1G, hang_call: 1, hang_ms: 60000}\n");
	Process p({vmrd, "--config", path, "--plugin-dir", MOCK_PLUGIN_DIR});
	ASSERT_TRUE(p.waitForReady(10s)) << p.err();
	p.signal(SIGUSR1);
	ASSERT_TRUE(p.waitForStderr("has run longer than backend.call_timeout 200ms", 5s)) << p.err();
	// The daemon still answers while the call hangs.
	p.signal(SIGUSR1);
	ASSERT_TRUE(p.waitForStderr("shrink check held until the unplug of 1 GiB ends", 5s)) << p.err();
	p.signal(SIGTERM);
	auto t0 = std::chrono::steady_clock::now();
	EXPECT_EQ(p.wait(5s), 0) << p.err();
	EXPECT_LT(std::chrono::steady_clock::now() - t0, 1500ms);
	EXPECT_NE(p.err().find("abandoning the unplug"), std::string::npos) << p.err();
}

TEST(Daemon, DryRunDecidesButNeverCallsTheBackend)
{
	if (const std::string why = realPsiMissing(); !why.empty())
		GTEST_SKIP() << why;
	TempDir dir;
	const std::string trace = dir.path() + "/mock-calls.jsonl";
	std::string path = writeConfig(
	        dir, "version: 1\nbackend:\n  name: mock\n  options: {initial: 1G, trace: " + trace + "}\n");
	Process p({vmrd, "--config", path, "--plugin-dir", MOCK_PLUGIN_DIR, "--dry-run"});
	ASSERT_TRUE(p.waitForReady(10s)) << p.err();
	EXPECT_NE(p.err().find("dry run: plug and unplug are logged, never called"), std::string::npos) << p.err();
	p.signal(SIGUSR1);
	ASSERT_TRUE(p.waitForStderr("decision (dry run, not done): unplug 1 GiB", 5s)) << p.err();
	p.signal(SIGTERM);
	EXPECT_EQ(p.wait(5s), 0) << p.err();
	EXPECT_NE(p.err().find("stopped; 1 GiB plugged"), std::string::npos) << p.err();
	std::ifstream calls(trace);
	std::string line;
	EXPECT_FALSE(std::getline(calls, line)) << "the mock was called: " << line;
}
