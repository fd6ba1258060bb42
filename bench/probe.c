/* SPDX-License-Identifier: MIT */
/* The benchmark's helper in the guest: a memory monitor, and the polling controller it compares vmrd with. */
/*
 * usage: probe monitor OUT INTERVAL_MS [PID]
 *   Every INTERVAL_MS appends MemTotal, MemAvailable, swap and the memory PSI
 *   (some/full avg10 and totals) to OUT as records of vmrd's event-log format
 *   ("sample"), after a header with the CLOCK_MONOTONIC start, so vmrd-plot
 *   draws it on one time axis with vmrd's own log.  With PID, each record
 *   also carries "switches": the context switches of all of PID's threads so
 *   far, so that its wakeups can be split by phase.  Runs until killed.
 *
 * usage: probe poll OUT HEADROOM_MIB INTERVAL_MS [PORT]
 *   The polling controller: every INTERVAL_MS reads MemAvailable and asks
 *   the host broker (the virtio-mem backend's protocol, on PORT, by default
 *   /dev/virtio-ports/org.vmrd.0) for a size that keeps HEADROOM_MIB
 *   available: grow by the shortfall, shrink by the excess beyond twice the
 *   headroom.  Like vmrd's virtio-mem backend it then waits until MemTotal
 *   shows the granted size, so that the next poll does not ask again for
 *   memory that is still coming or going.  Appends each resize to OUT as a
 *   "result" record.
 */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024ULL * 1024ULL)

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static size_t slurp(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, size - 1) : -1;

	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = 0;
	return n > 0 ? (size_t)n : 0;
}

static unsigned long long field(const char *text, const char *key)
{
	const char *p = strstr(text, key);

	return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

static unsigned long long meminfo(const char *text, const char *key)
{
	return field(text, key) * 1024;
}

static unsigned long long mem_total(void)
{
	char buf[8192];

	slurp("/proc/meminfo", buf, sizeof(buf));
	return meminfo(buf, "MemTotal:");
}

/* The context switches of all threads of `pid`, voluntary or not: how often
 * a daemon that sleeps between events woke.  -1 when it is gone. */
static long long switches(long pid)
{
	char dir[64], path[512], buf[4096];
	long long sum = 0;

	snprintf(dir, sizeof(dir), "/proc/%ld/task", pid);
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/status", dir, e->d_name);
		slurp(path, buf, sizeof(buf));
		sum += (long long)(field(buf, "\nvoluntary_ctxt_switches:") +
		                   field(buf, "\nnonvoluntary_ctxt_switches:"));
	}
	closedir(d);
	return sum;
}

struct sample {
	unsigned long long total, free, avail, swap_total, swap_free;
	double some10, full10;
	unsigned long long some_us, full_us;
};

static void read_sample(struct sample *s)
{
	char buf[8192];

	slurp("/proc/meminfo", buf, sizeof(buf));
	s->total = meminfo(buf, "MemTotal:");
	s->free = meminfo(buf, "MemFree:");
	s->avail = meminfo(buf, "MemAvailable:");
	s->swap_total = meminfo(buf, "SwapTotal:");
	s->swap_free = meminfo(buf, "SwapFree:");
	slurp("/proc/pressure/memory", buf, sizeof(buf));
	char *full = strstr(buf, "full");
	sscanf(buf, "some avg10=%lf avg60=%*f avg300=%*f total=%llu", &s->some10, &s->some_us);
	if (full)
		sscanf(full, "full avg10=%lf avg60=%*f avg300=%*f total=%llu", &s->full10, &s->full_us);
}

static void write_sample(FILE *out, const char *type, int64_t t, const struct sample *s, const char *extra)
{
	fprintf(out,
	        "{\"type\":\"%s\",\"t_us\":%lld,\"sample\":{\"mem_total\":%llu,\"mem_free\":%llu,\"mem_available\":%"
	        "llu,"
	        "\"swap_total\":%llu,\"swap_free\":%llu,\"some_avg10\":%.2f,\"full_avg10\":%.2f,\"some_total_us\":%llu,"
	        "\"full_total_us\":%llu},\"state\":{\"block_size\":2097152,\"min\":0,\"max\":0,\"plugged\":0}%s}\n",
	        type, (long long)t, s->total, s->free, s->avail, s->swap_total, s->swap_free, s->some10, s->full10,
	        s->some_us, s->full_us, extra);
	fflush(out);
}

static FILE *open_log(const char *path, int64_t start)
{
	FILE *out = fopen(path, "a");

	if (!out) {
		perror(path);
		exit(1);
	}
	fprintf(out, "{\"type\":\"header\",\"format\":1,\"preset\":\"probe\",\"start_us\":%lld}\n", (long long)start);
	fflush(out);
	return out;
}

static _Noreturn void monitor(const char *path, long interval_ms, long pid)
{
	int64_t start = now_us();
	FILE *out = open_log(path, start);
	struct sample s;

	for (;;) {
		char extra[48] = "";
		long long n = pid > 0 ? switches(pid) : -1;

		if (n >= 0)
			snprintf(extra, sizeof(extra), ",\"switches\":%lld", n);
		read_sample(&s);
		write_sample(out, "sample", now_us() - start, &s, extra);
		usleep((useconds_t)interval_ms * 1000);
	}
}

/* The device as the broker last reported it. */
struct device {
	unsigned long long size, requested; /* plugged now; what the host granted */
};

/* One request to the broker: a resize to `target`, or a hello when it is -1.
 * Fills `dev` from the reply. */
static int ask(int fd, unsigned id, long long target, struct device *dev)
{
	char line[256], reply[2048];
	int n = target < 0 ? snprintf(line, sizeof(line), "{\"v\":1,\"id\":%u,\"type\":\"hello\"}\n", id)
	                   : snprintf(line, sizeof(line), "{\"v\":1,\"id\":%u,\"type\":\"resize\",\"target\":%lld}\n",
	                              id, target);
	char want[32];
	snprintf(want, sizeof(want), "\"id\":%u,", id);
	size_t got = 0;
	int64_t deadline = now_us() + 5000000;

	if (write(fd, line, (size_t)n) != n)
		return -1;
	while (now_us() < deadline && got < sizeof(reply) - 1) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 100) <= 0)
			continue;
		ssize_t r = read(fd, reply + got, sizeof(reply) - 1 - got);
		if (r <= 0)
			continue;
		got += (size_t)r;
		reply[got] = 0;
		/* Lines other than the reply to this id (the broker's size
		 * notices, a late reply) are passed over. */
		for (char *nl; (nl = strchr(reply, '\n')) != NULL;) {
			*nl = 0;
			if (strstr(reply, want)) {
				dev->size = field(reply, "\"size\":");
				dev->requested = field(reply, "\"requested\":");
				return strstr(reply, "\"ok\":true") ? 0 : -1;
			}
			size_t rest = got - (size_t)(nl + 1 - reply);
			memmove(reply, nl + 1, rest + 1);
			got = rest;
		}
	}
	return -1;
}

/* Waits until MemTotal shows `expected`, with the limits of vmrd's virtio-mem
 * backend: a plug is done when MemTotal reaches it (it only rises) or after
 * 10 s; an unplug when MemTotal shows it unchanged for 200 ms (each removed
 * block briefly counts back in), after 30 s, or when it stopped short and
 * has not moved for 3 s. */
static void wait_converged(unsigned long long expected, int grow)
{
	int64_t start = now_us(), stable = start;
	unsigned long long last = 0;

	for (;;) {
		unsigned long long total = mem_total();
		int64_t t = now_us();

		if (total != last) {
			stable = t;
			last = total;
		}
		if (total == expected && (grow || t - stable >= 200000))
			return;
		if (t - start >= (grow ? 10000000 : 30000000) || (!grow && t - stable >= 3000000))
			return;
		usleep(20000);
	}
}

/* The size that keeps `headroom` available: grow by the shortfall, shrink by
 * the excess beyond twice the headroom, in whole blocks. */
static unsigned long long poll_target(unsigned long long size, unsigned long long avail, unsigned long long headroom,
                                      unsigned long long block)
{
	if (avail < headroom)
		return size + (headroom - avail + block - 1) / block * block;
	if (avail > 2 * headroom) {
		unsigned long long excess = (avail - 2 * headroom) / block * block;
		return size > excess ? size - excess : 0;
	}
	return size;
}

static int poll_loop(const char *path, unsigned long long headroom, long interval_ms, const char *port)
{
	int fd = open(port, O_RDWR | O_NOCTTY);

	if (fd < 0) {
		perror(port);
		return 1;
	}
	int64_t start = now_us();
	FILE *out = open_log(path, start);
	struct device dev = {0, 0};
	unsigned id = 1;
	const unsigned long long block = 2 * MIB;

	if (ask(fd, id++, -1, &dev) != 0) {
		fprintf(stderr, "probe: no answer from the broker on %s\n", port);
		return 1;
	}
	/* MemTotal with nothing plugged, as the backend learns it. */
	const unsigned long long base = mem_total() - dev.size;
	unsigned long long size = dev.size;

	for (;;) {
		struct sample s;
		read_sample(&s);
		unsigned long long target = poll_target(size, s.avail, headroom, block);
		if (target != size) {
			const char *action = target > size ? "plug" : "unplug";
			unsigned long long asked = target > size ? target - size : size - target, before = size;
			int64_t t0 = now_us();
			int rc = ask(fd, id++, (long long)target, &dev);
			if (rc == 0) {
				size = dev.requested;
				wait_converged(base + dev.requested, target > before);
				/* The device's own size counts: an unplug can stop short. */
				if (ask(fd, id++, -1, &dev) == 0)
					size = dev.size;
			}
			char extra[160];
			snprintf(extra, sizeof(extra),
			         ",\"action\":\"%s\",\"bytes\":%llu,\"code\":%d,\"done\":%llu,\"call_us\":%lld", action,
			         asked, rc, size > before ? size - before : before - size, (long long)(now_us() - t0));
			read_sample(&s);
			write_sample(out, "result", now_us() - start, &s, extra);
		}
		usleep((useconds_t)interval_ms * 1000);
	}
}

int main(int argc, char **argv)
{
	if (argc >= 4 && strcmp(argv[1], "monitor") == 0)
		monitor(argv[2], atol(argv[3]), argc > 4 ? atol(argv[4]) : 0);
	if (argc >= 5 && strcmp(argv[1], "poll") == 0)
		return poll_loop(argv[2], strtoull(argv[3], NULL, 10) * MIB, atol(argv[4]),
		                 argc > 5 ? argv[5] : "/dev/virtio-ports/org.vmrd.0");
	fprintf(stderr,
	        "usage: probe monitor OUT INTERVAL_MS [PID] | probe poll OUT HEADROOM_MIB INTERVAL_MS [PORT]\n");
	return 64;
}
