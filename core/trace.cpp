// SPDX-License-Identifier: MIT
// Trace files: the policy's inputs as JSON lines, written by the daemon and read by vmrd-replay.
#include "trace.h"

#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "log.h"

namespace vmrd {

using json = nlohmann::json;

namespace {

const char *typeName(TraceRecord::Type t)
{
	switch (t) {
	case TraceRecord::Type::Pressure:
		return "pressure";
	case TraceRecord::Type::Result:
		return "result";
	case TraceRecord::Type::Check:
		return "check";
	case TraceRecord::Type::Decision:
		return "decision";
	case TraceRecord::Type::Sample:
		break;
	}
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
	return {{"block_size", b.blockSize}, {"min", b.minBytes}, {"max", b.maxBytes}, {"plugged", b.plugged}};
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
	b.connected = true;
	b.blockSize = j.at("block_size").get<uint64_t>();
	b.minBytes = j.at("min").get<uint64_t>();
	b.maxBytes = j.at("max").get<uint64_t>();
	b.plugged = j.at("plugged").get<uint64_t>();
	return b;
}

Decision::Action actionFrom(const std::string &name)
{
	if (name == "plug")
		return Decision::Action::Plug;
	if (name == "unplug")
		return Decision::Action::Unplug;
	throw std::invalid_argument("action '" + name + "' is not plug or unplug");
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
	json j{{"type", typeName(r.type)},
	       {"t_us", r.t.count()},
	       {"sample", toJson(r.sample)},
	       {"state", toJson(r.state)}};
	if (r.type == TraceRecord::Type::Pressure) {
		j["trigger"] = r.trigger;
		j["severity"] = r.severity;
	} else if (r.type == TraceRecord::Type::Decision) {
		j["action"] = actionName(r.asked.action);
		j["bytes"] = r.asked.bytes;
		j["reason"] = r.asked.reason;
	} else if (r.type == TraceRecord::Type::Result) {
		j["action"] = actionName(r.asked.action);
		j["bytes"] = r.asked.bytes;
		j["code"] = r.result.code;
		j["done"] = r.result.done;
		j["call_us"] = r.call.count();
		if (!r.result.message.empty())
			j["message"] = r.result.message;
	}
	// Reasons quote whatever a backend said: never let that break the JSON.
	return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<std::optional<TraceRecord>> parseTraceLine(const std::string &line)
{
	try {
		json j = json::parse(line);
		const std::string type = j.at("type").get<std::string>();
		if (type == "header" || type == "decision")
			return std::optional<TraceRecord>();
		TraceRecord r;
		r.t = Micros(j.at("t_us").get<int64_t>());
		r.sample = sampleFrom(j.at("sample"));
		r.state = stateFrom(j.at("state"));
		if (type == "pressure") {
			r.type = TraceRecord::Type::Pressure;
			r.trigger = j.at("trigger").get<std::string>();
			r.severity = j.at("severity").get<double>();
		} else if (type == "result") {
			r.type = TraceRecord::Type::Result;
			r.asked.action = actionFrom(j.at("action").get<std::string>());
			r.asked.bytes = j.at("bytes").get<uint64_t>();
			r.result.code = j.at("code").get<int>();
			r.result.done = j.at("done").get<uint64_t>();
			r.call = Micros(j.value("call_us", int64_t{0}));
			r.result.message = j.value("message", std::string());
		} else if (type == "sample") {
			r.type = TraceRecord::Type::Sample;
		} else if (type == "check") {
			r.type = TraceRecord::Type::Check;
		} else {
			return Error{-EINVAL, "unknown record type '" + type + "'"};
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
