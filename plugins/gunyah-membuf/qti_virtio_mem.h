/* SPDX-License-Identifier: MIT */
/* The qti_virtio_mem UAPI of Qualcomm's Gunyah guest kernels (linux/qti_virtio_mem.h), pinned. */
#ifndef VMRD_QTI_VIRTIO_MEM_H
#define VMRD_QTI_VIRTIO_MEM_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define QTI_VIRTIO_MEM_IOC_MAGIC 'M'
#define QTI_VIRTIO_MEM_IOC_MAX_NAME_LEN 128

/*
 * Ask the device for `size` more bytes (> 0).  The ioctl blocks until the
 * memory is plugged and returns an anonymous fd in `fd`: the device's
 * requested size is the sum of all live hints, so closing the fd gives the
 * memory back.  Reserved fields must be zero.
 */
struct qti_virtio_mem_ioc_hint_create_arg {
	char name[QTI_VIRTIO_MEM_IOC_MAX_NAME_LEN];
	__s64 size;
	__u32 fd;
	__u32 reserved0;
	__u64 reserved1;
};

#define QTI_VIRTIO_MEM_IOC_HINT_CREATE _IOWR(QTI_VIRTIO_MEM_IOC_MAGIC, 0, struct qti_virtio_mem_ioc_hint_create_arg)

/* The layout the kernel was built with: a mismatch here is a broken ioctl. */
#ifdef __cplusplus
#include <cstddef>
#define VMRD_QTI_ASSERT(e, m) static_assert(e, m)
#elif defined(__KERNEL__) /* the emulated device, tests/qti_virtio_mem */
#include <linux/stddef.h>
#define VMRD_QTI_ASSERT(e, m) _Static_assert(e, m)
#else
#include <stddef.h>
#define VMRD_QTI_ASSERT(e, m) _Static_assert(e, m)
#endif
VMRD_QTI_ASSERT(sizeof(struct qti_virtio_mem_ioc_hint_create_arg) == 152, "hint_create_arg is 152 bytes");
VMRD_QTI_ASSERT(offsetof(struct qti_virtio_mem_ioc_hint_create_arg, size) == 128, "size at 128");
VMRD_QTI_ASSERT(offsetof(struct qti_virtio_mem_ioc_hint_create_arg, fd) == 136, "fd at 136");
VMRD_QTI_ASSERT(offsetof(struct qti_virtio_mem_ioc_hint_create_arg, reserved0) == 140, "reserved0 at 140");
VMRD_QTI_ASSERT(offsetof(struct qti_virtio_mem_ioc_hint_create_arg, reserved1) == 144, "reserved1 at 144");
/* _IOWR('M', 0, 152 bytes): direction 3 << 30, size 152 << 16, type 0x4d << 8, number 0. */
VMRD_QTI_ASSERT(QTI_VIRTIO_MEM_IOC_HINT_CREATE == 0xC0984D00u, "QTI_VIRTIO_MEM_IOC_HINT_CREATE is 0xC0984D00");
#undef VMRD_QTI_ASSERT

#endif /* VMRD_QTI_VIRTIO_MEM_H */
