/* SPDX-License-Identifier: MIT */
/* The smallest complete backend, built outside the tree against the installed SDK alone. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <vmrd/plugin.h>

VMRD_PLUGIN_MANIFEST("hello", "0.1", "example vendor");

struct vmrd_backend {
	uint64_t plugged;
};

static int hello_create(const struct vmrd_host *host, const struct vmrd_option *options, uint32_t n_options,
                        struct vmrd_backend **out, char *msg, uint32_t msg_size)
{
	(void)host;
	(void)options;
	if (n_options > 0) {
		snprintf(msg, msg_size, "unknown option '%s' (this backend has none)", options[0].key);
		return -EINVAL;
	}
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

static void hello_destroy(struct vmrd_backend *b)
{
	free(b);
}

static int hello_get_state(struct vmrd_backend *b, struct vmrd_backend_state *s, char *msg, uint32_t msg_size)
{
	(void)msg;
	(void)msg_size;
	s->flags = VMRD_BACKEND_CONNECTED;
	s->block_size = 1u << 21;
	s->min_bytes = 0;
	s->max_bytes = (uint64_t)1 << 30;
	s->plugged_bytes = b->plugged;
	return 0;
}

static int hello_plug(struct vmrd_backend *b, uint64_t bytes, uint64_t *done, char *msg, uint32_t msg_size)
{
	(void)msg;
	(void)msg_size;
	b->plugged += bytes;
	*done = bytes;
	return 0;
}

static int hello_unplug(struct vmrd_backend *b, uint64_t bytes, uint64_t *done, char *msg, uint32_t msg_size)
{
	(void)msg;
	(void)msg_size;
	*done = bytes < b->plugged ? bytes : b->plugged;
	b->plugged -= *done;
	return 0;
}

/* Designated, as plugin.h asks: the ops a later minor appends are NULL. */
static const struct vmrd_backend_ops hello_ops = {
        .struct_size = sizeof(struct vmrd_backend_ops),
        .create = hello_create,
        .destroy = hello_destroy,
        .get_state = hello_get_state,
        .plug = hello_plug,
        .unplug = hello_unplug,
};

/* Designated too: the members a later minor appends are 0. */
static const struct vmrd_plugin_info hello_info = {
        .struct_size = sizeof(struct vmrd_plugin_info),
        .description = "out-of-tree example",
        .ops = &hello_ops,
};

VMRD_PLUGIN_EXPORT const struct vmrd_plugin_info *vmrd_plugin_entry_v1(void)
{
	return &hello_info;
}
