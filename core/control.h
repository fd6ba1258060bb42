// SPDX-License-Identifier: MIT
// The control interface: a unix socket for vmrdctl and an optional HTTP listener for /metrics.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "event_loop.h"
#include "key_positions.h"
#include "listen_address.h"
#include "result.h"

namespace vmrd {

struct ControlConfig;

// The protocol, one JSON object per line each way:
//   request  {"cmd": "status"}       (status, metrics, events, reclaim, reload)
//            {"cmd": "grow", "bytes": 268435456}    (grow, shrink)
//   reply    {"ok": true, ...}  or  {"ok": false, "error": "what is wrong"}
// After the reply to "events", every event the daemon publishes follows as
// one line, until the client closes.  A bad request gets an error reply; a
// line over maxRequest bytes gets one and the connection is closed.
//
// The server's listeners and clients are watched by the daemon's EventLoop.
// One request line, checked: a known command, and a size for grow and
// shrink.  The error says what a request looks like.
enum class ControlCommand { Status, Metrics, Events, Reclaim, Reload, Grow, Shrink };
// The names on the wire, which vmrdctl sends.
inline constexpr std::pair<ControlCommand, const char *> controlCommands[] = {
        {ControlCommand::Status, "status"},   {ControlCommand::Metrics, "metrics"}, {ControlCommand::Events, "events"},
        {ControlCommand::Reclaim, "reclaim"}, {ControlCommand::Reload, "reload"},   {ControlCommand::Grow, "grow"},
        {ControlCommand::Shrink, "shrink"},
};

struct ControlRequest {
	ControlCommand command = ControlCommand::Status;
	uint64_t bytes = 0; // grow and shrink only
};
Result<ControlRequest> parseControlRequest(std::string_view line);

class ControlServer
{
public:
	using Clock = std::chrono::steady_clock;
	// Answers one request (not "events"); the reply gets "ok": true added.
	using Handler = std::function<Result<nlohmann::json>(const ControlRequest &request)>;

	static constexpr size_t maxRequest = 4096;
	static constexpr size_t maxClients = 32;
	// A subscriber that lets this much pile up unread is dropped.
	static constexpr size_t maxBacklog = 1 << 20;
	// A client that sends nothing for this long is closed: it holds a slot.
	static constexpr auto idleTimeout = std::chrono::seconds(30);

	// Binds control.socket (mode 0600) and control.http as configured.  A
	// stale socket file is replaced; one a live daemon answers on is not.
	// Errors name the config line (`where`).
	static Result<std::unique_ptr<ControlServer>> open(const ControlConfig &config, const KeyPositions &where,
	                                                   EventLoop &loop, Handler handler);
	~ControlServer();
	ControlServer(const ControlServer &) = delete;
	ControlServer &operator=(const ControlServer &) = delete;

	// Sends one line (ending in a newline) to every "events" subscriber.
	void publish(const std::string &line);
	bool hasSubscribers() const { return subscribers_ > 0; }

private:
	struct Client {
		int fd = -1;
		bool http = false;
		bool subscribed = false;
		bool closing = false; // close once `out` is written
		std::string in, out;
		Clock::time_point deadline;
	};

	ControlServer(EventLoop &loop, Handler handler);
	Status listenUnix(const std::string &path);
	Status listenHttp(const std::string &address);
	void accept(int listener, bool http);
	void onClient(uint64_t id, uint32_t events);
	// Closes the clients silent past idleTimeout; sets the timer for the next.
	void closeIdle();
	void onReadable(uint64_t id, Client &c);
	void answer(Client &c, const std::string &line);
	void answerHttp(Client &c);
	// Writes what `out` holds; false if that closed the client.
	bool flushOk(uint64_t id, Client &c);
	void close(uint64_t id);

	EventLoop &loop_;
	EventLoop::Timer idleTimer_;
	Handler handler_;
	int unixFd_ = -1, httpFd_ = -1;
	std::string socketPath_;
	std::map<uint64_t, Client> clients_;
	uint64_t nextId_ = 1;
	size_t subscribers_ = 0;
};

} // namespace vmrd
