/* SPDX-License-Identifier: MIT */
/* Mock backend: a simulated memory device with fault injection, and the reference plugin for vendors. */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <vmrd/plugin.h>

VMRD_PLUGIN_MANIFEST("mock", "1.0.0", "vmrd project");

struct vmrd_backend {
	struct vmrd_host host;
	uint64_t block_size;
	uint64_t min_bytes;
	uint64_t max_bytes;
	uint64_t plugged;
	/* Fault injection. */
	uint64_t calls;          /* plug/unplug/release_all calls so far */
	uint64_t fail_call;      /* fail this call number (1-based), 0 = never */
	int fail_errno;          /* positive errno used for injected failures */
	double fail_probability; /* 0..1 */
	uint64_t rng;            /* xorshift64 state, from `seed` */
	unsigned grant_percent;  /* grant this share of each request */
	uint64_t latency_ms;     /* added to every resize call */
	uint64_t hang_call;      /* this call number hangs ... */
	uint64_t hang_ms;        /* ... for this long */
	uint64_t crash_call;     /* this call number aborts the process */
	char *state_file;        /* `plugged` lives here, or NULL: see load_state */
	int events;              /* option `events`: raise an event when state_file changes */
	int event_fd;            /* inotify on state_file's directory, or -1 */
	FILE *trace;             /* JSON lines of every call, or NULL */
	/* Option `held_fds`: what is plugged above `min` lives in fds, one
	 * memfd per block named block-N, as Gunyah hints do (ABI 1.1's
	 * export_fds and adopt_fds). */
	int held_fds;
	struct held_block {
		int fd;
		uint64_t number; /* N */
	} * held;                /* oldest first */
	uint64_t n_held, next_held;
};

static void set_msg(char *msg, uint32_t msg_size, const char *fmt, ...)
{
	va_list ap;

	if (msg_size == 0)
		return;
	va_start(ap, fmt);
	/* clang-tidy 14's analyzer loses va_start on some callers' paths: a false report. */
	vsnprintf(msg, msg_size, fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
	va_end(ap);
}

static void host_log(const struct vmrd_backend *b, int level, const char *fmt, ...)
{
	char line[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized): as in set_msg */
	va_end(ap);
	b->host.log(b->host.host_data, level, line);
}

/* Parse "<digits>[K|M|G|T]" (binary units, optional "iB"/"B") into bytes. */
static int parse_size(const char *text, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (text[0] < '0' || text[0] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno)
		return -EINVAL;
	switch (*end) {
	case 'K':
		shift = 10;
		end++;
		break;
	case 'M':
		shift = 20;
		end++;
		break;
	case 'G':
		shift = 30;
		end++;
		break;
	case 'T':
		shift = 40;
		end++;
		break;
	default:
		break;
	}
	if (shift && strcmp(end, "iB") == 0)
		end += 2;
	else if (shift && strcmp(end, "B") == 0)
		end += 1;
	if (*end != '\0' || (shift && v > (UINT64_MAX >> shift)))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_uint(const char *text, uint64_t *out)
{
	char *end;

	if (text[0] < '0' || text[0] > '9')
		return -EINVAL;
	errno = 0;
	*out = strtoull(text, &end, 10);
	return errno || *end != '\0' ? -EINVAL : 0;
}

static int apply_option(struct vmrd_backend *b, const char *key, const char *value)
{
	uint64_t v;
	char *end;

	if (strcmp(key, "block_size") == 0)
		return parse_size(value, &b->block_size);
	if (strcmp(key, "min") == 0)
		return parse_size(value, &b->min_bytes);
	if (strcmp(key, "max") == 0)
		return parse_size(value, &b->max_bytes);
	if (strcmp(key, "initial") == 0)
		return parse_size(value, &b->plugged);
	if (strcmp(key, "fail_call") == 0)
		return parse_uint(value, &b->fail_call);
	if (strcmp(key, "fail_errno") == 0) {
		if (parse_uint(value, &v) || v == 0 || v > 4095)
			return -EINVAL;
		b->fail_errno = (int)v;
		return 0;
	}
	if (strcmp(key, "fail_probability") == 0) {
		errno = 0;
		b->fail_probability = strtod(value, &end);
		if (errno || end == value || *end != '\0' || !(b->fail_probability >= 0.0) || b->fail_probability > 1.0)
			return -EINVAL;
		return 0;
	}
	if (strcmp(key, "seed") == 0) {
		if (parse_uint(value, &v))
			return -EINVAL;
		b->rng = v ? v : 1;
		return 0;
	}
	if (strcmp(key, "grant_percent") == 0) {
		/* Above 100 the device does more than it is asked. */
		if (parse_uint(value, &v) || v > 1000)
			return -EINVAL;
		b->grant_percent = (unsigned)v;
		return 0;
	}
	if (strcmp(key, "latency_ms") == 0)
		return parse_uint(value, &b->latency_ms);
	if (strcmp(key, "hang_call") == 0)
		return parse_uint(value, &b->hang_call);
	if (strcmp(key, "hang_ms") == 0)
		return parse_uint(value, &b->hang_ms);
	if (strcmp(key, "crash_call") == 0)
		return parse_uint(value, &b->crash_call);
	if (strcmp(key, "held_fds") == 0) {
		if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0)
			return -EINVAL;
		b->held_fds = strcmp(value, "true") == 0;
		return 0;
	}
	if (strcmp(key, "state_file") == 0) {
		free(b->state_file);
		b->state_file = strdup(value);
		return b->state_file ? 0 : -ENOMEM;
	}
	if (strcmp(key, "events") == 0) {
		if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0)
			return -EINVAL;
		b->events = strcmp(value, "true") == 0;
		return 0;
	}
	if (strcmp(key, "trace") == 0) {
		if (b->trace)
			fclose(b->trace);
		b->trace = fopen(value, "ae");
		return b->trace ? 0 : -errno;
	}
	return -ENOENT;
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static double next_random(struct vmrd_backend *b)
{
	b->rng ^= b->rng << 13;
	b->rng ^= b->rng >> 7;
	b->rng ^= b->rng << 17;
	return (double)(b->rng >> 11) / (double)(UINT64_C(1) << 53);
}

/* Common prologue of every resize call: count it, apply latency, hangs and
 * injected failures.  Returns 0 or the injected negative errno. */
static int inject(struct vmrd_backend *b, const char *op, char *msg, uint32_t msg_size)
{
	uint64_t call = ++b->calls;

	if (b->latency_ms)
		sleep_ms(b->latency_ms);
	if (b->crash_call == call) {
		host_log(b, VMRD_LOG_ERROR, "injected crash in call %" PRIu64 " (%s)", call, op);
		abort();
	}
	if (b->hang_call == call) {
		host_log(b, VMRD_LOG_WARNING, "injected hang of %" PRIu64 " ms in call %" PRIu64 " (%s)", b->hang_ms,
		         call, op);
		sleep_ms(b->hang_ms);
	}
	if (b->fail_call == call || (b->fail_probability > 0.0 && next_random(b) < b->fail_probability)) {
		set_msg(msg, msg_size, "injected failure of call %" PRIu64 " (%s): %s", call, op,
		        strerror(b->fail_errno));
		return -b->fail_errno;
	}
	return 0;
}

static void trace(struct vmrd_backend *b, const char *op, uint64_t bytes, int ret, uint64_t done)
{
	if (!b->trace)
		return;
	fprintf(b->trace,
	        "{\"t_ns\":%" PRIu64 ",\"call\":%" PRIu64 ",\"op\":\"%s\",\"bytes\":%" PRIu64
	        ",\"ret\":%d,\"done\":%" PRIu64 ",\"plugged\":%" PRIu64 "}\n",
	        b->host.monotonic_ns(b->host.host_data), b->calls, op, bytes, ret, done, b->plugged);
	fflush(b->trace);
}

static uint64_t granted(const struct vmrd_backend *b, uint64_t bytes)
{
	uint64_t g = bytes / 100 > UINT64_MAX / 1000
	                     ? UINT64_MAX
	                     : bytes / 100 * b->grant_percent + bytes % 100 * b->grant_percent / 100;

	return g - g % b->block_size;
}

/* With `state_file`, the device's state outlives the process, like a real
 * device's: the file holds the plugged bytes as one decimal number.  It is
 * read before every call (so a test can change the device behind the
 * daemon's back) and replaced atomically after every change. */
static int load_state(struct vmrd_backend *b, char *msg, uint32_t msg_size)
{
	char text[32] = "";
	uint64_t v;
	size_t n;
	FILE *f;

	if (!b->state_file)
		return 0;
	f = fopen(b->state_file, "re");
	if (!f) {
		set_msg(msg, msg_size, "state_file %s: %s", b->state_file, strerror(errno));
		return -errno;
	}
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	if (n > 0 && text[n - 1] == '\n')
		text[n - 1] = '\0';
	if (parse_uint(text, &v) || v % b->block_size || v < b->min_bytes || v > b->max_bytes) {
		set_msg(msg, msg_size,
		        "state_file %s: '%s' is not a byte count on the %" PRIu64 "-byte block within %" PRIu64
		        " to %" PRIu64,
		        b->state_file, text, b->block_size, b->min_bytes, b->max_bytes);
		return -EBADMSG;
	}
	b->plugged = v;
	return 0;
}

static int save_state(struct vmrd_backend *b)
{
	char tmp[4096];
	FILE *f;

	if (!b->state_file)
		return 0;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", b->state_file) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	f = fopen(tmp, "we");
	if (!f)
		return -errno;
	fprintf(f, "%" PRIu64 "\n", b->plugged);
	if (fclose(f) != 0 || rename(tmp, b->state_file) != 0)
		return -errno;
	return 0;
}

/* With `events`, an inotify fd tells vmrd that state_file changed.  It
 * watches the directory, not the file: the mock replaces the file by a
 * rename, which would leave a watch on the file behind on the old inode.  So
 * any file written or renamed into that directory makes the fd readable, and
 * vmrd then reads the state once more than needed: harmless. */
static int watch_state_file(struct vmrd_backend *b, char *msg, uint32_t msg_size)
{
	char dir[4096];
	const char *slash = strrchr(b->state_file, '/');

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == b->state_file)
		snprintf(dir, sizeof(dir), "/");
	else if (snprintf(dir, sizeof(dir), "%.*s", (int)(slash - b->state_file), b->state_file) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	b->event_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (b->event_fd < 0 || inotify_add_watch(b->event_fd, dir, IN_CLOSE_WRITE | IN_MOVED_TO) < 0) {
		int err = errno;

		set_msg(msg, msg_size, "events: cannot watch %s: %s", dir, strerror(err));
		return -err;
	}
	return 0;
}

/* Reads every pending inotify event: what changed is read from the file,
 * so the events themselves do not matter. */
static void drain_events(struct vmrd_backend *b)
{
	char buf[4096];

	if (b->event_fd < 0)
		return;
	while (read(b->event_fd, buf, sizeof(buf)) > 0)
		;
}

static int check_request(const struct vmrd_backend *b, uint64_t bytes, char *msg, uint32_t msg_size)
{
	if (bytes == 0 || bytes % b->block_size) {
		set_msg(msg, msg_size, "%" PRIu64 " bytes is not a positive multiple of the block size %" PRIu64, bytes,
		        b->block_size);
		return -EINVAL;
	}
	return 0;
}

static void mock_destroy(struct vmrd_backend *b);

static int mock_create(const struct vmrd_host *host, const struct vmrd_option *options, uint32_t n_options,
                       struct vmrd_backend **out, char *msg, uint32_t msg_size)
{
	struct vmrd_backend *b;
	uint32_t i;
	int ret;

	if (host->struct_size < offsetof(struct vmrd_host, sysfs_root) + sizeof(host->sysfs_root)) {
		set_msg(msg, msg_size, "host services struct too short (%u bytes)", host->struct_size);
		return -EINVAL;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	/* Only what the host has: an older host's struct is shorter. */
	memcpy(&b->host, host, host->struct_size < sizeof(b->host) ? host->struct_size : sizeof(b->host));
	b->block_size = UINT64_C(2) << 20;
	b->max_bytes = UINT64_C(4) << 30;
	b->fail_errno = EIO;
	b->rng = 1;
	b->grant_percent = 100;
	b->event_fd = -1;

	for (i = 0; i < n_options; i++) {
		ret = apply_option(b, options[i].key, options[i].value);
		if (ret == -ENOENT) {
			set_msg(msg, msg_size,
			        "unknown option '%s' (known: block_size, min, max, initial, fail_call, "
			        "fail_errno, fail_probability, seed, grant_percent, latency_ms, hang_call, "
			        "hang_ms, crash_call, state_file, events, trace, held_fds)",
			        options[i].key);
			ret = -EINVAL;
		} else if (ret) {
			set_msg(msg, msg_size, "bad value '%s' for option '%s': %s", options[i].value, options[i].key,
			        strerror(-ret));
		}
		if (ret)
			goto fail;
	}
	ret = -EINVAL;
	if (b->block_size == 0 || (b->block_size & (b->block_size - 1))) {
		set_msg(msg, msg_size, "block_size %" PRIu64 " is not a power of two", b->block_size);
		goto fail;
	}
	if (b->min_bytes % b->block_size || b->max_bytes % b->block_size || b->plugged % b->block_size) {
		set_msg(msg, msg_size, "min, max and initial must be multiples of block_size %" PRIu64, b->block_size);
		goto fail;
	}
	if (b->min_bytes > b->max_bytes || b->plugged < b->min_bytes || b->plugged > b->max_bytes) {
		set_msg(msg, msg_size,
		        "need min <= initial <= max (min %" PRIu64 ", initial %" PRIu64 ", max %" PRIu64 ")",
		        b->min_bytes, b->plugged, b->max_bytes);
		goto fail;
	}
	if (b->held_fds && (b->state_file || b->plugged != b->min_bytes)) {
		set_msg(msg, msg_size,
		        "held_fds keeps the device's state in fds: no state_file, and no initial above min");
		goto fail;
	}
	if (b->events && !b->state_file) {
		set_msg(msg, msg_size, "events needs state_file: the events say that file changed");
		goto fail;
	}
	if (b->state_file && access(b->state_file, F_OK) == 0) {
		ret = load_state(b, msg, msg_size);
		if (ret)
			goto fail;
	} else if ((ret = save_state(b)) != 0) {
		set_msg(msg, msg_size, "state_file %s: cannot write: %s", b->state_file, strerror(-ret));
		goto fail;
	}
	if (b->events && (ret = watch_state_file(b, msg, msg_size)) != 0)
		goto fail;
	host_log(b, VMRD_LOG_INFO, "mock device: block %" PRIu64 " bytes, %" PRIu64 " of %" PRIu64 " bytes plugged%s%s",
	         b->block_size, b->plugged, b->max_bytes, b->state_file ? ", state in " : "",
	         b->state_file ? b->state_file : "");
	*out = b;
	return 0;
fail:
	mock_destroy(b);
	return ret;
}

static void mock_destroy(struct vmrd_backend *b)
{
	uint64_t i;

	/* Copies kept elsewhere (systemd's fd store) hold on. */
	for (i = 0; i < b->n_held; i++)
		close(b->held[i].fd);
	free(b->held);
	if (b->event_fd >= 0)
		close(b->event_fd);
	if (b->trace)
		fclose(b->trace);
	free(b->state_file);
	free(b);
}

static int mock_get_state(struct vmrd_backend *b, struct vmrd_backend_state *state, char *msg, uint32_t msg_size)
{
	int ret;

	/* Every member so far is in ABI 1.0, so any caller's struct has them. */
	if (state->struct_size < sizeof(*state)) {
		set_msg(msg, msg_size, "state struct too short (%u bytes)", state->struct_size);
		return -EINVAL;
	}
	ret = load_state(b, msg, msg_size);
	if (ret)
		return ret;
	state->flags = VMRD_BACKEND_CONNECTED;
	state->block_size = b->block_size;
	state->min_bytes = b->min_bytes;
	state->max_bytes = b->max_bytes;
	state->plugged_bytes = b->plugged;
	return 0;
}

/* The prologue of plug and unplug: a valid request, the device's state as
 * it is now, then the injected faults. */
static int start_call(struct vmrd_backend *b, const char *op, uint64_t bytes, char *msg, uint32_t msg_size)
{
	int ret = check_request(b, bytes, msg, msg_size);

	if (!ret)
		ret = load_state(b, msg, msg_size);
	if (!ret)
		ret = inject(b, op, msg, msg_size);
	return ret;
}

/* With `held_fds`, one memfd per block above `min`: new blocks get new
 * fds, released ones are closed newest first, after host->forget_fd() so
 * that no copy kept elsewhere outlives them. */
static int sync_held(struct vmrd_backend *b, char *msg, uint32_t msg_size)
{
	const uint64_t want = (b->plugged - b->min_bytes) / b->block_size;
	char name[VMRD_HELD_FD_NAME_LEN];

	if (!b->held_fds)
		return 0;
	while (b->n_held > want) {
		b->n_held--;
		snprintf(name, sizeof(name), "block-%" PRIu64, b->held[b->n_held].number);
		if (b->host.forget_fd)
			b->host.forget_fd(b->host.host_data, name);
		close(b->held[b->n_held].fd);
	}
	if (want > b->n_held) {
		struct held_block *more = realloc(b->held, want * sizeof(*more));

		if (more)
			b->held = more;
		if (!more) {
			set_msg(msg, msg_size, "out of memory for %" PRIu64 " held fds", want);
			b->plugged = b->min_bytes + b->n_held * b->block_size;
			return -ENOMEM;
		}
	}
	while (b->n_held < want) {
		int fd = memfd_create("vmrd-mock-block", MFD_CLOEXEC);

		if (fd < 0) {
			set_msg(msg, msg_size, "memfd_create: %s", strerror(errno));
			b->plugged = b->min_bytes + b->n_held * b->block_size;
			return -errno;
		}
		b->held[b->n_held].fd = fd;
		b->held[b->n_held++].number = ++b->next_held;
	}
	return 0;
}

/* Books a change; a device whose state cannot be written says so.  A change
 * vmrd asked for is no event: the events this write raised are dropped. */
static int finish_call(struct vmrd_backend *b, char *msg, uint32_t msg_size)
{
	int ret = sync_held(b, msg, msg_size);

	if (ret)
		return ret;
	ret = save_state(b);

	drain_events(b);

	if (ret)
		set_msg(msg, msg_size, "state_file %s: cannot write: %s", b->state_file, strerror(-ret));
	return ret;
}

static int mock_plug(struct vmrd_backend *b, uint64_t bytes, uint64_t *plugged, char *msg, uint32_t msg_size)
{
	uint64_t room, give;
	int ret;

	*plugged = 0;
	ret = start_call(b, "plug", bytes, msg, msg_size);
	if (!ret) {
		room = b->max_bytes - b->plugged;
		give = granted(b, bytes);
		give = give < room ? give : room;
		b->plugged += give;
		*plugged = give;
		if (give == 0) {
			set_msg(msg, msg_size, "device full: %" PRIu64 " of %" PRIu64 " bytes plugged", b->plugged,
			        b->max_bytes);
			ret = -ENOSPC;
		} else {
			ret = finish_call(b, msg, msg_size);
		}
	}
	trace(b, "plug", bytes, ret, *plugged);
	return ret;
}

static int mock_unplug(struct vmrd_backend *b, uint64_t bytes, uint64_t *released, char *msg, uint32_t msg_size)
{
	uint64_t avail, take;
	int ret;

	*released = 0;
	ret = start_call(b, "unplug", bytes, msg, msg_size);
	if (!ret) {
		avail = b->plugged - b->min_bytes;
		take = granted(b, bytes);
		take = take < avail ? take : avail;
		b->plugged -= take;
		*released = take;
		if (take == 0) {
			set_msg(msg, msg_size, "nothing to release above the minimum of %" PRIu64 " bytes",
			        b->min_bytes);
			ret = -EBUSY;
		} else {
			ret = finish_call(b, msg, msg_size);
		}
	}
	trace(b, "unplug", bytes, ret, *released);
	return ret;
}

static int mock_release_all(struct vmrd_backend *b, uint64_t *released, char *msg, uint32_t msg_size)
{
	int ret = load_state(b, msg, msg_size);

	*released = 0;
	if (!ret)
		ret = inject(b, "release_all", msg, msg_size);
	if (!ret) {
		*released = b->plugged - b->min_bytes;
		b->plugged = b->min_bytes;
		ret = finish_call(b, msg, msg_size);
	}
	trace(b, "release_all", 0, ret, *released);
	return ret;
}

/* Present in the ops table so that vendors see where it goes; without the
 * `events` option the device has no events to give. */
static int mock_get_event_fd(struct vmrd_backend *b, int *fd, char *msg, uint32_t msg_size)
{
	if (b->event_fd < 0) {
		set_msg(msg, msg_size, "no events without the option events: true");
		return -EOPNOTSUPP;
	}
	*fd = b->event_fd;
	return 0;
}

static int mock_ack_event(struct vmrd_backend *b, char *msg, uint32_t msg_size)
{
	(void)msg;
	(void)msg_size;
	drain_events(b);
	return 0;
}

static int mock_export_fds(struct vmrd_backend *b, struct vmrd_held_fd *fds, uint32_t capacity, uint32_t *count,
                           char *msg, uint32_t msg_size)
{
	uint64_t i;

	*count = (uint32_t)b->n_held;
	if (b->n_held > capacity) {
		set_msg(msg, msg_size, "%" PRIu64 " fds held, room for %u", b->n_held, capacity);
		return -ENOSPC;
	}
	for (i = 0; i < b->n_held; i++) {
		memset(&fds[i], 0, sizeof(fds[i]));
		fds[i].fd = b->held[i].fd;
		snprintf(fds[i].name, sizeof(fds[i].name), "block-%" PRIu64, b->held[i].number);
	}
	return 0;
}

static int by_number(const void *a, const void *b)
{
	const uint64_t x = ((const struct held_block *)a)->number, y = ((const struct held_block *)b)->number;

	return x < y ? -1 : x > y;
}

/* Every fd is ours from here: kept if it is a block this backend exported,
 * closed otherwise.  Adopted blocks count as plugged. */
static int mock_adopt_fds(struct vmrd_backend *b, const struct vmrd_held_fd *fds, uint32_t count, char *msg,
                          uint32_t msg_size)
{
	uint64_t n, room = (b->max_bytes - b->plugged) / b->block_size;
	struct held_block *more = realloc(b->held, (b->n_held + count) * sizeof(*more));
	struct stat st;
	char *end = NULL;
	uint32_t i;

	if (more)
		b->held = more;
	for (i = 0; i < count; i++) {
		const char *name = fds[i].name;

		n = strncmp(name, "block-", 6) == 0 ? strtoull(name + 6, &end, 10) : 0;
		if (!b->held_fds || !more || n == 0 || *end != '\0' || room == 0 || fstat(fds[i].fd, &st) != 0) {
			host_log(b, VMRD_LOG_WARNING, "fd '%.63s' is not a block this device can take back: closed",
			         name);
			close(fds[i].fd);
			continue;
		}
		b->held[b->n_held].fd = fds[i].fd;
		b->held[b->n_held++].number = n;
		b->next_held = n > b->next_held ? n : b->next_held;
		b->plugged += b->block_size;
		room--;
	}
	if (b->n_held > 1)
		qsort(b->held, b->n_held, sizeof(*b->held), by_number);
	(void)msg;
	(void)msg_size;
	return 0;
}

/* The simulated device is always there.  A real backend looks for its
 * device node or sysfs directory here, below host->sysfs_root, and says
 * which is missing with -ENODEV; its options are create()'s to check. */
static int mock_probe(const struct vmrd_host *host, const struct vmrd_option *options, uint32_t n_options, char *msg,
                      uint32_t msg_size)
{
	(void)host;
	(void)options;
	(void)n_options;
	(void)msg;
	(void)msg_size;
	return 0;
}

static const struct vmrd_backend_ops mock_ops = {
        .struct_size = sizeof(struct vmrd_backend_ops),
        .create = mock_create,
        .destroy = mock_destroy,
        .get_state = mock_get_state,
        .plug = mock_plug,
        .unplug = mock_unplug,
        .release_all = mock_release_all,
        .get_event_fd = mock_get_event_fd,
        .ack_event = mock_ack_event,
        .export_fds = mock_export_fds,
        .adopt_fds = mock_adopt_fds,
        .probe = mock_probe,
};

/* A test backend: `backend.name: auto` never picks it, naming it does. */
static const struct vmrd_plugin_info mock_info = {
        .struct_size = sizeof(struct vmrd_plugin_info),
        .description = "simulated memory device with fault injection, for tests and trials",
        .ops = &mock_ops,
        .flags = VMRD_PLUGIN_TEST_BACKEND,
};

VMRD_PLUGIN_EXPORT const struct vmrd_plugin_info *vmrd_plugin_entry_v1(void)
{
	return &mock_info;
}
