// SPDX-License-Identifier: MIT
// The guest <-> broker protocol, version 1: one JSON object per line.
#include "protocol.h"

#include <nlohmann/json.hpp>

namespace vmrd::vmem {

using json = nlohmann::json;

namespace {

Error fail(const std::string &code, const std::string &message)
{
	return Error{-EPROTO, code + ": " + message};
}

// An unsigned integer member within [0, limit].
bool number(const json &j, const char *key, uint64_t limit, uint64_t &out)
{
	auto it = j.find(key);
	if (it == j.end() || !it->is_number_unsigned())
		return false;
	out = it->get<uint64_t>();
	return out <= limit;
}

Result<json> object(std::string_view line)
{
	json j = json::parse(line.begin(), line.end(), nullptr, false);
	if (j.is_discarded() || !j.is_object())
		return fail("bad-json", "not a JSON object");
	auto v = j.find("v");
	if (v == j.end() || !v->is_number_integer() || v->get<int64_t>() != protocolVersion)
		return fail("bad-version", "this side speaks version " + std::to_string(protocolVersion));
	return j;
}

} // namespace

Result<Request> parseRequest(std::string_view line)
{
	auto j = object(line);
	if (!j)
		return j.error();
	Request r;
	if (!number(*j, "id", maxId, r.id) || r.id == 0)
		return fail("bad-request", "id must be a whole number from 1 to 2^53");
	auto type = j->find("type");
	if (type == j->end() || !type->is_string())
		return fail("bad-request", "type must be \"hello\" or \"resize\"");
	size_t expected = 3;
	if (*type == "hello") {
		r.kind = Request::Kind::Hello;
	} else if (*type == "resize") {
		r.kind = Request::Kind::Resize;
		if (!number(*j, "target", maxSize, r.target))
			return fail("bad-request", "target must be a whole number of bytes from 0 to 2^50");
		expected = 4;
	} else {
		return fail("bad-request", "type must be \"hello\" or \"resize\"");
	}
	if (j->size() != expected)
		return fail("bad-request", "unexpected members");
	return r;
}

uint64_t requestId(std::string_view line)
{
	json j = json::parse(line.begin(), line.end(), nullptr, false);
	uint64_t id = 0;
	return j.is_object() && number(j, "id", maxId, id) ? id : 0;
}

std::string formatRequest(const Request &r)
{
	json j{{"v", protocolVersion}, {"id", r.id}, {"type", r.kind == Request::Kind::Hello ? "hello" : "resize"}};
	if (r.kind == Request::Kind::Resize)
		j["target"] = r.target;
	return j.dump() + "\n";
}

namespace {

// The device state members that replies and size notices share.
bool deviceState(const json &j, DeviceState &s)
{
	return number(j, "block_size", maxSize, s.blockSize) && number(j, "min", maxSize, s.min) &&
	       number(j, "max", maxSize, s.max) && number(j, "size", maxSize, s.size) &&
	       number(j, "requested", maxSize, s.requested);
}

json stateMembers(const char *type, const DeviceState &s)
{
	return json{{"v", protocolVersion}, {"type", type},   {"block_size", s.blockSize}, {"min", s.min},
	            {"max", s.max},         {"size", s.size}, {"requested", s.requested}};
}

} // namespace

Result<BrokerMessage> parseBrokerMessage(std::string_view line)
{
	auto j = object(line);
	if (!j)
		return j.error();
	BrokerMessage m;
	auto type = j->find("type");
	if (type != j->end() && *type == "size") {
		m.kind = BrokerMessage::Kind::Size;
		if (!deviceState(*j, m.notice.state))
			return fail("bad-notice", "missing or malformed members");
		return m;
	}
	if (type != j->end() && *type == "reclaim") {
		m.kind = BrokerMessage::Kind::Reclaim;
		return m;
	}
	Reply &r = m.reply;
	if (type == j->end() || *type != "reply" || !number(*j, "id", maxId, r.id) || !deviceState(*j, r.state))
		return fail("bad-reply", "missing or malformed members");
	auto ok = j->find("ok");
	if (ok == j->end() || !ok->is_boolean())
		return fail("bad-reply", "ok must be true or false");
	r.ok = ok->get<bool>();
	if (!r.ok) {
		// Strings or absent: json::value() would throw on any other type.
		for (auto [key, out] : {std::pair{"error", &r.error}, std::pair{"message", &r.message}}) {
			auto member = j->find(key);
			if (member == j->end())
				continue;
			if (!member->is_string())
				return fail("bad-reply", std::string(key) + " must be a string");
			*out = member->get<std::string>();
		}
	}
	return m;
}

Result<Reply> parseReply(std::string_view line)
{
	auto m = parseBrokerMessage(line);
	if (!m)
		return m.error();
	if (m->kind != BrokerMessage::Kind::Reply)
		return fail("bad-reply", "not a reply");
	return m->reply;
}

std::string formatSizeNotice(const SizeNotice &n)
{
	return stateMembers("size", n.state).dump() + "\n";
}

std::string formatReclaim()
{
	return json{{"v", protocolVersion}, {"type", "reclaim"}}.dump() + "\n";
}

std::string formatReply(const Reply &r)
{
	json j = stateMembers("reply", r.state);
	j["id"] = r.id;
	j["ok"] = r.ok;
	if (!r.ok) {
		j["error"] = r.error;
		j["message"] = r.message;
	}
	// Replacement of invalid UTF-8: a message may quote what the guest sent.
	return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

std::optional<LineReader::Line> LineReader::next()
{
	for (;;) {
		size_t nl = buffer_.find('\n');
		if (discarding_) {
			if (nl == std::string::npos) {
				buffer_.clear();
				return std::nullopt;
			}
			buffer_.erase(0, nl + 1);
			discarding_ = false;
			continue;
		}
		if (nl == std::string::npos) {
			if (buffer_.size() < maxLine)
				return std::nullopt;
			buffer_.clear();
			discarding_ = true;
			return Line{"", true};
		}
		if (nl + 1 > maxLine) {
			buffer_.erase(0, nl + 1);
			return Line{"", true};
		}
		Line l{buffer_.substr(0, nl), false};
		buffer_.erase(0, nl + 1);
		return l;
	}
}

} // namespace vmrd::vmem
