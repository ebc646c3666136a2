/*
 * The C baseline of the host section of `npm run bench` (bench/host.ts): the
 * same syscalls as the library's side of each case, on the real CPU, with no
 * /dev/vfio. Like bench/c/vfio_bench.c it is a coprocess of the JavaScript
 * runner, which hands it the very fds it uses (a shared-memory file, two
 * eventfds) by inheritance, and alternates batches of ours and of this.
 *
 * One command a line on stdin:
 *
 *   <op> <reps> <args…>
 *
 * and one answer a line on stdout: "ok <ns> [extra…]", the nanoseconds of
 * CLOCK_MONOTONIC spent in the timed part (set-up excluded, as on the JS side),
 * or "err <errno> <what>". Exits at EOF.
 *
 *   pread <reps> <fd> <offset> <width>          → ok ns sum
 *   pwrite <reps> <fd> <offset> <width>         → ok ns
 *   mmio-read32 <reps> <fd> <length> <reg>      → ok ns sum   (volatile loads)
 *   mmio-write32 <reps> <fd> <length> <reg>     → ok ns last  (volatile stores)
 *   js-irq-latency <reps> <fdA> <fdB>           → ok ns       (we signal A, JS answers on B)
 *   js-irq-burst <reps> <fdA> <fdB> <burst>     → ok ns delivered wakeups
 *   irq-latency <reps>                          → ok ns       (A → echo thread → B, all C)
 *   irq-burst <reps> <burst>                    → ok ns delivered wakeups
 *
 * Built by scripts/bench.ts with fixed flags: cc -O2 -std=gnu11 -Wall -Wextra -Werror -pthread.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"

static int check_width(unsigned width)
{
	if (width == 1 || width == 2 || width == 4 || width == 8)
		return 0;
	errno = EINVAL;
	return fail("width");
}

/* `reps` preads of `width` bytes at `offset`: what Region.read32 does per call. */
static int op_pread(unsigned long reps, int fd, uint64_t offset, unsigned width)
{
	uint64_t v = 0, sum = 0;
	if (check_width(width) < 0)
		return -1;
	uint64_t t0 = now_ns();
	for (unsigned long r = 0; r < reps; r++) {
		if (pread(fd, &v, width, (off_t)offset) != (ssize_t)width)
			return fail("pread");
		sum += v;
	}
	printf("ok %" PRIu64 " %" PRIu64 "\n", now_ns() - t0, sum);
	return 0;
}

/* `reps` pwrites of `width` bytes at `offset`, the value changing each time. */
static int op_pwrite(unsigned long reps, int fd, uint64_t offset, unsigned width)
{
	if (check_width(width) < 0)
		return -1;
	uint64_t t0 = now_ns();
	for (unsigned long r = 0; r < reps; r++) {
		uint64_t v = r;
		if (pwrite(fd, &v, width, (off_t)offset) != (ssize_t)width)
			return fail("pwrite");
	}
	printf("ok %" PRIu64 "\n", now_ns() - t0);
	return 0;
}

/* The fd's first `length` bytes, shared (as the JS side's native().mmap maps them), touched once. */
static volatile uint32_t *map_reg(int fd, uint64_t length, uint64_t reg, void **base)
{
	if (reg + 4 > length || reg % 4) {
		errno = EINVAL;
		return NULL;
	}
	void *p = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return NULL;
	*base = p;
	volatile uint32_t *r32 = (volatile uint32_t *)((char *)p + reg);
	(void)*r32; /* fault the page in before the clock starts */
	return r32;
}

/* Volatile 32-bit loads from one register of the mapping. */
static int op_mmio_read32(unsigned long reps, int fd, uint64_t length, uint64_t reg)
{
	void *p;
	volatile uint32_t *r32 = map_reg(fd, length, reg, &p);
	if (!r32)
		return fail("mmap");
	uint64_t sum = 0;
	uint64_t t0 = now_ns();
	for (unsigned long r = 0; r < reps; r++)
		sum += *r32;
	uint64_t t = now_ns() - t0;
	munmap(p, length);
	printf("ok %" PRIu64 " %" PRIu64 "\n", t, sum);
	return 0;
}

/* Volatile 32-bit stores to one register of the mapping, the value changing each time. */
static int op_mmio_write32(unsigned long reps, int fd, uint64_t length, uint64_t reg)
{
	void *p;
	volatile uint32_t *r32 = map_reg(fd, length, reg, &p);
	if (!r32)
		return fail("mmap");
	uint64_t t0 = now_ns();
	for (unsigned long r = 0; r < reps; r++)
		*r32 = (uint32_t)r;
	uint64_t t = now_ns() - t0;
	uint32_t last = *r32;
	munmap(p, length);
	printf("ok %" PRIu64 " %" PRIu32 "\n", t, last);
	return 0;
}

/* ---- eventfd ping-pong -------------------------------------------------------------------- */

/* An epoll set watching one eventfd. */
struct waiter {
	int efd, ep;
};

static int waiter_open(struct waiter *w, int efd)
{
	w->efd = efd;
	w->ep = epoll_create1(EPOLL_CLOEXEC);
	if (w->ep < 0)
		return -1;
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = efd };
	if (epoll_ctl(w->ep, EPOLL_CTL_ADD, efd, &ev) < 0) {
		int e = errno;
		close(w->ep);
		errno = e;
		return -1;
	}
	return 0;
}

/* Waits for the eventfd (epoll_wait, as libuv does) and returns its counter, read and reset. */
static int64_t waiter_wait(struct waiter *w, int timeout_ms)
{
	struct epoll_event ev;
	for (;;) {
		int n = epoll_wait(w->ep, &ev, 1, timeout_ms);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ETIMEDOUT;
			return -1;
		}
		uint64_t c;
		if (read(w->efd, &c, sizeof(c)) == sizeof(c))
			return (int64_t)c;
		if (errno != EAGAIN)
			return -1;
	}
}

static int signal_fd(int efd, uint64_t count)
{
	return write(efd, &count, sizeof(count)) == sizeof(count) ? 0 : -1;
}

/* Drains a non-blocking eventfd (leftovers of a failed run must not count in the next). */
static void drain(int efd)
{
	uint64_t c;
	while (read(efd, &c, sizeof(c)) == sizeof(c))
		;
}

/*
 * The timing side, shared by the JS and the C ping-pong: `reps` signals on A in
 * bursts of `burst` (1: one at a time, the latency), each burst answered in
 * full on B before the next. Returns the ns; *delivered and *wakeups get the
 * counts summed from B and the number of B wake-ups.
 */
static int pingpong(unsigned long reps, unsigned long burst, int a, int b, uint64_t *ns, uint64_t *delivered, uint64_t *wakeups)
{
	struct waiter w;
	if (burst == 0)
		burst = 1;
	if (waiter_open(&w, b) < 0)
		return fail("epoll");
	drain(b);
	uint64_t issued = 0, got = 0, wakes = 0;
	uint64_t t0 = now_ns();
	while (issued < reps) {
		for (unsigned long i = 0; i < burst && issued < reps; i++, issued++)
			if (signal_fd(a, 1) < 0) {
				close(w.ep);
				return fail("write eventfd A");
			}
		while (got < issued) {
			int64_t c = waiter_wait(&w, 10000);
			if (c < 0) {
				int e = errno;
				close(w.ep);
				errno = e;
				return fail("waiting for eventfd B");
			}
			got += (uint64_t)c;
			wakes++;
		}
	}
	*ns = now_ns() - t0;
	close(w.ep);
	*delivered = got;
	*wakeups = wakes;
	return 0;
}

/* The JS side answers: its eventfd handler on A signals B with the count it read. */
static int op_js_pingpong(unsigned long reps, int a, int b, unsigned long burst, int extras)
{
	uint64_t ns, delivered, wakeups;
	if (pingpong(reps, burst, a, b, &ns, &delivered, &wakeups) < 0)
		return -1;
	if (extras)
		printf("ok %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", ns, delivered, wakeups);
	else
		printf("ok %" PRIu64 "\n", ns);
	return 0;
}

/* The C side answers: a thread waits on A with epoll, reads the count and writes it to B. */
struct echo {
	int a, b;
	unsigned long total;
	int err;
};

static void *echo_main(void *p)
{
	struct echo *e = p;
	struct waiter w;
	if (waiter_open(&w, e->a) < 0) {
		e->err = errno;
		return NULL;
	}
	unsigned long seen = 0;
	while (seen < e->total) {
		int64_t c = waiter_wait(&w, 10000);
		if (c < 0 || signal_fd(e->b, (uint64_t)c) < 0) {
			e->err = errno;
			break;
		}
		seen += (unsigned long)c;
	}
	close(w.ep);
	return NULL;
}

static int op_c_pingpong(unsigned long reps, unsigned long burst, int extras)
{
	int a = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	int b = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (a < 0 || b < 0)
		return fail("eventfd");
	struct echo e = { .a = a, .b = b, .total = reps, .err = 0 };
	pthread_t t;
	int r = pthread_create(&t, NULL, echo_main, &e);
	if (r != 0) {
		errno = r;
		close(a);
		close(b);
		return fail("pthread_create");
	}
	uint64_t ns = 0, delivered = 0, wakeups = 0;
	int rc = pingpong(reps, burst, a, b, &ns, &delivered, &wakeups);
	if (rc < 0)
		signal_fd(a, reps); /* let the echo thread finish */
	pthread_join(t, NULL);
	close(a);
	close(b);
	if (rc < 0)
		return -1;
	if (e.err) {
		errno = e.err;
		return fail("echo thread");
	}
	if (extras)
		printf("ok %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", ns, delivered, wakeups);
	else
		printf("ok %" PRIu64 "\n", ns);
	return 0;
}

static int run(char *line)
{
	char *argv[16];
	int argc = 0;
	for (char *s = strtok(line, " \t\n"); s && argc < 16; s = strtok(NULL, " \t\n"))
		argv[argc++] = s;
	if (argc < 2) {
		errno = EINVAL;
		return fail("usage: <op> <reps> <args…>");
	}
	const char *op = argv[0];
	unsigned long reps = strtoul(argv[1], NULL, 0);
	if (!strcmp(op, "pread"))
		return op_pread(reps, (int)arg(argv, argc, 2), arg(argv, argc, 3), (unsigned)arg(argv, argc, 4));
	if (!strcmp(op, "pwrite"))
		return op_pwrite(reps, (int)arg(argv, argc, 2), arg(argv, argc, 3), (unsigned)arg(argv, argc, 4));
	if (!strcmp(op, "mmio-read32"))
		return op_mmio_read32(reps, (int)arg(argv, argc, 2), arg(argv, argc, 3), arg(argv, argc, 4));
	if (!strcmp(op, "mmio-write32"))
		return op_mmio_write32(reps, (int)arg(argv, argc, 2), arg(argv, argc, 3), arg(argv, argc, 4));
	if (!strcmp(op, "js-irq-latency"))
		return op_js_pingpong(reps, (int)arg(argv, argc, 2), (int)arg(argv, argc, 3), 1, 0);
	if (!strcmp(op, "js-irq-burst"))
		return op_js_pingpong(reps, (int)arg(argv, argc, 2), (int)arg(argv, argc, 3), arg(argv, argc, 4), 1);
	if (!strcmp(op, "irq-latency"))
		return op_c_pingpong(reps, 1, 0);
	if (!strcmp(op, "irq-burst"))
		return op_c_pingpong(reps, arg(argv, argc, 2), 1);
	errno = EINVAL;
	return fail(op);
}

int main(void)
{
	char line[1024];
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof(line), stdin))
		run(line);
	return 0;
}
