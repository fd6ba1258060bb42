/* SPDX-License-Identifier: MIT */
/* Deliberately broken plugins, one per loader error; the variant is chosen by a -D flag. */

#include <errno.h>
#include <stdio.h>

#include <vmrd/plugin.h>

#ifndef PLUGIN_NAME
#error "PLUGIN_NAME must be defined"
#endif

#if defined(BROKEN_ABI_MAJOR)
VMRD_PLUGIN_EXPORT const struct vmrd_manifest vmrd_plugin_manifest = {
        VMRD_MANIFEST_MAGIC, VMRD_ABI_MAJOR + 1, 0, PLUGIN_NAME, "1.0", "test"};
#elif defined(BROKEN_ABI_MINOR)
VMRD_PLUGIN_EXPORT const struct vmrd_manifest vmrd_plugin_manifest = {
        VMRD_MANIFEST_MAGIC, VMRD_ABI_MAJOR, VMRD_ABI_MINOR + 7, PLUGIN_NAME, "1.0", "test"};
#elif defined(BROKEN_NAME)
VMRD_PLUGIN_MANIFEST("someone-else", "1.0", "test");
#elif defined(BROKEN_NAME_RULE)
VMRD_PLUGIN_MANIFEST("Bad_Name", "1.0", "test");
#elif defined(BROKEN_UNTERMINATED)
/* C lets a string fill its array exactly, dropping the NUL. */
VMRD_PLUGIN_EXPORT const struct vmrd_manifest vmrd_plugin_manifest = {
        VMRD_MANIFEST_MAGIC, VMRD_ABI_MAJOR, VMRD_ABI_MINOR, PLUGIN_NAME, "1.0.0-this-version-fills-32-byte", "test"};
#elif !defined(BROKEN_NO_MANIFEST)
VMRD_PLUGIN_MANIFEST(PLUGIN_NAME, "1.0", "test");
#endif

/* A constructor that would show if the loader ran code it should not have. */
__attribute__((constructor)) static void announce(void)
{
	fputs("broken plugin " PLUGIN_NAME ": constructor ran\n", stderr);
}

static int broken_create(const struct vmrd_host *host, const struct vmrd_option *options, uint32_t n_options,
                         struct vmrd_backend **out, char *msg, uint32_t msg_size)
{
	(void)host;
	(void)options;
	(void)n_options;
	(void)out;
	snprintf(msg, msg_size, "no device at /dev/fake-mem");
	return -ENODEV;
}

static void broken_destroy(struct vmrd_backend *b)
{
	(void)b;
}

static int broken_get_state(struct vmrd_backend *b, struct vmrd_backend_state *s, char *msg, uint32_t msg_size)
{
	(void)b;
	(void)s;
	(void)msg;
	(void)msg_size;
	return -EIO;
}

static int broken_resize(struct vmrd_backend *b, uint64_t bytes, uint64_t *done, char *msg, uint32_t msg_size)
{
	(void)b;
	(void)bytes;
	(void)msg;
	(void)msg_size;
	*done = 0;
	return -EIO;
}

static const struct vmrd_backend_ops broken_ops = {
#if defined(BROKEN_SHORT_OPS)
        .struct_size = 8,
#else
        .struct_size = sizeof(struct vmrd_backend_ops),
#endif
        .create = broken_create,
        .destroy = broken_destroy,
        .get_state = broken_get_state,
#if !defined(BROKEN_MISSING_OP)
        .plug = broken_resize,
#endif
        .unplug = broken_resize,
};

__attribute__((used)) static const struct vmrd_plugin_info broken_info = {
        .struct_size = sizeof(struct vmrd_plugin_info),
        .description = "broken on purpose: " PLUGIN_NAME,
        .ops = &broken_ops,
};

#if !defined(BROKEN_NO_ENTRY)
VMRD_PLUGIN_EXPORT const struct vmrd_plugin_info *vmrd_plugin_entry_v1(void)
{
	return &broken_info;
}
#endif
