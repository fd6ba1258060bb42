// SPDX-License-Identifier: MIT
// Runs one clause of vmrd-plugin-check in a child process, so that a plugin that crashes or hangs fails its clause, not
// the checker.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace vmrd::check {

// What a clause's child reports, line by line, as it goes: the step it is
// about to take (so a crash can be placed), failures, and reasons to skip.
class Report
{
public:
	explicit Report(int fd) : fd_(fd) {}
	void step(const std::string &what) { send("step", what); }
	void fail(const std::string &what) { send("fail", what); }
	void skip(const std::string &what) { send("skip", what); }
	void note(const std::string &what) { send("note", what); }
	void end() { send("end", ""); }

private:
	void send(const char *kind, const std::string &text);
	int fd_;
};

enum class Verdict { Pass, Fail, Skip };

struct Outcome {
	Verdict verdict = Verdict::Pass;
	std::vector<std::string> details; // why it failed or was skipped, or what passed
};

// Forks, runs `body` in the child with its stdout and stderr on /dev/null,
// and turns what it reported into a verdict.  A child that dies, exits
// early or is still running after `timeout` fails, naming its last step.
Outcome runInChild(const std::function<void(Report &)> &body, std::chrono::seconds timeout);

} // namespace vmrd::check
