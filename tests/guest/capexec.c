// SPDX-License-Identifier: MIT
// capexec: runs a program with only the named capabilities, as systemd's
// CapabilityBoundingSet= does for a root service: every other capability is
// dropped from the bounding set, so the exec'd root program gets only these.
//
// usage: capexec CAP_NAME[,CAP_NAME...]|none PROGRAM [ARG...]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

// Capability numbers from linux/capability.h.
static const char *const names[] = {
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_DAC_READ_SEARCH",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_KILL",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETPCAP",
        "CAP_LINUX_IMMUTABLE",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST",
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_IPC_LOCK",
        "CAP_IPC_OWNER",
        "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO",
        "CAP_SYS_CHROOT",
        "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT",
        "CAP_SYS_ADMIN",
        "CAP_SYS_BOOT",
        "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE",
        "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG",
        "CAP_MKNOD",
        "CAP_LEASE",
        "CAP_AUDIT_WRITE",
        "CAP_AUDIT_CONTROL",
        "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE",
        "CAP_MAC_ADMIN",
        "CAP_SYSLOG",
        "CAP_WAKE_ALARM",
        "CAP_BLOCK_SUSPEND",
        "CAP_AUDIT_READ",
        "CAP_PERFMON",
        "CAP_BPF",
        "CAP_CHECKPOINT_RESTORE",
};
#define NCAPS ((int)(sizeof(names) / sizeof(names[0])))

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: capexec CAP_NAME[,CAP_NAME...]|none PROGRAM [ARG...]\n");
		return 64;
	}
	int keep[NCAPS] = {0};
	if (strcmp(argv[1], "none") != 0) {
		char *list = strdup(argv[1]);
		for (char *name = strtok(list, ", "); name; name = strtok(NULL, ", ")) {
			int found = -1;
			for (int i = 0; i < NCAPS; i++)
				if (strcmp(name, names[i]) == 0)
					found = i;
			if (found < 0) {
				fprintf(stderr, "capexec: unknown capability '%s'\n", name);
				return 64;
			}
			keep[found] = 1;
		}
		free(list);
	}
	// Drop beyond the names known here too, up to whatever this kernel has.
	for (int cap = 0; cap < 64; cap++) {
		if (cap < NCAPS && keep[cap])
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && cap < NCAPS) {
			perror("capexec: PR_CAPBSET_DROP");
			return 1;
		}
	}
	execv(argv[2], argv + 2);
	perror("capexec: exec");
	return 127;
}
