/*
 * What both C baselines share (vfio_bench.c in the guest, host_bench.c on the
 * host): the clock, the error answer of the line protocol ("err <errno> <what>"),
 * and numeric command arguments. Included by each; no separate object.
 */
#ifndef VFIO_BENCH_COMMON_H
#define VFIO_BENCH_COMMON_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static int fail(const char *what)
{
	int e = errno;
	printf("err %d %s: %s\n", e, what, strerror(e));
	return -1;
}

static unsigned long long arg(char **argv, int argc, int i)
{
	return i < argc ? strtoull(argv[i], NULL, 0) : 0;
}

#endif
