// SPDX-License-Identifier: MIT
// The daemon's operator side: signals, config reloads and the control socket's commands.
#include <csignal>
#include <cstring>
#include <sys/signalfd.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "status.h"

namespace vmrd {

void Daemon::onSignal()
{
	signalfd_siginfo si;
	while (::read(signalFd_, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGUSR1:
			logInfo("SIGUSR1: shrink check now");
			if (auto s = sample())
				controller_->onCheck(now(), *s);
			break;
		case SIGHUP:
			(void)reload("SIGHUP");
			break;
		default:
			logInfo(std::string("received ") + strsignal(static_cast<int>(si.ssi_signo)) + ", stopping");
			loop_.stop();
			return;
		}
	}
}

Status Daemon::reload(const std::string &origin)
{
	const std::string &path = options_.configPath;
	auto next = loadConfig(path);
	if (!next) {
		logError(origin + ": the new config is rejected, the running one is kept:\n" + next.error().message);
		return Error{next.error().code,
		             "the new config is rejected, the running one is kept:\n" + next.error().message};
	}
	Config &n = *next;
	const auto &o = config_;
	if (n.backend.choice != o.backend.choice || n.backend.candidates != o.backend.candidates ||
	    n.backend.options != o.backend.options || n.backend.pluginDir != o.backend.pluginDir ||
	    n.paths.procfs != o.paths.procfs || n.paths.sysfs != o.paths.sysfs || n.daemon.mlock != o.daemon.mlock ||
	    n.daemon.oomScoreAdj != o.daemon.oomScoreAdj || n.daemon.trace != o.daemon.trace ||
	    n.daemon.traceMaxSize != o.daemon.traceMaxSize || n.control.socket != o.control.socket ||
	    n.control.http != o.control.http || n.guard.cgroup != o.guard.cgroup)
		logWarning(
		        origin +
		        ": changes to backend, paths, daemon.mlock, daemon.oom_score_adj, daemon.trace, "
		        "daemon.trace_max_size, control and guard.cgroup take effect on restart; the rest is applied");
	if (n.psi.system != o.psi.system || n.psi.cgroups != o.psi.cgroups ||
	    !sameTriggers(n.psi.triggers, o.psi.triggers)) {
		std::vector<std::string> sources = n.psi.cgroups;
		if (n.psi.system)
			sources.insert(sources.begin(), o.paths.procfs + "/pressure/memory");
		auto psi = PsiMonitor::arm(sources, n.psi.triggers);
		if (!psi) {
			const std::string why =
			        "cannot arm the new PSI triggers, the running config is kept: " + psi.error().message;
			logError(origin + ": " + why);
			return Error{psi.error().code, why};
		}
		armPsi(std::move(*psi));
		config_.psi = n.psi;
	}
	config_.policy = n.policy;
	config_.limits = n.limits;
	config_.backend.callTimeout = n.backend.callTimeout;
	config_.daemon.onlineMovable = n.daemon.onlineMovable;
	config_.daemon.releaseOnExit = n.daemon.releaseOnExit;
	config_.guard.margin = n.guard.margin;
	config_.logLevel = n.logLevel;
	setLogLevel(n.logLevel);
	guard_.setMargin(n.guard.margin);
	(void)sample();
	controller_->reload(now(), settings());
	armEarlySignal();
	logInfo(origin + ": reloaded " + path + "; policy " + config_.policy.preset + " starts afresh");
	return Ok{};
}

Result<nlohmann::json> Daemon::onControl(const ControlRequest &request)
{
	switch (request.command) {
	case ControlCommand::Status:
		return statusJson(
		        {*controller_, config_, psi_, options_.selection, describeEarlySignal(), start_, now()});
	case ControlCommand::Metrics:
		return nlohmann::json{{"text", metricsText(*controller_, config_.paths.procfs)}};
	case ControlCommand::Reclaim: {
		logInfo("vmrdctl reclaim: shrink check now");
		auto s = sample();
		if (!s)
			return Error{-EIO, "cannot read the memory statistics"};
		return nlohmann::json{{"decision", describeDecision(controller_->onCheck(now(), *s))}};
	}
	case ControlCommand::Reload:
		if (auto r = reload("vmrdctl reload"); !r)
			return r.error();
		return nlohmann::json{{"reloaded", options_.configPath}};
	case ControlCommand::Grow:
	case ControlCommand::Shrink: {
		auto d = controller_->onCommand(now(),
		                                request.command == ControlCommand::Grow ? Decision::Action::Plug
		                                                                        : Decision::Action::Unplug,
		                                request.bytes);
		if (!d)
			return d.error();
		return nlohmann::json{{"decision", describeDecision(*d)}};
	}
	case ControlCommand::Events:
		break; // the server answers it
	}
	return Error{-EINVAL, "not a command the daemon answers"};
}

} // namespace vmrd
