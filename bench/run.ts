/**
 * The benchmark suite, run inside the test-bed guest by `npm run bench`
 * (scripts/bench.ts). Each case runs the library's side and the C baseline
 * (bench/c/vfio_bench.c, a coprocess given the very same fds) in alternating
 * batches after a warm-up, so machine drift hits both sides alike, and writes
 * bench-results/latest.json plus a readable table.
 *
 *   node --expose-gc build/bench-js/bench/run.js [--quick] [--only NAME,NAME…]   (compiled by scripts/bench.ts)
 */
import { existsSync, mkdirSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DmaMapper,
  MdevBus,
  allocDmaBuffer,
  findEdu,
  openDevice,
  type Device,
  type DmaBuffer,
  type DmaSpace,
  type OpenedDevice,
} from '../src/index.js';
import { native } from '../src/native.js';
import { LAYOUTS } from '../src/uapi/layouts.js';
import { CBaseline } from './coprocess.js';
import { nvmeBench } from './nvme.js';
import { renderNvmeTable } from './nvme-report.js';
import { makeCase, refusedCase, renderTable, stats, type BenchReport, type CaseResult, type CaseSpec, type Stats } from './report.js';

const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const onlyArg = args.indexOf('--only');
const ONLY = onlyArg >= 0 ? new Set((args[onlyArg + 1] ?? '').split(',').filter(Boolean)) : null;
const C_BIN = process.env.VFIO_BENCH_C ?? join(process.cwd(), 'build', 'bench', 'vfio_bench');
const OUT_DIR = join(process.cwd(), 'bench-results');
const ROUNDS = QUICK ? 3 : 11;
const MiB = 1024 * 1024;
const PAGE = 4096;
const REGION_INFO_SIZE = LAYOUTS.vfio_region_info.size;

const gc = (globalThis as { gc?: () => void }).gc;
const hr = (): bigint => process.hrtime.bigint();
const log = (s: string): void => void process.stderr.write(`[bench] ${s}\n`);

/** The guest's C baseline, compiled by scripts/bench.ts. */
function cBaseline(fds: number[]): CBaseline {
  if (!existsSync(C_BIN)) throw new Error(`no C baseline at ${C_BIN} (scripts/bench.ts compiles it)`);
  return new CBaseline(C_BIN, fds);
}

/** One side's batch: runs `reps` repetitions and returns the timed nanoseconds (and extras). */
type Batch = (reps: number) => Promise<number | number[]> | number | number[];

interface CompareOptions {
  reps: number;
  rounds?: number;
  ours: Batch;
  c: Batch;
  /** Turns a batch's (ns, reps, extras) into the case's unit. Default µs per repetition. */
  sample?: (ns: number, reps: number, extra: number[]) => number;
  /** One untimed batch per side first (default true; the 1M scale case is warmed by the smaller ones). */
  warmup?: boolean;
}

const perOpUs = (ns: number, reps: number): number => ns / reps / 1000;

/** Alternating batches (ours first on even rounds, C first on odd ones) after one warm-up each. */
async function compare(o: CompareOptions): Promise<{ ours: Stats; c: Stats }> {
  const rounds = o.rounds ?? ROUNDS;
  const sample = o.sample ?? perOpUs;
  const run = async (b: Batch): Promise<number> => {
    const r = await b(o.reps);
    const [ns, ...extra] = Array.isArray(r) ? r : [r];
    return sample(ns!, o.reps, extra);
  };
  if (o.warmup !== false) {
    await run(o.ours);
    await run(o.c);
  }
  const ours: number[] = [];
  const c: number[] = [];
  for (let i = 0; i < rounds; i++) {
    if (i % 2 === 0) {
      ours.push(await run(o.ours));
      c.push(await run(o.c));
    } else {
      c.push(await run(o.c));
      ours.push(await run(o.ours));
    }
  }
  return { ours: stats(ours, o.reps), c: stats(c, o.reps) };
}

/** Node core's own binding on the same fd: a `len`-byte fs.readSync at `pos`, the reference for one-syscall cases. */
function nodeReads(fd: number, len: number, pos: number): Batch {
  const buf = Buffer.alloc(len);
  return (n) => {
    const t0 = hr();
    for (let i = 0; i < n; i++) readSync(fd, buf, 0, len, pos);
    return Number(hr() - t0);
  };
}

const results: CaseResult[] = [];

function wanted(spec: CaseSpec): boolean {
  return ONLY === null || ONLY.has(spec.name) || [...ONLY].some((p) => spec.name.startsWith(p));
}

/** Runs one case: a failure on either side is the case's error, never a number. */
async function bench(spec: CaseSpec, f: () => Promise<{ ours: Stats | null; c: Stats | null }>): Promise<void> {
  if (!wanted(spec)) return;
  log(`${spec.name} …`);
  const t0 = Date.now();
  try {
    const { ours, c } = await f();
    results.push(makeCase(spec, ours, c));
  } catch (e) {
    results.push(makeCase(spec, null, null, `failed: ${(e as Error).message}`));
  }
  const r = results.at(-1)!;
  log(`${spec.name}: ${r.error ? `FAILED: ${r.error}` : `ours ${r.ours?.median.toPrecision(4)} C ${r.c?.median.toPrecision(4)} ${r.unit}, ratio ${r.ratio?.toFixed(3)}`} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
}

/** Records every case of a group as refused, with the reason. */
function refuse(specs: CaseSpec[], reason: string): void {
  for (const s of specs) if (wanted(s)) results.push(refusedCase(s, reason));
}

function fdOf(o: { handle(op: string): { fd: number } }): number {
  return o.handle('bench').fd;
}

// ---------------------------------------------------------------------------
// Cases

const S = {
  regionInfo: { name: 'ioctl GET_REGION_INFO (mdpy)', unit: 'µs/op', target: 1.2, better: 'lower', note: 'decoded into RegionInfo' },
  irqInfo: { name: 'ioctl GET_IRQ_INFO (mdpy)', unit: 'µs/op', target: 1.2, better: 'lower', note: 'decoded into IrqInfo' },
  mapType1: { name: 'DMA map+unmap 4 KiB, type1 (raw)', unit: 'µs/op', target: 1.2, better: 'lower', note: 'Container.mapDma/unmapDma, mdev container' },
  mapType1Mapper: { name: 'DMA map+unmap 4 KiB, type1 (DmaMapper)', unit: 'µs/op', target: 1.2, better: 'lower', note: 'allocated IOVA, table, checks' },
  mapIoas: { name: 'DMA map+unmap 4 KiB, IOAS (raw)', unit: 'µs/op', target: 1.2, better: 'lower', note: 'Ioas.map/unmap, kernel-chosen IOVA' },
  mapIoasMapper: { name: 'DMA map+unmap 4 KiB, IOAS (DmaMapper)', unit: 'µs/op', target: 1.2, better: 'lower', note: 'kernel-chosen IOVA, table, checks' },
  mapBig: { name: 'DMA map 256 MiB, edu type1+VT-d (pinning)', unit: 'ms/op', target: 1.1, better: 'lower', note: 'DmaMapper.map of a fresh buffer' },
  eduPread: { name: 'edu BAR0 read32 (pread)', unit: 'µs/op', target: null, better: 'lower', note: 'Region.read32 ×1000 vs pread' },
  eduMmio: { name: 'edu BAR0 read32 (mmap view)', unit: 'µs/op', target: null, better: 'lower', note: 'MappedRegion.read32 ×1000 vs volatile load' },
  mttyPread: { name: 'mtty LSR read8 (pread)', unit: 'µs/op', target: null, better: 'lower', note: 'Region.read8 ×1000 vs 1-byte pread' },
  nodeFsPread: { name: 'reference: node:fs.readSync 1 byte (mtty LSR)', unit: 'µs/op', target: null, better: 'lower', note: "Node's own binding on the same fd: the floor for any JS caller" },
  // Node core's own binding on the same device fd (one syscall each side): the "C" column is node:fs here.
  regionInfoVsNode: { name: 'GET_REGION_INFO (mdpy) vs node:fs.readSync 4 B', unit: 'µs/op', target: 1.5, better: 'lower', note: 'decoded RegionInfo vs a 4-byte config pread by Node core: one syscall each' },
  mttyVsNode: { name: 'mtty LSR read8: Region vs node:fs.readSync', unit: 'µs/op', target: 1.1, better: 'lower', note: 'Region.read8 vs Node core on the same fd and offset' },
  eduVsNode: { name: 'edu BAR0 read32: Region vs node:fs.readSync', unit: 'µs/op', target: 1.1, better: 'lower', note: 'Region.read32 vs Node core on the same fd and offset' },
  regionInfoSeam: { name: 'ioctl GET_REGION_INFO (native seam only)', unit: 'µs/op', target: null, better: 'lower', note: 'the undecoded reply: what decoding adds is the difference' },
  fbCopy: { name: 'mdpy framebuffer copy 4 MiB (mmap view)', unit: 'MiB/s', target: 0.9, better: 'higher', note: 'Uint8Array.set vs memcpy' },
  irqLatency: { name: 'IRQ latency: SET_IRQS trigger → handler (mtty MSI)', unit: 'µs/op', target: 1.5, better: 'lower', note: 'JS "interrupt" handler vs epoll_wait return' },
  irqThroughput: { name: 'IRQ throughput, bursts of 64 (mtty MSI)', unit: 'irq/s', target: null, better: 'higher', note: 'eventfd counters summed (coalescing counted)' },
  mdevCycle: { name: 'mdev create+remove (mtty-1)', unit: 'ms/op', target: 1.2, better: 'lower', note: 'MdevBus.create/remove vs sysfs writes' },
} satisfies Record<string, CaseSpec>;

/** Live-mapping counts: type1 stops at 64k (its dma_entry_limit is 65535); iommufd has no such limit and goes to 1M. */
const SCALES = QUICK ? [1024, 8192] : [1024, 8192, 65536];
const SCALES_IOAS = QUICK ? SCALES : [...SCALES, 1 << 20];
/**
 * The scale runs map 4 KiB pages of one 64 MiB buffer round robin, so that a
 * million live mappings need no 4 GiB of memory in the 3 GiB guest (the mdev
 * spaces pin nothing; each map is still its own IOVA and its own kernel area).
 */
const SCALE_WINDOW = 16384;
const count = (n: number): string => (n >= 1 << 20 ? `${n / (1 << 20)}M` : n >= 1024 ? `${n / 1024}k` : `${n}`);
const scaleSpec = (space: string, n: number): CaseSpec => ({
  name: `scale ${space}: map 4 KiB ×${count(n)}`,
  unit: 'µs/map',
  target: null,
  better: 'lower',
  note: 'per-map cost with n live mappings (DmaMapper vs ioctl), IOVAs allocated by us / fixed in C',
});
const growthSpec = (space: string, top: number): CaseSpec => ({
  name: `scale ${space}: per-map growth 1k→${count(top)}`,
  unit: 'x',
  target: 1.3,
  better: 'lower',
  targetOn: 'ours',
  note: 'per-map cost at the largest n / at 1k (C: the kernel alone)',
});
const heapSpec = (space: string, top: number): CaseSpec => ({
  name: `scale ${space}: JS heap per live mapping`,
  unit: 'B/mapping',
  target: 128,
  better: 'lower',
  targetOn: 'ours',
  note: `DmaMapper's own heap and ArrayBuffers at ${count(top)} live mappings (after gc)`,
});

/** n 4 KiB maps through a DmaMapper, timed; then unmap-all (untimed). */
/** Scale runs: no pinning (mdev spaces) and IOVAs from our allocator on both backends. */
const SCALE_MAPPER = { pinning: false, kernelIova: false } as const;

function mapperScaleBatch(space: DmaSpace, buf: DmaBuffer, n: number): () => number {
  return () => {
    const m = new DmaMapper(space, SCALE_MAPPER);
    const t0 = hr();
    for (let i = 0; i < n; i++) m.map(buf, { offset: (i % SCALE_WINDOW) * PAGE, size: PAGE });
    const ns = Number(hr() - t0);
    m.unmapAll();
    return ns;
  };
}

/** The mapper's heap per live mapping at n mappings, after full GCs. */
function heapPerMapping(space: DmaSpace, buf: DmaBuffer, n: number): Stats {
  if (!gc) throw new Error('run node with --expose-gc to measure the heap');
  const samples: number[] = [];
  for (let r = 0; r < (n > 65536 ? 1 : 3); r++) {
    const m = new DmaMapper(space, SCALE_MAPPER);
    // The JS heap plus ArrayBuffer backing stores (a table kept in typed arrays lives there).
    const used = (): number => {
      gc();
      gc();
      const u = process.memoryUsage();
      return u.heapUsed + u.arrayBuffers;
    };
    const h0 = used();
    for (let i = 0; i < n; i++) m.map(buf, { offset: (i % SCALE_WINDOW) * PAGE, size: PAGE });
    const per = (used() - h0) / n;
    if (per < 0) throw new Error(`the heap shrank while ${n} mappings were made (GC noise larger than the table): no figure`);
    samples.push(per);
    m.unmapAll();
  }
  return stats(samples, n);
}

async function scaleCases(space: string, scales: number[], dma: DmaSpace, cCmd: (n: number) => string, cb: CBaseline): Promise<void> {
  const buf = allocDmaBuffer(SCALE_WINDOW * PAGE);
  const top = scales.at(-1)!;
  const per: Record<number, { ours: Stats; c: Stats }> = {};
  try {
    // Warm the JIT first with more maps than the 1k case makes, so that the
    // growth from 1k measures the table and the kernel, not V8's tiers.
    for (let i = 0; i < 4; i++) mapperScaleBatch(dma, buf, 16384)();
    for (const n of scales) {
      await bench(scaleSpec(space, n), async () => {
        const r = await compare({
          reps: 1,
          rounds: QUICK || n > 65536 ? 2 : 3,
          warmup: n <= 65536,
          ours: mapperScaleBatch(dma, buf, n),
          c: async () => (await cb.run(cCmd(n)))[0]!,
          sample: (ns) => ns / n / 1000,
        });
        per[n] = r;
        return r;
      });
    }
    const first = per[scales[0]!];
    const last = per[top];
    await bench(growthSpec(space, top), async () => {
      if (!first || !last) throw new Error('the scale runs failed (see above)');
      // Each round's growth from the medians' samples would pair unrelated rounds; the medians' ratio is the figure.
      const g = (a: Stats, b: Stats): Stats => stats([b.median / a.median], 1);
      return { ours: g(first.ours, last.ours), c: g(first.c, last.c) };
    });
    await bench(heapSpec(space, top), async () => ({ ours: heapPerMapping(dma, buf, top), c: null }));
  } finally {
    buf.free();
  }
}

async function mdpyCases(bus: MdevBus): Promise<void> {
  const specs = [S.regionInfo, S.regionInfoSeam, S.regionInfoVsNode, S.irqInfo, S.mapType1, S.mapType1Mapper, S.fbCopy];
  const scaleNames = [...SCALES.map((n) => scaleSpec('type1', n)), growthSpec('type1', SCALES.at(-1)!), heapSpec('type1', SCALES.at(-1)!)];
  if (![...specs, ...scaleNames].some(wanted)) return;
  if (!bus.parentNames().includes('mdpy')) return refuse([...specs, ...scaleNames], 'no mdpy parent (modprobe mdpy)');
  const mdev = await bus.create('mdpy-xga', { parent: 'mdpy' });
  let o: OpenedDevice | undefined;
  let cb: CBaseline | undefined;
  try {
    o = openDevice(mdev.uuid, { backend: 'group' });
    const { device, container } = o;
    cb = cBaseline([fdOf(device), fdOf(container!)]);
    const DEV = CBaseline.fd(0);
    const CONT = CBaseline.fd(1);
    const reps = QUICK ? 200 : 2000;

    await bench(S.regionInfo, () =>
      compare({
        reps,
        ours: (n) => {
          const t0 = hr();
          for (let i = 0; i < n; i++) device.regionInfo(0);
          return Number(hr() - t0);
        },
        c: (n) => cb!.run(`region-info ${n} ${DEV} 0`),
      }),
    );
    await bench(S.regionInfoVsNode, () =>
      compare({
        reps,
        ours: (n) => {
          const t0 = hr();
          for (let i = 0; i < n; i++) device.regionInfo(0);
          return Number(hr() - t0);
        },
        c: nodeReads(fdOf(device), 4, Number(device.regionInfo(7).offset)),
      }),
    );
    await bench(S.regionInfoSeam, () => {
      // What Device.regionInfo() does before decoding: the fd's key, the reply copied into a reused array.
      const h = device.handle('bench').key;
      const reply = Buffer.alloc(REGION_INFO_SIZE);
      return compare({
        reps,
        ours: (n) => {
          const t0 = hr();
          for (let i = 0; i < n; i++) native().deviceGetRegionInfo(h, 0, reply);
          return Number(hr() - t0);
        },
        c: (n) => cb!.run(`region-info ${n} ${DEV} 0`),
      });
    });
    await bench(S.irqInfo, () =>
      compare({
        reps,
        ours: (n) => {
          const t0 = hr();
          for (let i = 0; i < n; i++) device.irqInfo(0);
          return Number(hr() - t0);
        },
        c: (n) => cb!.run(`irq-info ${n} ${DEV} 0`),
      }),
    );

    const buf = allocDmaBuffer(PAGE);
    try {
      const iova = 0x100000n;
      await bench(S.mapType1, () =>
        compare({
          reps,
          ours: (n) => {
            const c = container!;
            const t0 = hr();
            for (let i = 0; i < n; i++) {
              c.mapDma(buf, { iova, size: PAGE });
              c.unmapDma(iova, PAGE);
            }
            return Number(hr() - t0);
          },
          c: (n) => cb!.run(`type1-map ${n} ${CONT} ${iova}`),
        }),
      );
      const mapper = new DmaMapper(container!, { devices: [device] });
      await bench(S.mapType1Mapper, () =>
        compare({
          reps,
          ours: (n) => {
            const t0 = hr();
            for (let i = 0; i < n; i++) mapper.unmap(mapper.map(buf));
            return Number(hr() - t0);
          },
          c: (n) => cb!.run(`type1-map ${n} ${CONT} ${iova}`),
        }),
      );
    } finally {
      buf.free();
    }

    await bench(S.fbCopy, async () => {
      const info = device.regionInfo(0);
      const bytes = 4 * MiB;
      if (info.size < BigInt(bytes)) throw new Error(`mdpy-xga BAR0 is ${info.size} bytes, less than 4 MiB`);
      const view = device.mmap(0, { length: bytes });
      const src = view.bytes;
      const dst = new Uint8Array(bytes);
      try {
        return await compare({
          reps: QUICK ? 5 : 20,
          ours: (n) => {
            const t0 = hr();
            for (let i = 0; i < n; i++) dst.set(src);
            return Number(hr() - t0);
          },
          c: (n) => cb!.run(`memcpy ${n} ${DEV} ${info.offset} ${bytes} ${bytes}`),
          sample: (ns, n) => (bytes * n) / MiB / (ns / 1e9),
        });
      } finally {
        view.unmap();
      }
    });

    if (scaleNames.some(wanted)) await scaleCases('type1', SCALES, container!, (n) => `scale-type1 1 ${CONT} ${0x100000000} ${n} ${SCALE_WINDOW}`, cb);
  } finally {
    cb?.close();
    o?.close();
    await bus.remove(mdev.uuid);
  }
}

async function ioasCases(bus: MdevBus): Promise<void> {
  const specs = [S.mapIoas, S.mapIoasMapper];
  const scaleNames = [...SCALES_IOAS.map((n) => scaleSpec('IOAS', n)), growthSpec('IOAS', SCALES_IOAS.at(-1)!), heapSpec('IOAS', SCALES_IOAS.at(-1)!)];
  if (![...specs, ...scaleNames].some(wanted)) return;
  if (!existsSync('/dev/iommu')) return refuse([...specs, ...scaleNames], 'no /dev/iommu (the kernel lacks CONFIG_IOMMUFD)');
  if (!bus.parentNames().includes('mdpy')) return refuse([...specs, ...scaleNames], 'no mdpy parent (modprobe mdpy)');
  const mdev = await bus.create('mdpy-vga', { parent: 'mdpy' });
  let o: OpenedDevice | undefined;
  let cb: CBaseline | undefined;
  try {
    if (!mdev.cdevPath) throw new Error(`mdev ${mdev.uuid} has no vfio cdev (CONFIG_VFIO_DEVICE_CDEV)`);
    o = openDevice(mdev.uuid, { backend: 'cdev' });
    const { device, iommufd, ioas } = o;
    cb = cBaseline([fdOf(iommufd!)]);
    const IOMMUFD = CBaseline.fd(0);
    const reps = QUICK ? 200 : 2000;
    const buf = allocDmaBuffer(PAGE);
    try {
      await bench(S.mapIoas, () =>
        compare({
          reps,
          ours: (n) => {
            const a = ioas!;
            const t0 = hr();
            for (let i = 0; i < n; i++) a.unmap(a.map(buf, { size: PAGE }), PAGE);
            return Number(hr() - t0);
          },
          c: (n) => cb!.run(`ioas-map ${n} ${IOMMUFD} ${ioas!.id}`),
        }),
      );
      const mapper = new DmaMapper(ioas!, { devices: [device] });
      await bench(S.mapIoasMapper, () =>
        compare({
          reps,
          ours: (n) => {
            const t0 = hr();
            for (let i = 0; i < n; i++) mapper.unmap(mapper.map(buf));
            return Number(hr() - t0);
          },
          c: (n) => cb!.run(`ioas-map ${n} ${IOMMUFD} ${ioas!.id}`),
        }),
      );
    } finally {
      buf.free();
    }
    if (scaleNames.some(wanted)) await scaleCases('IOAS', SCALES_IOAS, ioas!, (n) => `scale-ioas 1 ${IOMMUFD} ${ioas!.id} ${0x100000000} ${n} ${SCALE_WINDOW}`, cb);
  } finally {
    cb?.close();
    o?.close();
    await bus.remove(mdev.uuid);
  }
}

/** Trigger → "interrupt" handler, one at a time, `reps` times; returns the summed ns. */
function irqLatencyBatch(device: Device, index: number, reps: number): Promise<number> {
  const irqs = device.enableInterrupts(index);
  return new Promise<number>((resolve, reject) => {
    let i = 0;
    let total = 0n;
    let t0 = 0n;
    const timer = setTimeout(() => reject(new Error(`interrupt ${i + 1} of ${reps} never arrived`)), 30_000);
    irqs.on('interrupt', () => {
      total += hr() - t0;
      if (++i >= reps) {
        clearTimeout(timer);
        resolve(Number(total));
        return;
      }
      t0 = hr();
      device.trigger(index);
    });
    t0 = hr();
    device.trigger(index);
  }).finally(() => irqs.close());
}

/** `reps` triggers in bursts, each drained (event counts summed) before the next. */
function irqThroughputBatch(device: Device, index: number, reps: number, burst: number): Promise<number[]> {
  const irqs = device.enableInterrupts(index);
  return new Promise<number[]>((resolve, reject) => {
    let issued = 0;
    let delivered = 0;
    let wakeups = 0;
    const timer = setTimeout(() => reject(new Error(`only ${delivered} of ${issued} interrupts arrived`)), 60_000);
    const fire = (): void => {
      for (let b = 0; b < burst && issued < reps; b++, issued++) device.trigger(index);
    };
    const t0 = hr();
    irqs.on('interrupt', (e) => {
      delivered += e.count;
      wakeups++;
      if (delivered < issued) return;
      if (issued >= reps) {
        clearTimeout(timer);
        resolve([Number(hr() - t0), delivered, wakeups]);
      } else fire();
    });
    fire();
  }).finally(() => irqs.close());
}

async function mttyCases(bus: MdevBus): Promise<void> {
  const specs = [S.mttyPread, S.nodeFsPread, S.mttyVsNode, S.irqLatency, S.irqThroughput, S.mdevCycle];
  if (!specs.some(wanted)) return;
  if (!bus.parentNames().includes('mtty')) return refuse(specs, 'no mtty parent (modprobe mtty)');
  const mdev = await bus.create('mtty-1', { parent: 'mtty' });
  let o: OpenedDevice | undefined;
  let cb: CBaseline | undefined;
  try {
    o = openDevice(mdev.uuid, { backend: 'group' });
    const { device } = o;
    cb = cBaseline([fdOf(device)]);
    const DEV = CBaseline.fd(0);
    const MSI = 1;
    const LSR = 5;
    const bar0 = device.region(0);
    const off = device.regionInfo(0).offset;

    await bench(S.mttyPread, () =>
      compare({
        reps: 1000,
        ours: (n) => {
          const t0 = hr();
          for (let i = 0; i < n; i++) bar0.read8(LSR);
          return Number(hr() - t0);
        },
        c: (n) => cb!.run(`pread ${n} ${DEV} ${off + BigInt(LSR)} 1`),
      }),
    );
    await bench(S.mttyVsNode, () =>
      compare({
        reps: 1000,
        ours: (n) => {
          const t0 = hr();
          for (let i = 0; i < n; i++) bar0.read8(LSR);
          return Number(hr() - t0);
        },
        c: nodeReads(fdOf(device), 1, Number(off) + LSR),
      }),
    );
    await bench(S.nodeFsPread, () =>
      compare({
        reps: 1000,
        ours: nodeReads(fdOf(device), 1, Number(off) + LSR),
        c: (n) => cb!.run(`pread ${n} ${DEV} ${Number(off) + LSR} 1`),
      }),
    );
    await bench(S.irqLatency, () =>
      compare({
        reps: QUICK ? 100 : 500,
        ours: (n) => irqLatencyBatch(device, MSI, n),
        c: (n) => cb!.run(`irq-latency ${n} ${DEV} ${MSI}`),
      }),
    );
    await bench(S.irqThroughput, () =>
      compare({
        reps: QUICK ? 512 : 4096,
        ours: (n) => irqThroughputBatch(device, MSI, n, 64),
        c: (n) => cb!.run(`irq-throughput ${n} ${DEV} ${MSI} 64`),
        sample: (ns, _n, [delivered]) => delivered! / (ns / 1e9),
      }),
    );
  } finally {
    cb?.close();
    o?.close();
    await bus.remove(mdev.uuid);
  }

  await bench(S.mdevCycle, async () => {
    const c = cBaseline([]);
    const typeDir = bus.type('mtty-1', 'mtty').path;
    try {
      return await compare({
        reps: QUICK ? 3 : 10,
        rounds: QUICK ? 3 : 7,
        ours: async (n) => {
          const t0 = hr();
          for (let i = 0; i < n; i++) {
            const d = await bus.create('mtty-1', { parent: 'mtty' });
            await bus.remove(d.uuid);
          }
          return Number(hr() - t0);
        },
        c: (n) => c.run(`mdev-cycle ${n} ${typeDir}`),
        sample: (ns, n) => ns / n / 1e6,
      });
    } finally {
      c.close();
    }
  });
}

async function eduCases(): Promise<void> {
  const specs = [S.eduPread, S.eduVsNode, S.eduMmio, S.mapBig];
  if (!specs.some(wanted)) return;
  let addr: string;
  try {
    addr = findEdu();
  } catch (e) {
    return refuse(specs, `no edu device: ${(e as Error).message}`);
  }
  let o: OpenedDevice | undefined;
  let cb: CBaseline | undefined;
  try {
    o = openDevice(addr, { backend: 'group' });
  } catch (e) {
    return refuse(specs, `edu ${addr} cannot be opened through VFIO: ${(e as Error).message}`);
  }
  try {
    const { device, container } = o;
    cb = cBaseline([fdOf(device), fdOf(container!)]);
    const DEV = CBaseline.fd(0);
    const CONT = CBaseline.fd(1);
    const bar0 = device.region(0);
    const info = device.regionInfo(0);

    await bench(S.eduPread, () =>
      compare({
        reps: 1000,
        ours: (n) => {
          const t0 = hr();
          for (let i = 0; i < n; i++) bar0.read32(0);
          return Number(hr() - t0);
        },
        c: (n) => cb!.run(`pread ${n} ${DEV} ${info.offset} 4`),
      }),
    );
    await bench(S.eduVsNode, () =>
      compare({
        reps: 1000,
        ours: (n) => {
          const t0 = hr();
          for (let i = 0; i < n; i++) bar0.read32(0);
          return Number(hr() - t0);
        },
        c: nodeReads(fdOf(device), 4, Number(info.offset)),
      }),
    );
    await bench(S.eduMmio, async () => {
      const view = device.mmap(0, { length: PAGE });
      try {
        return await compare({
          reps: 1000,
          ours: (n) => {
            const t0 = hr();
            for (let i = 0; i < n; i++) view.read32(0);
            return Number(hr() - t0);
          },
          c: (n) => cb!.run(`mmio-read32 ${n} ${DEV} ${info.offset} ${PAGE} 0`),
        });
      } finally {
        view.unmap();
      }
    });
    await bench(S.mapBig, async () => {
      const size = 256 * MiB;
      const mapper = new DmaMapper(container!, { devices: [device] });
      if (!mapper.pinning) throw new Error('edu is not behind an IOMMU domain (no pinning): not the case asked for');
      return compare({
        reps: 1,
        rounds: QUICK ? 2 : 5,
        ours: () => {
          const buf = allocDmaBuffer(size);
          try {
            const t0 = hr();
            const m = mapper.map(buf);
            const ns = Number(hr() - t0);
            mapper.unmap(m);
            return ns;
          } finally {
            buf.free();
          }
        },
        c: (n) => cb!.run(`type1-map-big ${n} ${CONT} ${0x40000000} ${size}`),
        sample: (ns, n) => ns / n / 1e6,
      });
    });
  } finally {
    cb?.close();
    o.close();
  }
}

const ENTRY_LIMIT = '/sys/module/vfio_iommu_type1/parameters/dma_entry_limit';

async function main(): Promise<number> {
  if (!existsSync('/dev/vfio/vfio')) {
    log('no /dev/vfio/vfio here: run `npm run bench`, which runs this inside the test-bed guest');
    return 2;
  }
  if (!existsSync(C_BIN)) {
    log(`no C baseline at ${C_BIN}: run \`npm run bench\` (it compiles bench/c/vfio_bench.c)`);
    return 2;
  }
  const started = Date.now();
  const bus = new MdevBus();
  // 64k live mappings need more than type1's default 65535 entries; containers opened from now on get this.
  const oldLimit = existsSync(ENTRY_LIMIT) ? readFileSync(ENTRY_LIMIT, 'utf8').trim() : null;
  if (oldLimit !== null) writeFileSync(ENTRY_LIMIT, String(Math.max(Number(oldLimit), 4 * 65536)));
  try {
    await mdpyCases(bus);
    await ioasCases(bus);
    await mttyCases(bus);
    await eduCases();
  } finally {
    if (oldLimit !== null) writeFileSync(ENTRY_LIMIT, oldLimit);
  }
  // The NVMe section: its own table (IOPS and latency percentiles against fio), bench-results/nvme.{json,txt}.
  let nvmeTable: string | null = null;
  let nvmeFailed = false;
  if (ONLY === null || [...ONLY].some((p) => p.startsWith('nvme') || 'nvme'.startsWith(p))) {
    mkdirSync(OUT_DIR, { recursive: true });
    try {
      const r = await nvmeBench({ seconds: QUICK ? 2 : 4, rounds: QUICK ? 1 : 2, log });
      nvmeTable = renderNvmeTable(r);
      nvmeFailed = r.rows.some((x) => x.error);
      writeFileSync(join(OUT_DIR, 'nvme.json'), JSON.stringify(r, null, 2) + '\n');
    } catch (e) {
      nvmeTable = `NVMe: failed: ${(e as Error).message}`;
      nvmeFailed = true;
    }
    writeFileSync(join(OUT_DIR, 'nvme.txt'), nvmeTable + '\n');
  }
  const cpu = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown';
  const report: BenchReport = {
    cases: results,
    env: {
      kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
      // 'QEMU TCG CPU …' under TCG; the host's model under KVM.
      cpu,
      node: process.version,
      rounds: ROUNDS,
      quick: QUICK ? 1 : 0,
      seconds: Math.round((Date.now() - started) / 1000),
    },
    date: new Date().toISOString(),
  };
  // As the host section does: a run whose --only matched none of these cases (`--only nvme`) leaves latest.* alone.
  if (results.length) {
    mkdirSync(OUT_DIR, { recursive: true });
    writeFileSync(join(OUT_DIR, 'latest.json'), JSON.stringify(report, null, 2) + '\n');
    writeFileSync(join(OUT_DIR, 'latest.txt'), renderTable(report) + '\n');
    process.stdout.write(`${renderTable(report)}\n`);
  }
  if (nvmeTable) process.stdout.write(`${results.length ? '\n' : ''}${nvmeTable}\n`);
  return results.some((r) => r.error?.startsWith('failed')) || nvmeFailed ? 1 : 0;
}

main().then(
  (code) => (process.exitCode = code),
  (e: unknown) => {
    log(String((e as Error).stack ?? e));
    process.exitCode = 1;
  },
);
