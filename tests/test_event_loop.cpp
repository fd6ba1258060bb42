// SPDX-License-Identifier: MIT
// The event loop: fd handlers, one-shot watches, deadlines, and watches removed by other handlers.
#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "event_loop.h"

using namespace vmrd;
using namespace std::chrono_literals;

namespace {

struct EventFd {
	int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	~EventFd() { ::close(fd); }
	void signal() const
	{
		uint64_t one = 1;
		ASSERT_EQ(::write(fd, &one, sizeof(one)), 8);
	}
	void drain() const
	{
		uint64_t n;
		(void)!::read(fd, &n, sizeof(n));
	}
};

} // namespace

TEST(EventLoop, RunsHandlersAndDeadlinesUntilStopped)
{
	EventLoop loop;
	ASSERT_TRUE(loop.ok());
	EventFd a;
	std::vector<std::string> seen;
	const auto t0 = std::chrono::steady_clock::now();
	auto late = loop.addTimer([&] {
		seen.push_back("late");
		loop.stop();
	});
	auto early = loop.addTimer([&] {
		seen.push_back("early");
		a.signal();
	});
	ASSERT_TRUE(loop.add(a.fd, EPOLLIN, [&](uint32_t) {
		a.drain();
		seen.push_back("fd");
	}));
	loop.setTimer(late, t0 + 60ms);
	loop.setTimer(early, t0 + 20ms);
	int rounds = 0;
	loop.afterEach([&] { rounds++; });
	EXPECT_EQ(loop.run(), 0);
	EXPECT_EQ(seen, (std::vector<std::string>{"early", "fd", "late"}));
	EXPECT_GE(std::chrono::steady_clock::now() - t0, 60ms);
	EXPECT_GE(rounds, 3);
}

TEST(EventLoop, AOneShotWatchWaitsToBeArmedAgain)
{
	EventLoop loop;
	EventFd a;
	int calls = 0;
	ASSERT_TRUE(loop.add(a.fd, EPOLLIN | EPOLLONESHOT, [&](uint32_t) { calls++; }));
	auto stop = loop.addTimer([&] { loop.stop(); });
	a.signal(); // never drained: a level-triggered watch would spin
	loop.setTimer(stop, std::chrono::steady_clock::now() + 50ms);
	loop.run();
	EXPECT_EQ(calls, 1);
	ASSERT_TRUE(loop.modify(a.fd, EPOLLIN | EPOLLONESHOT));
	loop.setTimer(stop, std::chrono::steady_clock::now() + 50ms);
	loop.run();
	EXPECT_EQ(calls, 2);
	EXPECT_FALSE(loop.modify(12345, EPOLLIN)) << "an fd never watched";
}

TEST(EventLoop, AWatchRemovedByAnEarlierHandlerIsNotCalled)
{
	EventLoop loop;
	EventFd a, b;
	int calls = 0;
	// Whichever runs first removes the other: exactly one handler runs.
	ASSERT_TRUE(loop.add(a.fd, EPOLLIN, [&](uint32_t) {
		calls++;
		loop.remove(b.fd);
		loop.stop();
	}));
	ASSERT_TRUE(loop.add(b.fd, EPOLLIN, [&](uint32_t) {
		calls++;
		loop.remove(a.fd);
		loop.stop();
	}));
	a.signal();
	b.signal();
	loop.run();
	EXPECT_EQ(calls, 1);
}

// A removed timer never runs, and its slot serves the next timer added.
TEST(EventLoop, ARemovedTimerNeverRunsAndItsSlotIsReused)
{
	EventLoop loop;
	std::vector<std::string> seen;
	const auto t0 = std::chrono::steady_clock::now();
	auto gone = loop.addTimer([&] { seen.push_back("removed"); });
	auto stop = loop.addTimer([&] { loop.stop(); });
	loop.setTimer(gone, t0 + 10ms);
	loop.setTimer(stop, t0 + 40ms);
	loop.removeTimer(gone);
	auto again = loop.addTimer([&] { seen.push_back("new"); });
	EXPECT_EQ(again, gone) << "the free slot is taken";
	loop.setTimer(again, t0 + 20ms);
	EXPECT_EQ(loop.run(), 0);
	EXPECT_EQ(seen, (std::vector<std::string>{"new"}));
}
