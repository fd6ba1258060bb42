/* SPDX-License-Identifier: MIT */
/* A backend that keeps the whole plugin contract, and variants that each break one clause, chosen by a -D flag. */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <vmrd/plugin.h>

#ifndef PLUGIN_NAME
#error "PLUGIN_NAME must be defined"
#endif

VMRD_PLUGIN_MANIFEST(PLUGIN_NAME, "1.0", "test");

#define BLOCK_SIZE (UINT64_C(2) << 20)
#define MAX_BYTES (UINT64_C(1) << 30)

#define BLOCKS (MAX_BYTES / BLOCK_SIZE)

/* An in-memory device: nothing changes unless vmrd asks.  Each whole block
 * plugged lives in an fd of its own, "bN" for the Nth (export_fds). */
struct vmrd_backend {
	struct vmrd_host host;
	uint64_t plugged;
	int held[BLOCKS]; /* -1 where that block is not plugged */
	int event_fd;     /* never signalled: the device has no changes of its own */
#if defined(BREAK_LEAK_MEM)
	void *scratch; /* allocated in create, forgotten in destroy */
#endif
#if defined(BREAK_THREADS)
	pthread_t owner;
#endif
};

static void set_msg(char *msg, uint32_t msg_size, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	/* The analyzer loses va_start on some variants' paths: a false report. */
	vsnprintf(text, sizeof(text), fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
	va_end(ap);
#if defined(BREAK_MSG_OVERFLOW)
	/* Trusts the buffer to be 64 bytes larger than msg_size, and pads all of it. */
	memset(msg, ' ', (size_t)msg_size + 64);
	snprintf(msg, (size_t)msg_size + 64, "%s", text);
#elif defined(BREAK_MSG_NUL)
	/* A fixed-width field, not a C string: msg_size bytes of text and no NUL. */
	if (msg_size > 0) {
		size_t len = strlen(text);

		memset(msg, ' ', msg_size);
		memcpy(msg, text, len < msg_size ? len : msg_size);
	}
#else
	if (msg_size > 0)
		snprintf(msg, msg_size, "%s", text);
#endif
}

static int contract_create(const struct vmrd_host *host, const struct vmrd_option *options, uint32_t n_options,
                           struct vmrd_backend **out, char *msg, uint32_t msg_size)
{
	struct vmrd_backend *b;
	int err;

	if (host->struct_size < offsetof(struct vmrd_host, sysfs_root) + sizeof(host->sysfs_root)) {
		set_msg(msg, msg_size, "host services struct too short (%u bytes)", host->struct_size);
		return -EINVAL;
	}
#if defined(BREAK_HOST_SIZE)
	/* Reads a member that only a 1.1 host would have, without checking struct_size. */
	(void)((const volatile unsigned char *)host)[sizeof(*host)];
#endif
	if (n_options > 0) {
		set_msg(msg, msg_size, "unknown option '%s' (this backend takes no options)", options[0].key);
		return -EINVAL;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	memcpy(&b->host, host, host->struct_size < sizeof(b->host) ? host->struct_size : sizeof(b->host));
	for (size_t i = 0; i < BLOCKS; i++)
		b->held[i] = -1;
	b->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (b->event_fd < 0) {
		err = errno;
		set_msg(msg, msg_size, "eventfd: %s", strerror(err));
		free(b);
		return -err;
	}
#if defined(BREAK_EVENT)
	/* Signals an event that never happened, and ack_event never drains it. */
	(void)eventfd_write(b->event_fd, 1);
#endif
#if defined(BREAK_LEAK_FD)
	(void)open("/dev/null", O_RDONLY | O_CLOEXEC);
#endif
#if defined(BREAK_LEAK_MEM)
	b->scratch = malloc(1024);
#endif
#if defined(BREAK_THREADS)
	b->owner = pthread_self();
#endif
	*out = b;
	return 0;
}

/* One fd per whole block plugged; those of blocks given back are closed,
 * after forget_fd(). */
static void hold(struct vmrd_backend *b)
{
	char name[VMRD_HELD_FD_NAME_LEN];

	for (uint64_t i = 0; i < BLOCKS; i++) {
		const int want = i < b->plugged / BLOCK_SIZE;

		if (want && b->held[i] < 0) {
			b->held[i] = eventfd(0, EFD_CLOEXEC);
		} else if (!want && b->held[i] >= 0) {
			snprintf(name, sizeof(name), "b%" PRIu64, i);
#if !defined(BREAK_FORGET)
			if (b->host.forget_fd)
				b->host.forget_fd(b->host.host_data, name);
#endif
			close(b->held[i]);
			b->held[i] = -1;
		}
	}
}

static void contract_destroy(struct vmrd_backend *b)
{
	for (size_t i = 0; i < BLOCKS; i++)
		if (b->held[i] >= 0)
			close(b->held[i]);
	close(b->event_fd);
	free(b);
}

static int contract_get_state(struct vmrd_backend *b, struct vmrd_backend_state *state, char *msg, uint32_t msg_size)
{
#if defined(BREAK_STATE_SIZE)
	/* Clears the struct by its own size, not state->struct_size, and sets a member that a header one minor
	 * version newer would have after the 1.0 ones. */
	(void)msg;
	(void)msg_size;
	memset(state, 0, sizeof(*state));
	((uint64_t *)state)[sizeof(*state) / sizeof(uint64_t)] = 0;
#else
	/* Every member so far is in ABI 1.0, so any caller's struct has them. */
	if (state->struct_size < sizeof(*state)) {
		set_msg(msg, msg_size, "state struct too short (%u bytes)", state->struct_size);
		return -EINVAL;
	}
#endif
#if defined(BREAK_LATENCY)
	const struct timespec slow = {0, 80L * 1000 * 1000};

	nanosleep(&slow, NULL);
#endif
	state->flags = VMRD_BACKEND_CONNECTED;
	state->block_size = BLOCK_SIZE;
	state->min_bytes = 0;
	state->max_bytes = MAX_BYTES;
	state->plugged_bytes = b->plugged;
#if defined(BREAK_ERRNO)
	return 1; /* "true" for success */
#else
	return 0;
#endif
}

static int check_request(uint64_t bytes, char *msg, uint32_t msg_size)
{
	if (bytes == 0 || bytes % BLOCK_SIZE) {
		set_msg(msg, msg_size, "%" PRIu64 " bytes is not a positive multiple of the block size %" PRIu64, bytes,
		        BLOCK_SIZE);
		return -EINVAL;
	}
	return 0;
}

static int contract_plug(struct vmrd_backend *b, uint64_t bytes, uint64_t *plugged, char *msg, uint32_t msg_size)
{
	uint64_t room = MAX_BYTES - b->plugged;
	uint64_t give = bytes < room ? bytes : room;
	int ret = check_request(bytes, msg, msg_size);

	*plugged = 0;
#if defined(BREAK_THREADS)
	if (!ret && !pthread_equal(pthread_self(), b->owner)) {
		set_msg(msg, msg_size, "plug must be called on the thread that created the backend");
		ret = -EPERM;
	}
#endif
	if (ret)
		return ret;
	if (give == 0) {
		set_msg(msg, msg_size, "device full: %" PRIu64 " of %" PRIu64 " bytes plugged", b->plugged, MAX_BYTES);
		return -ENOSPC;
	}
#if defined(BREAK_PARTIAL)
	if (room - give >= BLOCK_SIZE)
		give += BLOCK_SIZE; /* one block more than asked, where there is room */
#elif defined(BREAK_BLOCKS)
	give -= 4096; /* a page short of the block */
#endif
	b->plugged += give;
	*plugged = give;
	hold(b);
	return 0;
}

static int contract_unplug(struct vmrd_backend *b, uint64_t bytes, uint64_t *released, char *msg, uint32_t msg_size)
{
	uint64_t take = bytes < b->plugged ? bytes : b->plugged;
	int ret = check_request(bytes, msg, msg_size);

	*released = 0;
	if (ret)
		return ret;
	if (take == 0) {
		set_msg(msg, msg_size, "nothing plugged to release");
		return -EBUSY;
	}
	b->plugged -= take;
	*released = take;
	hold(b);
	return 0;
}

static int contract_release_all(struct vmrd_backend *b, uint64_t *released, char *msg, uint32_t msg_size)
{
	(void)msg;
	(void)msg_size;
#if defined(BREAK_RELEASE)
	*released = b->plugged + BLOCK_SIZE; /* counts a block it never had */
#else
	*released = b->plugged;
#endif
	b->plugged = 0;
	hold(b);
	return 0;
}

static int contract_get_event_fd(struct vmrd_backend *b, int *fd, char *msg, uint32_t msg_size)
{
	(void)msg;
	(void)msg_size;
	*fd = b->event_fd;
	return 0;
}

static int contract_ack_event(struct vmrd_backend *b, char *msg, uint32_t msg_size)
{
	(void)msg;
	(void)msg_size;
#if defined(BREAK_EVENT)
	(void)b;
#else
	eventfd_t count;

	/* Fails with EAGAIN when nothing is pending: also drained. */
	(void)eventfd_read(b->event_fd, &count);
#endif
	return 0;
}

static int contract_export_fds(struct vmrd_backend *b, struct vmrd_held_fd *fds, uint32_t capacity, uint32_t *count,
                               char *msg, uint32_t msg_size)
{
	uint32_t n = 0;

	for (uint64_t i = 0; i < BLOCKS; i++) {
		if (b->held[i] < 0)
			continue;
		if (n < capacity) {
			memset(&fds[n], 0, sizeof(fds[n]));
			fds[n].fd = b->held[i];
			snprintf(fds[n].name, sizeof(fds[n].name), "b%" PRIu64, i);
		}
		n++;
	}
	*count = n;
	if (n > capacity) {
		set_msg(msg, msg_size, "%u fds held, room for %u", n, capacity);
		return -ENOSPC;
	}
	return 0;
}

/* Block N comes back where it was; anything else is closed. */
static int contract_adopt_fds(struct vmrd_backend *b, const struct vmrd_held_fd *fds, uint32_t count, char *msg,
                              uint32_t msg_size)
{
	(void)msg;
	(void)msg_size;
	for (uint32_t i = 0; i < count; i++) {
		char *end = NULL;
		const uint64_t n = fds[i].name[0] == 'b' ? strtoull(fds[i].name + 1, &end, 10) : BLOCKS;

		if (n >= BLOCKS || !end || *end != '\0' || b->held[n] >= 0) {
			close(fds[i].fd);
			continue;
		}
		b->held[n] = fds[i].fd;
		b->plugged += BLOCK_SIZE;
	}
	return 0;
}

/* The in-memory device is always there.  BREAK_PROBE keeps what it looked
 * at open: a side effect that outlives the call. */
static int contract_probe(const struct vmrd_host *host, const struct vmrd_option *options, uint32_t n_options,
                          char *msg, uint32_t msg_size)
{
	(void)options;
	(void)n_options;
	if (host->struct_size < offsetof(struct vmrd_host, sysfs_root) + sizeof(host->sysfs_root)) {
		set_msg(msg, msg_size, "host services struct too short (%u bytes)", host->struct_size);
		return -EINVAL;
	}
#if defined(BREAK_PROBE)
	if (open(host->sysfs_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC) < 0) {
		const int err = errno;

		set_msg(msg, msg_size, "%s: %s", host->sysfs_root, strerror(err));
		return -err;
	}
#endif
	return 0;
}

static const struct vmrd_backend_ops contract_ops = {
        .struct_size = sizeof(struct vmrd_backend_ops),
        .create = contract_create,
        .destroy = contract_destroy,
        .get_state = contract_get_state,
        .plug = contract_plug,
        .unplug = contract_unplug,
        .release_all = contract_release_all,
        .get_event_fd = contract_get_event_fd,
        .ack_event = contract_ack_event,
        .export_fds = contract_export_fds,
        .adopt_fds = contract_adopt_fds,
        .probe = contract_probe,
};

static const struct vmrd_plugin_info contract_info = {
        .struct_size = sizeof(struct vmrd_plugin_info),
        .description = "in-memory device for vmrd-plugin-check: " PLUGIN_NAME,
        .ops = &contract_ops,
};

VMRD_PLUGIN_EXPORT const struct vmrd_plugin_info *vmrd_plugin_entry_v1(void)
{
	return &contract_info;
}

#if defined(BREAK_EXPORTS)
/* A debugging helper left visible: the version script would have hidden it. */
VMRD_PLUGIN_EXPORT uint64_t contract_plugged_bytes(const struct vmrd_backend *b);
VMRD_PLUGIN_EXPORT uint64_t contract_plugged_bytes(const struct vmrd_backend *b)
{
	return b->plugged;
}
#endif
