// SPDX-License-Identifier: MIT
// vmrdctl: asks a running vmrd over its control socket for status, metrics and events, or for a resize.
#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstring>
#include <iostream>
#include <sys/socket.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "control.h"
#include "units.h"

namespace po = boost::program_options;
using json = nlohmann::json;
using namespace vmrd;

namespace {

constexpr const char *defaultSocket = "/run/vmrd/control.sock";

class Connection
{
public:
	~Connection()
	{
		if (fd_ >= 0)
			::close(fd_);
	}

	// An error message naming the socket, or empty.
	std::string open(const std::string &path)
	{
		sockaddr_un sun{};
		sun.sun_family = AF_UNIX;
		if (path.size() >= sizeof(sun.sun_path))
			return path + ": too long for a unix socket path";
		std::strncpy(sun.sun_path, path.c_str(), sizeof(sun.sun_path) - 1);
		fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr *>(&sun), sizeof(sun)) != 0)
			return "cannot connect to " + path + ": " + std::strerror(errno) +
			       " (is vmrd running, with control.socket set to this path? another path: --socket PATH)";
		return {};
	}

	bool send(const std::string &line)
	{
		size_t off = 0;
		while (off < line.size()) {
			ssize_t n = ::send(fd_, line.data() + off, line.size() - off, MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return false;
			off += static_cast<size_t>(n);
		}
		return true;
	}

	// The next line; false at end of stream or on error.
	bool readLine(std::string &line)
	{
		for (;;) {
			const size_t nl = buffer_.find('\n');
			if (nl != std::string::npos) {
				line = buffer_.substr(0, nl);
				buffer_.erase(0, nl + 1);
				return true;
			}
			char buf[65536];
			ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return false;
			buffer_.append(buf, static_cast<size_t>(n));
		}
	}

	void setTimeout(int seconds)
	{
		timeval tv{seconds, 0};
		::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}

private:
	int fd_ = -1;
	std::string buffer_;
};

std::string size(const json &j)
{
	return formatSize(j.get<uint64_t>());
}

std::string secs(double s)
{
	char buf[32];
	std::snprintf(buf, sizeof(buf), "%.1fs", s);
	return buf;
}

void printStatus(const json &s)
{
	const json &b = s["backend"];
	std::cout << "vmrd " << s["version"].get<std::string>() << ", pid " << s["pid"] << ", up "
	          << formatDuration(Micros(static_cast<int64_t>(s["uptime_s"].get<double>()) * 1000000))
	          << (s["dry_run"].get<bool>() ? ", dry run" : "") << "\n";
	std::cout << "backend    " << b["name"].get<std::string>() << ": "
	          << (b["connected"].get<bool>() ? "connected" : "NOT connected") << ", " << size(b["plugged"])
	          << " plugged (range " << size(b["min"]) << " to " << size(b["max"]) << ", block "
	          << size(b["block_size"]) << ")\n";
	if (b.contains("candidates")) { // a vmrd older than backend lists does not say: during an upgrade
		std::cout << "           chosen by backend.name: " << b["chosen_by"].get<std::string>() << "\n";
		for (const json &c : b["candidates"])
			if (c["verdict"] != "chosen")
				std::cout << "           not " << c["name"].get<std::string>() << " ("
				          << c["verdict"].get<std::string>() << "): " << c["reason"].get<std::string>()
				          << "\n";
	}
	if (!b["in_flight"].is_null())
		std::cout << "           in flight: " << b["in_flight"].get<std::string>() << "\n";
	const json &l = s["limits"];
	std::cout << "limits     min " << size(l["min"]) << ", max "
	          << (l["max"].get<uint64_t>() ? size(l["max"]) : std::string("the backend's")) << "\n";
	const json &m = s["memory"];
	char psi[96];
	std::snprintf(psi, sizeof(psi), "PSI some avg10 %.2f%%, full avg10 %.2f%%", m["psi_some_avg10"].get<double>(),
	              m["psi_full_avg10"].get<double>());
	std::cout << "memory     MemTotal " << size(m["mem_total"]) << ", MemAvailable " << size(m["mem_available"])
	          << ", " << psi << "\n";
	std::cout << "policy     " << s["policy"]["preset"].get<std::string>() << "\n";
	for (const auto &[key, value] : s["policy"]["state"].items())
		std::cout << "           " << key << ": " << value.get<std::string>() << "\n";
	std::cout << "psi\n";
	for (const auto &t : s["psi"])
		std::cout << "           " << t["trigger"].get<std::string>() << " on "
		          << t["source"].get<std::string>()
		          << (t["armed"].get<bool>() ? "" : " (source gone; re-armed when it is back)")
		          << (t.contains("configured") ? " (configured " + t["configured"].get<std::string>() +
		                                                 ", refused by the kernel)"
		                                       : "")
		          << "\n";
	std::cout << "signal     " << s.value("early_signal", std::string("?")) << "\n";
	std::cout << "decisions  (newest last; times since start)\n";
	if (s["decisions"].empty())
		std::cout << "           none yet\n";
	for (const auto &d : s["decisions"]) {
		const std::string action = d["action"].get<std::string>();
		std::cout << "  " << secs(d["t_s"].get<double>()) << "  "
		          << (action == "none" ? std::string("nothing") : action + " " + size(d["bytes"])) << ": "
		          << d["reason"].get<std::string>();
		if (!d["outcome"].get<std::string>().empty())
			std::cout << " -> " << d["outcome"].get<std::string>();
		std::cout << "\n";
	}
}

// One event-log record as a line for people.
std::string describeEvent(const json &e)
{
	const std::string type = e.value("type", "?");
	std::string out = secs(static_cast<double>(e.value("t_us", int64_t{0})) / 1e6) + "  ";
	const json &sample = e.contains("sample") ? e["sample"] : json::object();
	const std::string avail = sample.contains("mem_available") ? size(sample["mem_available"]) : "?";
	if (type == "pressure") {
		char sev[16];
		std::snprintf(sev, sizeof(sev), "%.0f%%", e.value("severity", 0.0) * 100);
		return out + "pressure  " + e.value("trigger", "") + ", stall " + sev + ", MemAvailable " + avail;
	}
	if (type == "decision") {
		const std::string action = e.value("action", "none");
		return out + "decision  " + (action == "none" ? "nothing" : action + " " + size(e["bytes"])) + ": " +
		       e.value("reason", "");
	}
	if (type == "result") {
		const int code = e.value("code", 0);
		return out + "result    " + e.value("action", "") + " " + size(e["bytes"]) + ": " + size(e["done"]) +
		       " done in " + formatDuration(Micros(e.value("call_us", int64_t{0}))) +
		       (code ? ", failed: " + e.value("message", std::to_string(code)) : "") + "; " +
		       size(e["state"]["plugged"]) + " plugged";
	}
	const std::string label = type == "check" ? "check     " : type == "allocations" ? "allocs    " : "sample    ";
	return out + label + "MemTotal " + (sample.contains("mem_total") ? size(sample["mem_total"]) : "?") +
	       ", MemAvailable " + avail;
}

int run(int argc, char **argv)
{
	std::string socket = defaultSocket;
	std::string command, sizeText;
	bool asJson = false;
	po::options_description visible("Usage: vmrdctl [--socket PATH] COMMAND [SIZE] [--json]\n\n"
	                                "Commands:\n"
	                                "  status       backend, sizes, policy state, PSI triggers, last decisions\n"
	                                "  metrics      Prometheus text exposition\n"
	                                "  events       follow the decisions and events live (Ctrl-C stops)\n"
	                                "  reclaim      run a shrink check now\n"
	                                "  reload       reload the daemon's config file\n"
	                                "  grow SIZE    plug SIZE (like 512M) now, within the limits of the config\n"
	                                "  shrink SIZE  unplug SIZE now, within the limits of the config\n\n"
	                                "The policy treats a grow like any other: memory that stays spare\n"
	                                "for policy.shrink_hold is given back.\n\nOptions");
	// clang-format off
	visible.add_options()
		("socket,s", po::value<std::string>(&socket),
		 "the daemon's control socket (default /run/vmrd/control.sock)")
		("json", po::bool_switch(&asJson), "print the daemon's JSON as it is (status, events)")
		("help,h", "print this help, exit");
	po::options_description all;
	all.add(visible).add_options()
		("command", po::value<std::string>(&command))
		("size", po::value<std::string>(&sizeText));
	// clang-format on
	po::positional_options_description positional;
	positional.add("command", 1).add("size", 1);
	po::variables_map vm;
	if (auto code = parseCommandLine(argc, argv, "vmrdctl", visible, all, positional, vm))
		return *code;
	const auto known = std::find_if(std::begin(controlCommands), std::end(controlCommands),
	                                [&](const auto &c) { return command == c.second; });
	const bool resize = known != std::end(controlCommands) &&
	                    (known->first == ControlCommand::Grow || known->first == ControlCommand::Shrink);
	if (known == std::end(controlCommands)) {
		std::cerr << "vmrdctl: " << (command.empty() ? "no command" : "unknown command '" + command + "'")
		          << "; one of status, metrics, events, reclaim, reload, grow, shrink\nTry 'vmrdctl --help'.\n";
		return EX_USAGE;
	}
	json request{{"cmd", command}};
	if (resize) {
		const auto bytes = parseSize(sizeText);
		if (!bytes || *bytes == 0) {
			std::cerr << "vmrdctl: " << command << " needs a size like 512M or 2G"
			          << (sizeText.empty() ? "" : ", not '" + sizeText + "'")
			          << "\nTry 'vmrdctl --help'.\n";
			return EX_USAGE;
		}
		request["bytes"] = *bytes;
	} else if (!sizeText.empty()) {
		std::cerr << "vmrdctl: " << command << " takes no argument ('" << sizeText
		          << "')\nTry 'vmrdctl --help'.\n";
		return EX_USAGE;
	}
	std::signal(SIGPIPE, SIG_IGN);
	Connection c;
	if (auto err = c.open(socket); !err.empty()) {
		std::cerr << "vmrdctl: " << err << "\n";
		return EX_UNAVAILABLE;
	}
	// A reload or a check waits at most for a config parse or a policy step.
	c.setTimeout(command == "events" ? 0 : 30);
	std::string line;
	if (!c.send(request.dump() + "\n") || !c.readLine(line)) {
		std::cerr << "vmrdctl: no reply from vmrd on " << socket << ": "
		          << (errno == EAGAIN ? "timed out" : std::strerror(errno)) << "\n";
		return EX_UNAVAILABLE;
	}
	const json reply = json::parse(line, nullptr, false);
	if (reply.is_discarded() || !reply.is_object()) {
		std::cerr << "vmrdctl: the reply on " << socket << " is not JSON: " << line.substr(0, 200) << "\n";
		return EX_PROTOCOL;
	}
	if (!reply.value("ok", false)) {
		std::cerr << "vmrdctl: " << command << ": " << reply.value("error", "failed, no reason given") << "\n";
		return 1;
	}
	try {
		if (command == "status") {
			if (asJson)
				std::cout << reply.dump(2) << "\n";
			else
				printStatus(reply);
		} else if (command == "metrics") {
			std::cout << reply.value("text", "");
		} else if (command == "reclaim" || resize) {
			std::cout << reply.value("decision", "") << "\n";
		} else if (command == "reload") {
			std::cout << "reloaded " << reply.value("reloaded", "") << "\n";
		} else {
			while (c.readLine(line)) {
				if (asJson) {
					std::cout << line << std::endl;
					continue;
				}
				const json e = json::parse(line, nullptr, false);
				std::cout << (e.is_object() ? describeEvent(e) : line) << std::endl;
			}
			std::cerr << "vmrdctl: vmrd closed the connection (stopped?)\n";
			return EX_UNAVAILABLE;
		}
	} catch (const json::exception &e) {
		std::cerr << "vmrdctl: unexpected reply from vmrd (" << e.what() << "); try --json\n";
		return EX_PROTOCOL;
	}
	return 0;
}

} // namespace

int main(int argc, char **argv)
{
	try {
		return run(argc, argv);
	} catch (const std::exception &e) {
		std::cerr << "vmrdctl: " << e.what() << "\n";
		return 1;
	}
}
