// SPDX-License-Identifier: MIT
// The clauses of the plugin ABI that vmrd-plugin-check tests.
//
// The manifest and the exports are read from the file, as vmrd does before
// it loads a plugin.  Every other clause runs in a child process of its own
// that loads the plugin and calls it, so that a crash or a hang fails that
// clause alone and the next one starts clean.
#include "clauses.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <functional>
#include <optional>
#include <malloc.h>
#include <poll.h>
#include <set>
#include <sys/epoll.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "child.h"
#include "manifest.h"
#include "plugin_loader.h"
#include "units.h"

namespace vmrd::check {

namespace {

using namespace std::chrono_literals;

constexpr uint32_t normalMsgSize = 512;
constexpr const char *unknownKey = "vmrd-plugin-check-no-such-key";
constexpr const char *unknownKeyCreate = "create() with an unknown option key";

std::string describe(const Call &c)
{
	std::string s = c.what + " returned " + std::to_string(c.ret);
	if (c.ret < 0)
		if (const char *name = strerrorname_np(-c.ret))
			s += std::string(" (-") + name + ")";
	if (!c.message.empty())
		s += ": " + c.message;
	return s;
}

bool knownErrno(int ret)
{
	return ret == 0 || (ret < 0 && strerrorname_np(-ret) != nullptr);
}

bool createOrSkip(Harness &h, Report &r)
{
	r.step("calling create() with the given options");
	const Call c = h.create(normalMsgSize);
	if (c.ret != 0)
		r.skip("create() failed with the given options, so this was not checked: " + describe(c) +
		       " (run it where the plugin's device is, with the options it needs)");
	return c.ret == 0;
}

std::optional<vmrd_backend_state> state(Harness &h, Report &r)
{
	vmrd_backend_state s{};
	s.struct_size = sizeof(s);
	r.step("calling get_state()");
	const Call c = h.getState(s);
	if (c.ret != 0) {
		r.skip(describe(c) + ", so this was not checked");
		return std::nullopt;
	}
	return s;
}

bool powerOfTwo(uint64_t v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

// The unplug that takes a device at `plugged` back to `initial`: on one
// that held nothing, two blocks more than it holds (the path where a
// partial result is the answer); on one in use, only what was added.
uint64_t backTo(uint64_t plugged, uint64_t initial, uint64_t block)
{
	if (initial == 0)
		return plugged + 2 * block;
	return plugged > initial ? plugged - initial : 0;
}

// Every op once or more, on the paths that succeed and on those that fail
// (an unknown option, more than max, more than is plugged), each call
// passed to `judge`.  What it plugs it gives back.
void exercise(Harness &h, Report &r, uint32_t msgSize, const std::function<void(const Call &)> &judge)
{
	r.step("calling create() with an unknown option key, msg_size " + std::to_string(msgSize));
	Call c = h.create(msgSize, std::nullopt, {{unknownKey, "1"}});
	c.what = unknownKeyCreate;
	judge(c);
	h.destroy();
	r.step("calling create() with the given options, msg_size " + std::to_string(msgSize));
	c = h.create(msgSize);
	judge(c);
	if (c.ret != 0) {
		r.skip("create() failed with the given options, so the other operations were not called: " +
		       describe(c));
		return;
	}
	vmrd_backend_state s{};
	s.struct_size = sizeof(s);
	r.step("calling get_state(), msg_size " + std::to_string(msgSize));
	judge(h.getState(s, msgSize));
	const uint64_t block = powerOfTwo(s.block_size) ? s.block_size : 2u << 20, initial = s.plugged_bytes;
	uint64_t done = 0;
	const auto resize = [&](bool grow, uint64_t bytes) {
		r.step(std::string(grow ? "plug(" : "unplug(") + formatSize(bytes) + "), msg_size " +
		       std::to_string(msgSize));
		judge(grow ? h.plug(bytes, done, msgSize) : h.unplug(bytes, done, msgSize));
	};
	resize(true, block);
	// Past max only where that is cheap: it plugs all the way first.
	if (s.max_bytes >= s.plugged_bytes && (s.max_bytes - s.plugged_bytes) / block <= 64)
		resize(true, s.max_bytes - s.plugged_bytes + block);
	judge(h.getState(s, msgSize));
	resize(false, block);
	if (const uint64_t back = backTo(s.plugged_bytes > block ? s.plugged_bytes - block : 0, initial, block))
		resize(false, back);
	if (h.has(&vmrd_backend_ops::release_all)) {
		r.step("calling release_all(), msg_size " + std::to_string(msgSize));
		judge(h.releaseAll(done, msgSize));
	}
	if (h.has(&vmrd_backend_ops::get_event_fd)) {
		int fd = -1;
		r.step("calling get_event_fd(), msg_size " + std::to_string(msgSize));
		judge(h.getEventFd(fd, msgSize));
	}
	if (h.has(&vmrd_backend_ops::ack_event)) {
		r.step("calling ack_event(), msg_size " + std::to_string(msgSize));
		judge(h.ackEvent(msgSize));
	}
	r.step("calling destroy()");
	h.destroy();
}

void returns(Harness &h, Report &r)
{
	h.setMessageSlack(64 << 10); // a message written too far is the messages clause's
	exercise(h, r, normalMsgSize, [&](const Call &c) {
		if (!knownErrno(c.ret))
			r.fail(describe(c) + ": not 0 or a negative errno");
		else if (c.what == unknownKeyCreate && c.ret != -EINVAL)
			r.fail(describe(c) + ": an unknown key must give -EINVAL");
		else if (c.what == unknownKeyCreate && c.message.find(unknownKey) == std::string::npos)
			r.fail(describe(c) + ": the message must name the key");
	});
}

void messages(Harness &h, Report &r)
{
	for (uint32_t size : {normalMsgSize, 16u, 1u, 0u})
		exercise(h, r, size, [&](const Call &c) {
			if (!c.terminated)
				r.fail(c.what + " with msg_size " + std::to_string(size) +
				       " left no NUL within it (it wrote \"" + c.message.substr(0, 40) + "...\")");
		});
}

// Plugs and unplugs a few blocks; `judge` sees each call with what it
// asked, what it reported done and how far plugged_bytes moved.
using ResizeJudge = std::function<void(uint64_t block, const Call &, uint64_t asked, uint64_t done, int64_t moved)>;

void resizeRun(Harness &h, Report &r, const ResizeJudge &judge)
{
	if (!createOrSkip(h, r))
		return;
	auto before = state(h, r);
	if (!before)
		return;
	const uint64_t block = before->block_size, initial = before->plugged_bytes;
	for (const auto &[grow, blocks] : {std::pair{true, 1}, {true, 3}, {false, 1}, {false, -1}}) {
		const uint64_t asked = blocks > 0 ? static_cast<uint64_t>(blocks) * block
		                                  : backTo(before->plugged_bytes, initial, block);
		if (asked == 0)
			continue;
		constexpr uint64_t unset = ~uint64_t{0};
		uint64_t done = unset;
		r.step(std::string(grow ? "plug(" : "unplug(") + formatSize(asked) + ")");
		const Call c = grow ? h.plug(asked, done) : h.unplug(asked, done);
		auto after = state(h, r);
		if (!after)
			return;
		if (done == unset) {
			r.fail(c.what + " did not store what it " + (grow ? "plugged" : "released") +
			       " (it must, even on failure)");
			done = 0;
		}
		const int64_t moved =
		        static_cast<int64_t>(after->plugged_bytes) - static_cast<int64_t>(before->plugged_bytes);
		judge(block, c, asked, done, grow ? moved : -moved);
		before = after;
	}
}

void partial(Harness &h, Report &r)
{
	resizeRun(h, r, [&](uint64_t, const Call &c, uint64_t asked, uint64_t done, int64_t) {
		if (done > asked)
			r.fail(describe(c) + ", and reported " + formatSize(done) + " done, more than the " +
			       formatSize(asked) + " asked");
	});
}

void blocks(Harness &h, Report &r)
{
	bool checkedBlock = false;
	resizeRun(h, r, [&](uint64_t block, const Call &c, uint64_t, uint64_t done, int64_t moved) {
		if (!checkedBlock && !powerOfTwo(block))
			r.fail("get_state() reports block_size " + std::to_string(block) + ", not a power of two");
		checkedBlock = true;
		if (powerOfTwo(block) && done % block != 0)
			r.fail(describe(c) + ", and reported " + std::to_string(done) +
			       " bytes done, not a multiple of block_size " + formatSize(block));
		if (moved != static_cast<int64_t>(done))
			r.fail(describe(c) + ", and reported " + formatSize(done) +
			       " done, but plugged_bytes moved by " + std::to_string(moved) + " bytes");
	});
}

void stateLatency(Harness &h, Report &r)
{
	if (!createOrSkip(h, r))
		return;
	// The median, so that a call the machine was too busy to schedule does
	// not fail a plugin; one that blocks fails every time.
	std::vector<std::chrono::steady_clock::duration> took;
	for (int i = 0; i < 21; i++) {
		vmrd_backend_state s{};
		s.struct_size = sizeof(s);
		r.step("calling get_state(), call " + std::to_string(i + 1) + " of 21");
		const auto start = std::chrono::steady_clock::now();
		h.getState(s);
		took.push_back(std::chrono::steady_clock::now() - start);
	}
	std::sort(took.begin(), took.end());
	const auto ms = [](std::chrono::steady_clock::duration d) {
		return formatDuration(std::chrono::duration_cast<Micros>(d));
	};
	const std::string text =
	        "21 get_state() calls took " + ms(took[10]) + " (median), " + ms(took.back()) + " at the most";
	if (took[10] > 50ms)
		r.fail(text + "; the median is over 50 ms");
	else
		r.note(text);
}

void hostSize(Harness &h, Report &r, const PluginInfo &info)
{
	if (!createOrSkip(h, r))
		return;
	h.destroy();
	r.step("calling create() with a vmrd_host of ABI 1.0's " + std::to_string(host10Size) +
	       " bytes before a guard page");
	Call c = h.create(normalMsgSize, host10Size);
	if (c.ret != 0) {
		// A plugin newer than 1.0 may need more of the host, and say so.
		if (info.abiMinor == 0 || c.ret != -EOPNOTSUPP)
			r.fail(describe(c) + " with a 1.0-size host, but 0 with a full one");
	} else {
		vmrd_backend_state s{};
		s.struct_size = sizeof(s);
		uint64_t done = 0;
		r.step("calling get_state(), plug() and unplug() of a backend created with a 1.0-size host");
		if (h.getState(s).ret == 0 && s.block_size > 0) {
			h.plug(s.block_size, done);
			h.unplug(s.block_size, done);
		}
	}
	h.destroy();
	const size_t bigger = sizeof(vmrd_host) + 64;
	r.step("calling create() with a vmrd_host of " + std::to_string(bigger) + " bytes, its tail unknown members");
	c = h.create(normalMsgSize, bigger);
	if (c.ret != 0)
		r.fail(describe(c) + " with a host struct larger than it knows, but 0 with one it knows");
	h.destroy();
}

void stateSize(Harness &h, Report &r, const PluginInfo &info)
{
	if (!createOrSkip(h, r))
		return;
	{
		GuardedBuffer buf(state10Size);
		std::memset(buf.data(), 0, state10Size);
		auto *s = reinterpret_cast<vmrd_backend_state *>(buf.data());
		s->struct_size = state10Size;
		r.step("calling get_state() with a vmrd_backend_state of ABI 1.0's " + std::to_string(state10Size) +
		       " bytes before a guard page");
		h.getStateAt(s);
		if (s->struct_size != state10Size)
			r.fail("get_state() changed struct_size from " + std::to_string(state10Size) + " to " +
			       std::to_string(s->struct_size) + ": it is the caller's");
	}
	constexpr size_t tail = 64;
	GuardedBuffer buf(sizeof(vmrd_backend_state) + tail);
	std::memset(buf.data(), 0x5a, sizeof(vmrd_backend_state) + tail);
	auto *s = reinterpret_cast<vmrd_backend_state *>(buf.data());
	s->struct_size = sizeof(vmrd_backend_state) + tail;
	r.step("calling get_state() with a vmrd_backend_state " + std::to_string(tail) + " bytes larger than it knows");
	h.getStateAt(s);
	const char *t = buf.data() + sizeof(vmrd_backend_state);
	// A plugin of a newer minor knows members this checker does not.
	if (info.abiMinor == 0 && std::any_of(t, t + tail, [](char b) { return b != 0x5a; }))
		r.fail("get_state() wrote into the bytes past the members of ABI 1.0, which it does not know");
}

void releaseAll(Harness &h, Report &r)
{
	if (!h.has(&vmrd_backend_ops::release_all)) {
		r.note("not implemented (it is optional)");
		return;
	}
	if (!createOrSkip(h, r))
		return;
	auto s = state(h, r);
	if (!s)
		return;
	uint64_t done = 0;
	r.step("plugging two blocks");
	if (s->block_size > 0) // or plug(0), which no caller may make
		h.plug(2 * s->block_size, done);
	const auto before = state(h, r);
	if (!before)
		return;
	done = ~uint64_t{0};
	r.step("calling release_all()");
	const Call c = h.releaseAll(done);
	const auto after = state(h, r);
	if (!after)
		return;
	if (done == ~uint64_t{0})
		r.fail(describe(c) + ", and did not store *released");
	else if (done > before->plugged_bytes)
		r.fail(describe(c) + ", and reported " + formatSize(done) + " released, more than the " +
		       formatSize(before->plugged_bytes) + " plugged");
	else if (before->plugged_bytes - after->plugged_bytes != done)
		r.fail(describe(c) + ", and reported " + formatSize(done) + " released, but plugged_bytes went from " +
		       formatSize(before->plugged_bytes) + " to " + formatSize(after->plugged_bytes));
	// A device in use gets back what it held.
	if (s->plugged_bytes > after->plugged_bytes) {
		r.step("plugging back what the device held before");
		h.plug(s->plugged_bytes - after->plugged_bytes, done);
	}
}

bool readable(int fd)
{
	pollfd p{fd, POLLIN, 0};
	return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

void eventFd(Harness &h, Report &r)
{
	if (!h.has(&vmrd_backend_ops::get_event_fd)) {
		r.note("not implemented (it is optional)");
		return;
	}
	if (!createOrSkip(h, r))
		return;
	int fd = -1;
	r.step("calling get_event_fd()");
	const Call c = h.getEventFd(fd);
	if (c.ret == -EOPNOTSUPP) {
		r.note("get_event_fd() says there are no events for this configuration (-EOPNOTSUPP)");
		return;
	}
	if (c.ret != 0 || fd < 0 || ::fcntl(fd, F_GETFD) < 0) {
		r.fail(describe(c) + " with fd " + std::to_string(fd) + ": want 0 and an open fd, or -EOPNOTSUPP");
		return;
	}
	const int ep = ::epoll_create1(EPOLL_CLOEXEC);
	epoll_event ev{};
	ev.events = EPOLLIN;
	if (::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
		r.fail("epoll does not take the event fd: " + std::string(std::strerror(errno)));
	::close(ep);
	// A change can arrive in between (a host resizing): a few tries.
	const bool ack = h.has(&vmrd_backend_ops::ack_event);
	const std::string consume = ack ? "ack_event()" : "get_state() (there is no ack_event)";
	for (int i = 0; i < 3 && readable(fd); i++) {
		r.step("calling " + consume);
		vmrd_backend_state s{};
		s.struct_size = sizeof(s);
		if (ack)
			h.ackEvent();
		else
			h.getState(s);
	}
	if (readable(fd))
		r.fail("the event fd is still readable after three calls of " + consume +
		       ": they must consume its readiness");
}

void threads(Harness &h, Report &r)
{
	if (!createOrSkip(h, r))
		return;
	const auto run = [&](std::vector<Call> &out) {
		vmrd_backend_state s{};
		s.struct_size = sizeof(s);
		uint64_t done = 0;
		out.push_back(h.getState(s));
		if (out.back().ret != 0 || s.block_size == 0)
			return;
		out.push_back(h.plug(s.block_size, done));
		out.push_back(h.unplug(s.block_size, done));
	};
	std::vector<Call> here, there;
	r.step("calling get_state(), plug() and unplug() on the thread that created the backend");
	run(here);
	r.step("calling get_state(), plug() and unplug() on another thread");
	std::thread([&] { run(there); }).join();
	for (size_t i = 0; i < here.size() && i < there.size(); i++)
		if (here[i].ret == 0 && there[i].ret != 0)
			r.fail(describe(there[i]) + " on another thread, but 0 on the creating one");
}

size_t openFds()
{
	size_t n = 0;
	if (DIR *d = ::opendir("/proc/self/fd")) {
		while (::readdir(d))
			n++;
		::closedir(d);
	}
	return n;
}

// Under AddressSanitizer malloc is its own and mallinfo2 sees none of it.
// The sanitizer's interface has this name; weak, as it is absent otherwise.
extern "C" size_t __sanitizer_get_current_allocated_bytes() // NOLINT(bugprone-reserved-identifier)
        __attribute__((weak));

size_t heapInUse()
{
	if (__sanitizer_get_current_allocated_bytes)
		return __sanitizer_get_current_allocated_bytes();
	const struct mallinfo2 m = ::mallinfo2();
	return m.uordblks + m.hblkhd;
}

void cycles(Harness &h, Report &r)
{
	if (!createOrSkip(h, r))
		return;
	h.destroy();
	const bool events = h.has(&vmrd_backend_ops::get_event_fd);
	const auto cycle = [&](int i) {
		const Call c = h.create();
		if (c.ret != 0) {
			r.fail(describe(c) + " in cycle " + std::to_string(i));
			return false;
		}
		int fd = -1;
		if (events) // as vmrd does after each create()
			h.getEventFd(fd);
		h.destroy();
		return true;
	};
	r.step("10 create()/destroy() cycles to warm up");
	for (int i = 0; i < 10; i++)
		if (!cycle(i))
			return;
	const size_t fds = openFds(), heap = heapInUse();
	constexpr int wanted = 1000;
	constexpr size_t slack = 64 << 10;
	// A create() that waits for its host (allowed) would make 1000 cycles
	// take hours: as many as fit in 200 s, and the note says so.
	const auto end = std::chrono::steady_clock::now() + 200s;
	int n = 0;
	for (; n < wanted && std::chrono::steady_clock::now() < end; n++) {
		if (n % 100 == 0)
			r.step("create()/destroy() cycle " + std::to_string(n + 1) + " of " + std::to_string(wanted));
		if (!cycle(n))
			return;
	}
	const std::string done =
	        std::to_string(n) + " cycles" + (n < wanted ? " (all that fit in 200 s: create() is slow)" : "");
	const size_t fdsAfter = openFds(), heapAfter = heapInUse();
	if (fdsAfter > fds)
		r.fail(std::to_string(fdsAfter - fds) + " more file descriptors open after " + done);
	if (heapAfter > heap + slack)
		r.fail("the heap grew by " + formatSize(heapAfter - heap) + " over " + done);
	if (fdsAfter <= fds && heapAfter <= heap + slack)
		r.note(done + ": no fd more, heap grew by " + formatSize(heapAfter > heap ? heapAfter - heap : 0));
}

// export_fds: open fds with valid, unique names; -ENOSPC with the count
// when they do not fit; an fd no longer listed went through forget_fd()
// first.  adopt_fds: an fd it never exported is closed.
void heldFds(Harness &h, Report &r)
{
	bool failed = false;
	auto fail = [&](const std::string &what) {
		failed = true;
		r.fail(what);
	};
	h.setMessageSlack(64 << 10); // a message written too far is the messages clause's
	const bool exports = h.has(&vmrd_backend_ops::export_fds), adopts = h.has(&vmrd_backend_ops::adopt_fds);
	if (!exports && !adopts) {
		r.note("not implemented (optional, ABI 1.1)");
		return;
	}
	if (exports != adopts) {
		fail(std::string("only ") + (exports ? "export_fds" : "adopt_fds") + " is set: the two come together");
		return;
	}
	if (!createOrSkip(h, r))
		return;
	auto s = state(h, r);
	if (!s || s->block_size == 0)
		return;
	uint64_t done = 0;
	r.step("calling plug() of two blocks");
	h.plug(2 * s->block_size, done);
	std::vector<vmrd_held_fd> before;
	r.step("calling export_fds()");
	if (Call c = h.exportFds(before); c.ret != 0) {
		fail(describe(c) + ": want 0");
		return;
	}
	std::set<std::string> names;
	for (const auto &f : before) {
		const std::string name(f.name, strnlen(f.name, sizeof(f.name)));
		if (!validHeldFdName(f))
			fail("fd " + std::to_string(f.fd) +
			     " is listed without a valid name (1 to 63 of A-Z a-z 0-9 _ . -)");
		else if (!names.insert(name).second)
			fail("'" + name + "' is listed twice");
		if (::fcntl(f.fd, F_GETFD) < 0)
			fail("'" + name + "' is listed as fd " + std::to_string(f.fd) + ", which is not open");
		if (f.reserved != 0)
			fail("'" + name + "' has reserved " + std::to_string(f.reserved) + ", not 0");
	}
	if (!before.empty()) {
		std::vector<vmrd_held_fd> few;
		const auto room = static_cast<uint32_t>(before.size() - 1);
		r.step("calling export_fds() with room for " + std::to_string(room));
		const Call c = h.exportFds(few, room);
		if (c.ret != -ENOSPC || few.size() != before.size())
			fail(describe(c) + " with count " + std::to_string(few.size()) + ": want -ENOSPC and count " +
			     std::to_string(before.size()));
	}
	r.step("calling unplug() of one block, then export_fds()");
	h.unplug(s->block_size, done);
	std::vector<vmrd_held_fd> after;
	h.exportFds(after);
	for (const auto &f : after)
		names.erase(std::string(f.name, strnlen(f.name, sizeof(f.name))));
	for (const auto &gone : names)
		if (std::find(h.forgotten().begin(), h.forgotten().end(), gone) == h.forgotten().end())
			fail("'" + gone +
			     "' is no longer listed, but forget_fd() was not called for it before its close");

	int pipe[2];
	if (::pipe2(pipe, O_CLOEXEC) != 0)
		return;
	vmrd_held_fd stranger{};
	stranger.fd = pipe[1];
	std::strcpy(stranger.name, "vmrd-plugin-check-stranger");
	h.destroy();
	if (!createOrSkip(h, r)) {
		::close(pipe[0]);
		::close(pipe[1]);
		return;
	}
	r.step("calling adopt_fds() with an fd it never exported");
	h.adoptFds({stranger});
	pollfd p{pipe[0], POLLIN, 0};
	if (::poll(&p, 1, 0) != 1 || !(p.revents & POLLHUP)) {
		fail("it kept an fd it never exported (\"it keeps those it recognises and closes the others\")");
		h.destroy();
	}
	::close(pipe[0]);
	if (failed)
		return;
	r.note(std::to_string(before.size()) + " fds listed after two blocks, " + std::to_string(after.size()) +
	       " after one went back; a stranger adopted was closed");
}

// probe (ABI 1.2): answers 0, or -ENODEV saying what is missing, or an
// errno, within 50 ms, and changes nothing: no fd stays open, and a backend
// created before sees the same device after.
void probe(Harness &h, Report &r)
{
	if (!h.has(&vmrd_backend_ops::probe)) {
		r.note("not implemented (optional, ABI 1.2): vmrd takes this plugin only where the config names it");
		return;
	}
	h.setMessageSlack(64 << 10); // a message written too far is the messages clause's
	r.step("calling create() with the given options, to compare the device before and after");
	std::optional<vmrd_backend_state> before;
	if (h.create(normalMsgSize).ret == 0)
		before = state(h, r);
	const size_t fds = openFds();
	std::vector<std::chrono::steady_clock::duration> took;
	Call c;
	for (int i = 0; i < 21; i++) {
		r.step("calling probe(), call " + std::to_string(i + 1) + " of 21");
		const auto start = std::chrono::steady_clock::now();
		c = h.probe(normalMsgSize);
		took.push_back(std::chrono::steady_clock::now() - start);
		if (!knownErrno(c.ret))
			return r.fail(describe(c) + ": not 0 or a negative errno");
		if (c.ret == -ENODEV && c.message.empty())
			return r.fail(describe(c) + " with no message saying what is missing");
	}
	std::sort(took.begin(), took.end());
	const auto ms = [](std::chrono::steady_clock::duration d) {
		return formatDuration(std::chrono::duration_cast<Micros>(d));
	};
	const std::string text = "21 probe() calls took " + ms(took[10]) + " (median), " + ms(took.back()) +
	                         " at the most; the last " + describe(c);
	if (took[10] > 50ms)
		return r.fail(text + "; the median is over 50 ms");
	if (const size_t now = openFds(); now != fds)
		return r.fail(std::to_string(now) + " fds open after 21 probe() calls, " + std::to_string(fds) +
		              " before: probe() must not keep anything open");
	if (before) {
		const auto after = state(h, r);
		if (after && (after->plugged_bytes != before->plugged_bytes || after->max_bytes != before->max_bytes))
			return r.fail("the backend's device changed under 21 probe() calls: plugged " +
			              formatSize(before->plugged_bytes) + " of " + formatSize(before->max_bytes) +
			              " before, " + formatSize(after->plugged_bytes) + " of " +
			              formatSize(after->max_bytes) + " after");
	}
	r.note(text);
}

using Body = std::function<void(Harness &, Report &, const PluginInfo &)>;

template <void (*F)(Harness &, Report &)> Body body()
{
	return [](Harness &h, Report &r, const PluginInfo &) { F(h, r); };
}

struct Clause {
	const char *id;
	const char *rule; // plugin.h's words
	Body run;
	std::chrono::seconds timeout = 60s;
};

const Clause childClauses[] = {
        {"host-size",
         "vmrd_host: \"The side that allocates a struct sets struct_size to sizeof() as it was compiled; the "
         "other side touches only members that lie within it.\"",
         hostSize},
        {"state-size", "vmrd_backend_state: \"the other side touches only members that lie within it.\"", stateSize},
        {"returns",
         "\"Every call returns 0 or a negative errno.\" \"Reject any option key it does not know with -EINVAL "
         "and a message naming the key.\"",
         body<returns>()},
        {"messages",
         "\"it may write a NUL-terminated, human-readable message into the caller's buffer `msg` of `msg_size` "
         "bytes (msg_size may be 0; never write past it).\"",
         body<messages>()},
        {"partial",
         "\"Store in *plugged what was really added, which may be less than asked\"; unplug: \"store in "
         "*released what was really released, which may be less than asked.\"",
         body<partial>()},
        {"blocks",
         "block_size: \"granularity of plug and unplug, a power of two\"; \"plugged_bytes is what the backend "
         "really holds now\"",
         body<blocks>()},
        {"state-latency",
         "\"plug, unplug and release_all may block (a hot-plug can take seconds); get_state should not.\" "
         "(50 ms)",
         body<stateLatency>()},
        {"release-all", "\"Release everything that can be released; *released as for unplug.\"", body<releaseAll>()},
        {"event-fd",
         "\"Consume the readiness of the event fd without blocking: afterwards the fd is not readable until "
         "something new happens.\"",
         body<eventFd>()},
        {"held-fds",
         "export_fds: \"an fd no longer listed is withdrawn from the keeper (call host->forget_fd() before "
         "closing it)\"; adopt_fds: \"it keeps those it recognises and closes the others\"",
         body<heldFds>()},
        {"threads", "\"... destroy() from its main thread and every other operation from one worker thread\"",
         body<threads>()},
        {"cycles", "\"Free the backend.\" (1000 create/destroy cycles leak no fd and no memory)", body<cycles>(), 300s},
        {"probe",
         "probe: \"It must be cheap and have no side effects: look, do not open what outlives the call, change "
         "nothing, and answer within 50 ms.\"",
         body<probe>()},
};

class Printer
{
public:
	explicit Printer(std::ostream &out) : out_(out) {}
	void print(const char *id, const char *rule, const Outcome &o)
	{
		const char *word = o.verdict == Verdict::Pass ? "PASS" : o.verdict == Verdict::Fail ? "FAIL" : "SKIP";
		(o.verdict == Verdict::Pass ? passed_ : o.verdict == Verdict::Fail ? failed_ : skipped_)++;
		out_ << word << " " << id << ": " << rule << "\n";
		for (const auto &d : o.details)
			out_ << "    " << d << "\n";
		out_.flush();
	}
	// One line for clauses that all were skipped for the same reason.
	void skip(const std::vector<const char *> &ids, const std::string &why)
	{
		out_ << "SKIP";
		for (size_t i = 0; i < ids.size(); i++)
			out_ << (i ? ", " : " ") << ids[i];
		out_ << ": " << why << "\n";
		skipped_ += static_cast<int>(ids.size());
	}
	int finish()
	{
		out_ << passed_ << " passed, " << failed_ << " failed, " << skipped_ << " skipped\n";
		return failed_ ? 1 : skipped_ ? 2 : 0;
	}

private:
	std::ostream &out_;
	int passed_ = 0, failed_ = 0, skipped_ = 0;
};

// The manifest's rules, as vmrd's loader applies them, and the file name.
Outcome checkManifestFile(const std::string &path, PluginInfo &info)
{
	auto m = readManifest(path);
	if (!m)
		return {Verdict::Fail, {m.error().message}};
	if (auto rules = checkManifest(*m); !rules)
		return {Verdict::Fail, {rules.error().message}};
	info.name = manifestString(m->name, sizeof(m->name));
	info.version = manifestString(m->version, sizeof(m->version));
	info.vendor = manifestString(m->vendor, sizeof(m->vendor));
	info.abiMajor = m->abi_major;
	info.abiMinor = m->abi_minor;
	info.path = path;
	const std::string file = path.substr(path.rfind('/') + 1), want = "vmrd-backend-" + info.name + ".so";
	if (file != want)
		return {Verdict::Fail,
		        {"its manifest names it '" + info.name + "', so the file must be called " + want}};
	return {Verdict::Pass,
	        {"'" + info.name + "' " + info.version + " by " + info.vendor + ", ABI " +
	         std::to_string(info.abiMajor) + "." + std::to_string(info.abiMinor)}};
}

Outcome checkExports(const std::string &path)
{
	auto symbols = readExportedSymbols(path);
	if (!symbols)
		return {Verdict::Fail, {symbols.error().message}};
	Outcome o;
	for (const char *want : {VMRD_PLUGIN_MANIFEST_SYMBOL, VMRD_PLUGIN_ENTRY_SYMBOL})
		if (std::find(symbols->begin(), symbols->end(), want) == symbols->end())
			o.details.push_back(std::string("it does not export ") + want);
	std::string extra;
	for (const auto &s : *symbols)
		if (s != VMRD_PLUGIN_MANIFEST_SYMBOL && s != VMRD_PLUGIN_ENTRY_SYMBOL)
			extra += (extra.empty() ? "" : ", ") + s;
	if (!extra.empty())
		o.details.push_back("it also exports " + extra +
		                    " (build with -fvisibility=hidden; a C++ plugin needs a version script too)");
	o.verdict = o.details.empty() ? Verdict::Pass : Verdict::Fail;
	return o;
}

} // namespace

int checkPlugin(const Target &target, std::ostream &out)
{
	Printer printer(out);
	out << "vmrd-plugin-check " << target.path << "\n";
	PluginInfo info;
	const Outcome manifest = checkManifestFile(target.path, info);
	printer.print("manifest",
	              "\"All strings are NUL-terminated within their arrays.  `name` must equal the <name> part of "
	              "the file name and match [a-z0-9-]+.\"",
	              manifest);
	printer.print("exports", "\"It exports exactly two symbols\"", checkExports(target.path));

	const char *entryRule = "\"vmrd_plugin_entry_v1   returns the plugin's description and its ops table.\"";
	const auto skipRest = [&](bool entryToo, const std::string &why) {
		std::vector<const char *> ids;
		if (entryToo)
			ids.push_back("entry");
		for (const auto &c : childClauses)
			ids.push_back(c.id);
		printer.skip(ids, why);
		return printer.finish();
	};
	if (manifest.verdict != Verdict::Pass)
		return skipRest(true, "vmrd does not load a plugin whose manifest breaks the rules");

	const auto load = [&](Report &r) -> std::shared_ptr<Plugin> {
		r.step("loading the library and calling " VMRD_PLUGIN_ENTRY_SYMBOL "()");
		auto plugin = PluginLoader::loadLibrary(info);
		if (!plugin) {
			r.fail(plugin.error().message);
			return nullptr;
		}
		return *plugin;
	};
	const Outcome entry = runInChild(
	        [&](Report &r) {
		        if (auto p = load(r))
			        r.note("\"" + p->info().description + "\"");
	        },
	        60s);
	printer.print("entry", entryRule, entry);
	if (entry.verdict != Verdict::Pass)
		return skipRest(false, "the plugin does not load");

	// Where create() fails (no device here, an option missing), say so once.
	const Outcome creates = runInChild(
	        [&](Report &r) {
		        if (auto plugin = load(r)) {
			        Harness h(*plugin, target.options, target.procfs, target.sysfs);
			        createOrSkip(h, r);
		        }
	        },
	        60s);
	if (creates.verdict != Verdict::Pass) {
		std::vector<const char *> ids;
		for (const auto &c : childClauses)
			ids.push_back(c.id);
		if (creates.verdict == Verdict::Skip)
			printer.skip(ids, creates.details.front());
		else
			printer.print("create", "\"Create a backend with the host services and options.\"", creates);
		return printer.finish();
	}

	for (const auto &c : childClauses)
		printer.print(c.id, c.rule,
		              runInChild(
		                      [&](Report &r) {
			                      auto plugin = load(r);
			                      if (!plugin)
				                      return;
			                      Harness h(*plugin, target.options, target.procfs, target.sysfs);
			                      c.run(h, r, info);
		                      },
		                      c.timeout));
	return printer.finish();
}

} // namespace vmrd::check
