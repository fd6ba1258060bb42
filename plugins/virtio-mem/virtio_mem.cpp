// SPDX-License-Identifier: MIT
// virtio-mem backend: asks the host broker for a new device size and confirms in the guest what arrived.
//
// virtio-mem is driven by the host: the guest driver only converges to the
// device's requested-size.  So a plug or unplug is a request to the broker on
// the host, which clamps it to the range the host allows and sets
// requested-size through QMP; this side then waits until the device's size
// has converged and the memory shows in MemTotal.
//
// The broker also tells this side, unasked, when the device changed (a size
// notice, see protocol.h).  The event fd vmrd watches is an epoll fd of this
// plugin's own holding the channel, because the channel's fd changes when the
// port is reopened; get_state answers from what the broker said last.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <utility>

#include <vmrd/plugin.h>

#include "backend_adapter.h"
#include "mem_stats.h"
#include "proc_file.h"
#include "protocol.h"
#include "transport.h"
#include "units.h"

VMRD_PLUGIN_MANIFEST("virtio-mem", "1.0.0", "vmrd project");

using namespace vmrd;
using namespace vmrd::vmem;
using std::chrono::milliseconds;

struct vmrd_backend {
	vmrd_host host{};
	ProcFile meminfo; // opened at create: read every 20 ms while a resize converges
	std::string port = "/dev/virtio-ports/org.vmrd.0";
	milliseconds replyTimeout{2000};
	milliseconds plugTimeout{10000};
	milliseconds unplugTimeout{30000};
	std::unique_ptr<Transport> transport;
	LineReader reader;
	uint64_t nextId = 1;
	bool connected = false; // a reply came, and the channel has not failed since
	uint64_t helloId = 0;   // a hello sent by get_state whose reply is still to come
	std::chrono::steady_clock::time_point helloSent;
	DeviceState last;          // from the broker's latest reply or size notice
	uint64_t memTotalBase = 0; // MemTotal with nothing plugged, learnt at the first hello
	int eventFd = -1;          // epoll: holds the channel while connected (see setConnected)
	bool reclaim = false;      // the broker asked for memory back; told in the next state

	~vmrd_backend()
	{
		if (eventFd >= 0)
			::close(eventFd);
	}

	// The C ABI's operations, through plugins/common/backend_adapter.h.
	static Result<std::unique_ptr<vmrd_backend>> create(const vmrd_host &host, const plugin::Options &options);
	static Status probe(const vmrd_host &host, const plugin::Options &options);
	Result<vmrd_backend_state> getState();
	CallResult plug(uint64_t bytes);
	CallResult unplug(uint64_t bytes);
	Result<int> getEventFd() { return eventFd; }
	Status ackEvent();
};

namespace {

void log(vmrd_backend *b, int level, const std::string &text)
{
	b->host.log(b->host.host_data, level, text.c_str());
}

std::optional<uint64_t> memTotal(vmrd_backend *b)
{
	auto text = b->meminfo.read();
	auto m = text ? parseMeminfo(*text) : std::nullopt;
	return m ? std::optional<uint64_t>(m->memTotal) : std::nullopt;
}

// The event fd holds the channel only while connected: a virtio-serial port
// whose host end is closed polls as hung up forever, which would wake vmrd
// in a loop.
void watchChannel(vmrd_backend *b, bool watch)
{
	const int fd = b->transport->pollFd();
	if (fd >= 0 && watch) {
		epoll_event ev{};
		ev.events = EPOLLIN;
		if (::epoll_ctl(b->eventFd, EPOLL_CTL_ADD, fd, &ev) != 0 && errno != EEXIST)
			log(b, VMRD_LOG_WARNING,
			    std::string("cannot watch the broker channel: ") + std::strerror(errno) +
			            "; size changes by the host are seen only at the next resize");
	} else if (fd >= 0) {
		::epoll_ctl(b->eventFd, EPOLL_CTL_DEL, fd, nullptr); // gone already if the port was closed
	}
}

void setConnected(vmrd_backend *b, bool connected)
{
	watchChannel(b, connected);
	b->connected = connected;
	if (connected)
		b->helloId = 0;
}

uint64_t takeId(vmrd_backend *b)
{
	const uint64_t id = b->nextId++;
	if (b->nextId > maxId)
		b->nextId = 1;
	return id;
}

// One line from the broker.  A size notice updates what this side knows and
// may come at any time, also between a request and its reply; a reply is
// returned for the caller to match by id.
std::optional<Reply> takeLine(vmrd_backend *b, const LineReader::Line &line)
{
	if (line.tooLong) {
		log(b, VMRD_LOG_WARNING,
		    "ignoring a line from the broker longer than " + std::to_string(maxLine) + " bytes");
		return std::nullopt;
	}
	auto m = parseBrokerMessage(line.text);
	if (!m) {
		log(b, VMRD_LOG_WARNING, "ignoring a malformed line from the broker: " + m.error().message);
		return std::nullopt;
	}
	if (m->kind == BrokerMessage::Kind::Reply)
		return m->reply;
	if (m->kind == BrokerMessage::Kind::Reclaim) {
		log(b, VMRD_LOG_DEBUG, "the host broker asks for memory back");
		b->reclaim = true;
		return std::nullopt;
	}
	if (m->notice.state.size != b->last.size)
		log(b, VMRD_LOG_DEBUG,
		    "the host broker says the device now has " + formatSize(m->notice.state.size) + " plugged (was " +
		            formatSize(b->last.size) + ")");
	b->last = m->notice.state;
	return std::nullopt;
}

// Reads what the broker sent unasked, without waiting.  Bounded, so that a
// chatty broker cannot hold the worker: what is left keeps the fd readable.
void absorb(vmrd_backend *b)
{
	for (int i = 0; i < 16 && b->connected; i++) {
		auto bytes = b->transport->receive(milliseconds(0));
		if (!bytes) {
			if (bytes.error().code != -ETIMEDOUT) {
				log(b, VMRD_LOG_INFO,
				    bytes.error().message + "; asking again when vmrd needs the state");
				setConnected(b, false);
			}
			return;
		}
		b->reader.feed(*bytes);
		while (auto line = b->reader.next())
			takeLine(b, *line); // a reply here answers a request that timed out: dropped
	}
}

// Sends one request and waits for its reply.  Replies to other ids (late
// answers to requests that timed out) are dropped; size notices that come
// meanwhile are taken in.
Result<Reply> call(vmrd_backend *b, Request req)
{
	req.id = takeId(b);
	if (auto s = b->transport->send(formatRequest(req), b->replyTimeout); !s) {
		setConnected(b, false);
		return s.error();
	}
	const auto end = std::chrono::steady_clock::now() + b->replyTimeout;
	for (;;) {
		while (auto line = b->reader.next()) {
			auto reply = takeLine(b, *line);
			if (!reply || reply->id != req.id)
				continue;
			setConnected(b, true);
			b->last = reply->state;
			return *reply;
		}
		auto left = std::chrono::duration_cast<milliseconds>(end - std::chrono::steady_clock::now());
		if (left.count() <= 0)
			return Error{-ETIMEDOUT,
			             "no reply from the host broker within " +
			                     formatDuration(std::chrono::duration_cast<Micros>(b->replyTimeout))};
		auto bytes = b->transport->receive(left);
		if (!bytes) {
			setConnected(b, false);
			return bytes.error();
		}
		b->reader.feed(*bytes);
	}
}

// What this side learns at the first reply after being disconnected.
void welcome(vmrd_backend *b, const DeviceState &state)
{
	if (auto total = memTotal(b); total && *total >= state.size)
		b->memTotalBase = *total - state.size;
	log(b, VMRD_LOG_INFO,
	    "connected to the host broker on " + b->transport->describe() + ": device " + formatSize(state.size) +
	            " plugged, host allows " + formatSize(state.min) + " to " + formatSize(state.max) + ", block " +
	            formatSize(state.blockSize));
}

Result<DeviceState> hello(vmrd_backend *b)
{
	bool first = !b->connected;
	auto r = call(b, Request{Request::Kind::Hello, 0, 0});
	if (!r)
		return r.error();
	if (first)
		welcome(b, r->state);
	return r->state;
}

// get_state must not wait for the broker (plugin.h), so while it is away
// get_state only asks: it sends a hello, watches the channel for the reply
// (vmrd then calls ack_event and get_state), and takes the reply when a
// later call finds it.  A hello unanswered for a reply timeout is sent anew.
Status askBroker(vmrd_backend *b)
{
	for (int i = 0; i < 16 && b->helloId; i++) {
		auto bytes = b->transport->receive(milliseconds(0));
		if (!bytes) {
			if (bytes.error().code != -ETIMEDOUT) {
				b->helloId = 0; // the channel failed: stop watching it, ask anew
				watchChannel(b, false);
			}
			break;
		}
		b->reader.feed(*bytes);
		while (auto line = b->reader.next()) {
			auto reply = takeLine(b, *line);
			if (!reply || reply->id != b->helloId)
				continue;
			b->helloId = 0;
			setConnected(b, true);
			b->last = reply->state;
			welcome(b, reply->state);
			return Ok{};
		}
	}
	const auto now = std::chrono::steady_clock::now();
	if (b->helloId && now - b->helloSent < b->replyTimeout)
		return Ok{};
	Request req{Request::Kind::Hello, 0, 0};
	req.id = takeId(b);
	if (auto s = b->transport->send(formatRequest(req), milliseconds(0)); !s)
		return s;
	b->helloId = req.id;
	b->helloSent = now;
	watchChannel(b, true);
	return Ok{};
}

// Asks for `target`, then waits until the device's size converged to what
// was granted and the memory shows in MemTotal.  Returns the new size.
Result<uint64_t> resize(vmrd_backend *b, bool grow, uint64_t target, milliseconds timeout, std::string &note)
{
	auto r = call(b, Request{Request::Kind::Resize, 0, target});
	if (!r)
		return r.error();
	if (!r->ok)
		return Error{-EPERM, "the host broker refused: " + r->error + ": " + r->message};
	const uint64_t granted = r->state.requested;
	if (granted != target)
		note = "the host granted " + formatSize(granted) + " of the " + formatSize(target) + " asked";
	// Watch the convergence inside the guest, where it costs nothing: a
	// plug is done when MemTotal shows the granted size (it only rises
	// while blocks come online), an unplug when it shows it unchanged for
	// 200 ms (during an unplug each removed block briefly counts back in).
	const uint64_t expected = b->memTotalBase + granted;
	const auto end = std::chrono::steady_clock::now() + timeout;
	auto stableSince = std::chrono::steady_clock::now();
	std::optional<uint64_t> previous;
	// A plug is looked at every 20 ms: the policy waits for it.  An unplug
	// takes a second or more and nothing waits for it: each look waits
	// twice as long as the last, up to 200 ms, for fewer wakeups.
	auto pause = milliseconds(20);
	for (;;) {
		auto total = memTotal(b);
		const auto t = std::chrono::steady_clock::now();
		if (total != previous)
			stableSince = t;
		previous = total;
		if (total && *total == expected && (grow || t - stableSince >= milliseconds(200)))
			break;
		// An unplug unchanged for seconds short of its target has stopped
		// (memory in use); the broker's size says where.  A plug may stall
		// that long while a nearly full guest finds memory for the new
		// blocks' memmap: it gets the whole timeout.
		if (t >= end || (!grow && t - stableSince >= milliseconds(3000)))
			break;
		std::this_thread::sleep_for(pause);
		if (!grow)
			pause = std::min(2 * pause, milliseconds(200));
	}
	// The device's own size is what counts: ask the broker once.
	auto h = hello(b);
	if (!h)
		return h.error();
	const DeviceState &s = *h;
	if (s.size != granted)
		note += (note.empty() ? "" : "; ") + std::string("the device stopped at ") + formatSize(s.size) +
		        " of " + formatSize(granted) + " (unplug is best effort; asking again retries)";
	auto total = memTotal(b);
	if (grow && total && s.size > 0 && *total < b->memTotalBase + s.size)
		return Error{-EIO,
		             "the device plugged " + formatSize(s.size) + " but MemTotal shows only " +
		                     formatSize(*total - std::min(*total, b->memTotalBase)) +
		                     ": the new memory is not online; either its blocks stay offline (boot the guest "
		                     "with memhp_default_state=online_movable or set daemon.online_movable: true) or "
		                     "the guest had too little free memory left to add it (grow earlier: a larger "
		                     "policy.headroom or more sensitive psi.triggers)"};
	return s.size;
}

int applyOption(vmrd_backend *b, const std::string &key, const std::string &value, std::string &error)
{
	auto duration = [&](milliseconds &out) {
		auto d = parseDuration(value);
		if (!d || d->count() <= 0) {
			error = "bad value '" + value + "' for option '" + key + "': a duration such as 2s or 500ms";
			return -EINVAL;
		}
		out = std::chrono::duration_cast<milliseconds>(*d);
		return 0;
	};
	if (key == "port") {
		b->port = value;
		return 0;
	}
	if (key == "reply_timeout")
		return duration(b->replyTimeout);
	if (key == "plug_timeout")
		return duration(b->plugTimeout);
	if (key == "unplug_timeout")
		return duration(b->unplugTimeout);
	error = "unknown option '" + key + "' (known: port, reply_timeout, plug_timeout, unplug_timeout)";
	return -EINVAL;
}

// No round trip while connected: the broker tells this side of every change
// (replies and size notices), so the state is what it said last.  Only a
// backend that has not heard from the broker, or lost it, asks.
CallResult resizeBy(vmrd_backend *b, bool grow, uint64_t bytes)
{
	auto h = hello(b);
	if (!h)
		return plugin::callFailed(h.error());
	const uint64_t before = h->size;
	const uint64_t target = grow ? before + bytes : before - std::min(before, bytes);
	std::string note;
	auto after = resize(b, grow, target, grow ? b->plugTimeout : b->unplugTimeout, note);
	if (!after)
		return plugin::callFailed(after.error());
	CallResult r;
	r.done = grow ? (*after > before ? *after - before : 0) : (before > *after ? before - *after : 0);
	if (!note.empty())
		log(b, VMRD_LOG_INFO, note);
	if (r.done == 0) {
		r.code = grow ? -ENOSPC : -EBUSY;
		r.message = note.empty() ? "nothing changed" : note;
	}
	return r;
}

} // namespace

Result<std::unique_ptr<vmrd_backend>> vmrd_backend::create(const vmrd_host &host, const plugin::Options &options)
{
	auto b = std::make_unique<vmrd_backend>();
	b->host = host;
	for (const auto &[key, value] : options) {
		std::string error;
		if (int r = applyOption(b.get(), key, value, error))
			return Error{r, error};
	}
	// Without MemTotal no resize could be confirmed: better not to start.
	auto meminfo = ProcFile::open(std::string(host.procfs_root) + "/meminfo");
	if (!meminfo)
		return Error{meminfo.error().code, meminfo.error().message + ": needed to confirm resizes"};
	b->meminfo = std::move(*meminfo);
	b->eventFd = ::epoll_create1(EPOLL_CLOEXEC);
	if (b->eventFd < 0) {
		const int err = errno;
		return Error{-err, std::string("epoll_create1: ") + std::strerror(err)};
	}
	b->transport = openVirtioSerial(b->port);
	// The broker may come later: a missing broker is not an error here.
	if (auto h = hello(b.get()); !h && h.error().code == -ENODEV)
		return h.error();
	else if (!h)
		log(b.get(), VMRD_LOG_WARNING, h.error().message + "; vmrd retries when it needs memory");
	return b;
}

// The port is there when the VM was started with the vmrd channel; whether
// the broker answers on it is create()'s and get_state()'s business.
Status vmrd_backend::probe(const vmrd_host &, const plugin::Options &options)
{
	vmrd_backend b;
	for (const auto &[key, value] : options) {
		std::string error;
		if (int r = applyOption(&b, key, value, error))
			return Error{r, error};
	}
	struct stat st {
	};
	if (::stat(b.port.c_str(), &st) == 0)
		return Ok{};
	const int err = errno;
	if (err == ENOENT || err == ENOTDIR)
		return Error{-ENODEV, "no virtio-serial port " + b.port +
		                              ": the VM has no vmrd channel (on the host, a virtserialport named "
		                              "org.vmrd.0; README: virtio-mem)"};
	return Error{-err, b.port + ": " + std::strerror(err)};
}

// No round trip while connected: the broker tells this side of every change
// (replies and size notices), so the state is what it said last.  Only a
// backend that has not heard from the broker, or lost it, asks.
Result<vmrd_backend_state> vmrd_backend::getState()
{
	absorb(this);
	if (!connected)
		if (auto asked = askBroker(this); !asked && asked.error().code == -ENODEV)
			return asked.error();
	vmrd_backend_state st{};
	st.flags = VMRD_BACKEND_HOTPLUG | (connected ? VMRD_BACKEND_CONNECTED : 0) |
	           (std::exchange(reclaim, false) ? VMRD_BACKEND_RECLAIM : 0);
	// While the broker is away, report what it said last.
	st.block_size = last.blockSize ? last.blockSize : 2u << 20;
	st.min_bytes = last.min;
	st.max_bytes = last.max;
	st.plugged_bytes = last.size;
	return st;
}

CallResult vmrd_backend::plug(uint64_t bytes)
{
	return resizeBy(this, true, bytes);
}

CallResult vmrd_backend::unplug(uint64_t bytes)
{
	return resizeBy(this, false, bytes);
}

// Takes in the size notices that arrived; get_state, which vmrd calls next,
// answers from them.
Status vmrd_backend::ackEvent()
{
	if (connected)
		absorb(this);
	else
		(void)askBroker(this); // get_state, which vmrd calls next, tells
	return Ok{};
}

namespace {

const vmrd_backend_ops ops = plugin::backendOps<vmrd_backend>();

const vmrd_plugin_info info = plugin::pluginInfo("virtio-mem through the vmrd host broker (virtio-serial)", &ops);

} // namespace

VMRD_PLUGIN_EXPORT const vmrd_plugin_info *vmrd_plugin_entry_v1(void)
{
	return &info;
}
