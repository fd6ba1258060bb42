// SPDX-License-Identifier: MIT
// Tests of the operator's view: control socket, vmrdctl, metrics, HTTP, systemd notify, journald.
#include <arpa/inet.h>
#include <cstddef>
#include <fstream>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <regex>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sysexits.h>

#include <nlohmann/json.hpp>

#include "config.h"
#include "control.h"
#include "metrics.h"
#include "notify.h"
#include "control_client.h"
#include "process.h"

using namespace std::chrono_literals;
using json = nlohmann::json;
using namespace vmrd;

namespace {

const std::string vmrdBinary = VMRD_BINARY;
const std::string vmrdctl = VMRDCTL_BINARY;

uint16_t freePort()
{
	int fd = ::socket(AF_INET, SOCK_STREAM, 0);
	sockaddr_in in{};
	in.sin_family = AF_INET;
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(in);
	const bool ok = ::bind(fd, reinterpret_cast<sockaddr *>(&in), sizeof(in)) == 0 &&
	                ::getsockname(fd, reinterpret_cast<sockaddr *>(&in), &len) == 0;
	::close(fd);
	EXPECT_TRUE(ok) << "no free loopback port: " << std::strerror(errno);
	return ntohs(in.sin_port);
}

Outcome ctl(std::vector<std::string> args)
{
	return runProgram(vmrdctl, std::move(args));
}

// vmrd with the mock backend (512 MiB plugged) on this machine's real PSI,
// its control socket and HTTP listener in a temporary directory.
class ControlTest : public ::testing::Test
{
protected:
	void SetUp() override
	{
		if (const std::string why = realPsiMissing(); !why.empty())
			GTEST_SKIP() << why;
		socket_ = dir_.path() + "/run/control.sock";
		port_ = freePort();
		config_ = dir_.path() + "/vmrd.yaml";
		writeConfig("");
	}

	void writeConfig(const std::string &extra)
	{
		std::ofstream(config_) << "version: 1\nbackend:\n  name: mock\n  options: {max: 2G, initial: 512M}\n"
		                       << "daemon: {mlock: false}\ncontrol:\n  socket: " << socket_
		                       << "\n  http: 127.0.0.1:" << port_ << "\n"
		                       << extra;
	}

	std::unique_ptr<Process> start()
	{
		auto p = std::make_unique<Process>(
		        std::vector<std::string>{vmrdBinary, "--config", config_, "--plugin-dir", MOCK_PLUGIN_DIR});
		EXPECT_TRUE(p->waitForReady(10s)) << p->err();
		return p;
	}

	TempDir dir_;
	std::string socket_, config_;
	uint16_t port_ = 0;
};

} // namespace

// The idle 512 MiB stay until asked for: a long shrink_hold.
const char *const holdLong = "policy: {shrink_hold: 10m, backoff_max: 10m}\n";

TEST_F(ControlTest, StatusOverTheSocketAndThroughVmrdctl)
{
	writeConfig(holdLong);
	auto d = start();
	struct stat st;
	ASSERT_EQ(::stat(socket_.c_str(), &st), 0);
	EXPECT_TRUE(S_ISSOCK(st.st_mode));
	EXPECT_EQ(st.st_mode & 0777, 0600u) << "the socket resizes the VM: root only";

	Client c(socket_);
	ASSERT_TRUE(c.connected());
	json s = c.request("status");
	ASSERT_TRUE(s.value("ok", false)) << s.dump();
	EXPECT_EQ(s["backend"]["name"], "mock");
	EXPECT_EQ(s["backend"]["plugged"], 512ull << 20);
	EXPECT_EQ(s["backend"]["max"], 2ull << 30);
	EXPECT_EQ(s["policy"]["preset"], "server");
	ASSERT_FALSE(s["psi"].empty());
	EXPECT_EQ(s["psi"][0]["source"], "/proc/pressure/memory");
	EXPECT_GT(s["memory"]["mem_total"].get<uint64_t>(), 0u);

	Outcome human = ctl({"--socket", socket_, "status"});
	EXPECT_EQ(human.code, 0) << human.err;
	EXPECT_NE(human.out.find("backend    mock: connected, 512 MiB plugged (range 0 B to 2 GiB"), std::string::npos)
	        << human.out;
	EXPECT_NE(human.out.find("policy     server"), std::string::npos) << human.out;
	Outcome asJson = ctl({"--socket", socket_, "status", "--json"});
	EXPECT_EQ(asJson.code, 0) << asJson.err;
	EXPECT_EQ(json::parse(asJson.out, nullptr, false)["backend"]["plugged"], 512ull << 20) << asJson.out;

	// A shrink check now gives the idle 512 MiB back; status lists it with its outcome.
	Outcome reclaim = ctl({"--socket", socket_, "reclaim"});
	EXPECT_EQ(reclaim.code, 0) << reclaim.err;
	EXPECT_NE(reclaim.out.find("unplug 512 MiB: MemAvailable"), std::string::npos) << reclaim.out;
	// Its reply comes when it is decided: the unplug may still run.
	s = statusWhen([&] { return c.request("status"); }, "the unplug done", [](const json &) { return true; });
	ASSERT_FALSE(s["decisions"].empty()) << s.dump();
	EXPECT_EQ(s["decisions"].back()["action"], "unplug");
	EXPECT_NE(s["decisions"].back()["reason"].get<std::string>().find("above the reserve"), std::string::npos);
	EXPECT_EQ(s["backend"]["plugged"], 0u);
	EXPECT_FALSE(s["policy"]["state"].empty()) << "after a shrink the policy has timers to show";

	d->signal(SIGTERM);
	EXPECT_EQ(d->wait(5s), 0) << d->err();
	EXPECT_NE(::access(socket_.c_str(), F_OK), 0) << "the socket is removed on exit";
}

// An operator's resize: within the limits like any decision, and refused
// with a usage error when the size is missing or bad.
TEST_F(ControlTest, GrowAndShrinkThroughVmrdctl)
{
	writeConfig("limits: {max: 1G, min_interval: 0}\npolicy: {headroom: 0, shrink_hold: 1h, backoff_max: 1h}\n");
	auto d = start();
	Outcome grow = ctl({"--socket", socket_, "grow", "256M"});
	EXPECT_EQ(grow.code, 0) << grow.err;
	EXPECT_NE(grow.out.find("plug 256 MiB: vmrdctl grow 256 MiB"), std::string::npos) << grow.out;
	ASSERT_TRUE(d->waitForStderr("plug of 256 MiB finished", 5s)) << d->err();
	// 4 GiB more would pass limits.max: capped at it.
	Outcome capped = ctl({"--socket", socket_, "grow", "4G"});
	EXPECT_EQ(capped.code, 0) << capped.err;
	EXPECT_NE(capped.out.find("plug 256 MiB: vmrdctl grow 4 GiB; 256 MiB (limits.max)"), std::string::npos)
	        << capped.out;
	ASSERT_TRUE(d->waitForStderr(": 1 GiB plugged (range", 5s)) << d->err();
	Outcome shrink = ctl({"--socket", socket_, "shrink", "1G"});
	EXPECT_EQ(shrink.code, 0) << shrink.err;
	EXPECT_NE(shrink.out.find("unplug 1 GiB: vmrdctl shrink 1 GiB"), std::string::npos) << shrink.out;
	for (const auto &args :
	     std::vector<std::vector<std::string>>{{"grow"}, {"grow", "lots"}, {"shrink", "0"}, {"status", "1G"}}) {
		std::vector<std::string> a{"--socket", socket_};
		a.insert(a.end(), args.begin(), args.end());
		Outcome bad = ctl(a);
		EXPECT_EQ(bad.code, EX_USAGE) << args[0] << ": " << bad.err;
	}
	Client c(socket_);
	json r = c.ask({{"cmd", "grow"}, {"bytes", -5}});
	EXPECT_FALSE(r.value("ok", true));
	EXPECT_NE(r.value("error", "").find("grow needs \"bytes\": a positive whole number"), std::string::npos)
	        << r.dump();
}

TEST_F(ControlTest, BadRequestsGetAnErrorAndTheDaemonGoesOn)
{
	auto d = start();
	{
		Client c(socket_);
		for (const char *bad :
		     {"garbage", "[1,2]", "{\"cmd\":5}", "{}", "\"status\"", "{\"cmd\":\"format-disk\"}"}) {
			c.send(std::string(bad) + "\n");
			auto reply = c.line();
			ASSERT_TRUE(reply) << bad;
			json r = json::parse(*reply, nullptr, false);
			EXPECT_FALSE(r.value("ok", true)) << bad << " -> " << *reply;
			EXPECT_FALSE(r.value("error", "").empty()) << *reply;
		}
		// The same connection still works after bad requests.
		EXPECT_TRUE(c.request("status").value("ok", false));
		c.send(std::string("\0\xff\xfe{\n", 5));
		ASSERT_TRUE(c.line());
	}
	{
		// Over the line limit: an error, then the connection is closed.
		Client c(socket_);
		c.send(std::string(ControlServer::maxRequest + 100, 'x'));
		auto reply = c.line();
		ASSERT_TRUE(reply);
		EXPECT_NE(reply->find("longer than"), std::string::npos) << *reply;
		EXPECT_TRUE(c.closedByPeer());
	}
	{
		// A client that leaves in the middle of a request.
		Client c(socket_);
		c.send("{\"cmd\":\"sta");
	}
	{
		// More clients than slots: the extra ones are told and closed.
		std::vector<std::unique_ptr<Client>> many;
		for (size_t i = 0; i < ControlServer::maxClients + 3; i++)
			many.push_back(std::make_unique<Client>(socket_));
		auto last = many.back()->line();
		ASSERT_TRUE(last);
		EXPECT_NE(last->find("too many clients"), std::string::npos) << *last;
		EXPECT_TRUE(many.front()->request("status").value("ok", false));
	}
	Client after(socket_);
	EXPECT_TRUE(after.request("status").value("ok", false));
	EXPECT_EQ(d->wait(0ms), -1) << "the daemon must still run: " << d->err();
}

TEST_F(ControlTest, EventsFollowTheDecisionsLive)
{
	writeConfig(holdLong);
	auto d = start();
	Client sub(socket_);
	json hello = sub.request("events");
	ASSERT_TRUE(hello.value("ok", false)) << hello.dump();
	Process follower({vmrdctl, "--socket", socket_, "events"});
	std::this_thread::sleep_for(200ms); // let vmrdctl subscribe
	ASSERT_EQ(ctl({"--socket", socket_, "reclaim"}).code, 0);

	std::vector<std::string> types;
	while (auto l = sub.line(3s)) {
		json e = json::parse(*l, nullptr, false);
		ASSERT_TRUE(e.is_object()) << *l;
		// Samples come on their own timer, the rest from the reclaim.
		if (e["type"] != "sample" && (!types.empty() || e["type"] == "check"))
			types.push_back(e["type"]);
		if (e["type"] == "result") {
			EXPECT_EQ(e["action"], "unplug");
			EXPECT_EQ(e["done"], 512ull << 20);
			break;
		}
	}
	// The state read before the unplug is recorded, so a replay can feed it.
	EXPECT_EQ(types, (std::vector<std::string>{"check", "decision", "state", "result"}));
	EXPECT_TRUE(follower.waitForStdout("result    unplug 512 MiB: 512 MiB done", 5s)) << follower.out();
	EXPECT_NE(follower.out().find("decision  unplug 512 MiB: MemAvailable"), std::string::npos) << follower.out();

	// vmrdctl events ends, saying why, when the daemon stops.
	d->signal(SIGTERM);
	EXPECT_EQ(follower.wait(5s), EX_UNAVAILABLE);
	EXPECT_NE(follower.err().find("closed the connection"), std::string::npos) << follower.err();
}

TEST_F(ControlTest, MetricsAreValidPrometheusTextOnTheSocketAndOverHttp)
{
	auto d = start();
	ASSERT_EQ(ctl({"--socket", socket_, "reclaim"}).code, 0);
	// Counted when the unplug ends, not when it is decided.
	Client c(socket_);
	statusWhen([&] { return c.request("status"); }, "the unplug done", [](const json &) { return true; });
	Outcome m = ctl({"--socket", socket_, "metrics"});
	ASSERT_EQ(m.code, 0) << m.err;

	// The exposition format, line by line: HELP and TYPE before a family's samples.
	const std::regex sample(
	        R"(([a-z_]+)(\{[a-z_]+="([^"\\]|\\.)*"(,[a-z_]+="([^"\\]|\\.)*")*\})? (-?[0-9.e+-]+|\+Inf))");
	const std::regex type(R"(# TYPE ([a-z_]+) (gauge|counter|histogram))");
	std::set<std::string> typed;
	std::istringstream lines(m.out);
	std::string line;
	int samples = 0;
	while (std::getline(lines, line)) {
		std::smatch match;
		if (line.rfind("# HELP ", 0) == 0)
			continue;
		if (std::regex_match(line, match, type)) {
			typed.insert(match[1]);
			continue;
		}
		ASSERT_TRUE(std::regex_match(line, match, sample)) << "not a sample line: " << line;
		std::string family = std::regex_replace(match[1].str(), std::regex("_(bucket|sum|count)$"), "");
		EXPECT_TRUE(typed.count(match[1]) || typed.count(family)) << "no TYPE before " << line;
		samples++;
	}
	EXPECT_GT(samples, 20);
	for (const char *expected :
	     {"vmrd_plugged_bytes 0\n", "vmrd_backend_calls_total{action=\"unplug\"} 1\n",
	      "vmrd_requested_bytes_total{action=\"unplug\"} 536870912\n",
	      "vmrd_granted_bytes_total{action=\"unplug\"} 536870912\n", "vmrd_decisions_total{action=\"unplug\"} 1\n",
	      "vmrd_backend_call_duration_seconds_count{action=\"unplug\"} 1\n", "vmrd_process_cpu_seconds_total "})
		EXPECT_NE(m.out.find(expected), std::string::npos) << expected << "\n" << m.out;
	EXPECT_NE(m.out.find("vmrd_process_resident_memory_bytes "), std::string::npos);

	Client http(port_);
	ASSERT_TRUE(http.connected());
	http.send("GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
	std::string response = http.rest();
	EXPECT_EQ(response.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << response;
	EXPECT_NE(response.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
	EXPECT_NE(response.find("vmrd_backend_calls_total{action=\"unplug\"} 1\n"), std::string::npos) << response;

	Client other(port_);
	other.send("GET /secrets HTTP/1.0\r\n\r\n");
	EXPECT_EQ(other.rest().rfind("HTTP/1.1 404", 0), 0u);
	Client post(port_);
	post.send("POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
	EXPECT_EQ(post.rest().rfind("HTTP/1.1 405", 0), 0u);
	Client huge(port_);
	huge.send(std::string(20000, 'A'));
	EXPECT_EQ(huge.rest().rfind("HTTP/1.1 431", 0), 0u);
	EXPECT_EQ(d->wait(0ms), -1) << d->err();
}

TEST_F(ControlTest, ReloadThroughVmrdctlKeepsTheRunningConfigWhenTheNewIsBad)
{
	auto d = start();
	writeConfig("policy: {preset: rfc-reference}\n");
	Outcome good = ctl({"--socket", socket_, "reload"});
	EXPECT_EQ(good.code, 0) << good.err;
	EXPECT_NE(good.out.find("reloaded " + config_), std::string::npos) << good.out;
	EXPECT_EQ(Client(socket_).request("status")["policy"]["preset"], "rfc-reference");

	writeConfig("policy: {preset: turbo}\n");
	Outcome bad = ctl({"--socket", socket_, "reload"});
	EXPECT_EQ(bad.code, 1);
	EXPECT_NE(bad.err.find("rejected, the running one is kept"), std::string::npos) << bad.err;
	EXPECT_NE(bad.err.find("policy.preset"), std::string::npos) << bad.err;
	EXPECT_EQ(Client(socket_).request("status")["policy"]["preset"], "rfc-reference");
}

TEST_F(ControlTest, AStaleSocketIsReplacedALiveOneIsNot)
{
	// What a killed daemon leaves behind: a socket file nobody listens on.
	std::filesystem::create_directories(dir_.path() + "/run");
	int stale = ::socket(AF_UNIX, SOCK_STREAM, 0);
	sockaddr_un sun{};
	sun.sun_family = AF_UNIX;
	std::strncpy(sun.sun_path, socket_.c_str(), sizeof(sun.sun_path) - 1);
	ASSERT_EQ(::bind(stale, reinterpret_cast<sockaddr *>(&sun), sizeof(sun)), 0);
	::close(stale);
	auto d = start();
	EXPECT_TRUE(Client(socket_).request("status").value("ok", false));

	Process second({vmrdBinary, "--config", config_, "--plugin-dir", MOCK_PLUGIN_DIR});
	EXPECT_EQ(second.wait(10s), EX_CONFIG);
	EXPECT_NE(second.err().find("another vmrd answers on it"), std::string::npos) << second.err();
	EXPECT_TRUE(Client(socket_).request("status").value("ok", false)) << "the first daemon keeps its socket";
}

TEST(Vmrdctl, SaysWhenNoDaemonAnswers)
{
	Outcome r = ctl({"--socket", "/nonexistent/vmrd.sock", "status"});
	EXPECT_EQ(r.code, EX_UNAVAILABLE);
	EXPECT_NE(r.err.find("cannot connect to /nonexistent/vmrd.sock"), std::string::npos) << r.err;
	EXPECT_NE(r.err.find("is vmrd running"), std::string::npos) << r.err;
	Outcome usage = ctl({"explode"});
	EXPECT_EQ(usage.code, EX_USAGE);
	EXPECT_NE(usage.err.find("unknown command 'explode'"), std::string::npos) << usage.err;
}

TEST(ListenAddress, NumericAddressAndPortOnly)
{
	EXPECT_TRUE(parseListenAddress("127.0.0.1:9560"));
	EXPECT_TRUE(parseListenAddress("[::1]:9560"));
	EXPECT_TRUE(parseListenAddress("0.0.0.0:1"));
	auto port = parseListenAddress("9560");
	ASSERT_TRUE(port);
	EXPECT_EQ(port->addr.ss_family, AF_INET);
	EXPECT_EQ(reinterpret_cast<const sockaddr_in &>(port->addr).sin_addr.s_addr, htonl(INADDR_LOOPBACK))
	        << "a port alone listens on loopback only";
	for (const char *bad : {"", "0", "70000", "localhost:9560", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0",
	                        "127.0.0.1:65536", "127.0.0.1:12ab", "::1:9560", "[::1]", "1.2.3.4:9999999"})
		EXPECT_FALSE(parseListenAddress(bad)) << bad;
}

TEST(Metrics, CountsAndEscapesLabels)
{
	Metrics m;
	m.pressure("/sys/fs/cgroup/a\"b/memory.pressure", "some 100ms/1s");
	m.pressure("/sys/fs/cgroup/a\"b/memory.pressure", "some 100ms/1s");
	m.decision(Decision::Action::Plug);
	m.call({Decision::Action::Plug, 256 << 20, ""}, {0, 128 << 20, ""}, Micros(30000));
	m.call({Decision::Action::Plug, 128 << 20, ""}, {-ENOSPC, 0, "no room"}, Micros(2000000));
	MetricGauges g;
	g.state.plugged = 128 << 20;
	const std::string text = m.render(g);
	for (const char *expected :
	     {"vmrd_psi_events_total{source=\"/sys/fs/cgroup/a\\\"b/memory.pressure\",trigger=\"some 100ms/1s\"} 2\n",
	      "vmrd_backend_calls_total{action=\"plug\"} 2\n",
	      "vmrd_requested_bytes_total{action=\"plug\"} 402653184\n",
	      "vmrd_granted_bytes_total{action=\"plug\"} 134217728\n",
	      "vmrd_backend_partial_total{action=\"plug\"} 1\n",
	      "vmrd_backend_failures_total{action=\"plug\",reason=\"ENOSPC\"} 1\n",
	      "vmrd_backend_call_duration_seconds_bucket{action=\"plug\",le=\"0.025\"} 0\n",
	      "vmrd_backend_call_duration_seconds_bucket{action=\"plug\",le=\"0.05\"} 1\n",
	      "vmrd_backend_call_duration_seconds_bucket{action=\"plug\",le=\"2.5\"} 2\n",
	      "vmrd_backend_call_duration_seconds_bucket{action=\"plug\",le=\"+Inf\"} 2\n",
	      "vmrd_backend_call_duration_seconds_sum{action=\"plug\"} 2.03\n", "vmrd_plugged_bytes 134217728\n",
	      "vmrd_decisions_total{action=\"plug\"} 1\n", "vmrd_decisions_total{action=\"none\"} 0\n"})
		EXPECT_NE(text.find(expected), std::string::npos) << expected << "\n" << text;
	EXPECT_EQ(text.find("vmrd_process_resident_memory_bytes"), std::string::npos) << "unknown RSS is left out";
}

// Under systemd (Type=notify): READY=1 once running, a STATUS= line, and
// WATCHDOG=1 at half of WatchdogSec, on the notify socket Process gives it.
TEST_F(ControlTest, TellsSystemdReadyStatusAndWatchdog)
{
	// Pings every 300 ms.  Read without waitForReady, which would stop
	// listening after READY=1.
	Process d({vmrdBinary, "--config", config_, "--plugin-dir", MOCK_PLUGIN_DIR}, {"WATCHDOG_USEC=600000"});
	int watchdogs = 0;
	const auto end = std::chrono::steady_clock::now() + 5s;
	while (watchdogs < 3 && std::chrono::steady_clock::now() < end)
		if (auto m = d.nextNotification(500ms))
			watchdogs += *m == "WATCHDOG=1";
	const auto &messages = d.notifications();
	ASSERT_GE(messages.size(), 2u) << d.err();
	EXPECT_EQ(messages[0], "READY=1");
	EXPECT_EQ(messages[1].rfind("STATUS=512 MiB plugged of 2 GiB; last resize: none yet", 0), 0u) << messages[1];
	EXPECT_EQ(watchdogs, 3) << "WATCHDOG=1 every 300 ms";
}

// The two address forms of $NOTIFY_SOCKET (sd_notify(3)); the daemon test
// above uses the abstract one, this one sends to a path.
TEST(Notify, PathAndAbstractAddresses)
{
	const auto abstract = parseNotifySocket("@vmrd/notify");
	ASSERT_TRUE(abstract);
	EXPECT_EQ(abstract->address.sun_path[0], '\0');
	EXPECT_EQ(std::string(abstract->address.sun_path + 1, 11), "vmrd/notify");
	EXPECT_EQ(abstract->length, offsetof(sockaddr_un, sun_path) + 12);
	for (const char *bad : {"", "notify", "vsock:2:1234", "x"})
		EXPECT_FALSE(parseNotifySocket(bad)) << bad;
	EXPECT_FALSE(parseNotifySocket("/" + std::string(sizeof(sockaddr_un::sun_path), 'a'))) << "too long";

	TempDir dir;
	const std::string path = dir.path() + "/notify";
	const auto to = parseNotifySocket(path);
	ASSERT_TRUE(to);
	int rx = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int tx = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ASSERT_EQ(::bind(rx, reinterpret_cast<const sockaddr *>(&to->address), to->length), 0) << std::strerror(errno);
	const std::string message = "READY=1\nSTATUS=ok";
	EXPECT_EQ(::sendto(tx, message.data(), message.size(), 0, reinterpret_cast<const sockaddr *>(&to->address),
	                   to->length),
	          static_cast<ssize_t>(message.size()));
	char buf[64] = {};
	EXPECT_EQ(::recv(rx, buf, sizeof(buf), MSG_DONTWAIT), static_cast<ssize_t>(message.size()));
	EXPECT_EQ(std::string(buf), message);
	::close(rx);
	::close(tx);
}

// WATCHDOG_USEC and WATCHDOG_PID as sd_watchdog_enabled(3) reads them.
TEST(Notify, WatchdogForThisProcessOnly)
{
	EXPECT_EQ(parseWatchdog("600000", nullptr, 42), Micros(600000));
	EXPECT_EQ(parseWatchdog("600000", "42", 42), Micros(600000));
	EXPECT_FALSE(parseWatchdog("600000", "43", 42)) << "for another process";
	EXPECT_FALSE(parseWatchdog("600000", "4x", 42));
	for (const char *bad : {"", "0", "-1", "12s", " 5", "18446744073709551615", "99999999999999999999"})
		EXPECT_FALSE(parseWatchdog(bad, nullptr, 42)) << bad;
	EXPECT_FALSE(parseWatchdog(nullptr, "42", 42)) << "no watchdog";
}

// LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES as sd_listen_fds_with_names(3) reads them.
TEST(Notify, ListenFdsForThisProcessOnly)
{
	const auto fds = parseListenFds("42", "3", "gunyah-membuf.hint-1::x", 42);
	ASSERT_EQ(fds.size(), 3u);
	EXPECT_EQ(fds[0].fd, 3);
	EXPECT_EQ(fds[0].name, "gunyah-membuf.hint-1");
	EXPECT_EQ(fds[1].name, "unknown") << "an empty name";
	EXPECT_EQ(fds[2].fd, 5);
	EXPECT_EQ(fds[2].name, "x");
	EXPECT_EQ(parseListenFds("42", "2", nullptr, 42)[1].name, "unknown") << "no names at all";
	EXPECT_TRUE(parseListenFds("43", "1", "a", 42).empty()) << "for another process";
	EXPECT_TRUE(parseListenFds(nullptr, "1", "a", 42).empty());
	for (const char *bad : {"", "0", "-1", "x", "99999999999999999999"})
		EXPECT_TRUE(parseListenFds("42", bad, "a", 42).empty()) << bad;
}

// Under systemd, stderr goes to journald, which reads "<N>" priority prefixes.
TEST_F(ControlTest, LogsCarryJournaldPrioritiesWhenStderrIsTheJournal)
{
	// systemd names the stream it connected to stderr in JOURNAL_STREAM;
	// here stderr is a file, named the same way.
	const std::string script = "export JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2); exec " + testWrapper() +
	                           vmrdBinary + " --config " + config_ + " --plugin-dir " + MOCK_PLUGIN_DIR;
	Process p({"/bin/sh", "-c", script});
	ASSERT_TRUE(p.waitForReady(10s)) << p.err();
	p.signal(SIGTERM);
	EXPECT_EQ(p.wait(5s), 0);
	const std::string err = p.err();
	EXPECT_NE(err.find("<6>running with backend 'mock'"), std::string::npos) << err;
	EXPECT_EQ(err.find("vmrd info:"), std::string::npos) << "no plain-text prefixes for journald";
	std::istringstream lines(err);
	for (std::string line; std::getline(lines, line);)
		EXPECT_TRUE(std::regex_search(line, std::regex("^<[3467]>"))) << line;

	// Without it, plain text for a terminal.
	auto plain = start();
	EXPECT_NE(plain->err().find("vmrd info: running with backend 'mock'"), std::string::npos);
}
