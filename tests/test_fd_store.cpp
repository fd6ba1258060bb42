// SPDX-License-Identifier: MIT
// The file descriptor store: memory a backend holds in fds outlives vmrd, through fd-holder's notify and listen-fds.
#include <fstream>
#include <gtest/gtest.h>
#include <regex>

#include "process.h"
#include "temp_dir.h"

namespace {

using namespace std::chrono_literals;

const std::string vmrd = VMRD_BINARY;
const std::string vmrdctl = VMRDCTL_BINARY;
const std::string holder = FD_HOLDER;

// The mock keeps each 64 MiB block above its floor in a memfd; nothing is
// given back by the policy within the test (shrink_hold of an hour).
std::string config(const TempDir &dir)
{
	std::string path = dir.path() + "/vmrd.yaml";
	std::ofstream(path) << "version: 1\n"
	                       "backend:\n  name: mock\n  options: {block_size: 64M, max: 1G, held_fds: true}\n"
	                       "policy:\n  shrink_hold: 1h\n  backoff_max: 1h\nlimits:\n  min_interval: 0s\n"
	                       "control:\n  socket: "
	                    << dir.path() << "/control.sock\n";
	return path;
}

// vmrd's pid, from fd-holder's last "started PID" line.
pid_t lastStarted(const std::string &out)
{
	pid_t pid = -1;
	std::smatch m;
	for (auto it = out.cbegin(); std::regex_search(it, out.cend(), m, std::regex("started (\\d+)"));
	     it = m[0].second)
		pid = std::stoi(m[1]);
	return pid;
}

TEST(FdStore, HeldMemoryOutlivesAKilledDaemon)
{
	TempDir dir;
	const std::string socket = dir.path() + "/control.sock";
	std::vector<std::string> command{holder, "-r", "1"};
	for (const auto &a : wrapped({vmrd, "--config", config(dir), "--plugin-dir", MOCK_PLUGIN_DIR}))
		command.push_back(a);
	Process p(command);
	ASSERT_TRUE(p.waitForStdout("ready", 10s)) << p.out() << p.err();

	auto grow = runProgram(vmrdctl, {"--socket", socket, "grow", "192M"});
	ASSERT_EQ(grow.code, 0) << grow.err;
	ASSERT_TRUE(p.waitForStdout("stored mock.block-3", 10s)) << p.out() << p.err();
	// A shrink withdraws the fd before the backend closes it: the block
	// really goes, not into the store.
	auto shrink = runProgram(vmrdctl, {"--socket", socket, "shrink", "64M"});
	ASSERT_EQ(shrink.code, 0) << shrink.err;
	ASSERT_TRUE(p.waitForStdout("removed mock.block-3", 10s)) << p.out() << p.err();

	const pid_t first = lastStarted(p.out());
	ASSERT_GT(first, 0) << p.out();
	::kill(first, SIGKILL);
	ASSERT_TRUE(p.waitForStdout("killed 9", 10s)) << p.out();
	ASSERT_TRUE(p.waitForStderr("adopted 2 fd(s) that the previous vmrd kept", 10s)) << p.err();
	ASSERT_TRUE(p.waitForStdout("ready", 10s));
	auto status = runProgram(vmrdctl, {"--socket", socket, "status"});
	EXPECT_NE(status.out.find("128 MiB plugged"), std::string::npos) << status.out;
	// The next block after the adopted ones takes the next number.
	ASSERT_EQ(runProgram(vmrdctl, {"--socket", socket, "grow", "64M"}).code, 0);
	ASSERT_TRUE(p.waitForStdout("stored mock.block-3", 10s)) << p.out();
	p.signal(SIGTERM);
	EXPECT_EQ(p.wait(10s), 0) << p.out() << p.err();
}

TEST(FdStore, WithoutAKeeperTheLogSaysWhatARestartCosts)
{
	TempDir dir;
	std::vector<std::string> command{"/usr/bin/env", "-u", "NOTIFY_SOCKET"};
	for (const auto &a : wrapped({vmrd, "--config", config(dir), "--plugin-dir", MOCK_PLUGIN_DIR}))
		command.push_back(a);
	Process p(command);
	ASSERT_TRUE(p.waitForStderr("running with backend", 10s)) << p.err();
	EXPECT_NE(p.err().find("holds its memory in file descriptors, and no systemd keeps them"), std::string::npos)
	        << p.err();
	p.signal(SIGTERM);
	EXPECT_EQ(p.wait(10s), 0) << p.err();
}

} // namespace
