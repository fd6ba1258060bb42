// SPDX-License-Identifier: MIT
// The guest <-> broker protocol, version 1: one JSON object per line (see README.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "result.h"

namespace vmrd::vmem {

constexpr int protocolVersion = 1;
// Longest line either side accepts, newline included; longer ones are an error.
constexpr size_t maxLine = 1024;
// Largest size or id either side accepts: 2^50 bytes (1 PiB) and 2^53.
constexpr uint64_t maxSize = 1ull << 50;
constexpr uint64_t maxId = 1ull << 53;

// Guest -> broker.  `hello` asks for the state; `resize` asks for a new
// requested size (bytes).
struct Request {
	enum class Kind { Hello, Resize };
	Kind kind = Kind::Hello;
	uint64_t id = 0;
	uint64_t target = 0; // Resize only
};

// What the broker knows of the VM's virtio-mem device, in bytes.
struct DeviceState {
	uint64_t blockSize = 0;
	uint64_t min = 0; // the range the host allows this VM
	uint64_t max = 0;
	uint64_t size = 0;      // plugged now (the device's `size`)
	uint64_t requested = 0; // the device's `requested-size`
};

// Broker -> guest: the answer to request `id` (0 when the request was too
// malformed to have one), with the state after it.
struct Reply {
	uint64_t id = 0;
	bool ok = true;
	DeviceState state;
	std::string error;   // a code: bad-json, bad-version, bad-request, too-long, rate-limited, host-error
	std::string message; // for people
};

// Broker -> guest, unasked: the device's state changed without this guest
// asking (QEMU reported a new size, someone else set requested-size, the
// broker reconnected).  No id: it answers nothing, and it may arrive between
// a request and its reply.
//   {"v":1,"type":"size","block_size":...,"min":...,"max":...,"size":...,"requested":...}
struct SizeNotice {
	DeviceState state;
};

// Broker -> guest, unasked: another VM needs memory that the host does not
// have, and this one has not asked to grow lately.  No id, no members: the
// guest gives back what it can spare now and keeps the rest.  Guests from
// before this message ignore it as malformed (with a warning).
//   {"v":1,"type":"reclaim"}

// What the guest reads from the broker: a reply, a size notice or a reclaim.
struct BrokerMessage {
	enum class Kind { Reply, Size, Reclaim };
	Kind kind = Kind::Reply;
	Reply reply;       // Kind::Reply
	SizeNotice notice; // Kind::Size
};

// Parse and validate; an error's message starts with the error code and a colon.
Result<Request> parseRequest(std::string_view line);
// The id of a request line that parseRequest may refuse for another
// reason, or 0 when it has no valid one: so that even a refusal reaches
// the request that caused it.
uint64_t requestId(std::string_view line);
Result<Reply> parseReply(std::string_view line); // a reply only
Result<BrokerMessage> parseBrokerMessage(std::string_view line);
std::string formatRequest(const Request &r);       // with the trailing newline
std::string formatReply(const Reply &r);           // with the trailing newline
std::string formatSizeNotice(const SizeNotice &n); // with the trailing newline
std::string formatReclaim();                       // with the trailing newline

// Splits a byte stream into lines of at most maxLine bytes.  A longer line is
// dropped up to its newline and reported once as too long.
class LineReader
{
public:
	// Feeds bytes; then call next() until it returns nothing.
	void feed(std::string_view bytes) { buffer_.append(bytes.data(), bytes.size()); }
	struct Line {
		std::string text;
		bool tooLong = false;
	};
	std::optional<Line> next();
	void clear()
	{
		buffer_.clear();
		discarding_ = false;
	}

private:
	std::string buffer_;
	bool discarding_ = false;
};

} // namespace vmrd::vmem
