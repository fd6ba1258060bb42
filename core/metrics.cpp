// SPDX-License-Identifier: MIT
// The daemon's counters, and their Prometheus text exposition.
#include "metrics.h"

#include <cstring>
#include <sstream>

namespace vmrd {

namespace {

std::string label(const std::string &value)
{
	std::string out;
	for (char c : value) {
		if (c == '\\' || c == '"')
			out += '\\';
		if (c == '\n')
			out += "\\n";
		else
			out += c;
	}
	return out;
}

std::string errnoName(int code)
{
	const char *name = code < 0 ? strerrorname_np(-code) : nullptr;
	return name ? name : "E" + std::to_string(-code);
}

} // namespace

void Metrics::pressure(const std::string &source, const std::string &trigger)
{
	pressure_[{source, trigger}]++;
}

void Metrics::decision(Decision::Action action)
{
	decisions_[actionName(action)]++;
}

void Metrics::call(const Decision &asked, const CallResult &result, Micros took)
{
	if (asked.action == Decision::Action::None)
		return;
	Calls &c = asked.action == Decision::Action::Plug ? plug_ : unplug_;
	c.count++;
	c.requestedBytes += asked.bytes;
	c.grantedBytes += result.done;
	if (result.code != 0)
		c.failures[errnoName(result.code)]++;
	else if (result.done < asked.bytes)
		c.partial++;
	const double s = static_cast<double>(took.count()) / 1e6;
	c.seconds += s;
	for (size_t i = 0; i < latencyBuckets.size(); i++)
		if (s <= latencyBuckets[i])
			c.buckets[i]++;
}

std::string Metrics::render(const MetricGauges &g) const
{
	std::ostringstream o;
	o.precision(9);
	auto help = [&](const char *name, const char *type, const char *text) {
		o << "# HELP " << name << " " << text << "\n# TYPE " << name << " " << type << "\n";
	};
	help("vmrd_backend_connected", "gauge", "1 if the backend reaches its host");
	o << "vmrd_backend_connected " << (g.state.connected ? 1 : 0) << "\n";
	help("vmrd_plugged_bytes", "gauge", "Memory the backend has plugged into the guest");
	o << "vmrd_plugged_bytes " << g.state.plugged << "\n";
	help("vmrd_plugged_min_bytes", "gauge", "The least the backend can have plugged");
	o << "vmrd_plugged_min_bytes " << g.state.minBytes << "\n";
	help("vmrd_plugged_max_bytes", "gauge", "The most the backend can plug");
	o << "vmrd_plugged_max_bytes " << g.state.maxBytes << "\n";
	help("vmrd_mem_total_bytes", "gauge", "MemTotal at the last sample");
	o << "vmrd_mem_total_bytes " << g.sample.mem.memTotal << "\n";
	help("vmrd_mem_available_bytes", "gauge", "MemAvailable at the last sample");
	o << "vmrd_mem_available_bytes " << g.sample.mem.memAvailable << "\n";

	const std::pair<const char *, const Calls *> calls[] = {{"plug", &plug_}, {"unplug", &unplug_}};
	help("vmrd_requested_bytes_total", "counter", "Bytes asked of the backend");
	for (const auto &[a, c] : calls)
		o << "vmrd_requested_bytes_total{action=\"" << a << "\"} " << c->requestedBytes << "\n";
	help("vmrd_granted_bytes_total", "counter", "Bytes the backend reported done");
	for (const auto &[a, c] : calls)
		o << "vmrd_granted_bytes_total{action=\"" << a << "\"} " << c->grantedBytes << "\n";
	help("vmrd_backend_calls_total", "counter", "Plug and unplug calls made");
	for (const auto &[a, c] : calls)
		o << "vmrd_backend_calls_total{action=\"" << a << "\"} " << c->count << "\n";
	help("vmrd_backend_partial_total", "counter", "Calls that succeeded with less than asked");
	for (const auto &[a, c] : calls)
		o << "vmrd_backend_partial_total{action=\"" << a << "\"} " << c->partial << "\n";
	help("vmrd_backend_failures_total", "counter", "Calls that failed, by the errno the backend returned");
	for (const auto &[a, c] : calls)
		for (const auto &[reason, n] : c->failures)
			o << "vmrd_backend_failures_total{action=\"" << a << "\",reason=\"" << label(reason) << "\"} "
			  << n << "\n";
	help("vmrd_backend_call_duration_seconds", "histogram", "How long plug and unplug calls took");
	for (const auto &[a, c] : calls) {
		for (size_t i = 0; i < latencyBuckets.size(); i++)
			o << "vmrd_backend_call_duration_seconds_bucket{action=\"" << a << "\",le=\""
			  << latencyBuckets[i] << "\"} " << c->buckets[i] << "\n";
		o << "vmrd_backend_call_duration_seconds_bucket{action=\"" << a << "\",le=\"+Inf\"} " << c->count
		  << "\n"
		  << "vmrd_backend_call_duration_seconds_sum{action=\"" << a << "\"} " << c->seconds << "\n"
		  << "vmrd_backend_call_duration_seconds_count{action=\"" << a << "\"} " << c->count << "\n";
	}
	help("vmrd_psi_events_total", "counter", "PSI trigger events, by source and trigger");
	for (const auto &[key, n] : pressure_)
		o << "vmrd_psi_events_total{source=\"" << label(key.first) << "\",trigger=\"" << label(key.second)
		  << "\"} " << n << "\n";
	help("vmrd_decisions_total", "counter", "Policy decisions, by action (none: decided to do nothing)");
	for (const char *a : {"plug", "unplug", "none"}) {
		auto it = decisions_.find(a);
		o << "vmrd_decisions_total{action=\"" << a << "\"} " << (it == decisions_.end() ? 0 : it->second)
		  << "\n";
	}
	if (g.residentBytes) {
		help("vmrd_process_resident_memory_bytes", "gauge", "The daemon's resident set size");
		o << "vmrd_process_resident_memory_bytes " << g.residentBytes << "\n";
	}
	help("vmrd_process_cpu_seconds_total", "counter", "CPU time the daemon used, user and system");
	o << "vmrd_process_cpu_seconds_total " << g.cpuSeconds << "\n";
	return o.str();
}

} // namespace vmrd
