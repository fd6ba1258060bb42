// SPDX-License-Identifier: MIT
// qti-hint: one QTI_VIRTIO_MEM_IOC_HINT_CREATE on /dev/qti_virtio_mem, for
// the test of the emulated device (test_gunyah.py).  Prints the outcome, and
// for a hint the device's plugged blocks and MemTotal while it is held and
// after its fd is closed.
//
// usage: qti-hint SIZE [RESERVED0 [RESERVED1]]
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "qti_virtio_mem.h"

static const char sysfs[] = "/sys/devices/virtual/qti_virtio_mem/qti_virtio_mem/device_block_plugged";

static long long number(const char *path, const char *key)
{
	char line[256];
	long long n = -1;
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!key || strncmp(line, key, strlen(key)) == 0) {
			n = strtoll(line + (key ? strlen(key) : 0), NULL, 10);
			break;
		}
	fclose(f);
	return n;
}

static void state(const char *when)
{
	printf("%s: plugged %lld memtotal_kb %lld\n", when, number(sysfs, NULL), number("/proc/meminfo", "MemTotal:"));
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: qti-hint SIZE [RESERVED0 [RESERVED1]]\n");
		return 2;
	}
	struct qti_virtio_mem_ioc_hint_create_arg arg;
	memset(&arg, 0, sizeof(arg));
	strcpy(arg.name, "qti-hint");
	arg.size = strtoll(argv[1], NULL, 0);
	arg.reserved0 = argc > 2 ? (__u32)strtoul(argv[2], NULL, 0) : 0;
	arg.reserved1 = argc > 3 ? strtoull(argv[3], NULL, 0) : 0;
	int dev = open("/dev/qti_virtio_mem", O_RDWR | O_CLOEXEC);
	if (dev < 0) {
		printf("open: %s\n", strerrorname_np(errno));
		return 1;
	}
	state("before");
	if (ioctl(dev, QTI_VIRTIO_MEM_IOC_HINT_CREATE, &arg) < 0) {
		printf("hint: %s\n", strerrorname_np(errno));
		return 1;
	}
	int flags = fcntl((int)arg.fd, F_GETFD);
	printf("hint: fd %u cloexec %s\n", arg.fd, flags >= 0 && (flags & FD_CLOEXEC) ? "yes" : "no");
	state("held");
	close((int)arg.fd);
	state("closed");
	return 0;
}
