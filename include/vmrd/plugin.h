/* SPDX-License-Identifier: MIT */
/* vmrd backend plugin ABI, major version 1: the only interface a vendor sees. */
#ifndef VMRD_PLUGIN_H
#define VMRD_PLUGIN_H

/*
 * A vmrd backend is a shared object named vmrd-backend-<name>.so, installed in
 * the directory given by `pkg-config --variable=plugindir vmrd-plugin-1`.
 * It exports exactly two symbols:
 *
 *   vmrd_plugin_manifest   a struct vmrd_manifest with a fixed layout.  vmrd
 *                          reads it from the file before loading it, so it can
 *                          tell "not a vmrd plugin" from "built for another
 *                          ABI" without running any plugin code.  Define it
 *                          with VMRD_PLUGIN_MANIFEST().
 *   vmrd_plugin_entry_v1   returns the plugin's description and its ops table.
 *
 * Rules that hold for every part of this ABI:
 *  - Only C types cross the boundary: fixed-width integers, opaque pointers,
 *    function tables.  A plugin must not let a C++ exception escape.
 *  - Every struct starts with struct_size; members are only ever appended.
 *    The side that allocates a struct sets struct_size to sizeof() as it was
 *    compiled; the other side touches only members that lie within it.
 *  - So vmrd loads a plugin built for any minor version of its major, older
 *    or newer than its own, and never calls an op beyond ops->struct_size.
 *    A plugin that uses a host member added after 1.0 checks
 *    host->struct_size first; if the member is missing, create() fails with
 *    -EOPNOTSUPP and a message naming what it lacks.
 *  - Every call returns 0 or a negative errno.  On failure it may write a
 *    NUL-terminated, human-readable message into the caller's buffer `msg` of
 *    `msg_size` bytes (msg_size may be 0; never write past it).  vmrd adds the
 *    plugin name and the operation, so the message need not repeat them.
 *  - Strings passed to a plugin are valid only during the call: copy them.
 *    Strings a plugin returns in static structs (manifest, plugin info) must
 *    live as long as the library is loaded.
 *  - A plugin never prints: it logs through the host's log callback.
 *  - A plugin reads kernel files only below the host-lent procfs and sysfs
 *    roots, so that tests can run it on fake trees.
 */

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VMRD_ABI_MAJOR 1
#define VMRD_ABI_MINOR 2

/* "VMRDPLUG" read as a little-endian 64-bit integer. */
#define VMRD_MANIFEST_MAGIC UINT64_C(0x47554c5044524d56)

#define VMRD_MANIFEST_NAME_LEN 64
#define VMRD_MANIFEST_VERSION_LEN 32
#define VMRD_MANIFEST_VENDOR_LEN 64

#if defined(__GNUC__)
#define VMRD_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define VMRD_PLUGIN_EXPORT
#endif

/*
 * The manifest's layout is frozen for every ABI major version: it is how a
 * daemon of any version recognises a plugin of any version.  All strings are
 * NUL-terminated within their arrays.  `name` must equal the <name> part of
 * the file name and match [a-z0-9-]+.
 */
struct vmrd_manifest {
	uint64_t magic;     /* VMRD_MANIFEST_MAGIC */
	uint32_t abi_major; /* VMRD_ABI_MAJOR the plugin was built against */
	uint32_t abi_minor; /* VMRD_ABI_MINOR the plugin was built against */
	char name[VMRD_MANIFEST_NAME_LEN];
	char version[VMRD_MANIFEST_VERSION_LEN];
	char vendor[VMRD_MANIFEST_VENDOR_LEN];
};

/* Log levels, as syslog's: lower is more severe. */
enum vmrd_log_level {
	VMRD_LOG_ERROR = 3,
	VMRD_LOG_WARNING = 4,
	VMRD_LOG_INFO = 6,
	VMRD_LOG_DEBUG = 7,
};

/*
 * Services the daemon lends to a backend for its whole life.  The struct and
 * the strings in it stay valid until destroy() returns.  log() and
 * monotonic_ns() may be called from any thread.
 */
struct vmrd_host {
	uint32_t struct_size;
	uint32_t reserved;
	void *host_data; /* pass back as the first argument of the callbacks */
	/* Log one line (no trailing newline needed) at an enum vmrd_log_level. */
	void (*log)(void *host_data, int level, const char *message);
	/* CLOCK_MONOTONIC in nanoseconds. */
	uint64_t (*monotonic_ns)(void *host_data);
	const char *procfs_root; /* "/proc" on a real system */
	const char *sysfs_root;  /* "/sys" on a real system */
	/* Since 1.1 (check struct_size).  A backend that listed an fd in
	 * export_fds() calls this with its name just before it closes it, on
	 * the thread that closes it.  vmrd withdraws its copy from the keeper
	 * first, so that the backend's close() is the last reference and what
	 * the fd held goes back then, not later in another process. */
	void (*forget_fd)(void *host_data, const char *name);
};

/* One backend option from the config's backend.options map, as text. */
struct vmrd_option {
	const char *key;
	const char *value;
};

/* Set in vmrd_backend_state.flags. */
#define VMRD_BACKEND_CONNECTED (1u << 0) /* the backend can serve plug/unplug now */
#define VMRD_BACKEND_HOTPLUG (1u << 1)   /* memory arrives as hot-plugged memory blocks */
/* The host asks for memory back (another guest needs it).  vmrd answers
 * with a shrink check now, as for `vmrdctl reclaim`: its policy gives back
 * what it can spare and keeps the rest.  Report it in one get_state() per
 * request: vmrd acts on each state that carries it.  Hosts before this flag
 * ignore it. */
#define VMRD_BACKEND_RECLAIM (1u << 2)

/*
 * Limits and state of a backend, all sizes in bytes.  plugged_bytes is what
 * the backend really holds now, as far as it can tell; vmrd books this value,
 * never what it asked for.  min_bytes <= plugged_bytes <= max_bytes is
 * expected but not assumed.
 */
struct vmrd_backend_state {
	uint32_t struct_size;
	uint32_t flags;         /* VMRD_BACKEND_* */
	uint64_t block_size;    /* granularity of plug and unplug, a power of two */
	uint64_t min_bytes;     /* the backend never goes below this */
	uint64_t max_bytes;     /* the backend never goes above this */
	uint64_t plugged_bytes; /* currently plugged */
};

/*
 * Since 1.1.  A file descriptor whose life is the life of memory the backend
 * holds (a Gunyah hint fd: closing it gives the memory back), with a name
 * that is unique within the backend: 1 to 63 characters of [A-Za-z0-9_.-].
 */
#define VMRD_HELD_FD_NAME_LEN 64
struct vmrd_held_fd {
	int32_t fd;
	uint32_t reserved; /* 0 */
	char name[VMRD_HELD_FD_NAME_LEN];
};

struct vmrd_backend; /* opaque, owned by the plugin */

/*
 * The backend operations.  Fill the table with designated initializers
 * (.create = ...): the ops a later minor appends are then NULL, with no
 * -Wmissing-field-initializers warning to stop a -Werror build.
 *
 * Threading: vmrd calls create(), get_event_fd(), adopt_fds(), the first
 * export_fds() and destroy() from its main thread and every other operation
 * from one worker thread, one call at a time, never concurrently on the same
 * backend.  plug, unplug and
 * release_all may block (a hot-plug can take seconds); get_state should not.
 *
 * Common errno values:
 *   -EINVAL     bad argument (size not a multiple of block_size, bad option)
 *   -ENOSPC     nothing more can be plugged (at max_bytes, host refused)
 *   -EBUSY      the device could not release anything now
 *   -ENOTCONN   the path to the host is down; vmrd retries later
 *   -ETIMEDOUT  the backend gave up waiting for the host or the device
 *   -EOPNOTSUPP the operation is not implemented
 */
struct vmrd_backend_ops {
	uint32_t struct_size;
	uint32_t reserved;

	/*
	 * Required.  Create a backend with the host services and options.
	 * Reject any option key it does not know with -EINVAL and a message
	 * naming the key.  On success store the new object in *out and
	 * return 0; on failure leave *out untouched.
	 */
	int (*create)(const struct vmrd_host *host, const struct vmrd_option *options, uint32_t n_options,
	              struct vmrd_backend **out, char *msg, uint32_t msg_size);

	/* Required.  Free the backend.  Memory stays plugged unless the backend
	 * documents otherwise.  Never fails. */
	void (*destroy)(struct vmrd_backend *backend);

	/* Required.  Fill *state (the caller set state->struct_size). */
	int (*get_state)(struct vmrd_backend *backend, struct vmrd_backend_state *state, char *msg, uint32_t msg_size);

	/*
	 * Required.  Add `bytes` (a multiple of block_size, > 0) to the guest.
	 * Store in *plugged what was really added, which may be less than asked
	 * (even on failure: a partial plug reports what it got and the error).
	 */
	int (*plug)(struct vmrd_backend *backend, uint64_t bytes, uint64_t *plugged, char *msg, uint32_t msg_size);

	/*
	 * Required.  Give `bytes` (a multiple of block_size, > 0) back to the
	 * host.  Unplug is best effort: store in *released what was really
	 * released, which may be less than asked.  Guest data is never lost.
	 */
	int (*unplug)(struct vmrd_backend *backend, uint64_t bytes, uint64_t *released, char *msg, uint32_t msg_size);

	/* Optional (NULL if absent).  Release everything that can be released;
	 * *released as for unplug. */
	int (*release_all)(struct vmrd_backend *backend, uint64_t *released, char *msg, uint32_t msg_size);

	/*
	 * Optional (NULL if absent).  Store in *fd a file descriptor, owned by
	 * the backend, that becomes readable (EPOLLIN) when the plugged size
	 * changes without vmrd asking (the host resized, the kernel plugged on
	 * its own).  vmrd calls it once, from the main thread after create(),
	 * and watches the fd; when it is readable vmrd calls ack_event() (if
	 * set), then get_state(), on the worker thread, then watches again.
	 * The fd may also turn readable when nothing changed: get_state() is
	 * what counts.  A backend that has no events for this configuration
	 * returns -EOPNOTSUPP.
	 */
	int (*get_event_fd)(struct vmrd_backend *backend, int *fd, char *msg, uint32_t msg_size);

	/* Optional.  Consume the readiness of the event fd without blocking:
	 * afterwards the fd is not readable until something new happens.
	 * Worker thread. */
	int (*ack_event)(struct vmrd_backend *backend, char *msg, uint32_t msg_size);

	/*
	 * Optional, since 1.1, with adopt_fds: for a backend whose memory lives
	 * as long as some of its file descriptors, so that a restart of vmrd
	 * (an upgrade, a crash, the watchdog) does not give that memory back.
	 * vmrd keeps a copy of each listed fd outside its own process
	 * (systemd's file descriptor store) and hands them to the next vmrd.
	 *
	 * export_fds: list every such fd, at most `capacity` of them, in
	 * fds[0..*count).  The fds stay the backend's.  If they do not fit,
	 * return -ENOSPC with *count set to how many there are.  vmrd calls it
	 * once at start on the main thread, after adopt_fds() and before any
	 * other op, then on the worker thread after every plug, unplug and
	 * release_all(), whatever their result: an fd no longer listed is
	 * withdrawn from the keeper (call host->forget_fd() before closing it).
	 */
	int (*export_fds)(struct vmrd_backend *backend, struct vmrd_held_fd *fds, uint32_t capacity, uint32_t *count,
	                  char *msg, uint32_t msg_size);

	/*
	 * Optional, since 1.1.  Hand the backend the fds that a previous vmrd
	 * exported from a backend of this plugin, with their names; called
	 * once, on the main thread, after create() and before any other op,
	 * with at least one fd.  The backend owns them all from then on, even
	 * when it fails: it keeps those it recognises and closes the others,
	 * logging why.  get_state() then counts what they hold.
	 */
	int (*adopt_fds)(struct vmrd_backend *backend, const struct vmrd_held_fd *fds, uint32_t count, char *msg,
	                 uint32_t msg_size);

	/*
	 * Optional, since 1.2.  Whether this backend's device is there, so
	 * that vmrd can choose among the candidates of backend.name (a list,
	 * or `auto`).  Called on the main thread before create(), with the
	 * same host and options, and with no backend object.  Return 0 if the
	 * device is present; -ENODEV if it is not, with a message saying what
	 * is missing (a device node, a sysfs directory); another negative
	 * errno if it cannot tell (a bad option, no permission).  It must be
	 * cheap and have no side effects: look, do not open what outlives the
	 * call, change nothing, and answer within 50 ms.  A plugin without it
	 * counts as present when the config names it; `auto` skips it, since
	 * it cannot say.
	 */
	int (*probe)(const struct vmrd_host *host, const struct vmrd_option *options, uint32_t n_options, char *msg,
	             uint32_t msg_size);
};

/*
 * Set in vmrd_plugin_info.flags (since 1.2).  A test backend (the mock): it
 * resizes no real memory, so `auto` never picks it; a config that names it
 * gets it.  The mark lives here and not in the manifest because the
 * manifest's layout is frozen for the whole major version (a 1.0 daemon
 * reads any 1.x manifest by its fixed size); the plugin info is appended
 * to like every other struct, and a plugin without the member is no test
 * backend.
 */
#define VMRD_PLUGIN_TEST_BACKEND (1u << 0)

/* Returned by vmrd_plugin_entry_v1(); static, lives as long as the library.
 * Fill it with designated initializers, as the ops table. */
struct vmrd_plugin_info {
	uint32_t struct_size;
	uint32_t reserved;
	const char *description; /* one line, for --check-config */
	const struct vmrd_backend_ops *ops;
	uint32_t flags;     /* since 1.2: VMRD_PLUGIN_* */
	uint32_t reserved1; /* 0 */
};

/* The two exported symbols.  The type names differ from the symbol names so
 * that C++ plugins get external linkage and a visible type. */
VMRD_PLUGIN_EXPORT extern const struct vmrd_manifest vmrd_plugin_manifest;
VMRD_PLUGIN_EXPORT const struct vmrd_plugin_info *vmrd_plugin_entry_v1(void);

#define VMRD_PLUGIN_ENTRY_SYMBOL "vmrd_plugin_entry_v1"
#define VMRD_PLUGIN_MANIFEST_SYMBOL "vmrd_plugin_manifest"

/* Define the manifest in exactly one source file of the plugin.  The extern
 * declaration above gives it external linkage and default visibility. */
#define VMRD_PLUGIN_MANIFEST(name_, version_, vendor_)                                                                 \
	const struct vmrd_manifest vmrd_plugin_manifest = {                                                            \
	        VMRD_MANIFEST_MAGIC, VMRD_ABI_MAJOR, VMRD_ABI_MINOR, name_, version_, vendor_}

#ifdef __cplusplus
}
#endif

#endif /* VMRD_PLUGIN_H */
