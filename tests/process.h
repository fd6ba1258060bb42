// SPDX-License-Identifier: MIT
// Runs a program for a test, capturing its exit code, stdout and stderr.
#pragma once

#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "temp_dir.h"

class Process
{
public:
	explicit Process(const std::vector<std::string> &args)
	{
		out_ = dir_.path() + "/stdout";
		err_ = dir_.path() + "/stderr";
		pid_ = fork();
		if (pid_ == 0) {
			int o = open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
			int e = open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
			dup2(o, 1);
			dup2(e, 2);
			int null = open("/dev/null", O_RDONLY);
			dup2(null, 0);
			std::vector<char *> argv;
			argv.reserve(args.size() + 1);
			for (const auto &a : args)
				argv.push_back(const_cast<char *>(a.c_str()));
			argv.push_back(nullptr);
			execv(argv[0], argv.data());
			_exit(127);
		}
	}
	~Process()
	{
		if (pid_ > 0 && !exited_) {
			kill(pid_, SIGKILL);
			waitpid(pid_, nullptr, 0);
		}
	}

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

	// Waits until stderr contains `text`, up to `timeout`.
	bool waitForStderr(const std::string &text, std::chrono::milliseconds timeout)
	{
		auto end = std::chrono::steady_clock::now() + timeout;
		while (std::chrono::steady_clock::now() < end) {
			if (err().find(text) != std::string::npos)
				return true;
			if (!exited_ && wait(std::chrono::milliseconds(0)) != -1)
				return err().find(text) != std::string::npos;
			std::this_thread::sleep_for(std::chrono::milliseconds(10));
		}
		return false;
	}

	void signal(int sig) { kill(pid_, sig); }
	pid_t pid() const { return pid_; }
	std::string out() const { return slurp(out_); }
	std::string err() const { return slurp(err_); }

private:
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
