// SPDX-License-Identifier: MIT
// What the daemon shows of itself: vmrdctl status, the metrics text and systemd's STATUS= line.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "backend_selection.h"
#include "config.h"
#include "controller.h"
#include "psi_monitor.h"

namespace vmrd {

struct StatusView {
	const Controller &controller;
	const Config &config;
	const PsiMonitor &psi;
	const std::vector<CandidateVerdict> &selection; // how backend.name chose the backend
	std::string earlySignal;                        // what it is and whether armed, or why there is none
	TimePoint start;
	TimePoint now;
};

nlohmann::json statusJson(const StatusView &v);
// Prometheus text, with the daemon's own RSS and CPU time read fresh.
std::string metricsText(const Controller &c, const std::string &procfs);
// "1 GiB plugged of 8 GiB; last resize: plug 1 GiB (1 GiB done in 40ms)"
std::string statusLine(const Controller &c);

bool sameTriggers(const std::vector<TriggerConfig> &a, const std::vector<TriggerConfig> &b);

} // namespace vmrd
