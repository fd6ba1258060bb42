// SPDX-License-Identifier: MIT
// Where control.http listens: a numeric address and port, checked by the config and used by the server.
#pragma once

#include <optional>
#include <string>
#include <sys/socket.h>

namespace vmrd {

// "127.0.0.1:9560" or "[::1]:9560": numeric only, so a typo never resolves
// to some other host.  A port alone ("9560") means loopback.
struct ListenAddress {
	sockaddr_storage addr{};
	socklen_t length = 0;
};
std::optional<ListenAddress> parseListenAddress(const std::string &text);

} // namespace vmrd
