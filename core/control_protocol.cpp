// SPDX-License-Identifier: MIT
// The control interface's request parser.
#include <algorithm>

#include "control.h"

namespace vmrd {

using json = nlohmann::json;

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
