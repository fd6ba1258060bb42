// SPDX-License-Identifier: MIT
// Tests of trace files: written records read back, and malformed lines named by line.
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
	EXPECT_TRUE(replay(PolicyParams{}, Limits{}, {}).empty());
}
