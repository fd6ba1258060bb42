// SPDX-License-Identifier: MIT
// The daemon's PSI side: arming triggers, events, sources that go away and come back, stall totals.
#include <algorithm>
#include <sys/epoll.h>

#include "daemon.h"
#include "log.h"

namespace vmrd {

namespace {

// How often a PSI source that went away (a removed cgroup) is looked for.
constexpr auto rearmInterval = std::chrono::seconds(5);

std::optional<ProcFile> openSource(const std::string &path)
{
	auto f = ProcFile::open(path, 4096);
	return f ? std::optional<ProcFile>(std::move(*f)) : std::nullopt;
}

} // namespace

bool Daemon::armPsi(PsiMonitor monitor)
{
	for (const auto &a : psi_.armed())
		if (a.fd >= 0)
			loop_.remove(a.fd);
	psi_ = std::move(monitor);
	sources_.clear();
	triggerSource_.clear();
	for (size_t i = 0; i < psi_.armed().size(); i++) {
		const auto &a = psi_.armed()[i];
		auto it = std::find_if(sources_.begin(), sources_.end(),
		                       [&](const Source &s) { return s.path == a.source; });
		if (it == sources_.end()) {
			sources_.push_back({a.source, openSource(a.source)});
			it = sources_.end() - 1;
		}
		triggerSource_.push_back(static_cast<size_t>(it - sources_.begin()));
		if (!watchTrigger(i))
			return false;
	}
	return true;
}

bool Daemon::watchTrigger(size_t i)
{
	const auto &a = psi_.armed()[i];
	auto st = loop_.add(a.fd, EPOLLPRI, [this, i](uint32_t events) {
		if (events & EPOLLERR)
			onPsiError(i);
		else
			onPressure(i);
	});
	if (!st)
		logError("PSI trigger on " + a.source + ": " + st.error().message);
	return st.ok();
}

std::optional<uint64_t> Daemon::stallTotal(const std::string &source)
{
	for (auto &s : sources_)
		if (s.path == source && s.file)
			return readPsiTotal(*s.file, false);
	return std::nullopt;
}

void Daemon::onPressure(size_t i)
{
	const auto &a = psi_.armed()[i];
	const TimePoint t = now();
	logDebug("PSI event: " + describeTrigger(a.trigger) + " on " + a.source);
	auto s = sample();
	if (!s)
		return;
	controller_->onPressure(
	        t, {a.source, describeTrigger(a.trigger), a.trigger.stall, a.trigger.window, stallTotal(a.source)}, *s);
}

void Daemon::onPsiError(size_t i)
{
	const auto &a = psi_.armed()[i];
	logError("PSI source " + a.source +
	         " went away (cgroup removed?); the other sources are still watched, "
	         "and this one is re-armed when it comes back");
	loop_.remove(a.fd);
	psi_.disarm(i);
	loop_.setTimer(rearmTimer_, now() + rearmInterval);
}

void Daemon::rearmSources()
{
	for (size_t i = 0; i < psi_.armed().size(); i++) {
		if (psi_.armed()[i].fd >= 0)
			continue;
		if (psi_.rearm(i)) {
			watchTrigger(i);
			Source &src = sources_[triggerSource_[i]];
			src.file = openSource(src.path);
			logInfo("PSI source " + src.path + " is back; trigger re-armed");
		} else {
			loop_.setTimer(rearmTimer_, now() + rearmInterval);
		}
	}
}

} // namespace vmrd
