/* SPDX-License-Identifier: MIT */
/* Guest workload: allocates and touches memory at a steady rate, holds it, checks every page, frees it. */
/*
 * usage: workload MIB [RAMP_MS] [HOLD_MS]
 *   Allocates MIB MiB in 1 MiB steps spread over RAMP_MS, writing a pattern
 *   derived from each page's index into every page; holds for HOLD_MS
 *   (checking every page once a second; SIGTERM ends the hold early);
 *   verifies every page; exits.
 * Prints "workload: ok MIB MiB, N pages checked, 0 bad" or the bad count
 * (exit 1).  Pages survive swap-out and virtio-mem migration unchanged or
 * this fails.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024UL * 1024UL)
#define PAGE 4096UL

static volatile sig_atomic_t stop_holding;

static void on_sigterm(int sig)
{
	(void)sig;
	stop_holding = 1;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Each page: a few words of hash, the rest a byte pattern of its index, so
 * that pages compress about as well as real anonymous memory does (zram
 * stores incompressible pages at full size and then helps nothing). */
static uint64_t pattern(uint64_t page, uint64_t word)
{
	if (word >= 8)
		return (page & 0xff) * 0x0101010101010101ULL;
	uint64_t x = page * 0x9E3779B97F4A7C15ULL + word;

	x ^= x >> 31;
	return x * 0xBF58476D1CE4E5B9ULL;
}

static void fill(uint64_t *p, uint64_t page)
{
	for (uint64_t w = 0; w < PAGE / 8; w++)
		p[w] = pattern(page, w);
}

static uint64_t check(uint64_t *base, uint64_t pages)
{
	uint64_t bad = 0;

	for (uint64_t i = 0; i < pages; i++) {
		uint64_t *p = base + i * (PAGE / 8);
		for (uint64_t w = 0; w < PAGE / 8; w++) {
			if (p[w] != pattern(i, w)) {
				bad++;
				break;
			}
		}
	}
	return bad;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: workload MIB [RAMP_MS] [HOLD_MS]\n");
		return 2;
	}
	uint64_t mib = strtoull(argv[1], NULL, 10);
	uint64_t ramp = argc > 2 ? strtoull(argv[2], NULL, 10) : 0;
	uint64_t hold = argc > 3 ? strtoull(argv[3], NULL, 10) : 0;
	uint64_t pages = mib * MIB / PAGE, bad = 0;
	/* Reserve the address space without committing it, then commit 1 MiB
	 * at a time as the workload grows, as a heap does: under the default
	 * overcommit heuristic one mmap larger than RAM + swap would fail. */
	uint64_t *base = mmap(NULL, mib * MIB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (base == MAP_FAILED) {
		perror("workload: mmap");
		return 2;
	}
	uint64_t start = now_ms();
	for (uint64_t m = 0; m < mib; m++) {
		if (mprotect((char *)base + m * MIB, MIB, PROT_READ | PROT_WRITE) != 0) {
			perror("workload: mprotect");
			return 2;
		}
		for (uint64_t i = m * (MIB / PAGE); i < (m + 1) * (MIB / PAGE); i++)
			fill(base + i * (PAGE / 8), i);
		if (ramp) {
			uint64_t due = start + ramp * (m + 1) / mib, t = now_ms();
			if (due > t)
				usleep((useconds_t)(due - t) * 1000);
		}
	}
	printf("workload: %llu MiB touched in %llu ms\n", (unsigned long long)mib,
	       (unsigned long long)(now_ms() - start));
	fflush(stdout);
	struct sigaction sa = {.sa_handler = on_sigterm};
	sigaction(SIGTERM, &sa, NULL);
	uint64_t end = now_ms() + hold;
	while (now_ms() < end && !stop_holding) {
		bad += check(base, pages);
		usleep(1000 * 1000);
	}
	bad += check(base, pages);
	printf("workload: %s %llu MiB, %llu pages checked, %llu bad\n", bad ? "FAILED" : "ok", (unsigned long long)mib,
	       (unsigned long long)pages, (unsigned long long)bad);
	munmap(base, mib * MIB);
	return bad ? 1 : 0;
}
