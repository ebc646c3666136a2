/*
 * The C baseline of `npm run bench`: the same work as the library's side of each
 * case, with raw syscalls, in the same guest, on the same kernel objects.
 *
 * It runs as a coprocess of the JavaScript runner (bench/run.ts), which hands it
 * the very fds it uses itself (device, container, iommufd) by inheritance, so both
 * sides drive one device and one DMA space. The runner alternates: a batch of
 * ours, a batch of this, and so on. One command a line on stdin:
 *
 *   <op> <reps> <args…>
 *
 * and one answer a line on stdout: "ok <ns> [extra…]", the nanoseconds of
 * CLOCK_MONOTONIC spent in the timed part (set-up excluded, as on the JS side),
 * or "err <errno> <what>". Exits at EOF.
 *
 * Built by scripts/bench.ts with fixed flags: cc -O2 -std=gnu11 -Wall -Wextra -Werror.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/vfio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"

/* iommufd (include/uapi/linux/iommufd.h, 6.12); the build host's headers predate it. */
#define IOMMUFD_TYPE ';'
#define IOMMU_IOAS_MAP _IO(IOMMUFD_TYPE, 0x85)
#define IOMMU_IOAS_UNMAP _IO(IOMMUFD_TYPE, 0x86)
#define IOMMU_IOAS_MAP_FIXED_IOVA (1 << 0)
#define IOMMU_IOAS_MAP_WRITEABLE (1 << 1)
#define IOMMU_IOAS_MAP_READABLE (1 << 2)
struct iommu_ioas_map {
	uint32_t size;
	uint32_t flags;
	uint32_t ioas_id;
	uint32_t __reserved;
	uint64_t user_va;
	uint64_t length;
	uint64_t iova;
};
struct iommu_ioas_unmap {
	uint32_t size;
	uint32_t ioas_id;
	uint64_t iova;
	uint64_t length;
};
_Static_assert(sizeof(struct iommu_ioas_map) == 40, "iommu_ioas_map");
_Static_assert(sizeof(struct iommu_ioas_unmap) == 24, "iommu_ioas_unmap");

#define PAGE 4096UL

/* Anonymous memory like the library's DmaBuffer: private, not forked, not prefaulted. */
static void *dma_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	madvise(p, size, MADV_DONTFORK);
	return p;
}

/* GET_REGION_INFO with the same two-step argsz protocol as the library. */
static int op_region_info(unsigned long reps, int fd, unsigned index)
{
	char big[4096];
	uint64_t t0 = now_ns();
	for (unsigned long r = 0; r < reps; r++) {
		struct vfio_region_info ri = { .argsz = sizeof(ri), .index = index };
		if (ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &ri) < 0)
			return fail("VFIO_DEVICE_GET_REGION_INFO");
		if (ri.argsz > sizeof(ri) && ri.argsz <= sizeof(big)) {
			struct vfio_region_info *p = (struct vfio_region_info *)big;
			memset(big, 0, ri.argsz);
			p->argsz = ri.argsz;
			p->index = index;
			if (ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, p) < 0)
				return fail("VFIO_DEVICE_GET_REGION_INFO");
		}
	}
	printf("ok %" PRIu64 "\n", now_ns() - t0);
	return 0;
}

static int op_irq_info(unsigned long reps, int fd, unsigned index)
{
	uint64_t t0 = now_ns();
	for (unsigned long r = 0; r < reps; r++) {
		struct vfio_irq_info ii = { .argsz = sizeof(ii), .index = index };
		if (ioctl(fd, VFIO_DEVICE_GET_IRQ_INFO, &ii) < 0)
			return fail("VFIO_DEVICE_GET_IRQ_INFO");
	}
	printf("ok %" PRIu64 "\n", now_ns() - t0);
	return 0;
}

static int type1_map(int fd, void *va, uint64_t iova, uint64_t size)
{
	struct vfio_iommu_type1_dma_map m = {
		.argsz = sizeof(m),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = (uintptr_t)va,
		.iova = iova,
		.size = size,
	};
	return ioctl(fd, VFIO_IOMMU_MAP_DMA, &m);
}

static int type1_unmap(int fd, uint64_t iova, uint64_t size, uint32_t flags)
{
	struct vfio_iommu_type1_dma_unmap u = { .argsz = sizeof(u), .flags = flags, .iova = iova, .size = size };
	return ioctl(fd, VFIO_IOMMU_UNMAP_DMA, &u);
}

/* With `fixed`, at *iova; else the kernel chooses and *iova receives it. */
static int ioas_map(int fd, uint32_t ioas, void *va, uint64_t size, uint64_t *iova, int fixed)
{
	struct iommu_ioas_map m = {
		.size = sizeof(m),
		.flags = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE | (fixed ? IOMMU_IOAS_MAP_FIXED_IOVA : 0),
		.ioas_id = ioas,
		.user_va = (uintptr_t)va,
		.length = size,
		.iova = fixed ? *iova : 0,
	};
	if (ioctl(fd, IOMMU_IOAS_MAP, &m) < 0)
		return -1;
	*iova = m.iova;
	return 0;
}

static int ioas_unmap(int fd, uint32_t ioas, uint64_t iova, uint64_t length)
{
	struct iommu_ioas_unmap u = { .size = sizeof(u), .ioas_id = ioas, .iova = iova, .length = length };
	return ioctl(fd, IOMMU_IOAS_UNMAP, &u);
}

/* Map and unmap one 4 KiB buffer, `reps` times. */
static int op_type1_map(unsigned long reps, int fd, uint64_t iova)
{
	void *buf = dma_alloc(PAGE);
	if (!buf)
		return fail("mmap");
	uint64_t t0 = now_ns();
	for (unsigned long r = 0; r < reps; r++) {
		if (type1_map(fd, buf, iova, PAGE) < 0)
			return fail("VFIO_IOMMU_MAP_DMA");
		if (type1_unmap(fd, iova, PAGE, 0) < 0)
			return fail("VFIO_IOMMU_UNMAP_DMA");
	}
	uint64_t t = now_ns() - t0;
	munmap(buf, PAGE);
	printf("ok %" PRIu64 "\n", t);
	return 0;
}

static int op_ioas_map(unsigned long reps, int fd, uint32_t ioas)
{
	void *buf = dma_alloc(PAGE);
	if (!buf)
		return fail("mmap");
	uint64_t t0 = now_ns();
	for (unsigned long r = 0; r < reps; r++) {
		uint64_t iova;
		if (ioas_map(fd, ioas, buf, PAGE, &iova, 0) < 0)
			return fail("IOMMU_IOAS_MAP");
		if (ioas_unmap(fd, ioas, iova, PAGE) < 0)
			return fail("IOMMU_IOAS_UNMAP");
	}
	uint64_t t = now_ns() - t0;
	munmap(buf, PAGE);
	printf("ok %" PRIu64 "\n", t);
	return 0;
}

/* Map a large buffer (pinning it through the IOMMU); only the map is timed. */
static int op_type1_map_big(unsigned long reps, int fd, uint64_t iova, uint64_t size)
{
	void *buf = dma_alloc(size);
	if (!buf)
		return fail("mmap");
	uint64_t total = 0;
	for (unsigned long r = 0; r < reps; r++) {
		uint64_t t0 = now_ns();
		if (type1_map(fd, buf, iova, size) < 0)
			return fail("VFIO_IOMMU_MAP_DMA");
		total += now_ns() - t0;
		if (type1_unmap(fd, iova, size, 0) < 0)
			return fail("VFIO_IOMMU_UNMAP_DMA");
	}
	munmap(buf, size);
	printf("ok %" PRIu64 "\n", total);
	return 0;
}

/*
 * n live 4 KiB mappings at IOVAs base, base+4K, … (fixed on iommufd too: the
 * kernel's own IOVA choice costs time linear in the live mappings); the maps are
 * timed, the unmap-all after them is not.
 */
/* n live 4 KiB mappings of a window of pages mapped round robin (window 0: n distinct pages). */
static int op_scale(unsigned long reps, int fd, int iommufd_ioas, uint32_t ioas, uint64_t base, unsigned long n, unsigned long window)
{
	if (!window || window > n)
		window = n;
	char *buf = dma_alloc(window * PAGE);
	if (!buf)
		return fail("mmap");
	uint64_t total = 0;
	for (unsigned long r = 0; r < reps; r++) {
		uint64_t t0 = now_ns();
		for (unsigned long i = 0; i < n; i++) {
			uint64_t iova = base + i * PAGE;
			if (iommufd_ioas ? ioas_map(fd, ioas, buf + (i % window) * PAGE, PAGE, &iova, 1) < 0 : type1_map(fd, buf + (i % window) * PAGE, iova, PAGE) < 0)
				return fail(iommufd_ioas ? "IOMMU_IOAS_MAP" : "VFIO_IOMMU_MAP_DMA");
		}
		total += now_ns() - t0;
		if (iommufd_ioas ? ioas_unmap(fd, ioas, 0, UINT64_MAX) < 0 : type1_unmap(fd, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL) < 0)
			return fail("unmap all");
	}
	munmap(buf, window * PAGE);
	printf("ok %" PRIu64 "\n", total);
	return 0;
}

static int op_pread(unsigned long reps, int fd, uint64_t offset, unsigned width)
{
	uint64_t v = 0, sum = 0;
	if (width != 1 && width != 2 && width != 4 && width != 8) {
		errno = EINVAL;
		return fail("width");
	}
	uint64_t t0 = now_ns();
	for (unsigned long r = 0; r < reps; r++) {
		if (pread(fd, &v, width, (off_t)offset) != (ssize_t)width)
			return fail("pread");
		sum += v;
	}
	printf("ok %" PRIu64 " %" PRIu64 "\n", now_ns() - t0, sum);
	return 0;
}

/* Volatile 32-bit loads from a register in an mmap'd region. */
static int op_mmio_read32(unsigned long reps, int fd, uint64_t map_offset, uint64_t length, uint64_t reg)
{
	void *p = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)map_offset);
	if (p == MAP_FAILED)
		return fail("mmap");
	volatile uint32_t *r32 = (volatile uint32_t *)((char *)p + reg);
	uint64_t sum = 0;
	uint64_t t0 = now_ns();
	for (unsigned long r = 0; r < reps; r++)
		sum += *r32;
	uint64_t t = now_ns() - t0;
	munmap(p, length);
	printf("ok %" PRIu64 " %" PRIu64 "\n", t, sum);
	return 0;
}

/* memcpy of `bytes` from an mmap'd region into memory of our own. */
static int op_memcpy(unsigned long reps, int fd, uint64_t map_offset, uint64_t length, uint64_t bytes)
{
	static char *dst;
	static uint64_t dst_size;
	if (bytes > length) {
		errno = EINVAL;
		return fail("bytes > length");
	}
	if (dst_size < bytes) {
		free(dst);
		dst = malloc(bytes);
		if (!dst)
			return fail("malloc");
		memset(dst, 0, bytes);
		dst_size = bytes;
	}
	void *p = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)map_offset);
	if (p == MAP_FAILED)
		return fail("mmap");
	uint64_t t0 = now_ns();
	for (unsigned long r = 0; r < reps; r++) {
		memcpy(dst, p, bytes);
		__asm__ volatile("" : : "r"(dst) : "memory");
	}
	uint64_t t = now_ns() - t0;
	munmap(p, length);
	printf("ok %" PRIu64 " %u\n", t, (unsigned char)dst[bytes - 1]);
	return 0;
}

static int set_irqs(int fd, uint32_t flags, unsigned index, unsigned start, unsigned count, const int32_t *efd)
{
	char b[sizeof(struct vfio_irq_set) + sizeof(int32_t)];
	struct vfio_irq_set *s = (struct vfio_irq_set *)b;
	s->argsz = sizeof(struct vfio_irq_set) + (efd ? sizeof(int32_t) : 0);
	s->flags = flags;
	s->index = index;
	s->start = start;
	s->count = count;
	if (efd)
		memcpy(s->data, efd, sizeof(int32_t));
	return ioctl(fd, VFIO_DEVICE_SET_IRQS, s);
}

struct irq {
	int efd, ep;
};

static int irq_setup(struct irq *q, int fd, unsigned index)
{
	q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->efd < 0)
		return fail("eventfd");
	q->ep = epoll_create1(EPOLL_CLOEXEC);
	if (q->ep < 0)
		return fail("epoll_create1");
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = q->efd };
	if (epoll_ctl(q->ep, EPOLL_CTL_ADD, q->efd, &ev) < 0)
		return fail("epoll_ctl");
	int32_t e = q->efd;
	if (set_irqs(fd, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, index, 0, 1, &e) < 0)
		return fail("VFIO_DEVICE_SET_IRQS (eventfd)");
	return 0;
}

static void irq_teardown(struct irq *q, int fd, unsigned index)
{
	set_irqs(fd, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, index, 0, 0, NULL);
	close(q->ep);
	close(q->efd);
}

/* Waits for the eventfd and returns its counter (coalesced deliveries counted). */
static int64_t irq_wait(struct irq *q)
{
	struct epoll_event ev;
	for (;;) {
		int n = epoll_wait(q->ep, &ev, 1, 5000);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ETIMEDOUT;
			return -1;
		}
		uint64_t c;
		if (read(q->efd, &c, sizeof(c)) == sizeof(c))
			return (int64_t)c;
		if (errno != EAGAIN)
			return -1;
	}
}

/* Software trigger (DATA_NONE|ACTION_TRIGGER) to epoll_wait's return, per interrupt. */
static int op_irq_latency(unsigned long reps, int fd, unsigned index)
{
	struct irq q;
	if (irq_setup(&q, fd, index) < 0)
		return -1;
	uint64_t total = 0;
	for (unsigned long r = 0; r < reps; r++) {
		uint64_t t0 = now_ns();
		if (set_irqs(fd, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, index, 0, 1, NULL) < 0)
			return fail("VFIO_DEVICE_SET_IRQS (trigger)");
		if (irq_wait(&q) < 0)
			return fail("epoll_wait");
		total += now_ns() - t0;
	}
	irq_teardown(&q, fd, index);
	printf("ok %" PRIu64 "\n", total);
	return 0;
}

/* `reps` interrupts in bursts of `burst` triggers, each burst drained before the next. */
static int op_irq_throughput(unsigned long reps, int fd, unsigned index, unsigned long burst)
{
	struct irq q;
	if (burst == 0)
		burst = 1;
	if (irq_setup(&q, fd, index) < 0)
		return -1;
	uint64_t delivered = 0, wakeups = 0, issued = 0;
	uint64_t t0 = now_ns();
	while (issued < reps) {
		for (unsigned long b = 0; b < burst && issued < reps; b++, issued++)
			if (set_irqs(fd, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, index, 0, 1, NULL) < 0)
				return fail("VFIO_DEVICE_SET_IRQS (trigger)");
		while (delivered < issued) {
			int64_t c = irq_wait(&q);
			if (c < 0)
				return fail("epoll_wait");
			delivered += (uint64_t)c;
			wakeups++;
		}
	}
	uint64_t t = now_ns() - t0;
	irq_teardown(&q, fd, index);
	printf("ok %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", t, delivered, wakeups);
	return 0;
}

static int write_file(const char *path, const char *data)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, data, strlen(data));
	int e = errno;
	close(fd);
	errno = e;
	return n < 0 ? -1 : 0;
}

static void uuid_v4(char out[37])
{
	unsigned char b[16];
	while (getrandom(b, sizeof(b), 0) != sizeof(b))
		;
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5],
		 b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/*
 * Create an mdev, wait until its device and /dev/vfio/N exist (what the library's
 * create() waits for), remove it.
 */
static int op_mdev_cycle(unsigned long reps, const char *type_dir)
{
	char path[512], link[256], node[300], uuid[37];
	uint64_t t0 = now_ns();
	for (unsigned long r = 0; r < reps; r++) {
		uuid_v4(uuid);
		snprintf(path, sizeof(path), "%s/create", type_dir);
		if (write_file(path, uuid) < 0)
			return fail("write create");
		snprintf(path, sizeof(path), "/sys/bus/mdev/devices/%s/iommu_group", uuid);
		for (int tries = 0;; tries++) {
			ssize_t n = readlink(path, link, sizeof(link) - 1);
			if (n > 0) {
				link[n] = 0;
				const char *g = strrchr(link, '/');
				snprintf(node, sizeof(node), "/dev/vfio/%s", g ? g + 1 : link);
				struct stat st;
				if (stat(node, &st) == 0)
					break;
			}
			if (tries > 5000) {
				errno = ETIMEDOUT;
				return fail("waiting for the mdev's nodes");
			}
			usleep(1000);
		}
		snprintf(path, sizeof(path), "/sys/bus/mdev/devices/%s/remove", uuid);
		if (write_file(path, "1") < 0)
			return fail("write remove");
	}
	printf("ok %" PRIu64 "\n", now_ns() - t0);
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
	if (!strcmp(op, "region-info"))
		return op_region_info(reps, (int)arg(argv, argc, 2), (unsigned)arg(argv, argc, 3));
	if (!strcmp(op, "irq-info"))
		return op_irq_info(reps, (int)arg(argv, argc, 2), (unsigned)arg(argv, argc, 3));
	if (!strcmp(op, "type1-map"))
		return op_type1_map(reps, (int)arg(argv, argc, 2), arg(argv, argc, 3));
	if (!strcmp(op, "ioas-map"))
		return op_ioas_map(reps, (int)arg(argv, argc, 2), (uint32_t)arg(argv, argc, 3));
	if (!strcmp(op, "type1-map-big"))
		return op_type1_map_big(reps, (int)arg(argv, argc, 2), arg(argv, argc, 3), arg(argv, argc, 4));
	if (!strcmp(op, "scale-type1"))
		return op_scale(reps, (int)arg(argv, argc, 2), 0, 0, arg(argv, argc, 3), arg(argv, argc, 4), argc > 5 ? arg(argv, argc, 5) : 0);
	if (!strcmp(op, "scale-ioas"))
		return op_scale(reps, (int)arg(argv, argc, 2), 1, (uint32_t)arg(argv, argc, 3), arg(argv, argc, 4), arg(argv, argc, 5), argc > 6 ? arg(argv, argc, 6) : 0);
	if (!strcmp(op, "pread"))
		return op_pread(reps, (int)arg(argv, argc, 2), arg(argv, argc, 3), (unsigned)arg(argv, argc, 4));
	if (!strcmp(op, "mmio-read32"))
		return op_mmio_read32(reps, (int)arg(argv, argc, 2), arg(argv, argc, 3), arg(argv, argc, 4), arg(argv, argc, 5));
	if (!strcmp(op, "memcpy"))
		return op_memcpy(reps, (int)arg(argv, argc, 2), arg(argv, argc, 3), arg(argv, argc, 4), arg(argv, argc, 5));
	if (!strcmp(op, "irq-latency"))
		return op_irq_latency(reps, (int)arg(argv, argc, 2), (unsigned)arg(argv, argc, 3));
	if (!strcmp(op, "irq-throughput"))
		return op_irq_throughput(reps, (int)arg(argv, argc, 2), (unsigned)arg(argv, argc, 3), arg(argv, argc, 4));
	if (!strcmp(op, "mdev-cycle") && argc > 2)
		return op_mdev_cycle(reps, argv[2]);
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
