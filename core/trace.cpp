// SPDX-License-Identifier: MIT
// Trace files: the controller's inputs and decisions as JSON lines, written by the daemon, read by vmrd-replay.
#include "trace.h"

#include <algorithm>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "log.h"
#include "units.h"

namespace vmrd {

using json = nlohmann::json;

namespace {

constexpr std::pair<TraceRecord::Type, const char *> typeNames[] = {
        {TraceRecord::Type::Start, "start"},
        {TraceRecord::Type::Pressure, "pressure"},
        {TraceRecord::Type::Stall, "stall"},
        {TraceRecord::Type::Sample, "sample"},
        {TraceRecord::Type::Check, "check"},
        {TraceRecord::Type::Command, "command"},
        {TraceRecord::Type::Event, "event"},
        {TraceRecord::Type::Decision, "decision"},
        {TraceRecord::Type::Result, "result"},
        {TraceRecord::Type::State, "state"},
        {TraceRecord::Type::Reload, "reload"},
        {TraceRecord::Type::Stop, "stop"},
        {TraceRecord::Type::Allocations, "allocations"},
};

const char *typeName(TraceRecord::Type t)
{
	for (const auto &[type, name] : typeNames)
		if (type == t)
			return name;
	return "sample";
}

json toJson(const Sample &s)
{
	return {{"mem_total", s.mem.memTotal},
	        {"mem_free", s.mem.memFree},
	        {"mem_available", s.mem.memAvailable},
	        {"swap_total", s.mem.swapTotal},
	        {"swap_free", s.mem.swapFree},
	        {"movable_free", s.movable.free},
	        {"movable_inactive_anon", s.movable.inactiveAnon},
	        {"movable_inactive_file", s.movable.inactiveFile},
	        {"movable_managed", s.movable.managed},
	        {"pgalloc_movable", s.pgallocMovable},
	        {"some_avg10", s.someAvg10},
	        {"some_avg60", s.someAvg60},
	        {"full_avg10", s.fullAvg10},
	        {"some_total_us", s.someTotalUs},
	        {"full_total_us", s.fullTotalUs}};
}

json toJson(const BackendState &b)
{
	json j{{"block_size", b.blockSize},
	       {"min", b.minBytes},
	       {"max", b.maxBytes},
	       {"plugged", b.plugged},
	       {"connected", b.connected}};
	if (b.reclaim) // written only when set: traces of before read the same
		j["reclaim"] = true;
	return j;
}

Sample sampleFrom(const json &j)
{
	Sample s;
	s.mem.memTotal = j.at("mem_total").get<uint64_t>();
	s.mem.memFree = j.at("mem_free").get<uint64_t>();
	s.mem.memAvailable = j.at("mem_available").get<uint64_t>();
	s.mem.swapTotal = j.value("swap_total", uint64_t{0});
	s.mem.swapFree = j.value("swap_free", uint64_t{0});
	s.movable.name = "Movable";
	s.movable.free = j.value("movable_free", uint64_t{0});
	s.movable.inactiveAnon = j.value("movable_inactive_anon", uint64_t{0});
	s.movable.inactiveFile = j.value("movable_inactive_file", uint64_t{0});
	s.movable.managed = j.value("movable_managed", uint64_t{0});
	s.pgallocMovable = j.value("pgalloc_movable", uint64_t{0});
	s.someAvg10 = j.value("some_avg10", 0.0);
	s.someAvg60 = j.value("some_avg60", 0.0);
	s.fullAvg10 = j.value("full_avg10", 0.0);
	s.someTotalUs = j.value("some_total_us", uint64_t{0});
	s.fullTotalUs = j.value("full_total_us", uint64_t{0});
	return s;
}

BackendState stateFrom(const json &j)
{
	BackendState b;
	b.connected = j.value("connected", true); // written since the controller
	b.blockSize = j.at("block_size").get<uint64_t>();
	b.minBytes = j.at("min").get<uint64_t>();
	b.maxBytes = j.at("max").get<uint64_t>();
	b.plugged = j.at("plugged").get<uint64_t>();
	b.reclaim = j.value("reclaim", false);
	return b;
}

// "some 100ms/1s": the stall and the window.
void triggerFromText(TraceRecord &r)
{
	const auto space = r.trigger.find(' '), slash = r.trigger.find('/');
	if (space == std::string::npos || slash == std::string::npos || slash < space)
		throw std::invalid_argument("trigger '" + r.trigger + "' is not like 'some 100ms/1s'");
	auto stall = parseDuration(r.trigger.substr(space + 1, slash - space - 1));
	auto window = parseDuration(r.trigger.substr(slash + 1));
	if (!stall || !window)
		throw std::invalid_argument("trigger '" + r.trigger + "' is not like 'some 100ms/1s'");
	r.stall = *stall;
	r.window = *window;
}

Decision::Action actionFrom(const std::string &name)
{
	if (name == "plug")
		return Decision::Action::Plug;
	if (name == "unplug")
		return Decision::Action::Unplug;
	if (name == "none")
		return Decision::Action::None;
	throw std::invalid_argument("action '" + name + "' is not plug, unplug or none");
}

} // namespace

TraceWriter::~TraceWriter()
{
	if (file_)
		std::fclose(file_);
}

Status TraceWriter::open(const std::string &path, const std::string &preset, Micros start, uint64_t maxSize)
{
	path_ = path;
	maxSize_ = maxSize;
	header_ =
	        json{{"type", "header"}, {"format", 1}, {"preset", preset}, {"start_us", start.count()}}.dump() + "\n";
	return begin();
}

Status TraceWriter::begin()
{
	file_ = std::fopen(path_.c_str(), "ae");
	if (!file_)
		return Error{-errno, path_ + ": cannot open the trace file: " + std::strerror(errno)};
	std::fseek(file_, 0, SEEK_END);
	const long at = std::ftell(file_);
	size_ = at > 0 ? static_cast<uint64_t>(at) : 0;
	writeLine(header_);
	return Ok{};
}

void TraceWriter::writeLine(const std::string &line)
{
	if (!file_)
		return;
	if (maxSize_ && size_ > 0 && size_ + line.size() > maxSize_) {
		std::fclose(file_);
		file_ = nullptr;
		const std::string old = path_ + ".1";
		if (std::rename(path_.c_str(), old.c_str()) != 0 || !begin()) {
			// Losing the log must not stop the daemon: say so once and go on.
			logWarning(path_ + ": cannot rotate to " + old + ": " + std::strerror(errno) +
			           "; the trace stops here");
			return;
		}
	}
	std::fwrite(line.data(), 1, line.size(), file_);
	std::fflush(file_);
	size_ += line.size();
}

std::string TraceWriter::formatTraceRecord(const TraceRecord &r)
{
	using T = TraceRecord::Type;
	json j{{"type", typeName(r.type)},
	       {"t_us", r.t.count()},
	       {"sample", toJson(r.sample)},
	       {"state", toJson(r.state)}};
	if (r.type == T::Pressure) {
		j["trigger"] = r.trigger;
		j["stall_us"] = r.stall.count();
		j["window_us"] = r.window.count();
		j["severity"] = r.severity;
	}
	if (r.type == T::Start)
		j["dry_run"] = r.dryRun;
	if (r.type == T::Pressure || r.type == T::Stall) {
		j["source"] = r.source;
		if (r.totalUs)
			j["total_us"] = *r.totalUs;
	}
	if (r.type == T::Decision || r.type == T::Command || r.type == T::Result || r.type == T::State) {
		j["action"] = actionName(r.asked.action);
		j["bytes"] = r.asked.bytes;
		j["reason"] = r.asked.reason;
	}
	if (r.type == T::Result || r.type == T::State) {
		j["code"] = r.result.code;
		j["done"] = r.result.done;
		j["call_us"] = r.call.count();
		if (!r.result.message.empty())
			j["message"] = r.result.message;
		if (!r.stateError.empty())
			j["state_error"] = r.stateError;
	}
	// Reasons quote whatever a backend said: never let that break the JSON.
	return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<std::optional<TraceRecord>> parseTraceLine(const std::string &line)
{
	using T = TraceRecord::Type;
	try {
		json j = json::parse(line);
		const std::string type = j.at("type").get<std::string>();
		if (type == "header")
			return std::optional<TraceRecord>();
		TraceRecord r;
		auto known = std::find_if(std::begin(typeNames), std::end(typeNames),
		                          [&](const auto &n) { return type == n.second; });
		if (known == std::end(typeNames))
			return Error{-EINVAL, "unknown record type '" + type + "'"};
		r.type = known->first;
		r.t = Micros(j.at("t_us").get<int64_t>());
		r.sample = sampleFrom(j.at("sample"));
		r.state = stateFrom(j.at("state"));
		if (r.type == T::Pressure) {
			r.trigger = j.at("trigger").get<std::string>();
			r.stall = Micros(j.value("stall_us", int64_t{0}));
			r.window = Micros(j.value("window_us", int64_t{0}));
			if (!j.contains("window_us"))
				triggerFromText(r); // written before the trigger's numbers were
			r.severity = j.at("severity").get<double>();
		}
		if (r.type == T::Start)
			r.dryRun = j.value("dry_run", false);
		if (r.type == T::Pressure || r.type == T::Stall) {
			r.source = j.value("source", std::string());
			if (j.contains("total_us"))
				r.totalUs = j.at("total_us").get<uint64_t>();
		}
		if (r.type == T::Decision || r.type == T::Command || r.type == T::Result || r.type == T::State) {
			r.asked.action = actionFrom(j.at("action").get<std::string>());
			r.asked.bytes = j.at("bytes").get<uint64_t>();
			r.asked.reason = j.value("reason", std::string());
		}
		if (r.type == T::Result || r.type == T::State) {
			r.result.code = j.value("code", 0);
			r.result.done = j.value("done", uint64_t{0});
			r.call = Micros(j.value("call_us", int64_t{0}));
			r.result.message = j.value("message", std::string());
			r.stateError = j.value("state_error", std::string());
		}
		return std::optional<TraceRecord>(r);
	} catch (const std::exception &e) {
		return Error{-EINVAL, e.what()};
	}
}

Result<std::vector<TraceRecord>> readTrace(const std::string &path)
{
	std::ifstream in(path);
	if (!in)
		return Error{-errno, path + ": cannot read the trace: " + std::strerror(errno)};
	std::vector<TraceRecord> out;
	std::string line;
	for (unsigned n = 1; std::getline(in, line); n++) {
		if (line.empty())
			continue;
		auto r = parseTraceLine(line);
		if (!r)
			return Error{r.error().code, path + ":" + std::to_string(n) + ": " + r.error().message};
		if (*r)
			out.push_back(**r);
	}
	return out;
}

} // namespace vmrd
