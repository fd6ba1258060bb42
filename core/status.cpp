// SPDX-License-Identifier: MIT
// vmrdctl status, the metrics text and systemd's STATUS= line, from the controller's books.
#include "status.h"

#include <algorithm>
#include <cstdio>
#include <sys/resource.h>
#include <unistd.h>

#include "proc_file.h"

namespace vmrd {

namespace {

double seconds(Micros d)
{
	return static_cast<double>(d.count()) / 1e6;
}

} // namespace

bool sameTriggers(const std::vector<TriggerConfig> &a, const std::vector<TriggerConfig> &b)
{
	return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const auto &x, const auto &y) {
		return x.kind == y.kind && x.stall == y.stall && x.window == y.window;
	});
}

nlohmann::json statusJson(const StatusView &v)
{
	using json = nlohmann::json;
	const Controller &c = v.controller;
	const BackendState &state = c.state();
	const Sample &sample = c.lastSample();
	auto since = [&](TimePoint at) { return seconds(std::chrono::duration_cast<Micros>(at - v.start)); };
	const auto inFlight = c.inFlight();
	json backend{{"name", c.settings().backend},
	             {"connected", state.connected},
	             {"plugged", state.plugged},
	             {"min", state.minBytes},
	             {"max", state.maxBytes},
	             {"block_size", state.blockSize},
	             {"in_flight", inFlight ? json(*inFlight) : json(nullptr)}};
	json candidates = json::array();
	for (const auto &s : v.selection)
		candidates.push_back({{"name", s.name}, {"verdict", verdictName(s.kind)}, {"reason", s.reason}});
	backend["chosen_by"] = describeChoice(v.config.backend);
	backend["candidates"] = candidates;
	json policyState = json::object();
	for (const auto &[key, value] : c.policyState(v.now))
		policyState[key] = value;
	json triggers = json::array();
	for (const auto &a : v.psi.armed()) {
		json tr{{"source", a.source}, {"trigger", describeTrigger(a.trigger)}, {"armed", a.fd >= 0}};
		if (!sameTriggers({a.trigger}, {a.configured}))
			tr["configured"] = describeTrigger(a.configured);
		triggers.push_back(tr);
	}
	json decisions = json::array();
	for (const auto &r : c.recent())
		decisions.push_back({{"t_s", since(r.at)},
		                     {"action", actionName(r.decision.action)},
		                     {"bytes", r.decision.bytes},
		                     {"reason", r.decision.reason},
		                     {"outcome", r.outcome}});
	const Limits &limits = c.settings().limits;
	return json{{"version", VMRD_VERSION},
	            {"pid", ::getpid()},
	            {"uptime_s", since(v.now)},
	            {"dry_run", c.settings().dryRun},
	            {"backend", backend},
	            {"limits", {{"min", limits.min}, {"max", limits.max}}},
	            {"memory",
	             {{"mem_total", sample.mem.memTotal},
	              {"mem_available", sample.mem.memAvailable},
	              {"psi_some_avg10", sample.someAvg10},
	              {"psi_full_avg10", sample.fullAvg10}}},
	            {"policy", {{"preset", v.config.policy.preset}, {"state", policyState}}},
	            {"psi", triggers},
	            {"early_signal", v.earlySignal},
	            {"decisions", decisions}};
}

std::string metricsText(const Controller &c, const std::string &procfs)
{
	MetricGauges g;
	g.state = c.state();
	g.sample = c.lastSample();
	if (auto statm = ProcFile::open(procfs + "/self/statm", 256)) {
		unsigned long long size = 0, resident = 0;
		auto text = statm->read();
		if (text && std::sscanf(std::string(*text).c_str(), "%llu %llu", &size, &resident) == 2)
			g.residentBytes = resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
	}
	rusage ru{};
	if (::getrusage(RUSAGE_SELF, &ru) == 0)
		g.cpuSeconds = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
		               static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
	return c.metrics().render(g);
}

std::string statusLine(const Controller &c)
{
	std::string last = "none yet";
	for (auto it = c.recent().rbegin(); it != c.recent().rend(); ++it)
		if (it->decision.action != Decision::Action::None) {
			last = std::string(actionName(it->decision.action)) + " " + formatSize(it->decision.bytes) +
			       (it->outcome.empty() ? "" : " (" + it->outcome + ")");
			break;
		}
	const BackendState &s = c.state();
	return formatSize(s.plugged) + " plugged of " + formatSize(s.maxBytes) +
	       (s.connected ? "" : ", backend not connected") + "; last resize: " + last;
}

} // namespace vmrd
