// SPDX-License-Identifier: MIT
// Parses control.http's ADDRESS:PORT.
#include "listen_address.h"

#include <arpa/inet.h>
#include <netinet/in.h>

namespace vmrd {

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

} // namespace vmrd
