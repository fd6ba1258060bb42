// SPDX-License-Identifier: MIT
// Runs one clause of vmrd-plugin-check in a child process.
#include "child.h"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

namespace vmrd::check {

void Report::send(const char *kind, const std::string &text)
{
	// One write per line, so the parent sees every line sent before a crash.
	std::string line = std::string(kind) + " " + text;
	for (char &c : line)
		if (c == '\n')
			c = ' ';
	line += '\n';
	for (size_t off = 0; off < line.size();) {
		const ssize_t n = ::write(fd_, line.data() + off, line.size() - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		off += static_cast<size_t>(n);
	}
}

namespace {

// Reads the child's lines until it closes the pipe or the deadline passes.
bool readUntilClosed(int fd, std::chrono::steady_clock::time_point deadline, std::string &out)
{
	for (;;) {
		const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
		        deadline - std::chrono::steady_clock::now());
		if (left.count() <= 0)
			return false;
		pollfd p{fd, POLLIN, 0};
		const int r = ::poll(&p, 1, static_cast<int>(left.count()));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r == 0 ? false : true;
		char buf[4096];
		const ssize_t n = ::read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return true;
		out.append(buf, static_cast<size_t>(n));
	}
}

} // namespace

Outcome runInChild(const std::function<void(Report &)> &body, std::chrono::seconds timeout)
{
	Outcome o;
	int fds[2];
	if (::pipe2(fds, O_CLOEXEC) != 0)
		return {Verdict::Fail, {std::string("cannot make a pipe: ") + std::strerror(errno)}};
	const pid_t pid = ::fork();
	if (pid < 0) {
		::close(fds[0]);
		::close(fds[1]);
		return {Verdict::Fail, {std::string("cannot fork: ") + std::strerror(errno)}};
	}
	if (pid == 0) {
		::close(fds[0]);
		const int null = ::open("/dev/null", O_RDWR);
		::dup2(null, STDOUT_FILENO);
		::dup2(null, STDERR_FILENO);
		::close(null);
		Report report(fds[1]);
		body(report);
		report.end();
		::_exit(0);
	}
	::close(fds[1]);
	std::string text;
	const bool closed = readUntilClosed(fds[0], std::chrono::steady_clock::now() + timeout, text);
	::close(fds[0]);
	if (!closed)
		::kill(pid, SIGKILL);
	int status = 0;
	while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
	}

	bool ended = false, failed = false, skipped = false;
	std::string lastStep = "starting";
	std::istringstream lines(text);
	for (std::string line; std::getline(lines, line);) {
		const std::string kind = line.substr(0, line.find(' '));
		const std::string rest = line.size() > kind.size() ? line.substr(kind.size() + 1) : "";
		if (kind == "step") {
			lastStep = rest;
		} else if (kind == "fail") {
			failed = true;
			o.details.push_back(rest);
		} else if (kind == "skip") {
			skipped = true;
			o.details.push_back(rest);
		} else if (kind == "note") {
			o.details.push_back(rest);
		} else if (kind == "end") {
			ended = true;
		}
	}
	if (!closed) {
		failed = true;
		o.details.push_back("no answer after " + std::to_string(timeout.count()) + " s while " + lastStep +
		                    " (a call that hangs)");
	} else if (WIFSIGNALED(status)) {
		failed = true;
		o.details.push_back(std::string("the plugin crashed with SIG") + sigabbrev_np(WTERMSIG(status)) +
		                    " while " + lastStep);
	} else if (!ended) {
		failed = true;
		o.details.push_back("the process exited with status " + std::to_string(WEXITSTATUS(status)) +
		                    " while " + lastStep + " (a plugin must not exit)");
	}
	o.verdict = failed ? Verdict::Fail : skipped ? Verdict::Skip : Verdict::Pass;
	return o;
}

} // namespace vmrd::check
