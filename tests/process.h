// SPDX-License-Identifier: MIT
// Runs a program for a test, capturing its exit code, stdout, stderr and sd_notify messages.
#pragma once

#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <optional>
#include <poll.h>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "temp_dir.h"

extern char **environ;

// In a cross build the programs a test starts are the target's too, and the
// kernel runs them only through the cross file's wrapper (qemu-user, no
// binfmt; tests/meson.build passes it in VMRD_TEST_WRAPPER): its words, each
// followed by a space, to put before a program in a shell command; empty in
// a native build.
inline std::string testWrapper()
{
	const char *w = std::getenv("VMRD_TEST_WRAPPER");
	return w && *w ? std::string(w) + " " : "";
}

// A command line of the build's programs, as the kernel can run it: after
// testWrapper()'s words, for Process and for programs that start others
// (fd-holder).
inline std::vector<std::string> wrapped(const std::vector<std::string> &args)
{
	std::vector<std::string> command;
	std::istringstream words(testWrapper());
	for (std::string word; words >> word;)
		command.push_back(word);
	command.insert(command.end(), args.begin(), args.end());
	return command;
}

class Process
{
public:
	// `env`: "KEY=value" entries added to the child's environment.
	explicit Process(const std::vector<std::string> &args, const std::vector<std::string> &env = {})
	{
		out_ = dir_.path() + "/stdout";
		err_ = dir_.path() + "/stderr";
		// Every child gets a notify socket of its own, so a vmrd under test
		// tells this test it is ready, and never the systemd the test
		// runner itself may run under.
		std::vector<std::string> envStrings;
		for (char **e = environ; *e; e++)
			if (std::strncmp(*e, "NOTIFY_SOCKET=", 14) != 0)
				envStrings.emplace_back(*e);
		if (const std::string notify = openNotifySocket(); !notify.empty())
			envStrings.push_back("NOTIFY_SOCKET=" + notify);
		envStrings.insert(envStrings.end(), env.begin(), env.end());
		// The build's programs go through the wrapper; the system's (a
		// shell, env) are the host's, and are given the build's program
		// wrapped already.
		const bool system = args.at(0).rfind("/bin/", 0) == 0 || args.at(0).rfind("/usr/bin/", 0) == 0;
		const std::vector<std::string> command = system ? args : wrapped(args);
		// Built before fork: the child of a threaded parent may only call
		// async-signal-safe functions, which allocation is not.
		std::vector<char *> argv, envp;
		for (const auto &a : command)
			argv.push_back(const_cast<char *>(a.c_str()));
		argv.push_back(nullptr);
		for (const auto &e : envStrings)
			envp.push_back(const_cast<char *>(e.c_str()));
		envp.push_back(nullptr);
		pid_ = fork();
		if (pid_ == 0) {
			int o = open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
			int e = open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
			dup2(o, 1);
			dup2(e, 2);
			int null = open("/dev/null", O_RDONLY);
			dup2(null, 0);
			execve(argv[0], argv.data(), envp.data());
			_exit(127);
		}
	}
	~Process()
	{
		if (pid_ > 0 && !exited_) {
			kill(pid_, SIGKILL);
			waitpid(pid_, nullptr, 0);
		}
		stopListening();
	}
	Process(const Process &) = delete;
	Process &operator=(const Process &) = delete;

	// Waits up to `timeout`; returns the exit code, or -1 on timeout, or
	// 128+signal if it was killed by a signal.
	int wait(std::chrono::milliseconds timeout = std::chrono::seconds(30))
	{
		auto end = std::chrono::steady_clock::now() + timeout;
		while (!exited_) {
			int status;
			pid_t r = waitpid(pid_, &status, WNOHANG);
			if (r == pid_) {
				exited_ = true;
				code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
				break;
			}
			if (std::chrono::steady_clock::now() >= end)
				return -1;
			std::this_thread::sleep_for(std::chrono::milliseconds(5));
		}
		return code_;
	}

	// Waits until stderr, or stdout, contains `text`, up to `timeout`.
	bool waitForStderr(const std::string &text, std::chrono::milliseconds timeout)
	{
		return waitForText(err_, text, timeout);
	}
	bool waitForStdout(const std::string &text, std::chrono::milliseconds timeout)
	{
		return waitForText(out_, text, timeout);
	}

	// Waits up to `timeout` until the program sends READY=1 on its notify
	// socket, as vmrd does once it runs; false if it exits first or the time
	// runs out.  Then stops listening: vmrd sends STATUS= after every event,
	// which would only fill the queue of a socket nobody reads (vmrd never
	// waits on it; with no listener the kernel refuses at once).  A test that
	// wants the later messages reads them with nextNotification() instead.
	bool waitForReady(std::chrono::milliseconds timeout)
	{
		auto end = std::chrono::steady_clock::now() + timeout;
		while (!readySent()) {
			auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
			        end - std::chrono::steady_clock::now());
			if (left <= std::chrono::milliseconds(0))
				return false;
			// In slices, so that a program that dies before it is ready
			// fails the wait at once rather than at the timeout.
			if (!nextNotification(std::min(left, std::chrono::milliseconds(50))) &&
			    wait(std::chrono::milliseconds(0)) != -1) {
				while (nextNotification(std::chrono::milliseconds(0)))
					;
				return readySent();
			}
		}
		stopListening();
		return true;
	}

	// The next sd_notify datagram, within `timeout`; it is also kept in notifications().
	std::optional<std::string> nextNotification(std::chrono::milliseconds timeout)
	{
		pollfd p{notifyFd_, POLLIN, 0};
		if (notifyFd_ < 0 || poll(&p, 1, static_cast<int>(timeout.count())) <= 0)
			return std::nullopt;
		char buf[4096];
		ssize_t n = recv(notifyFd_, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0)
			return std::nullopt;
		notifications_.emplace_back(buf, static_cast<size_t>(n));
		return notifications_.back();
	}
	// Every notification received so far, oldest first.
	const std::vector<std::string> &notifications() const { return notifications_; }
	// Whether a notification received so far has the line READY=1; the
	// daemon may send STATUS=... or WATCHDOG=1 lines too, alone or with it.
	bool readySent() const
	{
		for (const auto &n : notifications_) {
			std::istringstream lines(n);
			for (std::string line; std::getline(lines, line);)
				if (line == "READY=1")
					return true;
		}
		return false;
	}

	void signal(int sig) { kill(pid_, sig); }
	pid_t pid() const { return pid_; }
	std::string out() const { return slurp(out_); }
	std::string err() const { return slurp(err_); }

private:
	// A datagram socket with an abstract address the kernel picks (autobind):
	// unique, no path length limit, nothing to remove.  Its name for
	// NOTIFY_SOCKET, with "@" for the leading NUL; empty if it failed, and
	// then the child is not told of any.
	std::string openNotifySocket()
	{
		notifyFd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		sockaddr_un sun{};
		sun.sun_family = AF_UNIX;
		socklen_t len = sizeof(sa_family_t);
		if (notifyFd_ < 0 || bind(notifyFd_, reinterpret_cast<sockaddr *>(&sun), len) != 0)
			return "";
		len = sizeof(sun);
		if (getsockname(notifyFd_, reinterpret_cast<sockaddr *>(&sun), &len) != 0 ||
		    len <= offsetof(sockaddr_un, sun_path) + 1)
			return "";
		return "@" + std::string(sun.sun_path + 1, len - offsetof(sockaddr_un, sun_path) - 1);
	}

	bool waitForText(const std::string &path, const std::string &text, std::chrono::milliseconds timeout)
	{
		auto end = std::chrono::steady_clock::now() + timeout;
		while (std::chrono::steady_clock::now() < end) {
			if (slurp(path).find(text) != std::string::npos)
				return true;
			if (!exited_ && wait(std::chrono::milliseconds(0)) != -1)
				return slurp(path).find(text) != std::string::npos;
			std::this_thread::sleep_for(std::chrono::milliseconds(10));
		}
		return false;
	}

	void stopListening()
	{
		if (notifyFd_ >= 0)
			close(notifyFd_);
		notifyFd_ = -1;
	}

	static std::string slurp(const std::string &path)
	{
		std::ifstream in(path);
		std::stringstream s;
		s << in.rdbuf();
		return s.str();
	}

	TempDir dir_;
	std::string out_, err_;
	pid_t pid_ = -1;
	bool exited_ = false;
	int code_ = -1;
	int notifyFd_ = -1;
	std::vector<std::string> notifications_;
};

// Why vmrd cannot run on this machine's real PSI, or empty: tests that
// need it skip with this reason.
inline std::string realPsiMissing()
{
	if (access("/proc/pressure/memory", R_OK) != 0)
		return "/proc/pressure/memory is absent: this kernel has no PSI (boot with psi=1)";
	if (geteuid() != 0)
		return "PSI triggers need root here";
	return "";
}

struct Outcome {
	int code;
	std::string out, err;
};

// Runs a program to its end (at most 30 s).
inline Outcome runProgram(const std::string &program, std::vector<std::string> args)
{
	args.insert(args.begin(), program);
	Process p(args);
	int code = p.wait(std::chrono::seconds(30));
	return {code, p.out(), p.err()};
}
