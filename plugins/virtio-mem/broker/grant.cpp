// SPDX-License-Identifier: MIT
// vmrd-broker's grants: what a guest's resize request gets, and each VM's session (rate limit, replies, notices).
#include "broker.h"

#include <algorithm>

#include "log.h"
#include "units.h"

namespace vmrd::vmem {

namespace {

uint64_t alignDown(uint64_t v, uint64_t block)
{
	return v / block * block;
}
uint64_t alignUp(uint64_t v, uint64_t block)
{
	return (v + block - 1) / block * block;
}

} // namespace

uint64_t fairShare(uint64_t pool, unsigned weight, uint64_t contendersWeight)
{
	const uint64_t total = std::max<uint64_t>(contendersWeight, weight);
	return pool / total * weight + pool % total * weight / total;
}

Grant decideTarget(uint64_t asked, const VmConfig &vm, const DeviceState &now, uint64_t spare,
                   const Contenders &contenders)
{
	const uint64_t block = std::max<uint64_t>(now.blockSize, 1);
	const uint64_t min = alignUp(vm.min, block), max = alignDown(vm.max, block);
	Grant g;
	uint64_t t = asked;
	if (t > max) {
		t = max;
		g.why = "clamped to the VM's max " + formatSize(max);
	} else if (t < min) {
		t = min;
		g.why = "clamped to the VM's min " + formatSize(min);
	}
	t = t > now.requested ? alignDown(t, block) : alignUp(t, block);
	const uint64_t base = std::max(now.requested, min);
	if (t > base) {
		const uint64_t pool = spare + contenders.held;
		const uint64_t weights = std::max<uint64_t>(contenders.weight, vm.weight);
		const uint64_t share = fairShare(pool, vm.weight, weights);
		const uint64_t held = base - min;
		const uint64_t room = alignDown(std::min(spare, share > held ? share - held : 0), block);
		if (t - base > room) {
			t = base + room;
			g.starved = share > held && share - held >= spare;
			if (g.starved)
				g.why = "limited by the host's free memory: " + formatSize(spare) + " spare";
			else
				g.why = "limited to its fair share: " + formatSize(share) + " of " + formatSize(pool) +
				        " among " + std::to_string(contenders.count) + " growing VM(s), by weight " +
				        std::to_string(vm.weight) + " of " + std::to_string(weights);
		}
	}
	if (t != asked && g.why.empty())
		g.why = "aligned to the " + formatSize(block) + " block";
	g.target = t;
	return g;
}

std::string VmSession::reclaim(Clock::time_point now, uint64_t share)
{
	const uint64_t held = requested_ > config_.min ? requested_ - config_.min : 0;
	const bool idle = !grewRecently(now);
	if (held == 0 || (!idle && held <= share) || (lastReclaim_ && now - *lastReclaim_ < growerWindow))
		return "";
	lastReclaim_ = now;
	logInfo("vm " + config_.name + ": asking the guest to give back what it can spare: another VM needs memory " +
	        "and there is none spare; this one holds " + formatSize(held) + " above its min" +
	        (idle ? " and has not asked to grow for " + std::to_string(growerWindow.count()) + " s"
	              : ", more than its share of " + formatSize(share)));
	return formatReclaim();
}

// At most rate_ requests in any second: a sliding window, so that no
// burst gets more (a token bucket that refills while it is spent lets
// nearly twice as many through within a second).
bool VmSession::admit(Clock::time_point now)
{
	if (admitted_.size() >= rate_) {
		if (now - admitted_.front() < std::chrono::seconds(1))
			return false;
		admitted_.pop_front();
	}
	admitted_.push_back(now);
	return true;
}

std::string VmSession::refuse(Reply &reply, const std::string &code, const std::string &message, Clock::time_point now)
{
	reply.ok = false;
	reply.error = code;
	reply.message = message;
	reply.state = lastKnown();
	warnings_.warn("refused a request: " + code + ": " + message, now);
	return formatReply(reply);
}

DeviceState VmSession::withRange(DeviceState s) const
{
	s.min = config_.min;
	s.max = config_.max;
	return s;
}

DeviceState VmSession::lastKnown() const
{
	return known_ ? *known_ : withRange(DeviceState{});
}

VmSession::Handled VmSession::handle(const std::string &line, bool tooLong, const std::optional<DeviceState> &device,
                                     uint64_t spare, const Contenders &contenders, Clock::time_point now)
{
	Reply reply;
	Handled h;
	if (!tooLong)
		h.id = reply.id = requestId(line); // so that even a refusal reaches the request that caused it
	if (device)
		known_ = withRange(*device);
	if (!admit(now)) {
		h.reply = refuse(reply, "rate-limited", "more than " + std::to_string(rate_) + " requests per second",
		                 now);
		return h;
	}
	if (tooLong) {
		h.reply = refuse(reply, "too-long", "a line is at most " + std::to_string(maxLine) + " bytes", now);
		return h;
	}
	auto req = parseRequest(line);
	if (!req) {
		const std::string &m = req.error().message;
		size_t colon = m.find(':');
		h.reply = refuse(reply, m.substr(0, colon), colon == std::string::npos ? m : m.substr(colon + 2), now);
		return h;
	}
	if (!device) {
		h.reply = refuse(reply, "host-error", "the broker cannot reach this VM's device now; try again", now);
		return h;
	}
	DeviceState st = *known_;
	if (calls_ > 0)
		st.requested = requested_; // what the calls under way will leave
	if (req->kind == Request::Kind::Resize) {
		if (req->target > st.requested)
			lastGrow_ = now;
		Grant g = decideTarget(req->target, config_, st, spare, contenders);
		h.starved = g.starved;
		logInfo("vm " + config_.name + ": resize to " + formatSize(req->target) + " asked, " +
		        formatSize(g.target) + " granted" + (g.why.empty() ? "" : " (" + g.why + ")") + "; plugged " +
		        formatSize(st.size));
		// Also when the target is unchanged but the device stopped short:
		// setting it again makes the guest driver retry at once.
		if (g.target != st.requested || st.size != g.target) {
			requested_ = g.target;
			h.set = g.target;
		}
	}
	calls_++;
	return h;
}

std::string VmSession::finish(uint64_t id, const Status &result, const std::optional<DeviceState> &device,
                              Clock::time_point now)
{
	calls_ = calls_ > 0 ? calls_ - 1 : 0;
	if (device)
		known_ = withRange(*device);
	if (calls_ == 0 && known_)
		requested_ = known_->requested; // nothing else under way: what the device has
	Reply reply;
	reply.id = id;
	if (!result)
		return refuse(reply, "host-error", result.error().message, now);
	DeviceState st = lastKnown();
	st.requested = requested_; // with calls under way, what they will leave
	reply.state = st;
	told_ = st;
	return formatReply(reply);
}

void VmSession::seen(const DeviceState &device)
{
	known_ = withRange(device);
	if (calls_ == 0)
		requested_ = device.requested;
}

namespace {
bool sameState(const DeviceState &a, const DeviceState &b)
{
	return a.blockSize == b.blockSize && a.min == b.min && a.max == b.max && a.size == b.size &&
	       a.requested == b.requested;
}
} // namespace

std::string VmSession::notice(const std::optional<DeviceState> &device, Clock::time_point now)
{
	if (!device)
		return "";
	const DeviceState st = withRange(*device);
	known_ = st;
	if (told_ && sameState(*told_, st))
		return "";
	logInfo("vm " + config_.name + ": telling the guest: plugged " + formatSize(st.size) + ", requested " +
	        formatSize(st.requested));
	if (calls_ == 0)
		requested_ = st.requested;
	told_ = st;
	lastNotice_ = now;
	return formatSizeNotice(SizeNotice{st});
}

} // namespace vmrd::vmem
