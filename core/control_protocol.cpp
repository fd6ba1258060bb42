// SPDX-License-Identifier: MIT
// The control interface's pure parsers: request lines and listen addresses.
#include <algorithm>
#include <arpa/inet.h>
#include <cstring>
#include <netinet/in.h>

#include "control.h"

namespace vmrd {

using json = nlohmann::json;

std::optional<ListenAddress> parseListenAddress(const std::string &text)
{
	// A port alone listens on loopback only.
	if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos)
		return parseListenAddress("127.0.0.1:" + text);
	const size_t colon = text.rfind(':');
	if (colon == std::string::npos || colon + 1 >= text.size() || text.size() - colon > 6)
		return std::nullopt;
	const std::string portText = text.substr(colon + 1);
	if (portText.find_first_not_of("0123456789") != std::string::npos)
		return std::nullopt;
	const unsigned long port = std::stoul(portText);
	if (port == 0 || port > 65535)
		return std::nullopt;
	std::string host = text.substr(0, colon);
	ListenAddress a;
	if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
		auto *in6 = reinterpret_cast<sockaddr_in6 *>(&a.addr);
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(static_cast<uint16_t>(port));
		if (inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &in6->sin6_addr) != 1)
			return std::nullopt;
		a.length = sizeof(sockaddr_in6);
	} else {
		auto *in4 = reinterpret_cast<sockaddr_in *>(&a.addr);
		in4->sin_family = AF_INET;
		in4->sin_port = htons(static_cast<uint16_t>(port));
		if (inet_pton(AF_INET, host.c_str(), &in4->sin_addr) != 1)
			return std::nullopt;
		a.length = sizeof(sockaddr_in);
	}
	return a;
}

Result<ControlRequest> parseControlRequest(std::string_view line)
{
	const json request = json::parse(line, nullptr, false);
	if (request.is_discarded() || !request.is_object() || !request.contains("cmd") || !request["cmd"].is_string())
		return Error{-EINVAL, "not a request: send one JSON object per line, like {\"cmd\": \"status\"}"};
	ControlRequest r;
	const std::string name = request["cmd"].get<std::string>();
	auto known = std::find_if(std::begin(controlCommands), std::end(controlCommands),
	                          [&](const auto &c) { return name == c.second; });
	if (known == std::end(controlCommands))
		return Error{-EINVAL, "unknown command '" + name +
		                              "'; one of status, metrics, events, reclaim, reload, grow, shrink"};
	r.command = known->first;
	if (r.command == ControlCommand::Grow || r.command == ControlCommand::Shrink) {
		const auto bytes = request.find("bytes");
		if (bytes == request.end() || !bytes->is_number_unsigned() || bytes->get<uint64_t>() == 0)
			return Error{-EINVAL, name + " needs \"bytes\": a positive whole number"};
		r.bytes = bytes->get<uint64_t>();
	}
	return r;
}

} // namespace vmrd
