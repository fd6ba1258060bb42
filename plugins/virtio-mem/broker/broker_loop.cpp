// SPDX-License-Identifier: MIT
// vmrd-broker's event loop: each VM's guest channel, its device link, reconnects, size notices and signals.
#include "broker.h"
#include "device_link.h"
#include "libvirt_discovery.h"

#include <algorithm>
#include <csignal>
#include <cstring>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "event_loop.h"
#include "mem_stats.h"
#include "notify.h"
#include "proc_file.h"
#include "unix_socket.h"

namespace vmrd::vmem {

namespace {

using namespace std::chrono_literals;

constexpr auto reconnectEvery = 1s; // to a channel socket that is down

// The signals the loop takes from its signalfd.  runBroker() blocks them
// before the links' threads start, which inherit the mask.
sigset_t handledSignals()
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGPIPE);
	return set;
}

// A VM: its guest channel here, its device through a link of its own.
struct Vm {
	std::unique_ptr<VmSession> session;
	std::unique_ptr<DeviceLink> device;
	int channel = -1;
	unsigned connection = 0; // counts the channel's connections: a late reply goes to the one it answers
	LineReader reader;
	bool warnedChannel = false;
	bool noticeDue = false;           // the device may have changed: tell the guest when the gap allows
	EventLoop::Timer noticeTimer = 0; // when the gap allows the next notice
	bool retired = false;             // no longer served (its libvirt domain stopped): waits for its link to end
};

// Every VM's guest channel on one event loop; each VM's device is driven
// from a thread of its own (DeviceLink), which reports through the
// mailbox, so nothing here waits for a hypervisor.
class Broker
{
public:
	Broker(const BrokerConfig &config, ProcFile meminfo);
	~Broker();
	int run();

private:
	void addVm(const VmConfig &c, std::unique_ptr<Driver> driver);
	void found(const VmConfig &c);
	void gone(const std::string &name);
	void onSignal();
	void onTick();
	void reconnect();
	void connectChannel(Vm &vm);
	void closeChannel(Vm &vm);
	void onChannel(Vm &vm);
	void send(Vm &vm, const std::string &line, const char *what);
	void sendNotice(Vm &vm);
	uint64_t spare();
	Contenders contenders(const Vm &asking, VmSession::Clock::time_point now) const;
	void askBack(const Vm &starving, VmSession::Clock::time_point now);
	void notifyStatus();

	const BrokerConfig &config_;
	ProcFile meminfo_;
	EventLoop loop_;
	Mailbox mailbox_{loop_};
	std::vector<std::unique_ptr<Vm>> vms_;     // before the mailbox goes: links post to it
	std::vector<std::unique_ptr<Vm>> retired_; // until their links end
	std::unique_ptr<LibvirtDiscovery> discovery_;
	int signalFd_ = -1;
	EventLoop::Timer tickTimer_ = 0;
	TimePoint nextTick_;
	// The tick also feeds the watchdog: every second is often enough for
	// any watchdog of 2 s or more.
	bool watchdog_ = false;
	std::string lastStatus_;
};

Broker::Broker(const BrokerConfig &config, ProcFile meminfo) : config_(config), meminfo_(std::move(meminfo))
{
	for (const VmConfig &c : config.vms)
		addVm(c, makeQmpDriver(c));
}

void Broker::addVm(const VmConfig &c, std::unique_ptr<Driver> driver)
{
	auto vm = std::make_unique<Vm>();
	vm->session = std::make_unique<VmSession>(c, config_.requestsPerSecond);
	Vm &v = *vm;
	// A new state (connected, size changed, or lost) is to be told to
	// the guest; the first one lets its channel connect.
	vm->device = std::make_unique<DeviceLink>("vm " + c.name, std::move(driver), mailbox_, [this, &v] {
		if (v.retired)
			return;
		if (const auto &st = v.device->state())
			v.session->seen(*st);
		v.noticeDue = true;
		if (v.channel < 0 && v.device->state())
			connectChannel(v);
	});
	vm->noticeTimer = loop_.addTimer([this, &v] { sendNotice(v); });
	vms_.push_back(std::move(vm));
}

// A domain that libvirt discovery found, or found changed.
void Broker::found(const VmConfig &c)
{
	auto it = std::find_if(vms_.begin(), vms_.end(),
	                       [&](const auto &vm) { return vm->session->config().name == c.name; });
	if (it == vms_.end()) {
		addVm(c, makeLibvirtDriver(config_.libvirtUri, c));
		if (!vms_.back()->device->ok())
			logError("vm " + c.name + ": cannot start its device link: " + std::strerror(errno));
		return;
	}
	Vm &vm = **it;
	const bool newChannel = vm.session->config().channel != c.channel;
	vm.session->reconfigure(c);
	if (newChannel && vm.channel >= 0) {
		logInfo("vm " + c.name + ": its guest channel moved to " + c.channel + "; reconnecting");
		closeChannel(vm);
	}
}

// A served domain that libvirt discovery no longer finds running: its VM
// leaves the broker (and comes back as new when the domain starts again),
// so that a host whose domains come and go keeps no link for each.
void Broker::gone(const std::string &name)
{
	auto it = std::find_if(vms_.begin(), vms_.end(),
	                       [&](const auto &vm) { return vm->session->config().name == name; });
	if (it == vms_.end())
		return;
	Vm &vm = **it;
	logInfo("vm " + name + ": its domain is no longer running; served again when it starts");
	vm.retired = true;
	if (vm.channel >= 0)
		closeChannel(vm);
	loop_.removeTimer(vm.noticeTimer);
	retired_.push_back(std::move(*it));
	vms_.erase(it);
	// Destroyed on this thread once its link's thread ended: after all
	// that the link posted, which refers to it.
	vm.device->retire([this, &vm] {
		retired_.erase(
		        std::find_if(retired_.begin(), retired_.end(), [&](const auto &r) { return r.get() == &vm; }));
	});
	notifyStatus();
}

Broker::~Broker()
{
	// All at once: each waits for its command under way.
	for (auto &vm : vms_)
		vm->device->stop();
	for (auto &vm : retired_)
		vm->device->stop();
	for (auto &vm : vms_)
		if (vm->channel >= 0)
			::close(vm->channel);
	if (signalFd_ >= 0)
		::close(signalFd_);
}

int Broker::run()
{
	const sigset_t signals = handledSignals();
	signalFd_ = ::signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);
	const bool linked = std::all_of(vms_.begin(), vms_.end(), [](const auto &vm) { return vm->device->ok(); });
	if (config_.hypervisor == Hypervisor::Libvirt)
		discovery_ = std::make_unique<LibvirtDiscovery>(
		        config_, mailbox_, [this](const VmConfig &c) { found(c); },
		        [this](const std::string &name) { gone(name); });
	if (signalFd_ < 0 || !loop_.ok() || !mailbox_.ok() || !linked || (discovery_ && !discovery_->ok())) {
		logError(std::string("cannot set up the event loop: ") + std::strerror(errno));
		return 1;
	}
	if (auto st = loop_.add(signalFd_, EPOLLIN, [this](uint32_t) { onSignal(); }); !st) {
		logError("cannot set up the event loop: " + st.error().message);
		return 1;
	}
	tickTimer_ = loop_.addTimer([this] { onTick(); });
	nextTick_ = VmSession::Clock::now() + reconnectEvery;
	loop_.setTimer(tickTimer_, nextTick_);
	// Whatever a round of handlers did may have made a notice due.
	loop_.afterEach([this] {
		for (auto &vm : vms_)
			sendNotice(*vm);
	});
	watchdog_ = watchdogInterval().has_value();

	const std::string serving =
	        discovery_ ? "the domains of libvirt at " + config_.libvirtUri : std::to_string(vms_.size()) + " VM(s)";
	logInfo("vmrd-broker serving " + serving + "; host reserve " + formatSize(config_.reserve) +
	        (config_.budget ? ", budget " + formatSize(config_.budget) : ""));
	reconnect();
	notifySystemd("READY=1");
	notifyStatus();
	if (int err = loop_.run(); err < 0) {
		logError(std::string("epoll_wait: ") + std::strerror(-err));
		return 1;
	}
	return 0;
}

void Broker::onSignal()
{
	signalfd_siginfo si;
	if (::read(signalFd_, &si, sizeof(si)) != sizeof(si) || si.ssi_signo == SIGPIPE)
		return;
	logInfo(std::string("received ") + strsignal(static_cast<int>(si.ssi_signo)) + ", stopping");
	notifySystemd("STOPPING=1");
	loop_.stop();
}

// Every second on the grid set at start: what is down is retried,
// systemd hears the status and the watchdog is fed.
void Broker::onTick()
{
	const auto now = VmSession::Clock::now();
	// Ticks missed while QMP was slow to answer are one tick, not a burst.
	while (nextTick_ <= now)
		nextTick_ += reconnectEvery;
	loop_.setTimer(tickTimer_, nextTick_);
	reconnect();
	for (auto &vm : vms_)
		vm->session->warnings().flush(now);
	notifyStatus();
	if (watchdog_)
		notifySystemd("WATCHDOG=1");
}

// A guest channel connects once the device was read, so that the guest's
// first request finds it.
void Broker::reconnect()
{
	for (auto &vm : vms_)
		if (vm->channel < 0 && vm->device->state())
			connectChannel(*vm);
}

void Broker::connectChannel(Vm &vm)
{
	const VmConfig &c = vm.session->config();
	const int fd = connectUnix(c.channel);
	if (fd < 0) {
		if (!vm.warnedChannel)
			logWarning("vm " + c.name + ": guest channel " + c.channel + ": " + std::strerror(errno) +
			           "; retrying every second");
		vm.warnedChannel = true;
		return;
	}
	if (auto w = loop_.add(fd, EPOLLIN, [this, &vm](uint32_t) { onChannel(vm); }); !w) {
		logError("vm " + c.name + ": cannot watch the guest channel: " + w.error().message +
		         "; retrying every second");
		::close(fd);
		return;
	}
	vm.channel = fd;
	vm.connection++;
	logInfo("vm " + c.name + ": guest channel connected on " + c.channel);
	vm.warnedChannel = false;
	vm.reader.clear();
	vm.session->forget();
	vm.noticeDue = true;
}

void Broker::closeChannel(Vm &vm)
{
	loop_.remove(vm.channel);
	::close(vm.channel);
	vm.channel = -1;
}

void Broker::onChannel(Vm &vm)
{
	const VmConfig &c = vm.session->config();
	char buf[4096];
	ssize_t got = ::read(vm.channel, buf, sizeof(buf));
	if (got <= 0) {
		if (got < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		logWarning("vm " + c.name + ": guest channel closed (QEMU stopped?); reconnecting");
		closeChannel(vm);
		return;
	}
	vm.reader.feed(std::string_view(buf, static_cast<size_t>(got)));
	while (auto line = vm.reader.next()) {
		const auto now = VmSession::Clock::now();
		auto h = vm.session->handle(line->text, line->tooLong, vm.device->state(), spare(), contenders(vm, now),
		                            now);
		if (h.starved)
			askBack(vm, now);
		if (!h.reply.empty()) {
			send(vm, h.reply, "reply");
			continue;
		}
		vm.device->update(h.set, [this, &vm, id = h.id, connection = vm.connection](const Status &result) {
			const auto reply = vm.session->finish(id, result, vm.device->state(), VmSession::Clock::now());
			if (connection == vm.connection) // else the guest reconnected and asks again
				send(vm, reply, "reply");
		});
	}
}

// To the guest, if its channel is up; a guest that does not read its
// channel costs a few rate-limited warnings.
void Broker::send(Vm &vm, const std::string &line, const char *what)
{
	if (vm.channel < 0 || ::send(vm.channel, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT) >= 0)
		return;
	vm.session->warnings().warn(std::string(what) + " not delivered: " + std::strerror(errno),
	                            VmSession::Clock::now());
	if (std::string_view(what) == "size notice")
		vm.session->forget();
}

// Sends the VM's size notice if one is due and the gap allows it, else
// sets the VM's timer for when the gap ends.
void Broker::sendNotice(Vm &vm)
{
	if (!vm.noticeDue || vm.channel < 0 || !vm.device->state())
		return;
	const auto now = VmSession::Clock::now();
	if (now < vm.session->nextNoticeAt()) {
		loop_.setTimer(vm.noticeTimer, vm.session->nextNoticeAt());
		return;
	}
	vm.noticeDue = false;
	const std::string line = vm.session->notice(vm.device->state(), now);
	if (!line.empty())
		send(vm, line, "size notice");
}

uint64_t Broker::spare()
{
	uint64_t hostSpare = 0;
	if (auto text = meminfo_.read())
		if (auto m = parseMeminfo(*text))
			hostSpare = m->memAvailable > config_.reserve ? m->memAvailable - config_.reserve : 0;
	if (config_.budget == 0)
		return hostSpare;
	uint64_t used = 0;
	for (const auto &vm : vms_) {
		const VmConfig &c = vm->session->config();
		used += vm->session->requested() > c.min ? vm->session->requested() - c.min : 0;
	}
	return std::min(hostSpare, config_.budget > used ? config_.budget - used : 0);
}

// The VMs competing for memory: the asking one and every other that asked
// to grow recently.
Contenders Broker::contenders(const Vm &asking, VmSession::Clock::time_point now) const
{
	Contenders c{0, 0, 0};
	for (const auto &vm : vms_) {
		const auto &s = *vm->session;
		if (vm.get() != &asking && !s.grewRecently(now))
			continue;
		c.held += s.requested() > s.config().min ? s.requested() - s.config().min : 0;
		c.weight += s.config().weight;
		c.count++;
	}
	return c;
}

// `starving` could not grow for want of spare memory: the guests that hold
// some and are idle, or hold more than their share, are asked to give back
// what they can spare.  The broker takes nothing itself: a busy guest
// keeps what it uses, and the others wait for it.
void Broker::askBack(const Vm &starving, VmSession::Clock::time_point now)
{
	const Contenders c = contenders(starving, now);
	const uint64_t pool = spare() + c.held;
	for (auto &vm : vms_) {
		if (vm.get() == &starving || vm->channel < 0)
			continue;
		const uint64_t share = fairShare(pool, vm->session->config().weight, c.weight);
		if (auto line = vm->session->reclaim(now, share); !line.empty())
			send(*vm, line, "reclaim");
	}
}

// systemd's STATUS= line: how many guests the broker reaches now.
void Broker::notifyStatus()
{
	size_t up = 0;
	for (const auto &vm : vms_)
		up += vm->channel >= 0 && vm->device->state();
	std::string status = "STATUS=" + std::to_string(up) + " of " + std::to_string(vms_.size()) +
	                     " VM(s) connected (guest channel and device)";
	if (status != lastStatus_)
		notifySystemd(status);
	lastStatus_ = std::move(status);
}

} // namespace

int runBroker(const BrokerConfig &config)
{
	const sigset_t signals = handledSignals();
	pthread_sigmask(SIG_BLOCK, &signals, nullptr);
	auto meminfo = ProcFile::open(config.procfs + "/meminfo");
	if (!meminfo) {
		logError(meminfo.error().message);
		return 1;
	}
	Broker broker(config, std::move(*meminfo));
	return broker.run();
}

} // namespace vmrd::vmem
