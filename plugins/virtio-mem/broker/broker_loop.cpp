// SPDX-License-Identifier: MIT
// vmrd-broker's event loop: each VM's QMP and guest channel sockets, reconnects, size notices and signals.
#include "broker.h"

#include <algorithm>
#include <csignal>
#include <cstring>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

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
	int channel = -1;
	LineReader reader;
	bool warnedQmp = false, warnedChannel = false;
	bool noticeDue = false; // the device may have changed: tell the guest when the gap allows
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

} // namespace

int runBroker(const BrokerConfig &config)
{
	std::vector<Vm> vms(config.vms.size());
	for (size_t i = 0; i < vms.size(); i++)
		vms[i].session = std::make_unique<VmSession>(config.vms[i], config.requestsPerSecond);
	auto meminfo = ProcFile::open(config.procfs + "/meminfo");
	if (!meminfo) {
		logError(meminfo.error().message);
		return 1;
	}
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGPIPE);
	sigprocmask(SIG_BLOCK, &mask, nullptr);
	int sfd = ::signalfd(-1, &mask, SFD_CLOEXEC);
	int tfd = ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	int ep = ::epoll_create1(EPOLL_CLOEXEC);
	if (sfd < 0 || tfd < 0 || ep < 0) {
		logError(std::string("cannot set up the event loop: ") + std::strerror(errno));
		return 1;
	}
	// epoll tags: 0 signal, 1 timer, 2 + 2i VM i's channel, 3 + 2i its QMP.
	auto watch = [&](int fd, uint64_t tag) {
		epoll_event ev{};
		ev.events = EPOLLIN;
		ev.data.u64 = tag;
		::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	};
	watch(sfd, 0);
	watch(tfd, 1);
	itimerspec its{};
	its.it_interval.tv_sec = std::chrono::duration_cast<std::chrono::seconds>(reconnectEvery).count();
	its.it_value = its.it_interval;
	::timerfd_settime(tfd, 0, &its, nullptr);

	auto reconnect = [&]() {
		for (size_t i = 0; i < vms.size(); i++) {
			Vm &vm = vms[i];
			const VmConfig &c = vm.session->config();
			if (!vm.qmp.connected()) {
				if (auto s = vm.qmp.connect(c.qmp, qmpTimeout); s) {
					logInfo("vm " + c.name + ": QMP connected on " + c.qmp);
					vm.warnedQmp = false;
					vm.noticeDue = true; // QEMU may have restarted with another size
					watch(vm.qmp.fd(), 3 + 2 * i);
				} else if (!vm.warnedQmp) {
					logWarning("vm " + c.name + ": " + s.error().message +
					           "; retrying every second");
					vm.warnedQmp = true;
				}
			}
			if (vm.channel < 0) {
				vm.channel = connectUnix(c.channel);
				if (vm.channel >= 0) {
					logInfo("vm " + c.name + ": guest channel connected on " + c.channel);
					vm.warnedChannel = false;
					vm.reader.clear();
					vm.session->forget();
					vm.noticeDue = true;
					watch(vm.channel, 2 + 2 * i);
				} else if (!vm.warnedChannel) {
					logWarning("vm " + c.name + ": guest channel " + c.channel + ": " +
					           std::strerror(errno) + "; retrying every second");
					vm.warnedChannel = true;
				}
			}
		}
	};
	auto spare = [&]() -> uint64_t {
		uint64_t hostSpare = 0;
		if (auto text = meminfo->read())
			if (auto m = parseMeminfo(*text))
				hostSpare = m->memAvailable > config.reserve ? m->memAvailable - config.reserve : 0;
		if (config.budget == 0)
			return hostSpare;
		uint64_t used = 0;
		for (const auto &vm : vms) {
			const VmConfig &c = vm.session->config();
			used += vm.session->requested() > c.min ? vm.session->requested() - c.min : 0;
		}
		return std::min(hostSpare, config.budget > used ? config.budget - used : 0);
	};
	// The VMs competing for the spare: the asking one and every other that
	// asked to grow recently.
	auto growers = [&](const Vm &asking, VmSession::Clock::time_point now) {
		unsigned n = 1;
		for (const auto &vm : vms)
			if (&vm != &asking && vm.session->lastGrowRequest() &&
			    now - *vm.session->lastGrowRequest() < growerWindow)
				n++;
		return n;
	};

	// systemd's STATUS= line: how many guests the broker reaches now.
	std::string lastStatus;
	auto notifyStatus = [&]() {
		size_t up = 0;
		for (const auto &vm : vms)
			up += vm.channel >= 0 && vm.qmp.connected();
		std::string status = "STATUS=" + std::to_string(up) + " of " + std::to_string(vms.size()) +
		                     " VM(s) connected (guest channel and QMP)";
		if (status != lastStatus)
			notifySystemd(status);
		lastStatus = std::move(status);
	};
	// The reconnect timer ticks every second: often enough for any watchdog
	// of 2 s or more.
	const bool watchdog = watchdogInterval().has_value();

	logInfo("vmrd-broker serving " + std::to_string(vms.size()) + " VM(s); host reserve " +
	        formatSize(config.reserve) + (config.budget ? ", budget " + formatSize(config.budget) : ""));
	reconnect();
	notifySystemd("READY=1");
	notifyStatus();
	// Reads QEMU's events: a size change is to be told to the guest.
	auto followQmp = [&](Vm &vm) {
		const VmConfig &c = vm.session->config();
		if (!vm.qmp.drain())
			logWarning("vm " + c.name + ": QEMU closed QMP (stopped or restarted?); reconnecting");
		vm.noticeDue |= vm.qmp.takeSizeChange(c.device);
	};
	// Sends the size notices that are due and allowed by the gap; returns
	// the epoll timeout until the next one that waits for its gap.
	auto sendNotices = [&]() {
		int timeout = -1;
		const auto now = VmSession::Clock::now();
		for (auto &vm : vms) {
			if (!vm.noticeDue || vm.channel < 0 || !vm.qmp.connected())
				continue;
			if (now < vm.session->nextNoticeAt()) {
				auto wait =
				        std::chrono::ceil<std::chrono::milliseconds>(vm.session->nextNoticeAt() - now);
				timeout = timeout < 0 ? static_cast<int>(wait.count())
				                      : std::min(timeout, static_cast<int>(wait.count()));
				continue;
			}
			vm.noticeDue = false;
			QmpDevice device(vm.qmp, vm.session->config().device);
			const std::string line = vm.session->notice(&device, now);
			if (!line.empty() &&
			    ::send(vm.channel, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
				logWarning("vm " + vm.session->config().name +
				           ": size notice not delivered: " + std::strerror(errno));
				vm.session->forget();
			}
		}
		return timeout;
	};

	for (;;) {
		epoll_event events[16];
		int n = ::epoll_wait(ep, events, 16, sendNotices());
		if (n < 0 && errno == EINTR)
			continue;
		for (int e = 0; e < n; e++) {
			const uint64_t tag = events[e].data.u64;
			if (tag == 0) {
				signalfd_siginfo si;
				if (::read(sfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo != SIGPIPE) {
					logInfo(std::string("received ") + strsignal(static_cast<int>(si.ssi_signo)) +
					        ", stopping");
					notifySystemd("STOPPING=1");
					return 0;
				}
				continue;
			}
			if (tag == 1) {
				uint64_t x;
				if (::read(tfd, &x, sizeof(x)) > 0) {
					reconnect();
					notifyStatus();
				}
				if (watchdog)
					notifySystemd("WATCHDOG=1");
				continue;
			}
			Vm &vm = vms[(tag - 2) / 2];
			const VmConfig &c = vm.session->config();
			if ((tag - 2) % 2 == 1) {
				followQmp(vm);
				continue;
			}
			char buf[4096];
			ssize_t got = ::read(vm.channel, buf, sizeof(buf));
			if (got <= 0) {
				if (got < 0 && (errno == EAGAIN || errno == EINTR))
					continue;
				logWarning("vm " + c.name + ": guest channel closed (QEMU stopped?); reconnecting");
				::close(vm.channel);
				vm.channel = -1;
				continue;
			}
			vm.reader.feed(std::string_view(buf, static_cast<size_t>(got)));
			while (auto line = vm.reader.next()) {
				QmpDevice device(vm.qmp, c.device);
				const auto now = VmSession::Clock::now();
				std::string reply = vm.session->handle(line->text, line->tooLong,
				                                       vm.qmp.connected() ? &device : nullptr, spare(),
				                                       growers(vm, now), now);
				if (::send(vm.channel, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
					logWarning("vm " + c.name + ": reply not delivered: " + std::strerror(errno));
			}
			// Events QEMU sent while the broker waited for its answers.
			if (vm.qmp.connected())
				followQmp(vm);
		}
	}
}

} // namespace vmrd::vmem
