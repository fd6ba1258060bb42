// SPDX-License-Identifier: MIT
// The daemon's counters, and their Prometheus text exposition.
#pragma once

#include <array>
#include <map>
#include <string>

#include "model.h"

namespace vmrd {

// What is read fresh for each scrape rather than counted.
struct MetricGauges {
	BackendState state;
	Sample sample;
	uint64_t residentBytes = 0; // the daemon's RSS; 0: unknown
	double cpuSeconds = 0;      // user + system
};

class Metrics
{
public:
	// Upper bounds of the backend call latency buckets, in seconds.
	static constexpr std::array<double, 12> latencyBuckets{0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	                                                       1,    2.5,   5,    10,  30,   60};

	void pressure(const std::string &source, const std::string &trigger);
	void decision(Decision::Action action);
	// A plug or unplug finished: what was asked, what the backend did.
	void call(const Decision &asked, const CallResult &result, Micros took);

	// Prometheus text format 0.0.4.
	std::string render(const MetricGauges &g) const;

private:
	struct Calls {
		uint64_t count = 0;
		uint64_t requestedBytes = 0;
		uint64_t grantedBytes = 0;
		uint64_t partial = 0;
		std::map<std::string, uint64_t> failures; // by errno name
		std::array<uint64_t, latencyBuckets.size()> buckets{};
		double seconds = 0;
	};

	std::map<std::pair<std::string, std::string>, uint64_t> pressure_; // (source, trigger)
	std::map<std::string, uint64_t> decisions_;                        // by action
	Calls plug_, unplug_;
};

} // namespace vmrd
