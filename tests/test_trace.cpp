// SPDX-License-Identifier: MIT
// Tests of trace files: written records read back, and malformed lines named by line.
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>

#include "replay.h"
#include "temp_dir.h"
#include "trace.h"

using namespace vmrd;

TEST(Trace, WrittenRecordsReadBack)
{
	TempDir dir;
	const std::string path = dir.path() + "/t.jsonl";
	TraceRecord p;
	p.type = TraceRecord::Type::Pressure;
	p.t = Micros(1500000);
	p.trigger = "some 100ms/1s";
	p.severity = 0.25;
	p.sample.mem = MemInfo{1ull << 30, 1, 200ull << 20, 0, 0};
	p.sample.movable.free = 4096;
	p.sample.pgallocMovable = 77;
	p.state.blockSize = 2 << 20;
	p.state.maxBytes = 4ull << 30;
	TraceRecord r = p;
	r.type = TraceRecord::Type::Result;
	r.asked = Decision{Decision::Action::Unplug, 4 << 20, "x"};
	r.result = CallResult{-16, 2 << 20, "busy"};
	r.call = Micros(4567);
	{
		TraceWriter w;
		ASSERT_TRUE(w.open(path, "server", Micros(123)));
		w.write(p);
		w.write(r);
	}
	auto back = readTrace(path);
	ASSERT_TRUE(back) << back.error().message;
	ASSERT_EQ(back->size(), 2u);
	const TraceRecord &a = (*back)[0], &b = (*back)[1];
	EXPECT_EQ(a.type, TraceRecord::Type::Pressure);
	EXPECT_EQ(a.t, Micros(1500000));
	EXPECT_EQ(a.trigger, "some 100ms/1s");
	EXPECT_DOUBLE_EQ(a.severity, 0.25);
	EXPECT_EQ(a.sample.mem.memAvailable, 200ull << 20);
	EXPECT_EQ(a.sample.movable.free, 4096u);
	EXPECT_EQ(a.sample.pgallocMovable, 77u);
	EXPECT_EQ(a.state.maxBytes, 4ull << 30);
	EXPECT_EQ(b.type, TraceRecord::Type::Result);
	EXPECT_EQ(b.asked.action, Decision::Action::Unplug);
	EXPECT_EQ(b.result.code, -16);
	EXPECT_EQ(b.result.done, 2u << 20);
	EXPECT_EQ(b.call, Micros(4567));
}

// Decisions are written for people and plots; a replay reads only inputs.
TEST(Trace, DecisionsAreLoggedAndReadBack)
{
	TempDir dir;
	const std::string path = dir.path() + "/t.jsonl";
	TraceRecord d;
	d.type = TraceRecord::Type::Decision;
	d.asked = Decision{Decision::Action::Plug, 128 << 20, "MemAvailable low \"quoted\"\n\xff"};
	TraceRecord r = d;
	r.type = TraceRecord::Type::Result;
	r.result = CallResult{-28, 0, "no space"};
	{
		TraceWriter w;
		ASSERT_TRUE(w.open(path, "server", Micros(1)));
		w.write(d);
		w.write(r);
	}
	std::ifstream in(path);
	std::string header, decision;
	std::getline(in, header);
	std::getline(in, decision);
	EXPECT_NE(decision.find("\"type\":\"decision\""), std::string::npos) << decision;
	EXPECT_NE(decision.find("\"reason\":\"MemAvailable low \\\"quoted\\\"\\n"), std::string::npos) << decision;
	auto back = readTrace(path);
	ASSERT_TRUE(back) << back.error().message;
	ASSERT_EQ(back->size(), 2u);
	EXPECT_EQ((*back)[0].type, TraceRecord::Type::Decision);
	EXPECT_EQ((*back)[0].asked.reason, d.asked.reason.substr(0, d.asked.reason.size() - 1) + "\ufffd");
	EXPECT_EQ((*back)[1].type, TraceRecord::Type::Result);
	EXPECT_EQ((*back)[1].result.message, "no space");
	// Decisions are read back to compare with a replay, never fed to one.
	EXPECT_EQ(recordedDecisions(*back).size(), 1u);
}

// Past max size the log moves to PATH.1 and starts afresh with a header;
// both halves read back on their own, and nothing else piles up.
TEST(Trace, RotatesAtMaxSize)
{
	TempDir dir;
	const std::string path = dir.path() + "/t.jsonl";
	TraceRecord s;
	s.type = TraceRecord::Type::Sample;
	const size_t line = TraceWriter::formatTraceRecord(s).size();
	const uint64_t max = 64 << 10;
	const size_t total = 3 * max / line; // enough for two rotations
	{
		TraceWriter w;
		ASSERT_TRUE(w.open(path, "server", Micros(7), max));
		for (size_t i = 0; i < total; i++) {
			s.t = Micros(static_cast<int64_t>(i));
			w.write(s);
		}
	}
	namespace fs = std::filesystem;
	EXPECT_LE(fs::file_size(path), max);
	EXPECT_LE(fs::file_size(path + ".1"), max);
	EXPECT_GT(fs::file_size(path + ".1"), max - 2 * line);
	EXPECT_FALSE(fs::exists(path + ".2"));
	auto now = readTrace(path), before = readTrace(path + ".1");
	ASSERT_TRUE(now && before);
	ASSERT_FALSE(now->empty());
	EXPECT_EQ(now->back().t, Micros(static_cast<int64_t>(total - 1)));
	EXPECT_EQ(before->back().t.count() + 1, now->front().t.count()) << "no record lost at the rotation";
	std::ifstream in(path);
	std::string first;
	std::getline(in, first);
	EXPECT_NE(first.find("\"start_us\":7"), std::string::npos) << "each file has the header: " << first;
}

TEST(Trace, MalformedLinesAreNamed)
{
	TempDir dir;
	const std::string path = dir.path() + "/bad.jsonl";
	std::ofstream(path) << "{\"type\":\"header\",\"format\":1}\n\n{\"type\":\"pressure\",\"t_us\":1}\n";
	auto t = readTrace(path);
	ASSERT_FALSE(t);
	EXPECT_NE(t.error().message.find(path + ":3: "), std::string::npos) << t.error().message;
	for (const char *line : {"not json", "{\"type\":\"teleport\",\"t_us\":1,\"sample\":{},\"state\":{}}", "[1,2]",
	                         "{\"type\":\"result\",\"t_us\":1,\"action\":\"grow\"}"})
		EXPECT_FALSE(parseTraceLine(line)) << line;
	EXPECT_FALSE(readTrace(dir.path() + "/absent.jsonl"));
}

TEST(Replay, EmptyTraceHasNoDecisions)
{
	EXPECT_TRUE(replay(PolicyParams{}, Limits{}, {}).decisions.empty());
}

// The check that the guest traces replay to the daemon's decisions can
// fail: the same log with another config does not match it.
TEST(Replay, ARecordedGuestLogMatchesOnlyTheConfigItRanWith)
{
	auto trace = readTrace(VMRD_SOURCE_DIR "/tests/traces/guest-6.1-server.jsonl");
	ASSERT_TRUE(trace) << trace.error().message;
	auto params = preset("server")->params;
	const auto same = replay(params, Limits{}, *trace);
	EXPECT_EQ(same.divergence, "");
	EXPECT_EQ(same.decisions, recordedDecisions(*trace));
	params.headroom = 512ull << 20;
	const auto other = replay(params, Limits{}, *trace);
	EXPECT_TRUE(other.decisions != recordedDecisions(*trace) || !other.divergence.empty());
}
