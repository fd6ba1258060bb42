// SPDX-License-Identifier: MIT
// vmrd-broker's event loop: each VM's QMP and guest channel sockets, reconnects, size notices and signals.
#include "broker.h"

#include <algorithm>
#include <csignal>
#include <cstring>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "event_loop.h"
#include "mem_stats.h"
#include "notify.h"
#include "proc_file.h"

namespace vmrd::vmem {

namespace {

using namespace std::chrono_literals;

constexpr auto growerWindow = 10s;  // a VM that asked to grow this recently competes for the spare
constexpr auto reconnectEvery = 1s; // to a QMP or channel socket that is down
constexpr auto qmpTimeout = 2000ms;

// A VM's two connections: QMP to its QEMU and the guest channel socket.
class QmpDevice : public Device
{
public:
	QmpDevice(Qmp &qmp, const std::string &device) : qmp_(qmp), device_(device) {}
	Result<DeviceState> state() override
	{
		DeviceState s;
		auto size = qmp_.getSize(device_, "size");
		auto requested = size ? qmp_.getSize(device_, "requested-size") : size;
		auto block = requested ? qmp_.getSize(device_, "block-size") : requested;
		if (!block)
			return block.error();
		s.size = *size;
		s.requested = *requested;
		s.blockSize = *block;
		return s;
	}
	Status setRequested(uint64_t bytes) override { return qmp_.setRequestedSize(device_, bytes); }

private:
	Qmp &qmp_;
	std::string device_;
};
struct Vm {
	std::unique_ptr<VmSession> session;
	Qmp qmp;
	// The fd the loop watches for QMP: the client closes its socket itself
	// on an error, and the watch must go before the number is reused.
	int qmpWatched = -1;
	int channel = -1;
	LineReader reader;
	bool warnedQmp = false, warnedChannel = false;
	bool noticeDue = false;           // the device may have changed: tell the guest when the gap allows
	EventLoop::Timer noticeTimer = 0; // when the gap allows the next notice
};

int connectUnix(const std::string &path)
{
	sockaddr_un addr{};
	addr.sun_family = AF_UNIX;
	if (path.size() >= sizeof(addr.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
	int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0) {
		int err = errno;
		::close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

// Every VM's sockets on one event loop.  All of it runs on the loop's
// thread; a QMP command blocks it for at most qmpTimeout.
class Broker
{
public:
	Broker(const BrokerConfig &config, ProcFile meminfo);
	~Broker();
	int run();

private:
	void onSignal();
	void onTick();
	void reconnect();
	void connectQmp(size_t i);
	void connectChannel(size_t i);
	void closeChannel(Vm &vm);
	void onQmp(Vm &vm);
	void onChannel(Vm &vm);
	void followQmp(Vm &vm);
	void unwatchClosedQmp(Vm &vm);
	void sendNotice(Vm &vm);
	uint64_t spare();
	unsigned growers(const Vm &asking, VmSession::Clock::time_point now) const;
	void notifyStatus();

	const BrokerConfig &config_;
	ProcFile meminfo_;
	std::vector<Vm> vms_;
	EventLoop loop_;
	int signalFd_ = -1;
	EventLoop::Timer tickTimer_ = 0;
	TimePoint nextTick_;
	// The tick also feeds the watchdog: every second is often enough for
	// any watchdog of 2 s or more.
	bool watchdog_ = false;
	std::string lastStatus_;
};

Broker::Broker(const BrokerConfig &config, ProcFile meminfo)
    : config_(config), meminfo_(std::move(meminfo)), vms_(config.vms.size())
{
	for (size_t i = 0; i < vms_.size(); i++)
		vms_[i].session = std::make_unique<VmSession>(config.vms[i], config.requestsPerSecond);
}

Broker::~Broker()
{
	for (auto &vm : vms_)
		if (vm.channel >= 0)
			::close(vm.channel);
	if (signalFd_ >= 0)
		::close(signalFd_);
}

int Broker::run()
{
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGPIPE);
	sigprocmask(SIG_BLOCK, &mask, nullptr);
	signalFd_ = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (signalFd_ < 0 || !loop_.ok()) {
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
	for (auto &vm : vms_)
		vm.noticeTimer = loop_.addTimer([this, &vm] { sendNotice(vm); });
	// Whatever a round of handlers did may have made a notice due.
	loop_.afterEach([this] {
		for (auto &vm : vms_)
			sendNotice(vm);
	});
	watchdog_ = watchdogInterval().has_value();

	logInfo("vmrd-broker serving " + std::to_string(vms_.size()) + " VM(s); host reserve " +
	        formatSize(config_.reserve) + (config_.budget ? ", budget " + formatSize(config_.budget) : ""));
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
		vm.session->warnings().flush(now);
	notifyStatus();
	if (watchdog_)
		notifySystemd("WATCHDOG=1");
}

void Broker::reconnect()
{
	for (size_t i = 0; i < vms_.size(); i++) {
		if (!vms_[i].qmp.connected())
			connectQmp(i);
		if (vms_[i].channel < 0)
			connectChannel(i);
	}
}

void Broker::connectQmp(size_t i)
{
	Vm &vm = vms_[i];
	const VmConfig &c = vm.session->config();
	unwatchClosedQmp(vm);
	if (auto s = vm.qmp.connect(c.qmp, qmpTimeout); !s) {
		if (!vm.warnedQmp)
			logWarning("vm " + c.name + ": " + s.error().message + "; retrying every second");
		vm.warnedQmp = true;
		return;
	}
	if (auto w = loop_.add(vm.qmp.fd(), EPOLLIN, [this, &vm](uint32_t) { onQmp(vm); }); !w) {
		logError("vm " + c.name + ": cannot watch QMP: " + w.error().message + "; retrying every second");
		vm.qmp.close();
		return;
	}
	vm.qmpWatched = vm.qmp.fd();
	logInfo("vm " + c.name + ": QMP connected on " + c.qmp);
	vm.warnedQmp = false;
	vm.noticeDue = true; // QEMU may have restarted with another size
}

void Broker::connectChannel(size_t i)
{
	Vm &vm = vms_[i];
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

// After anything that talked to QEMU: the client may have closed the socket.
void Broker::unwatchClosedQmp(Vm &vm)
{
	if (vm.qmpWatched < 0 || vm.qmp.fd() == vm.qmpWatched)
		return;
	loop_.remove(vm.qmpWatched);
	vm.qmpWatched = -1;
}

// Reads QEMU's events: a size change is to be told to the guest.
void Broker::followQmp(Vm &vm)
{
	const VmConfig &c = vm.session->config();
	if (!vm.qmp.drain())
		logWarning("vm " + c.name + ": QEMU closed QMP (stopped or restarted?); reconnecting");
	vm.noticeDue |= vm.qmp.takeSizeChange(c.device);
}

void Broker::onQmp(Vm &vm)
{
	followQmp(vm);
	unwatchClosedQmp(vm);
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
		QmpDevice device(vm.qmp, c.device);
		const auto now = VmSession::Clock::now();
		std::string reply =
		        vm.session->handle(line->text, line->tooLong, vm.qmp.connected() ? &device : nullptr, spare(),
		                           growers(vm, now), now);
		if (::send(vm.channel, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			vm.session->warnings().warn(std::string("reply not delivered: ") + std::strerror(errno), now);
	}
	// Events QEMU sent while the broker waited for its answers.
	if (vm.qmp.connected())
		followQmp(vm);
	unwatchClosedQmp(vm);
}

// Sends the VM's size notice if one is due and the gap allows it, else
// sets the VM's timer for when the gap ends.
void Broker::sendNotice(Vm &vm)
{
	if (!vm.noticeDue || vm.channel < 0 || !vm.qmp.connected())
		return;
	const auto now = VmSession::Clock::now();
	if (now < vm.session->nextNoticeAt()) {
		loop_.setTimer(vm.noticeTimer, vm.session->nextNoticeAt());
		return;
	}
	vm.noticeDue = false;
	QmpDevice device(vm.qmp, vm.session->config().device);
	const std::string line = vm.session->notice(&device, now);
	unwatchClosedQmp(vm);
	if (!line.empty() && ::send(vm.channel, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		vm.session->warnings().warn(std::string("size notice not delivered: ") + std::strerror(errno), now);
		vm.session->forget();
	}
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
		const VmConfig &c = vm.session->config();
		used += vm.session->requested() > c.min ? vm.session->requested() - c.min : 0;
	}
	return std::min(hostSpare, config_.budget > used ? config_.budget - used : 0);
}

// The VMs competing for the spare: the asking one and every other that
// asked to grow recently.
unsigned Broker::growers(const Vm &asking, VmSession::Clock::time_point now) const
{
	unsigned n = 1;
	for (const auto &vm : vms_)
		if (&vm != &asking && vm.session->lastGrowRequest() &&
		    now - *vm.session->lastGrowRequest() < growerWindow)
			n++;
	return n;
}

// systemd's STATUS= line: how many guests the broker reaches now.
void Broker::notifyStatus()
{
	size_t up = 0;
	for (const auto &vm : vms_)
		up += vm.channel >= 0 && vm.qmp.connected();
	std::string status = "STATUS=" + std::to_string(up) + " of " + std::to_string(vms_.size()) +
	                     " VM(s) connected (guest channel and QMP)";
	if (status != lastStatus_)
		notifySystemd(status);
	lastStatus_ = std::move(status);
}

} // namespace

int runBroker(const BrokerConfig &config)
{
	auto meminfo = ProcFile::open(config.procfs + "/meminfo");
	if (!meminfo) {
		logError(meminfo.error().message);
		return 1;
	}
	Broker broker(config, std::move(*meminfo));
	return broker.run();
}

} // namespace vmrd::vmem
