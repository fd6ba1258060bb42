/* SPDX-License-Identifier: MIT */
/*
 * fd-holder: the part of systemd's service manager that the file descriptor
 * store is, for tests where no systemd runs (a busybox guest, a unit test).
 *
 * usage: fd-holder [-r RESTARTS] PROGRAM [ARG...]
 *
 * Runs PROGRAM with $NOTIFY_SOCKET.  Keeps the fds it sends with FDSTORE=1
 * under their FDNAME= (default "stored"); FDSTOREREMOVE=1 with FDNAME=
 * closes those of that name.  When PROGRAM ends, starts it again, up to
 * RESTARTS times (default 1), with the kept fds from 3 on and $LISTEN_FDS,
 * $LISTEN_FDNAMES and $LISTEN_PID, as systemd does for Restart=.  SIGTERM
 * and SIGINT are passed on to PROGRAM and end the restarts.
 *
 * One line per event on stdout: "started PID", "ready", "stored NAME",
 * "removed NAME", "exited CODE" or "killed SIGNAL".  Exits with PROGRAM's
 * last exit code (128 + signal if it was killed).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_KEPT 4096
#define MAX_PASSED 253 /* SCM_MAX_FD */

static struct {
	int fd;
	char name[256];
} kept[MAX_KEPT];
static int n_kept;

static void say(const char *fmt, const char *arg)
{
	printf(fmt, arg);
	putchar('\n');
	fflush(stdout);
}

/* As systemd's same_fd(): kcmp() where the kernel has it, else the inode
 * and the flags.  Every anonymous inode fd (a Gunyah hint, an eventfd)
 * shares one inode, so the inode alone would take them all for one. */
static int same_file(int a, int b)
{
	const pid_t self = getpid();
	const long r = syscall(SYS_kcmp, self, self, KCMP_FILE, a, b);
	struct stat x, y;

	if (r >= 0)
		return r == 0;
	return fstat(a, &x) == 0 && fstat(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino &&
	       fcntl(a, F_GETFL) == fcntl(b, F_GETFL);
}

static void keep(int fd, const char *name)
{
	for (int i = 0; i < n_kept; i++)
		if (same_file(kept[i].fd, fd)) { /* as systemd: the same file once */
			close(fd);
			return;
		}
	if (n_kept == MAX_KEPT) {
		fprintf(stderr, "fd-holder: more than %d fds to keep; '%s' dropped\n", MAX_KEPT, name);
		close(fd);
		return;
	}
	kept[n_kept].fd = fd;
	snprintf(kept[n_kept].name, sizeof(kept[n_kept].name), "%s", name);
	n_kept++;
	say("stored %s", name);
}

static void drop(const char *name)
{
	for (int i = 0; i < n_kept;)
		if (strcmp(kept[i].name, name) == 0) {
			close(kept[i].fd);
			say("removed %s", name);
			kept[i] = kept[--n_kept];
		} else {
			i++;
		}
}

/* One datagram: its lines, and the fds that came with it. */
static void receive(int sock)
{
	char text[4096], control[CMSG_SPACE(sizeof(int) * MAX_PASSED)];
	struct iovec iov = {text, sizeof(text) - 1};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control)};
	int fds[MAX_PASSED], n_fds = 0, store = 0, remove = 0;
	char name[256] = "stored";
	ssize_t n = recvmsg(sock, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

	if (n < 0)
		return;
	text[n] = '\0';
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			n_fds = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			memcpy(fds, CMSG_DATA(c), sizeof(int) * (size_t)n_fds);
		}
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		if (strcmp(line, "READY=1") == 0)
			say("ready", "");
		else if (strcmp(line, "FDSTORE=1") == 0)
			store = 1;
		else if (strcmp(line, "FDSTOREREMOVE=1") == 0)
			remove = 1;
		else if (strncmp(line, "FDNAME=", 7) == 0)
			snprintf(name, sizeof(name), "%s", line + 7);
	}
	if (remove)
		drop(name);
	for (int i = 0; i < n_fds; i++)
		if (store)
			keep(fds[i], name);
		else
			close(fds[i]);
}

static pid_t start(char **argv)
{
	char pid[32], count[32];
	pid_t child = fork();

	sigset_t none;

	if (child != 0)
		return child;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Out of the way first, then to 3, 4, ...: dup2 clears FD_CLOEXEC. */
	for (int i = 0; i < n_kept; i++)
		kept[i].fd = fcntl(kept[i].fd, F_DUPFD_CLOEXEC, 3 + n_kept);
	size_t len = 1, used = 0;
	for (int i = 0; i < n_kept; i++) {
		dup2(kept[i].fd, 3 + i);
		len += strlen(kept[i].name) + 1;
	}
	char *names = calloc(1, len);
	for (int i = 0; names && i < n_kept; i++)
		used += (size_t)snprintf(names + used, len - used, "%s%s", i ? ":" : "", kept[i].name);
	if (n_kept) {
		snprintf(pid, sizeof(pid), "%d", (int)getpid());
		snprintf(count, sizeof(count), "%d", n_kept);
		setenv("LISTEN_PID", pid, 1);
		setenv("LISTEN_FDS", count, 1);
		setenv("LISTEN_FDNAMES", names ? names : "", 1);
	}
	execvp(argv[0], argv);
	fprintf(stderr, "fd-holder: %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

int main(int argc, char **argv)
{
	int restarts = 1, arg = 1, code = 0;
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	socklen_t len = sizeof(sa_family_t);
	char address[sizeof(sun.sun_path) + 1];
	sigset_t mask;

	if (argc > 2 && strcmp(argv[1], "-r") == 0) {
		restarts = atoi(argv[2]);
		arg = 3;
	}
	if (arg >= argc) {
		fprintf(stderr, "usage: fd-holder [-r RESTARTS] PROGRAM [ARG...]\n");
		return 64;
	}
	/* An abstract name the kernel picks: unique, nothing to clean up. */
	int sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0 || bind(sock, (struct sockaddr *)&sun, len) != 0 ||
	    getsockname(sock, (struct sockaddr *)&sun, (len = sizeof(sun), &len)) != 0) {
		perror("fd-holder: notify socket");
		return 1;
	}
	snprintf(address, sizeof(address), "@%.*s", (int)(len - sizeof(sa_family_t) - 1), sun.sun_path + 1);
	setenv("NOTIFY_SOCKET", address, 1);
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int signals = signalfd(-1, &mask, SFD_CLOEXEC);

	pid_t child = start(argv + arg);
	printf("started %d\n", (int)child);
	fflush(stdout);
	for (;;) {
		struct pollfd p[2] = {{sock, POLLIN, 0}, {signals, POLLIN, 0}};
		struct signalfd_siginfo si;
		int status;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			return 1;
		if (p[0].revents & POLLIN)
			receive(sock);
		if (!(p[1].revents & POLLIN) || read(signals, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo != SIGCHLD) {
			restarts = 0;
			kill(child, (int)si.ssi_signo);
			continue;
		}
		if (waitpid(child, &status, WNOHANG) != child)
			continue;
		while (poll(p, 1, 0) > 0 && (p[0].revents & POLLIN)) /* what it sent before it ended */
			receive(sock);
		code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		printf(WIFEXITED(status) ? "exited %d\n" : "killed %d\n",
		       WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		fflush(stdout);
		if (restarts-- <= 0)
			return code;
		child = start(argv + arg);
		printf("started %d\n", (int)child);
		fflush(stdout);
	}
}
