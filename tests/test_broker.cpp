// SPDX-License-Identifier: MIT
// Tests of the guest <-> broker protocol, the broker's grant rule, its request handling and its config, and of the
// guest plugin against a scripted broker.
#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <gtest/gtest.h>
#include <termios.h>
#include <unistd.h>

#include "broker.h"
#include "device_link.h"
#include "protocol.h"
#include "raw_backend.h"
#include "temp_dir.h"

using namespace vmrd;
using namespace vmrd::vmem;
using namespace std::chrono_literals;

namespace {

constexpr uint64_t MiB = 1ull << 20;
constexpr uint64_t GiB = 1ull << 30;

// A device that records what the broker did to it.
struct FakeDevice {
	DeviceState s{2 * MiB, 0, 0, 0, 0};
	int sets = 0;
	bool broken = false;   // out of reach
	bool setFails = false; // the hypervisor refuses the set
	std::optional<DeviceState> state() const { return broken ? std::nullopt : std::optional(s); }
};

// A line through the session as the broker's loop takes it: the reply
// now, or the set and then the reply.
std::string ask(VmSession &session, FakeDevice &d, const std::string &line, bool tooLong, uint64_t spare,
                VmSession::Clock::time_point now)
{
	auto h = session.handle(line, tooLong, d.state(), spare, {}, now);
	if (!h.reply.empty())
		return h.reply;
	Status result = Ok{};
	if (h.set && d.setFails) {
		result = Error{-EREMOTEIO, "QMP qom-set: GenericError: no"};
	} else if (h.set) {
		d.sets++;
		d.s.requested = *h.set;
	}
	return session.finish(h.id, result, d.state(), now);
}

VmConfig vm(uint64_t min = 0, uint64_t max = 4 * GiB)
{
	return VmConfig{"test", "/q", "vm0", "/c", min, max};
}

const auto t0 = VmSession::Clock::time_point(std::chrono::hours(1));

// The host end of the guest plugin's channel: the plugin opens the slave of a
// raw pty as its virtio-serial port, and the test plays the broker on the
// master.  What the test sends is buffered, so a whole exchange can be
// scripted before the call that reads it: request ids count from 1.
class ScriptedBroker
{
public:
	ScriptedBroker()
	{
		master_ = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (master_ < 0 || ::grantpt(master_) != 0 || ::unlockpt(master_) != 0)
			return;
		port_ = ::ptsname(master_);
		termios t{};
		::tcgetattr(master_, &t);
		::cfmakeraw(&t); // no echo, no line editing: bytes pass as they are
		::tcsetattr(master_, TCSANOW, &t);
		::fcntl(master_, F_SETFL, O_NONBLOCK);
	}
	~ScriptedBroker()
	{
		if (master_ >= 0)
			::close(master_);
	}
	ScriptedBroker(const ScriptedBroker &) = delete;
	ScriptedBroker &operator=(const ScriptedBroker &) = delete;

	const std::string &port() const { return port_; }
	void send(const std::string &text)
	{
		ASSERT_EQ(::write(master_, text.data(), text.size()), ssize_t(text.size()));
	}
	void reply(uint64_t id, const DeviceState &s) { send(formatReply(Reply{id, true, s, "", ""})); }
	void notice(const DeviceState &s) { send(formatSizeNotice(SizeNotice{s})); }
	// The lines the plugin sent since the last call.
	std::vector<std::string> received()
	{
		char buf[4096];
		for (ssize_t n; (n = ::read(master_, buf, sizeof(buf))) > 0;)
			pending_.append(buf, size_t(n));
		std::vector<std::string> lines;
		for (size_t nl; (nl = pending_.find('\n')) != std::string::npos; pending_.erase(0, nl + 1))
			lines.push_back(pending_.substr(0, nl));
		return lines;
	}

private:
	int master_ = -1;
	std::string port_;
	std::string pending_;
};

// A guest's /proc with only meminfo, whose MemTotal the test sets.
class FakeProc
{
public:
	explicit FakeProc(uint64_t memTotal) { set(memTotal); }
	void set(uint64_t memTotal)
	{
		std::ofstream(dir_.path() + "/meminfo") << "MemTotal: " << memTotal / 1024 << " kB\nMemFree: 0 kB\n"
		                                        << "MemAvailable: 0 kB\n";
	}
	const std::string &path() const { return dir_.path(); }

private:
	TempDir dir_;
};

} // namespace

TEST(Protocol, RequestsRoundTrip)
{
	auto r = parseRequest(formatRequest(Request{Request::Kind::Resize, 7, 3 * GiB}));
	ASSERT_TRUE(r) << r.error().message;
	EXPECT_EQ(r->kind, Request::Kind::Resize);
	EXPECT_EQ(r->id, 7u);
	EXPECT_EQ(r->target, 3 * GiB);
	r = parseRequest("{\"v\":1,\"id\":1,\"type\":\"hello\"}");
	ASSERT_TRUE(r);
	EXPECT_EQ(r->kind, Request::Kind::Hello);
}

TEST(Protocol, HostileRequestsAreRefusedWithACode)
{
	struct {
		const char *line, *code;
	} cases[] = {
	        {"", "bad-json"},
	        {"not json", "bad-json"},
	        {"[1]", "bad-json"},
	        {"{\"id\":1,\"type\":\"hello\"}", "bad-version"},
	        {"{\"v\":2,\"id\":1,\"type\":\"hello\"}", "bad-version"},
	        {"{\"v\":\"1\",\"id\":1,\"type\":\"hello\"}", "bad-version"},
	        {"{\"v\":1,\"type\":\"hello\"}", "bad-request"},
	        {"{\"v\":1,\"id\":0,\"type\":\"hello\"}", "bad-request"},
	        {"{\"v\":1,\"id\":-1,\"type\":\"hello\"}", "bad-request"},
	        {"{\"v\":1,\"id\":9007199254740993,\"type\":\"hello\"}", "bad-request"},
	        {"{\"v\":1,\"id\":1,\"type\":\"reboot\"}", "bad-request"},
	        {"{\"v\":1,\"id\":1,\"type\":\"resize\"}", "bad-request"},
	        {"{\"v\":1,\"id\":1,\"type\":\"resize\",\"target\":-5}", "bad-request"},
	        {"{\"v\":1,\"id\":1,\"type\":\"resize\",\"target\":1.5}", "bad-request"},
	        {"{\"v\":1,\"id\":1,\"type\":\"resize\",\"target\":\"4G\"}", "bad-request"},
	        {"{\"v\":1,\"id\":1,\"type\":\"resize\",\"target\":1152921504606846976}", "bad-request"},
	        {"{\"v\":1,\"id\":1,\"type\":\"resize\",\"target\":99999999999999999999999}", "bad-request"},
	        {"{\"v\":1,\"id\":1,\"type\":\"hello\",\"extra\":1}", "bad-request"},
	};
	for (const auto &c : cases) {
		auto r = parseRequest(c.line);
		ASSERT_FALSE(r) << c.line;
		EXPECT_EQ(r.error().message.rfind(std::string(c.code) + ": ", 0), 0u)
		        << c.line << ": " << r.error().message;
	}
}

TEST(Protocol, RepliesRoundTrip)
{
	Reply r;
	r.id = 3;
	r.ok = false;
	r.state = DeviceState{2 * MiB, 0, 4 * GiB, 128 * MiB, 256 * MiB};
	r.error = "rate-limited";
	r.message = "slow down \xff";
	auto back = parseReply(formatReply(r));
	ASSERT_TRUE(back) << back.error().message;
	EXPECT_EQ(back->id, 3u);
	EXPECT_FALSE(back->ok);
	EXPECT_EQ(back->state.requested, 256 * MiB);
	EXPECT_EQ(back->error, "rate-limited");
	EXPECT_FALSE(parseReply("{\"v\":1,\"type\":\"reply\",\"id\":1}"));
	// Found by fuzz-broker (corpus/broker/crash-reply-error-not-string): a
	// non-string error threw out of the plugin and ended the daemon.
	auto bad = parseReply(R"({"v":1,"type":"reply","id":7,"ok":false,"block_size":2097152,"min":0,)"
	                      R"("max":0,"size":0,"requested":0,"error":5})");
	ASSERT_FALSE(bad);
	EXPECT_NE(bad.error().message.find("error must be a string"), std::string::npos) << bad.error().message;
}

TEST(Protocol, ReclaimRoundTrips)
{
	EXPECT_EQ(formatReclaim(), "{\"type\":\"reclaim\",\"v\":1}\n");
	auto m = parseBrokerMessage(formatReclaim());
	ASSERT_TRUE(m) << m.error().message;
	EXPECT_EQ(m->kind, BrokerMessage::Kind::Reclaim);
	EXPECT_FALSE(parseReply(formatReclaim())) << "a reclaim is not a reply";
}

TEST(Protocol, SizeNoticesRoundTrip)
{
	const DeviceState s{2 * MiB, 0, 4 * GiB, 512 * MiB, 1 * GiB};
	const std::string line = formatSizeNotice(SizeNotice{s});
	EXPECT_EQ(line.rfind('{', 0), 0u);
	EXPECT_NE(line.find("\"type\":\"size\""), std::string::npos) << line;
	EXPECT_EQ(line.find("\"id\""), std::string::npos) << "a notice answers nothing: " << line;
	auto m = parseBrokerMessage(line);
	ASSERT_TRUE(m) << m.error().message;
	EXPECT_EQ(m->kind, BrokerMessage::Kind::Size);
	EXPECT_EQ(m->notice.state.size, 512 * MiB);
	EXPECT_EQ(m->notice.state.requested, 1 * GiB);
	EXPECT_EQ(m->notice.state.max, 4 * GiB);
	EXPECT_FALSE(parseReply(line)) << "a notice is not a reply";
	m = parseBrokerMessage(formatReply(Reply{4, true, s, "", ""}));
	ASSERT_TRUE(m);
	EXPECT_EQ(m->kind, BrokerMessage::Kind::Reply);
	EXPECT_EQ(m->reply.id, 4u);
	auto bad = parseBrokerMessage(
	        R"({"v":1,"type":"size","block_size":2097152,"min":0,"max":0,"size":-1,"requested":0})");
	ASSERT_FALSE(bad);
	EXPECT_EQ(bad.error().message.rfind("bad-notice: ", 0), 0u) << bad.error().message;
}

TEST(Protocol, LineReaderCutsLongLines)
{
	LineReader r;
	r.feed("a\nb");
	EXPECT_EQ(r.next()->text, "a");
	EXPECT_FALSE(r.next());
	r.feed("c\n" + std::string(3000, 'x'));
	EXPECT_EQ(r.next()->text, "bc");
	auto l = r.next();
	ASSERT_TRUE(l);
	EXPECT_TRUE(l->tooLong);
	r.feed(std::string(5000, 'y') + "\nok\n");
	EXPECT_EQ(r.next()->text, "ok") << "the rest of the long line is dropped";
	EXPECT_FALSE(r.next());
}

TEST(Grant, ClampsToTheRangeAndTheBlock)
{
	DeviceState now{2 * MiB, 0, 0, 0, 0};
	EXPECT_EQ(decideTarget(1 * GiB, vm(), now, 100 * GiB, {}).target, 1 * GiB);
	Grant g = decideTarget(100 * GiB, vm(0, 4 * GiB), now, 100 * GiB, {});
	EXPECT_EQ(g.target, 4 * GiB);
	EXPECT_NE(g.why.find("clamped to the VM's max 4 GiB"), std::string::npos);
	g = decideTarget(0, vm(512 * MiB), now, 100 * GiB, {});
	EXPECT_EQ(g.target, 512 * MiB) << "the min is always granted";
	EXPECT_EQ(decideTarget(3 * MiB, vm(), now, 100 * GiB, {}).target, 2 * MiB) << "growth rounds down";
	now.requested = 64 * MiB;
	EXPECT_EQ(decideTarget(3 * MiB, vm(), now, 100 * GiB, {}).target, 4 * MiB) << "shrink rounds up";
}

TEST(Grant, GrowthSharesTheHostsSpareMemory)
{
	DeviceState now{2 * MiB, 0, 0, 1 * GiB, 1 * GiB};
	// It holds 1 GiB, 1 GiB is spare, and two others that asked to grow hold
	// 1 GiB together: 3 GiB among three of equal weight is 1 GiB each, so
	// it gets nothing more while they ask.
	Grant g = decideTarget(4 * GiB, vm(), now, 1 * GiB, {2 * GiB, 300, 3});
	EXPECT_EQ(g.target, 1 * GiB);
	EXPECT_NE(g.why.find("limited to its fair share: 1 GiB of 3 GiB among 3 growing VM(s)"), std::string::npos)
	        << g.why;
	// One that holds nothing gets its third, rounded down to the block.
	now.requested = 0;
	g = decideTarget(4 * GiB, vm(), now, 1 * GiB, {0, 300, 3});
	EXPECT_EQ(g.target, 340 * MiB);
	// Alone, it gets the spare.
	g = decideTarget(4 * GiB, vm(), now, 1 * GiB, {});
	EXPECT_EQ(g.target, 1 * GiB);
	EXPECT_NE(g.why.find("limited by the host's free memory: 1 GiB spare"), std::string::npos) << g.why;
	// No spare: no growth, but shrinking is always granted.
	now.requested = 1 * GiB;
	EXPECT_EQ(decideTarget(2 * GiB, vm(), now, 0, {}).target, 1 * GiB);
	EXPECT_EQ(decideTarget(256 * MiB, vm(), now, 0, {}).target, 256 * MiB);
}

TEST(Grant, SharesGoByWeightAboveTheMin)
{
	// 3 GiB to share between a VM of weight 200 and one of 100: two thirds
	// and a third, counted above each one's min.
	VmConfig heavy = vm(512 * MiB), light = vm();
	heavy.weight = 200;
	DeviceState h{2 * MiB, 0, 0, 512 * MiB, 512 * MiB}, l{2 * MiB, 0, 0, 0, 0};
	EXPECT_EQ(decideTarget(8 * GiB, heavy, h, 3 * GiB, {0, 300, 2}).target, 512 * MiB + 2 * GiB);
	EXPECT_EQ(decideTarget(8 * GiB, light, l, 1 * GiB, {2 * GiB, 300, 2}).target, 1 * GiB);
	// Taking turns, two VMs of equal weight end within a block of each
	// other, whoever asks first, and their total never passes the pool.
	const uint64_t pool = 3 * GiB + 6 * MiB;
	DeviceState a{2 * MiB, 0, 0, 0, 0}, b = a;
	for (int round = 0; round < 20; round++)
		for (DeviceState *d : {&a, &b}) {
			const uint64_t spare = pool - a.requested - b.requested;
			d->requested =
			        decideTarget(8 * GiB, light, *d, spare, {a.requested + b.requested, 200, 2}).target;
		}
	EXPECT_LE(a.requested + b.requested, pool);
	EXPECT_LE(a.requested > b.requested ? a.requested - b.requested : b.requested - a.requested, 2 * MiB);
	EXPECT_GE(a.requested + b.requested, pool - 4 * MiB);
}

TEST(Session, MalformedRequestsNeverReachTheDevice)
{
	VmSession s(vm(), 1000);
	FakeDevice d;
	for (const char *line : {"{", "{\"v\":1,\"id\":5,\"type\":\"resize\",\"target\":-1}", "\x01\x02"}) {
		auto reply = parseReply(ask(s, d, line, false, 100 * GiB, t0));
		ASSERT_TRUE(reply);
		EXPECT_FALSE(reply->ok);
	}
	auto reply = parseReply(ask(s, d, "", true, 100 * GiB, t0));
	ASSERT_TRUE(reply);
	EXPECT_EQ(reply->error, "too-long");
	EXPECT_EQ(d.sets, 0);
}

TEST(Session, ResizeIsClampedAndAnsweredWithTheState)
{
	VmSession s(vm(0, 1 * GiB), 1000);
	FakeDevice d;
	auto reply = parseReply(ask(s, d, formatRequest({Request::Kind::Resize, 9, 1ull << 49}), false, 100 * GiB, t0));
	ASSERT_TRUE(reply);
	EXPECT_TRUE(reply->ok);
	EXPECT_EQ(reply->id, 9u);
	EXPECT_EQ(reply->state.requested, 1 * GiB);
	EXPECT_EQ(reply->state.max, 1 * GiB);
	EXPECT_EQ(d.s.requested, 1 * GiB);
	// The device stopped short: the same target is set again, which makes
	// the guest driver retry at once.
	d.s.size = 512 * MiB;
	ask(s, d, formatRequest({Request::Kind::Resize, 10, 1 * GiB}), false, 100 * GiB, t0);
	EXPECT_EQ(d.sets, 2);
	d.s.size = 1 * GiB;
	ask(s, d, formatRequest({Request::Kind::Resize, 11, 1 * GiB}), false, 100 * GiB, t0);
	EXPECT_EQ(d.sets, 2) << "nothing to do once converged";
}

TEST(Session, FloodsAreRateLimited)
{
	VmSession s(vm(), 10);
	FakeDevice d;
	int refused = 0;
	for (int i = 0; i < 100; i++) {
		auto reply = parseReply(ask(s, d, formatRequest({Request::Kind::Resize, 1, 8 * GiB}), false, 100 * GiB,
		                            t0 + std::chrono::milliseconds(i)));
		ASSERT_TRUE(reply);
		if (!reply->ok) {
			EXPECT_EQ(reply->error, "rate-limited");
			EXPECT_EQ(reply->id, 1u) << "even a refusal names its request";
			refused++;
		}
	}
	EXPECT_EQ(refused, 90);
	EXPECT_LE(d.s.requested, 4 * GiB);
	// A second later the bucket has refilled.
	EXPECT_TRUE(parseReply(ask(s, d, formatRequest({Request::Kind::Hello, 2, 0}), false, 0, t0 + 2s))->ok);
}

// Three bursts within 0.91 s: a token bucket let 19 through at 10 per
// second; no second may see more than 10.
TEST(Session, NoSecondSeesMoreThanTheRate)
{
	VmSession s(vm(), 10);
	FakeDevice d;
	std::vector<VmSession::Clock::time_point> granted;
	for (auto burst : {0ms, 450ms, 910ms, 1000ms, 1400ms})
		for (int i = 0; i < 10; i++) {
			const auto t = t0 + burst + std::chrono::microseconds(i);
			if (parseReply(ask(s, d, formatRequest({Request::Kind::Hello, 1, 0}), false, 0, t))->ok)
				granted.push_back(t);
		}
	EXPECT_EQ(granted.size(), 20u) << "10 at 0 s and 10 from 1 s on";
	for (size_t i = 10; i < granted.size(); i++)
		EXPECT_GE(granted[i] - granted[i - 10], 1s) << i;
}

// README: every reply carries its request's id and the device's state,
// a refusal too ({"type":"status"} is no request type of version 1).
TEST(Session, RefusalsCarryTheIdAndTheState)
{
	VmSession s(vm(0, 2 * GiB), 100);
	FakeDevice d;
	d.s.size = d.s.requested = 256 * MiB;
	ASSERT_TRUE(parseReply(ask(s, d, formatRequest({Request::Kind::Hello, 1, 0}), false, 0, t0))->ok);
	d.broken = true; // a refusal does not ask the device
	for (const char *line :
	     {"{\"v\":1,\"id\":4,\"type\":\"status\"}", "{\"v\":1,\"id\":4,\"type\":\"resize\",\"target\":\"1G\"}",
	      "{\"v\":2,\"id\":4,\"type\":\"hello\"}"}) {
		auto reply = parseReply(ask(s, d, line, false, 0, t0));
		ASSERT_TRUE(reply) << line;
		EXPECT_FALSE(reply->ok) << line;
		EXPECT_EQ(reply->id, 4u) << line;
		EXPECT_EQ(reply->state.size, 256 * MiB) << line;
		EXPECT_EQ(reply->state.requested, 256 * MiB) << line;
		EXPECT_EQ(reply->state.max, 2 * GiB) << line;
		EXPECT_EQ(reply->state.blockSize, 2 * MiB) << line;
	}
	auto reply = parseReply(ask(s, d, "{\"v\":1,\"id\":-4,\"type\":\"hello\"}", false, 0, t0));
	EXPECT_EQ(reply->id, 0u) << "no valid id";
}

// A guest that sends nothing but garbage costs the host's log a few lines
// per window, and the count of the rest.
TEST(Session, AFloodOfBadLinesIsNotAFloodOfLogLines)
{
	VmSession s(vm(), 1000);
	FakeDevice d;
	testing::internal::CaptureStderr();
	for (int i = 0; i < 20000; i++)
		ask(s, d, "garbage", false, 0, t0 + std::chrono::milliseconds(i));
	s.warnings().flush(t0 + 30s);
	const std::string log = testing::internal::GetCapturedStderr();
	const auto lines = std::count(log.begin(), log.end(), '\n');
	// 20 s of a line a millisecond: two windows of 10 s, each with 5
	// warnings and then the count of the other 9995.
	EXPECT_EQ(lines, 12) << log.substr(0, 2000);
	EXPECT_NE(log.find("more warning(s) suppressed in 10 s, the last: refused a request: bad-json"),
	          std::string::npos)
	        << log.substr(0, 2000);
}

TEST(Session, HypervisorTroubleIsAnErrorReply)
{
	VmSession s(vm(), 100);
	FakeDevice d;
	d.broken = true;
	auto reply = parseReply(ask(s, d, formatRequest({Request::Kind::Hello, 1, 0}), false, 0, t0));
	ASSERT_TRUE(reply);
	EXPECT_EQ(reply->error, "host-error");
	EXPECT_EQ(reply->id, 1u);
	d.broken = false;
	d.setFails = true;
	reply = parseReply(ask(s, d, formatRequest({Request::Kind::Resize, 2, GiB}), false, 100 * GiB, t0));
	EXPECT_EQ(reply->error, "host-error");
	EXPECT_EQ(reply->id, 2u);
	EXPECT_NE(reply->message.find("GenericError"), std::string::npos) << reply->message;
	EXPECT_EQ(s.requested(), 0u) << "a set that failed is not counted in the budget";
}

// Device calls run on the VM's own thread: a second request that comes
// while the first one's set is under way is decided on what that set will
// leave, and every reply tells the device as read after its request (QEMU
// changes `size` without telling at once).
TEST(Session, RequestsWhileASetIsUnderWay)
{
	VmSession s(vm(), 100);
	FakeDevice d;
	auto first = s.handle(formatRequest({Request::Kind::Resize, 1, GiB}), false, d.state(), 100 * GiB, {}, t0);
	ASSERT_EQ(first.set, GiB);
	ASSERT_TRUE(first.reply.empty());
	EXPECT_EQ(s.requested(), GiB) << "counted in the budget at once";
	auto second = s.handle(formatRequest({Request::Kind::Hello, 2, 0}), false, d.state(), 100 * GiB, {}, t0);
	ASSERT_FALSE(second.set);
	ASSERT_TRUE(second.reply.empty()) << "a hello reads the device first";
	auto reply = parseReply(s.finish(2, Ok{}, d.state(), t0));
	EXPECT_EQ(reply->state.requested, GiB) << "what the set under way leaves";
	d.s.requested = GiB;
	d.s.size = 512 * MiB; // read after the set: QEMU is plugging
	reply = parseReply(s.finish(1, Ok{}, d.state(), t0));
	EXPECT_TRUE(reply->ok);
	EXPECT_EQ(reply->id, 1u);
	EXPECT_EQ(reply->state.requested, GiB);
	EXPECT_EQ(reply->state.size, 512 * MiB);
}

// When another VM starves, one that holds memory above its min is asked to
// give back when it is idle or holds more than its share, at most once per
// growerWindow.
TEST(Session, IdleGuestsAndThoseAboveTheirShareAreAskedBack)
{
	VmSession s(vm(0, 4 * GiB), 1000);
	FakeDevice d;
	EXPECT_EQ(s.reclaim(t0, 0), "") << "it holds nothing";
	ASSERT_TRUE(parseReply(ask(s, d, formatRequest({Request::Kind::Resize, 1, GiB}), false, 100 * GiB, t0))->ok);
	EXPECT_EQ(s.reclaim(t0 + 5s, 1 * GiB), "") << "it grows, and holds no more than its share";
	EXPECT_EQ(s.reclaim(t0 + 5s, 512 * MiB), formatReclaim()) << "it grows, beyond its share";
	const auto idle = t0 + VmSession::growerWindow + 1s;
	EXPECT_EQ(s.reclaim(idle, 4 * GiB), "") << "asked within the window already";
	EXPECT_EQ(s.reclaim(t0 + 5s + VmSession::growerWindow, 4 * GiB), formatReclaim()) << "idle";
}

TEST(Grant, StarvedMeansShortOfSpareNotOfItsShare)
{
	DeviceState now{2 * MiB, 0, 0, 0, 0};
	EXPECT_TRUE(decideTarget(1 * GiB, vm(), now, 256 * MiB, {}).starved);
	EXPECT_FALSE(decideTarget(1 * GiB, vm(), now, 100 * GiB, {}).starved) << "granted as asked";
	now.requested = 2 * GiB;
	EXPECT_FALSE(decideTarget(4 * GiB, vm(), now, 1 * GiB, {2 * GiB, 200, 2}).starved) << "at its share";
	EXPECT_FALSE(decideTarget(4 * GiB, vm(), now, 1 * MiB, {2 * GiB, 200, 2}).starved)
	        << "above its share, less than a block spare";
	now.requested = 0;
	EXPECT_TRUE(decideTarget(4 * GiB, vm(), now, 0, {2 * GiB, 200, 2}).starved) << "below its share, none spare";
}

TEST(Session, NoticesTellOnlyChangesAndNotTooOften)
{
	VmSession s(vm(0, 4 * GiB), 1000);
	FakeDevice d;
	// What a reply told the guest is not told again.
	ASSERT_TRUE(parseReply(ask(s, d, formatRequest({Request::Kind::Hello, 1, 0}), false, 0, t0))->ok);
	EXPECT_EQ(s.notice(d.state(), t0), "");
	// The device grew behind the guest's back (someone else's qom-set).
	d.s.size = d.s.requested = 1 * GiB;
	auto first = s.notice(d.state(), t0);
	auto m = parseBrokerMessage(first);
	ASSERT_TRUE(m) << first;
	EXPECT_EQ(m->kind, BrokerMessage::Kind::Size);
	EXPECT_EQ(m->notice.state.size, 1 * GiB);
	EXPECT_EQ(m->notice.state.max, 4 * GiB) << "the range the host allows, as in a reply";
	EXPECT_EQ(s.notice(d.state(), t0), "") << "unchanged: nothing to tell";
	// The broker waits for the gap, then tells the latest state once.
	EXPECT_EQ(s.nextNoticeAt(), t0 + VmSession::noticeGap);
	d.s.size = 1 * GiB + 2 * MiB;
	d.s.size = 1 * GiB + 4 * MiB;
	m = parseBrokerMessage(s.notice(d.state(), s.nextNoticeAt()));
	ASSERT_TRUE(m);
	EXPECT_EQ(m->notice.state.size, 1 * GiB + 4 * MiB);
	// A guest that reconnected is told again; QMP trouble tells nothing.
	s.forget();
	EXPECT_NE(s.notice(d.state(), t0 + 1s), "");
	s.forget();
	d.broken = true;
	EXPECT_EQ(s.notice(d.state(), t0 + 2s), "");
}

TEST(GuestPlugin, SizeNoticesReachTheStateWithoutARoundTrip)
{
	ScriptedBroker host;
	ASSERT_FALSE(host.port().empty()) << "no pty";
	FakeProc proc(1 * GiB);
	DeviceState dev{2 * MiB, 0, 4 * GiB, 0, 0};
	host.reply(1, dev); // the hello of create()
	test::RawBackend b(VIRTIO_MEM_PLUGIN_DIR, "virtio-mem", {{"port", host.port()}, {"reply_timeout", "2s"}},
	                   proc.path());
	ASSERT_TRUE(b) << b.error();
	ASSERT_EQ(host.received().size(), 1u);
	const int fd = b.eventFd();
	ASSERT_GE(fd, 0) << strerror(-fd);
	EXPECT_FALSE(test::readable(fd, 0));

	auto st = b.state();
	EXPECT_EQ(b.lastCode(), 0);
	EXPECT_TRUE(st.flags & VMRD_BACKEND_CONNECTED);
	EXPECT_EQ(st.max_bytes, 4 * GiB);
	EXPECT_TRUE(host.received().empty()) << "get_state asked the broker although it knew the state";

	// The host resized the device.
	dev.size = dev.requested = 768 * MiB;
	host.notice(dev);
	ASSERT_TRUE(test::readable(fd, 2000)) << "a notice did not make the event fd readable";
	EXPECT_EQ(b.ack(), 0);
	EXPECT_FALSE(test::readable(fd, 0)) << "ack_event left the event fd readable";
	st = b.state();
	EXPECT_EQ(st.plugged_bytes, 768 * MiB);
	EXPECT_TRUE(st.flags & VMRD_BACKEND_CONNECTED);
	EXPECT_TRUE(host.received().empty());
}

// The broker's reclaim reaches vmrd as VMRD_BACKEND_RECLAIM in one state.
TEST(GuestPlugin, TheBrokersReclaimIsToldInOneState)
{
	ScriptedBroker host;
	ASSERT_FALSE(host.port().empty()) << "no pty";
	FakeProc proc(1 * GiB);
	const DeviceState dev{2 * MiB, 0, 4 * GiB, 512 * MiB, 512 * MiB};
	host.reply(1, dev);
	test::RawBackend b(VIRTIO_MEM_PLUGIN_DIR, "virtio-mem", {{"port", host.port()}, {"reply_timeout", "2s"}},
	                   proc.path());
	ASSERT_TRUE(b) << b.error();
	EXPECT_FALSE(b.state().flags & VMRD_BACKEND_RECLAIM);
	host.send(formatReclaim());
	ASSERT_TRUE(test::readable(b.eventFd(), 2000)) << "a reclaim did not make the event fd readable";
	EXPECT_EQ(b.ack(), 0);
	auto st = b.state();
	EXPECT_TRUE(st.flags & VMRD_BACKEND_RECLAIM);
	EXPECT_EQ(st.plugged_bytes, 512 * MiB);
	EXPECT_FALSE(b.state().flags & VMRD_BACKEND_RECLAIM) << "told once per ask";
}

TEST(GuestPlugin, NoticesBetweenARequestAndItsReplyDoNotConfuseIt)
{
	ScriptedBroker host;
	ASSERT_FALSE(host.port().empty()) << "no pty";
	FakeProc proc(1 * GiB); // nothing plugged yet: the guest's own 1 GiB
	DeviceState dev{2 * MiB, 0, 4 * GiB, 0, 0};
	host.reply(1, dev);
	test::RawBackend b(VIRTIO_MEM_PLUGIN_DIR, "virtio-mem",
	                   {{"port", host.port()}, {"reply_timeout", "2s"}, {"plug_timeout", "5s"}}, proc.path());
	ASSERT_TRUE(b) << b.error();
	host.received();

	// A plug of 256 MiB asks hello (2), resize (3), hello (4).  Around each
	// reply: notices, a late reply to some other request, an oversized line.
	proc.set(1 * GiB + 256 * MiB); // the memory shows at once
	DeviceState other = dev;
	other.requested = 128 * MiB;
	host.notice(other);
	host.reply(99, DeviceState{2 * MiB, 0, 4 * GiB, 2 * GiB, 2 * GiB});
	host.send(std::string(3000, 'x') + "\n");
	host.reply(2, dev);
	host.notice(other);
	DeviceState granted = dev;
	granted.requested = 256 * MiB;
	host.reply(3, granted);
	DeviceState done = granted;
	done.size = 256 * MiB;
	host.notice(done);
	host.reply(4, done);

	uint64_t plugged = 0;
	char msg[256] = "";
	EXPECT_EQ(b.ops().plug(b.object(), 256 * MiB, &plugged, msg, sizeof(msg)), 0) << msg;
	EXPECT_EQ(plugged, 256 * MiB);
	auto sent = host.received();
	ASSERT_EQ(sent.size(), 3u);
	EXPECT_NE(sent[0].find("\"id\":2"), std::string::npos) << sent[0];
	EXPECT_NE(sent[1].find("\"target\":268435456"), std::string::npos) << sent[1];
	EXPECT_NE(sent[2].find("\"id\":4"), std::string::npos) << sent[2];
	EXPECT_EQ(b.state().plugged_bytes, 256 * MiB);
	EXPECT_TRUE(host.received().empty());
}

TEST(GuestPlugin, AHungUpChannelStopsWakingVmrd)
{
	auto host = std::make_unique<ScriptedBroker>();
	ASSERT_FALSE(host->port().empty()) << "no pty";
	FakeProc proc(1 * GiB);
	host->reply(1, DeviceState{2 * MiB, 0, 4 * GiB, 0, 0});
	test::RawBackend b(VIRTIO_MEM_PLUGIN_DIR, "virtio-mem", {{"port", host->port()}, {"reply_timeout", "200ms"}},
	                   proc.path());
	ASSERT_TRUE(b) << b.error();
	const int fd = b.eventFd();
	host.reset(); // the host end goes away: the port hangs up
	ASSERT_TRUE(test::readable(fd, 2000));
	EXPECT_EQ(b.ack(), 0);
	EXPECT_FALSE(test::readable(fd, 0)) << "a hung-up channel would wake vmrd in a loop";
	auto st = b.state();
	EXPECT_FALSE(st.flags & VMRD_BACKEND_CONNECTED);
}

TEST(BrokerConfig, Parses)
{
	auto c = parseBrokerConfig(R"(version: 1
host: {reserve: 2G, budget: 8G, requests_per_second: 5}
vms:
  - {name: a, qmp: /run/a.qmp, device: vm0, channel: /run/a.sock, min: 0, max: 4G}
  - {name: b, qmp: /run/b.qmp, device: vm0, channel: /run/b.sock, max: 2G}
)",
	                           "b.yaml");
	ASSERT_TRUE(c) << c.error().message;
	EXPECT_EQ(c->reserve, 2 * GiB);
	EXPECT_EQ(c->budget, 8 * GiB);
	EXPECT_EQ(c->requestsPerSecond, 5u);
	ASSERT_EQ(c->vms.size(), 2u);
	EXPECT_EQ(c->vms[1].max, 2 * GiB);
}

TEST(BrokerConfig, ErrorsNamePlaceAndKey)
{
	struct {
		const char *text, *expected;
	} cases[] = {
	        {"version: 1\n", "b.yaml:1:1: vms: expected a non-empty list of VMs"},
	        {"version: 1\nvms:\n  - {name: a, qmp: /q, device: d, channel: /c}\n", "vms[0].max: missing"},
	        {"version: 1\nvms:\n  - {name: a, qmp: /q, device: d, channel: /c, max: 1G, min: 2G}\n",
	         "vms[0].min: is more than max"},
	        {"version: 1\nvms:\n  - {name: a, qmp: /q, channel: /c, max: 1G}\n", "vms[0].device: missing"},
	        {"version: 1\nhost: {reserv: 1G}\nvms: []\n", "b.yaml:2:8: host.reserv: unknown key"},
	        {"version: 1\nvms:\n  - {name: a, qmp: /q, device: d, channel: /c, max: lots}\n",
	         "vms[0].max: 'lots' is not a size"},
	};
	for (const auto &c : cases) {
		auto r = parseBrokerConfig(c.text, "b.yaml");
		ASSERT_FALSE(r) << c.text;
		EXPECT_NE(r.error().message.find(c.expected), std::string::npos) << r.error().message;
	}
}

TEST(BrokerConfig, LibvirtServesEveryDomainOrThoseListed)
{
	auto all = parseBrokerConfig("version: 1\nhost: {driver: libvirt}\n", "b.yaml");
	ASSERT_TRUE(all) << all.error().message;
	EXPECT_EQ(all->hypervisor, Hypervisor::Libvirt);
	EXPECT_EQ(all->libvirtUri, "qemu:///system");
	EXPECT_TRUE(all->domains.empty());

	auto listed = parseBrokerConfig(R"(version: 1
host: {driver: libvirt, libvirt: "qemu+ssh://h/system"}
vms:
  - {name: a, max: 2G, weight: 400}
  - {name: b, device: virtiomem1}
)",
	                                "b.yaml");
	ASSERT_TRUE(listed) << listed.error().message;
	EXPECT_EQ(listed->libvirtUri, "qemu+ssh://h/system");
	ASSERT_EQ(listed->domains.size(), 2u);
	EXPECT_EQ(listed->domains[0].max, 2 * GiB);
	EXPECT_FALSE(listed->domains[0].min);
	EXPECT_EQ(listed->domains[0].weight, 400u);
	EXPECT_FALSE(listed->domains[1].weight);
	EXPECT_EQ(listed->domains[1].device, "virtiomem1");
	EXPECT_FALSE(listed->domains[1].max);

	struct {
		const char *text, *expected;
	} cases[] = {
	        {"version: 1\nhost: {driver: xen}\n", "b.yaml:2:16: host.driver: 'xen' is not a driver"},
	        {"version: 1\nhost: {libvirt: qemu:///system}\nvms: []\n", "host.libvirt: is for 'driver: libvirt'"},
	        {"version: 1\nhost: {driver: libvirt}\nvms:\n  - {name: a, qmp: /q}\n", "vms[0].qmp: unknown key"},
	        {"version: 1\nhost: {driver: libvirt}\nvms:\n  - {max: 1G}\n", "vms[0].name: missing"},
	        {"version: 1\nhost: {driver: libvirt}\nvms:\n  - {name: a, min: 2G, max: 1G}\n",
	         "vms[0].min: is more than max"},
	        {"version: 1\nhost: {driver: libvirt}\nvms:\n  - {name: a}\n  - {name: a}\n",
	         "vms[1].name: 'a' is listed twice"},
	        {"version: 1\nhost: {driver: libvirt}\nvms: []\n", "vms: expected a non-empty list of domains"},
	        {"version: 1\nhost: {driver: libvirt}\nvms:\n  - {name: a, weight: 0}\n", "vms[0].weight:"},
	};
	for (const auto &c : cases) {
		auto r = parseBrokerConfig(c.text, "b.yaml");
		ASSERT_FALSE(r) << c.text;
		EXPECT_NE(r.error().message.find(c.expected), std::string::npos) << r.error().message;
	}
}

TEST(BrokerConfig, ShippedExampleLoads)
{
	auto c = loadBrokerConfig(VMRD_BROKER_CONFIG);
	ASSERT_TRUE(c) << c.error().message;
	ASSERT_EQ(c->vms.size(), 1u);
	EXPECT_EQ(c->vms[0].weight, 100u);
}

namespace {

// A driver whose sets wait until the test lets them go.
class GatedDriver : public Driver
{
public:
	std::mutex mutex;
	std::condition_variable cv;
	bool open = false, waiting = false;
	std::vector<uint64_t> sets;
	DeviceState s{2 * MiB, 0, 0, 0, 0};

	Status connect() override { return Ok{}; }
	void disconnect() override {}
	bool connected() const override { return true; }
	Result<DeviceState> state() override
	{
		std::lock_guard lock(mutex);
		return s;
	}
	Status setRequested(uint64_t bytes) override
	{
		std::unique_lock lock(mutex);
		waiting = true;
		cv.notify_all();
		cv.wait(lock, [&] { return open; });
		sets.push_back(bytes);
		s.requested = s.size = bytes;
		return Ok{};
	}
	int eventFd() const override { return -1; }
	bool takeEvents() override { return false; }

	// Until a set is under way, held at the gate.
	void waitForSet()
	{
		std::unique_lock lock(mutex);
		cv.wait(lock, [&] { return waiting; });
	}
	void release()
	{
		{
			std::lock_guard lock(mutex);
			open = true;
		}
		cv.notify_all();
	}
};

// Runs the loop until a handler stops it, or for 10 s at most.
void runLoop(EventLoop &loop)
{
	auto timeout = loop.addTimer([&] { loop.stop(); });
	loop.setTimer(timeout, std::chrono::steady_clock::now() + 10s);
	loop.run();
}

} // namespace

// Resizes asked while a set is under way are merged into one set, to the
// newest size, and every one of them is answered.
TEST(DeviceLink, SetsAskedMeanwhileAreMergedAndAllAnswered)
{
	EventLoop loop;
	Mailbox mailbox(loop);
	auto owned = std::make_unique<GatedDriver>();
	GatedDriver &driver = *owned;
	DeviceLink link("vm test", std::move(owned), mailbox, [] {});
	ASSERT_TRUE(link.ok());
	int answered = 0;
	auto done = [&](const Status &s) {
		EXPECT_TRUE(s);
		if (++answered == 4)
			loop.stop();
	};
	link.update(2 * MiB, done);
	driver.waitForSet();
	for (uint64_t mib : {4, 6, 8})
		link.update(mib * MiB, done);
	driver.release();
	runLoop(loop);
	EXPECT_EQ(answered, 4);
	link.stop();
	std::lock_guard lock(driver.mutex);
	EXPECT_EQ(driver.sets, (std::vector<uint64_t>{2 * MiB, 8 * MiB}));
}

// A retired link ends after its set under way and says so last, on the
// loop's thread, after what it posted before: the broker frees a VM whose
// libvirt domain stopped there, with nothing left that refers to it.
TEST(DeviceLink, ARetiredLinkEndsAfterItsSetAndSaysSoLast)
{
	EventLoop loop;
	Mailbox mailbox(loop);
	auto owned = std::make_unique<GatedDriver>();
	GatedDriver &driver = *owned;
	auto link = std::make_unique<DeviceLink>("vm test", std::move(owned), mailbox, [] {});
	std::vector<std::string> order;
	link->update(2 * MiB, [&](const Status &) { order.push_back("set answered"); });
	driver.waitForSet();
	link->update(4 * MiB, [&](const Status &) { order.push_back("not started: never answered"); });
	link->retire([&] {
		order.push_back("ended");
		link.reset(); // where the broker destroys the VM: it does not wait
		loop.stop();
	});
	driver.release();
	runLoop(loop);
	EXPECT_EQ(order, (std::vector<std::string>{"set answered", "ended"}));
	EXPECT_FALSE(link);
}
