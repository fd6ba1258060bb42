// SPDX-License-Identifier: MIT
// PSI triggers: arms what the running kernel accepts and owns their fds.
#include "psi_monitor.h"

#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#include "log.h"

namespace vmrd {

using std::chrono::milliseconds;
using std::chrono::seconds;

std::string triggerText(const TriggerConfig &t)
{
	return std::string(t.kind == TriggerConfig::Kind::Some ? "some " : "full ") + std::to_string(t.stall.count()) +
	       " " + std::to_string(t.window.count());
}

std::string describeTrigger(const TriggerConfig &t)
{
	return std::string(t.kind == TriggerConfig::Kind::Some ? "some " : "full ") + formatDuration(t.stall) + "/" +
	       formatDuration(t.window);
}

std::vector<TriggerAttempt> triggerFallbacks(const TriggerConfig &c)
{
	std::vector<TriggerAttempt> out{{c, ""}};
	auto scaled = [&](Micros window) {
		TriggerConfig t = c;
		t.window = window;
		t.stall = Micros(c.stall.count() * window.count() / c.window.count());
		return t;
	};
	const Micros halfSecond = milliseconds(500), twoSeconds = seconds(2);
	if (c.window < halfSecond)
		out.push_back({scaled(halfSecond), "kernels before 6.4 refuse windows below 500ms"});
	if (c.window.count() % twoSeconds.count() != 0) {
		Micros w((c.window.count() / twoSeconds.count() + 1) * twoSeconds.count());
		if (w > seconds(10))
			w = seconds(10);
		out.push_back({scaled(w), "without CAP_SYS_RESOURCE the window must be a multiple of 2s"});
	}
	return out;
}

PsiMonitor::~PsiMonitor()
{
	for (const auto &a : armed_)
		if (a.fd >= 0)
			::close(a.fd);
}

PsiMonitor &PsiMonitor::operator=(PsiMonitor &&o) noexcept
{
	if (this != &o) {
		for (const auto &a : armed_)
			if (a.fd >= 0)
				::close(a.fd);
		armed_ = std::move(o.armed_);
		o.armed_.clear();
	}
	return *this;
}

namespace {

std::string missingPsiHint(const std::string &path, int err)
{
	if (path.find("/pressure/") != std::string::npos && err == ENOENT)
		return path + " does not exist: this kernel has no PSI (CONFIG_PSI) or it is disabled; "
		              "kernels built with CONFIG_PSI_DEFAULT_DISABLED (Debian's) need psi=1 on "
		              "the kernel command line";
	if (err == EOPNOTSUPP)
		return path + ": PSI is disabled for this cgroup or kernel; boot with psi=1 "
		              "and check cgroup.pressure";
	if (err == ENOENT)
		return path + " does not exist: is the cgroup there and is it cgroup v2?";
	return path + ": " + std::strerror(err);
}

// Opens `source` and arms the first of the trigger's fallbacks the kernel
// accepts.  One fd per trigger: the kernel allows one trigger per open file.
Result<PsiMonitor::Armed> armOne(const std::string &source, const TriggerConfig &configured)
{
	int lastErr = 0;
	for (const auto &attempt : triggerFallbacks(configured)) {
		// A fresh fd per attempt: a refused write can leave the file unusable.
		int fd = ::open(source.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			return Error{-errno, missingPsiHint(source, errno)};
		const std::string text = triggerText(attempt.trigger);
		// One write with the terminating NUL: the kernel overwrites the
		// last byte it is given.
		if (::write(fd, text.c_str(), text.size() + 1) >= 0) {
			if (attempt.why.empty())
				logInfo("PSI trigger armed on " + source + ": " + describeTrigger(attempt.trigger));
			else
				logWarning("PSI trigger " + describeTrigger(configured) + " refused by the kernel (" +
				           std::strerror(lastErr) + "): " + attempt.why + "; armed " +
				           describeTrigger(attempt.trigger) + " on " + source + " instead");
			return PsiMonitor::Armed{fd, source, configured, attempt.trigger};
		}
		lastErr = errno;
		::close(fd);
		if (lastErr == EOPNOTSUPP || lastErr == ENOENT)
			return Error{-lastErr, missingPsiHint(source, lastErr)};
	}
	std::string hint =
	        lastErr == EPERM || lastErr == EACCES ? " (short windows need CAP_SYS_RESOURCE; run vmrd as root)" : "";
	return Error{-lastErr, "the kernel refused PSI trigger " + describeTrigger(configured) + " on " + source +
	                               " and every fallback: " + std::strerror(lastErr) + hint};
}

} // namespace

Result<PsiMonitor> PsiMonitor::arm(const std::vector<std::string> &sources, const std::vector<TriggerConfig> &triggers)
{
	PsiMonitor m;
	for (const auto &source : sources) {
		for (const auto &configured : triggers) {
			auto a = armOne(source, configured);
			if (!a)
				return a.error();
			m.armed_.push_back(*a);
		}
	}
	return m;
}

void PsiMonitor::disarm(size_t i)
{
	if (armed_[i].fd >= 0)
		::close(armed_[i].fd);
	armed_[i].fd = -1;
}

Status PsiMonitor::rearm(size_t i)
{
	auto a = armOne(armed_[i].source, armed_[i].configured);
	if (!a)
		return a.error();
	disarm(i);
	armed_[i] = *a;
	return Ok{};
}

} // namespace vmrd
