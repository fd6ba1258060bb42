// SPDX-License-Identifier: MIT
// vmrd-broker: turns guests' resize requests into QEMU requested-size changes within the range the host allows.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "log.h"
#include "protocol.h"
#include "result.h"
#include "warnings.h"

namespace vmrd::vmem {

// A VM's weight, as cgroup v2's cpu.weight and io.weight: 1 to 10000, 100
// by default.
inline constexpr unsigned minWeight = 1, maxWeight = 10000;

struct VmConfig {
	std::string name;    // with libvirt: the domain's
	std::string qmp;     // QEMU's QMP unix socket, one client: give the broker its own
	std::string device;  // the virtio-mem-pci device id; with libvirt its alias, empty for the first
	std::string channel; // the unix socket of the guest's virtserialport
	uint64_t min = 0;    // the range the host allows, in bytes
	uint64_t max = 0;
	unsigned weight = 100; // its claim on contended memory, against the others'
};

// How the broker reaches the VMs' devices.
enum class Hypervisor {
	Qmp,     // the QEMU processes listed in the config, each by its QMP socket
	Libvirt, // the domains of a libvirtd (libvirt_discovery.h)
};

// A domain listed in a libvirt broker's config; what it leaves out comes
// from the domain's XML.
struct DomainChoice {
	std::string name;
	std::string device; // the virtio-mem device's alias; empty: the first
	std::optional<uint64_t> min, max;
	std::optional<unsigned> weight;
};

struct BrokerConfig {
	std::string file;
	uint64_t reserve = 1ull << 30;   // host MemAvailable never handed out
	uint64_t budget = 0;             // bytes above the VMs' min the broker may hand out in all; 0: no cap
	unsigned requestsPerSecond = 10; // per VM; beyond it requests are refused
	std::string procfs = "/proc";    // where the host's meminfo is read
	LogLevel logLevel = LogLevel::Info;
	Hypervisor hypervisor = Hypervisor::Qmp;
	std::string libvirtUri = "qemu:///system";
	std::vector<VmConfig> vms;         // with QMP
	std::vector<DomainChoice> domains; // with libvirt; empty: every domain that has what vmrd needs
};

Result<BrokerConfig> parseBrokerConfig(const std::string &text, const std::string &file);
Result<BrokerConfig> loadBrokerConfig(const std::string &path);

// What a resize request gets: the new requested-size and why it differs
// from what was asked.  Pure.
//  - The target is clamped to the VM's [min, max] and to the device block
//    (rounded down when growing, up when shrinking).
//  - Growth above the current requested-size is limited by `spare` (host
//    MemAvailable minus the reserve, and the budget left if there is one)
//    and by the VM's fair share: what the contenders hold above their min
//    and the spare, split by weight.  A VM that holds its share already
//    gets no more while the others still ask; one that holds less gets up
//    to its share as the spare allows.  Shrinking and the VM's min are
//    always granted.
struct Grant {
	uint64_t target = 0;
	std::string why;      // empty when granted as asked
	bool starved = false; // it got less than asked for want of spare memory, not of its share
};
// The VMs that compete for memory when one asks to grow: it and every
// other VM that asked to grow in the last 10 s.
struct Contenders {
	uint64_t held = 0;   // what they hold above their min, together
	uint64_t weight = 0; // their weights, summed
	unsigned count = 1;
};
Grant decideTarget(uint64_t asked, const VmConfig &vm, const DeviceState &now, uint64_t spare,
                   const Contenders &contenders);
// A VM's fair share of `pool`: its weight's part of the contenders' (at
// least its own), without overflow.
uint64_t fairShare(uint64_t pool, unsigned weight, uint64_t contendersWeight);

// Per-VM request handling, independent of sockets and of the device's
// driver: one line in, a reply out, now or once the device's requested size
// is set.
class VmSession
{
public:
	using Clock = std::chrono::steady_clock;
	VmSession(VmConfig config, unsigned requestsPerSecond)
	    : config_(std::move(config)), rate_(requestsPerSecond), warnings_("vm " + config_.name + ": ")
	{
	}

	const VmConfig &config() const { return config_; }
	// Libvirt discovery found the VM changed: a new channel or range.
	void reconfigure(const VmConfig &config) { config_ = config; }
	// This VM's warnings, rate-limited.
	Warnings &warnings() { return warnings_; }
	// What a line from the guest asks of the loop: to send `reply` now (a
	// refusal), or, when it is empty, to set the device's requested size
	// to `set` if given, read the device, and send what finish() says: a
	// reply tells the device's state after the request, and QEMU changes
	// `size` without telling at once (its events come a second apart).
	struct Handled {
		std::string reply;
		std::optional<uint64_t> set;
		uint64_t id = 0;
		bool starved = false; // a grow got less for want of spare memory (Grant::starved)
	};
	// Handles one complete line from the guest (tooLong: it was cut);
	// `device`: its state as last read, nullopt while the broker cannot
	// reach it.  Never throws, never sets anything for a malformed or
	// rate-limited request.  Every reply, a refusal too, carries the
	// request's id when the line has a valid one, and the device's state.
	Handled handle(const std::string &line, bool tooLong, const std::optional<DeviceState> &device, uint64_t spare,
	               const Contenders &contenders, Clock::time_point now);
	// The reply to request `id` once the device call handle() asked for
	// gave `result`; `device`: what was read.
	std::string finish(uint64_t id, const Status &result, const std::optional<DeviceState> &device,
	                   Clock::time_point now);
	// Size notices (see protocol.h), coalesced to at most one per noticeGap.
	static constexpr std::chrono::milliseconds noticeGap{250};
	Clock::time_point nextNoticeAt() const { return lastNotice_ + noticeGap; }
	// The notice line when the device's state differs from what the guest was
	// last told by a reply or a notice, else "" (also while the device is
	// out of reach: the reconnect reads it again).  The caller waits for
	// nextNoticeAt() first.
	std::string notice(const std::optional<DeviceState> &device, Clock::time_point now);
	// The guest was told nothing yet (its channel reconnected, a notice was lost).
	void forget() { told_.reset(); }
	// A VM that asked to grow this recently competes for memory
	// (Contenders); one that did not is idle.
	static constexpr std::chrono::seconds growerWindow{10};
	bool grewRecently(Clock::time_point now) const { return lastGrow_ && now - *lastGrow_ < growerWindow; }
	// Another VM starves (Grant::starved): the line that asks this guest to
	// give back what it can spare (protocol.h), when it holds memory above
	// its min, is idle or holds more than `share` above its min, and was
	// not asked within growerWindow; else "".
	std::string reclaim(Clock::time_point now, uint64_t share);
	// The requested-size the broker set last, or is setting (for the budget).
	uint64_t requested() const { return requested_; }
	// The device as its link read it, whether or not the guest's channel
	// is up: what it holds counts in the budget from the first read.
	void seen(const DeviceState &device);

private:
	bool admit(Clock::time_point now);
	std::string refuse(Reply &reply, const std::string &code, const std::string &message, Clock::time_point now);
	DeviceState withRange(DeviceState s) const;
	DeviceState lastKnown() const; // with the VM's range; zero sizes before the first read

	VmConfig config_;
	unsigned rate_;
	std::deque<Clock::time_point> admitted_; // the last rate_ requests admitted
	Warnings warnings_;
	std::optional<Clock::time_point> lastGrow_;
	std::optional<Clock::time_point> lastReclaim_;
	uint64_t requested_ = 0;
	unsigned calls_ = 0;               // device calls (sets, reads) asked for and not finished
	std::optional<DeviceState> known_; // as last read from the device
	std::optional<DeviceState> told_;
	Clock::time_point lastNotice_{};
};

// Serves every VM of the config with one epoll loop until SIGTERM/SIGINT.
int runBroker(const BrokerConfig &config);

} // namespace vmrd::vmem
