/**
 * The host section of `npm run bench` (scripts/bench.ts): the library's hot
 * paths on the real CPU, with no /dev/vfio and no guest, next to a C baseline
 * (bench/c/host_bench.c) doing the same syscalls in the same run. The guest
 * section (bench/run.ts) runs under QEMU TCG, where JIT'd code is distorted;
 * this one shows what the JavaScript costs on the machine itself.
 *
 * Cases (each side's batches alternate after a warm-up of each; medians):
 * - `Region.read32`/`write32` (pread/pwrite of 4 bytes) on a shared-memory
 *   file's fd vs C's pread/pwrite on the same fd; references: Node core's
 *   `fs.readSync`/`fs.writeSync` on that fd (ratio ours / Node core), and the
 *   addon's regionRead/regionWrite called directly (the native seam's share);
 * - `MappedRegion.read32`/`write32` on a mapping of that file, in ns an access
 *   (target absolute), vs C's volatile 32-bit loads and stores on its own
 *   mapping of the same fd; references: a bare `Atomics.load` and a plain
 *   element store on a Uint32Array over the mapping (V8's floor);
 * - interrupt delivery: the C coprocess signals an eventfd, a handler on the
 *   addon's eventfd (`start(cb)`, uv_poll, as {@link Interrupts} registers
 *   its own) signals a second eventfd back, and C times the round trip;
 *   against a C thread doing the same echo with epoll. One at a time (latency)
 *   and in bursts of 64 (throughput); references: the same with the handler on
 *   an Interrupts object's 'interrupt' event;
 * - `DmaMapper` bookkeeping per map+unmap at 64k live mappings over a fake DMA
 *   space that maps nothing (no C side): the live mappings made by the
 *   mapper's own allocator, and at fixed IOVAs on every other page (64k
 *   one-page holes in the allocator's free tree).
 *
 * Writes bench-results/host.json (the shape of latest.json, bench/report.ts)
 * and host.txt, and prints the table.
 *
 *   npx tsc -p tsconfig.bench.json && node build/bench-js/bench/host.js [--quick] [--only NAME,…]   (what npm run bench does)
 *
 * Exit status: 0 when every case ran (a missed target is a result), 1 when a
 * case failed, 2 when the C baseline is missing.
 */
import { existsSync, mkdirSync, readFileSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { allocDmaBuffer, type DmaBuffer, type DmaMapOptions, type DmaSpace, type IovaRange } from '../src/dma/buffer.js';
import { DmaMapper } from '../src/dma/mapper.js';
import { native, type NativeEventFd, type NativeFd, type NativeFdKey } from '../src/native.js';
import { VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE } from '../src/uapi/constants.js';
import type { RegionInfo } from '../src/uapi/vfio.js';
import type { Device } from '../src/vfio/device.js';
import { Interrupts } from '../src/vfio/interrupts.js';
import { MappedRegion, Region } from '../src/vfio/region.js';
import { CBaseline } from './coprocess.js';
import { makeCase, renderTable, stats, type BenchReport, type CaseResult, type CaseSpec, type Stats } from './report.js';

/** How long a run is: `tiny` is for the unit test (shape only: the JIT has not even warmed up). */
export type HostBenchSize = 'full' | 'quick' | 'tiny';

export interface HostBenchOptions {
  size?: HostBenchSize;
  /** Case names or name prefixes to run; null/undefined for all. */
  only?: readonly string[] | null;
  /** The compiled bench/c/host_bench.c. */
  cBin: string;
  /** Where host.json and host.txt go; null to write nothing. */
  outDir?: string | null;
  /** Progress lines; default stderr. */
  log?: (s: string) => void;
}

const PAGE = 4096;
/** The shared-memory file the register cases use: a 64 KiB "region". */
const FILE_SIZE = 16 * PAGE;
const READ_REG = 0x40;
const WRITE_REG = 0x80;
const REG_VALUE = 0x0102_0304;
/** Live mappings in the DmaMapper case. */
const LIVE = 65536;
const BURST = 64;

const hr = (): bigint => process.hrtime.bigint();

const ref = (name: string, unit: string, note: string): CaseSpec => ({ name: `reference: ${name}`, unit, target: null, better: 'lower', note });

/** The cases, in table order. Rows named "reference: …" have no target: they split a case's cost. */
export const HOST_CASES = {
  regionRead: { name: 'Region.read32 (pread 4 B, shm file)', unit: 'µs/op', target: 1.2, better: 'lower', note: 'Region.read32 vs C pread of 4 bytes on the same fd' },
  nodeRead: ref(
    'Region.read32 vs node:fs.readSync 4 B',
    'µs/op',
    "the 'c' side of this row is Node core's fs.readSync of 4 bytes on the same fd, not C: ratio = ours / Node core",
  ),
  seamRead: ref('addon regionRead alone (no Region)', 'µs/op', "native().regionRead(fd, off, 4) called directly: the native seam's share of Region.read32, vs C"),
  regionWrite: { name: 'Region.write32 (pwrite 4 B, shm file)', unit: 'µs/op', target: 1.2, better: 'lower', note: 'Region.write32 vs C pwrite of 4 bytes on the same fd' },
  nodeWrite: ref(
    'Region.write32 vs node:fs.writeSync 4 B',
    'µs/op',
    "the 'c' side of this row is Node core's fs.writeSync of 4 bytes on the same fd, not C: ratio = ours / Node core",
  ),
  seamWrite: ref('addon regionWrite alone (no Region)', 'µs/op', "native().regionWrite(fd, off, 4, v) called directly: the native seam's share of Region.write32, vs C"),
  mmioRead: { name: 'MappedRegion.read32 (mmap, shm file)', unit: 'ns/access', target: 10, better: 'lower', targetOn: 'ours', note: 'MappedRegion.read32 vs a volatile 32-bit load' },
  atomicsLoad: ref('Atomics.load on the mapping (no MappedRegion)', 'ns/access', "Atomics.load(u32, i) on a Uint32Array over the same mapping: V8's floor for read32's load"),
  mmioWrite: { name: 'MappedRegion.write32 (mmap, shm file)', unit: 'ns/access', target: 10, better: 'lower', targetOn: 'ours', note: 'MappedRegion.write32 vs a volatile 32-bit store' },
  plainStore: ref('u32[i] = v on the mapping (no MappedRegion)', 'ns/access', "a plain element store on a Uint32Array over the same mapping: V8's floor for write32's store"),
  irqLatency: {
    name: 'IRQ latency: eventfd → handler → eventfd',
    unit: 'µs/op',
    target: 1.5,
    better: 'lower',
    note: "round trip timed by C: a handler on the addon's eventfd (start(cb), uv_poll) signalling back vs a C thread on epoll",
  },
  irqLatencyEmit: ref('IRQ latency through Interrupts (emit)', 'µs/op', "the same round trip with the handler on an Interrupts object's 'interrupt' event, vs C"),
  irqThroughput: {
    name: `IRQ throughput, bursts of ${BURST} (eventfd echo)`,
    unit: 'irq/s',
    target: 0.5,
    better: 'higher',
    note: 'signals echoed per second, eventfd counts summed (coalescing counted)',
  },
  irqThroughputEmit: { ...ref(`IRQ throughput, bursts of ${BURST}, through Interrupts`, 'irq/s', "the same bursts with the handler on an Interrupts object's 'interrupt' event, vs C"), better: 'higher' },
  mapper: {
    name: `DmaMapper map+unmap, ${LIVE / 1024}k live (fake space)`,
    unit: 'µs/op',
    target: 1,
    better: 'lower',
    targetOn: 'ours',
    note: "the mappings made by the mapper's allocator (contiguous IOVAs); timed: map (allocated IOVA) + unmap, over a space that maps nothing; no C side",
  },
  mapperHoles: {
    name: `DmaMapper map+unmap, ${LIVE / 1024}k live + ${LIVE / 1024}k holes`,
    unit: 'µs/op',
    target: 1,
    better: 'lower',
    targetOn: 'ours',
    note: "the mappings at fixed IOVAs on every other page, made in shuffled order (64k one-page free blocks in the allocator); timed as above; no C side",
  },
} satisfies Record<string, CaseSpec>;

/** One side's batch: runs `reps` repetitions, returns the timed ns (and extras). */
type Batch = (reps: number) => Promise<number | number[]> | number | number[];
/** Turns a batch's (ns, reps, extras) into the case's unit. */
type Sample = (ns: number, reps: number, extra: number[]) => number;

const perOpUs: Sample = (ns, reps) => ns / reps / 1000;
const perOpNs: Sample = (ns, reps) => ns / reps;

/**
 * One warm-up batch of each side, then `rounds` rounds of one batch a side,
 * the order rotated each round (for two sides: ours, C; C, ours; … as
 * bench/run.ts does), so drift hits every side alike.
 */
async function interleave(reps: number, rounds: number, sides: Batch[], sample: Sample): Promise<Stats[]> {
  const run = async (b: Batch): Promise<number> => {
    const r = await b(reps);
    const [ns, ...extra] = Array.isArray(r) ? r : [r];
    return sample(ns!, reps, extra);
  };
  for (const s of sides) await run(s);
  const samples: number[][] = sides.map(() => []);
  for (let i = 0; i < rounds; i++) {
    for (let j = 0; j < sides.length; j++) {
      const k = (i + j) % sides.length;
      samples[k]!.push(await run(sides[k]!));
    }
  }
  return samples.map((s) => stats(s, reps));
}

/*
 * The register loops, as plain functions of their arguments (as a driver's own
 * loop would be), kept out of the closures that time them. The loads are summed
 * and every caller checks and keeps the sum, so none can be dropped.
 */
function mmioLoads(view: MappedRegion, reg: number, n: number): number {
  let sum = 0;
  for (let i = 0; i < n; i++) sum = (sum + view.read32(reg)) >>> 0;
  return sum;
}
function mmioStores(view: MappedRegion, reg: number, n: number): void {
  for (let i = 0; i < n; i++) view.write32(reg, i);
}
function atomicsLoads(u32: Uint32Array, index: number, n: number): number {
  let sum = 0;
  for (let i = 0; i < n; i++) sum = (sum + Atomics.load(u32, index)) >>> 0;
  return sum;
}
function plainStores(u32: Uint32Array, index: number, n: number): void {
  for (let i = 0; i < n; i++) u32[index] = i;
}

/** What Region uses of its Device (see the stand-in in runHostBench). */
interface RegionDevice {
  readonly driver: string;
  handle(operation: string): NativeFd;
  key(operation: string): NativeFdKey;
  beforeWrite(index: number, at: bigint | number, length: number, byteAt: (i: number) => number): void;
}

/** A DMA space that maps nothing (the fake of test/host/dma-mapper-scale.test.ts): what is timed is the mapper's own work. */
class NullSpace implements DmaSpace {
  readonly backend = 'type1' as const;
  maps = 0;
  unmaps = 0;
  map(_b: DmaBuffer, o: DmaMapOptions): bigint {
    this.maps++;
    if (o.iova === undefined) throw new TypeError('type1 needs an iova');
    return BigInt(o.iova);
  }
  unmap(_iova: bigint | number, size: bigint | number): bigint {
    this.unmaps++;
    return BigInt(size);
  }
  unmapAll(): bigint {
    return 0n;
  }
  iovaRanges(): { ranges: IovaRange[]; alignment: bigint } {
    return { ranges: [{ start: 0n, last: (1n << 48n) - 1n }], alignment: BigInt(PAGE) };
  }
}

/** A deterministic shuffle (xorshift32), so every run maps in the same order. */
function shuffled(n: number, seed: number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  let x = seed >>> 0 || 1;
  for (let i = n - 1; i > 0; i--) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    const j = x % (i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** Where the register file goes: tmpfs (/dev/shm: shmem, as a memfd is) when there is one. */
function scratchDir(): string {
  return existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
}

/** Runs the host section; returns the report and the exit status (see the file's comment). */
export async function runHostBench(o: HostBenchOptions): Promise<{ report: BenchReport; code: number }> {
  const size = o.size ?? 'full';
  const log = o.log ?? ((s: string): void => void process.stderr.write(`[bench host] ${s}\n`));
  const pick = <T>(full: T, quick: T, tiny: T): T => (size === 'full' ? full : size === 'quick' ? quick : tiny);
  const ROUNDS = pick(11, 3, 1);
  const only = o.only && o.only.length ? o.only : null;
  const wanted = (spec: CaseSpec): boolean => only === null || only.some((p) => spec.name === p || spec.name.startsWith(p));
  const results: CaseResult[] = [];
  const started = Date.now();
  const load0 = loadavg()[0]!;

  /** Runs one case: a failure on either side is the case's error, never a number. */
  const bench = async (spec: CaseSpec, f: () => Promise<{ ours: Stats | null; c: Stats | null }>): Promise<void> => {
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
    log(`${spec.name}: ${r.error ? `FAILED: ${r.error}` : `ours ${r.ours?.median.toPrecision(4)} C ${r.c?.median.toPrecision(4) ?? '—'} ${r.unit}, ratio ${r.ratio?.toFixed(3) ?? '—'}`} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  };
  /**
   * Several rows from one interleaved run of several sides: each row is
   * [spec, index of its "ours" side, index of its "c" side or null].
   */
  const benchRows = async (rows: [CaseSpec, number, number | null][], f: () => Promise<Stats[]>): Promise<void> => {
    if (!rows.some(([spec]) => wanted(spec))) return;
    let r: Promise<Stats[]> | null = null;
    for (const [spec, i, j] of rows) {
      await bench(spec, async () => {
        const all = await (r ??= f());
        return { ours: all[i]!, c: j === null ? null : all[j]! };
      });
    }
  };

  if (!existsSync(o.cBin)) {
    log(`no C baseline at ${o.cBin}: run \`npm run bench\` (scripts/bench.ts compiles bench/c/host_bench.c)`);
    return { report: { cases: [], env: {}, date: new Date().toISOString() }, code: 2 };
  }

  // The register "region": a 64 KiB file in tmpfs, opened through the addon as a
  // device fd is, then unlinked (so it lives exactly as long as the fds, like a memfd).
  const file = join(scratchDir(), `vfio-bench-host-${process.pid}`);
  const init = Buffer.alloc(FILE_SIZE);
  init.writeUInt32LE(REG_VALUE, READ_REG);
  writeFileSync(file, init);
  let fd: NativeFd;
  try {
    fd = native().open(file, 'bench');
  } finally {
    rmSync(file, { force: true });
  }
  // Two interrupt pairs: C signals A, our handler signals B back with the count it
  // read. Pair 1: a bare handler on the addon's eventfd (start(cb), as Interrupts
  // registers its own); pair 2: an Interrupts object over its A, handler on 'interrupt'.
  const rawA: NativeEventFd = native().eventfd();
  const rawB: NativeEventFd = native().eventfd();
  const emitA: NativeEventFd = native().eventfd();
  const emitB: NativeEventFd = native().eventfd();
  let echoed = 0;
  rawA.start((err, count) => {
    if (err !== null) return;
    echoed += count;
    rawB.signal(count);
  });
  const irqs = new Interrupts(0, 0, [emitA], () => {});
  irqs.on('interrupt', (e) => {
    echoed += e.count;
    emitB.signal(e.count);
  });
  const cb = new CBaseline(o.cBin, [fd.fd, rawA.fd, rawB.fd, emitA.fd, emitB.fd]);
  const FD = CBaseline.fd(0);
  const RAW = `${CBaseline.fd(1)} ${CBaseline.fd(2)}`;
  const EMIT = `${CBaseline.fd(3)} ${CBaseline.fd(4)}`;
  /** Every loaded value, summed (each batch's sum is also checked): the loads are used. */
  let sink = 0;
  /** Wake-ups of the answering side per burst of the throughput case: raw handler, C thread, Interrupts. */
  const wakeups: number[][] = [[], [], []];
  const woke = (side: number, r: number[]): number[] => (wakeups[side]!.push(r[2]! / (r[1]! / BURST)), r);

  try {
    // ---- 1. Region.read32/write32: pread/pwrite of 4 bytes -------------------------------
    //
    // Region's device is used for three things only: key(op) (or handle(op)), which
    // returns the device's NativeFd key (or the NativeFd) after an is-it-open check; `driver`, which picks the sample
    // drivers' quirk refusals (none for 'bench'); and beforeWrite(), which returns at
    // once for any region but PCI config space. This stand-in gives the file's fd and
    // skips the open check: the same code path as a device's BAR (bounds and flag
    // checks, quirk lookup, native regionRead/regionWrite = one pread/pwrite), minus
    // the device fd.
    const fdKey = fd.key;
    const device: RegionDevice = { driver: 'bench', handle: () => fd, key: () => fdKey, beforeWrite: () => {} };
    const info: RegionInfo = {
      argsz: 32,
      flags: VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE,
      flagNames: ['READ', 'WRITE'],
      capOffset: 0,
      caps: [],
      truncated: false,
      index: 0,
      name: 'BAR0',
      size: BigInt(FILE_SIZE),
      offset: 0n,
    };
    const region = new Region(device as unknown as Device, info);
    const preadReps = pick(20000, 5000, 50);
    const four = Buffer.alloc(4);
    const four32 = new Uint32Array(four.buffer, four.byteOffset, 1);
    const expectSum = (got: number, n: number, who: string): void => {
      if (got !== Math.imul(n, REG_VALUE) >>> 0) throw new Error(`${who} read the wrong value (sum ${got} over ${n} reads)`);
    };

    const h = device.key('');
    await benchRows(
      [
        [HOST_CASES.regionRead, 0, 1],
        [HOST_CASES.nodeRead, 0, 2],
        [HOST_CASES.seamRead, 3, 1],
      ],
      () =>
        interleave(
          preadReps,
          ROUNDS,
          [
            (n) => {
              let sum = 0;
              const t0 = hr();
              for (let i = 0; i < n; i++) sum = (sum + region.read32(READ_REG)) >>> 0;
              const ns = Number(hr() - t0);
              expectSum(sum, n, 'Region.read32');
              sink = (sink + sum) >>> 0;
              return ns;
            },
            async (n) => {
              const [ns, sum] = await cb.run(`pread ${n} ${FD} ${READ_REG} 4`);
              if (sum !== n * REG_VALUE) throw new Error(`C pread read the wrong value (sum ${sum})`);
              return ns!;
            },
            (n) => {
              let sum = 0;
              const t0 = hr();
              for (let i = 0; i < n; i++) {
                readSync(fd.fd, four, 0, 4, READ_REG);
                sum = (sum + four32[0]!) >>> 0;
              }
              const ns = Number(hr() - t0);
              expectSum(sum, n, 'fs.readSync');
              sink = (sink + sum) >>> 0;
              return ns;
            },
            (n) => {
              const addon = native();
              let sum = 0;
              const t0 = hr();
              for (let i = 0; i < n; i++) sum = (sum + addon.regionRead(h, READ_REG, 4)) >>> 0;
              const ns = Number(hr() - t0);
              expectSum(sum, n, 'regionRead');
              sink = (sink + sum) >>> 0;
              return ns;
            },
          ],
          perOpUs,
        ),
    );

    const check = (n: number, who: string): void => {
      const got = region.read32(WRITE_REG);
      if (got !== n - 1) throw new Error(`${who}: the register holds ${got} after ${n} writes, not ${n - 1}`);
    };
    await benchRows(
      [
        [HOST_CASES.regionWrite, 0, 1],
        [HOST_CASES.nodeWrite, 0, 2],
        [HOST_CASES.seamWrite, 3, 1],
      ],
      () =>
        interleave(
          preadReps,
          ROUNDS,
          [
            (n) => {
              const t0 = hr();
              for (let i = 0; i < n; i++) region.write32(WRITE_REG, i);
              const ns = Number(hr() - t0);
              check(n, 'Region.write32');
              return ns;
            },
            async (n) => {
              const [ns] = await cb.run(`pwrite ${n} ${FD} ${WRITE_REG} 4`);
              check(n, 'C pwrite');
              return ns!;
            },
            (n) => {
              const t0 = hr();
              for (let i = 0; i < n; i++) {
                four32[0] = i;
                writeSync(fd.fd, four, 0, 4, WRITE_REG);
              }
              const ns = Number(hr() - t0);
              check(n, 'fs.writeSync');
              return ns;
            },
            (n) => {
              const addon = native();
              const t0 = hr();
              for (let i = 0; i < n; i++) addon.regionWrite(h, WRITE_REG, 4, i);
              const ns = Number(hr() - t0);
              check(n, 'regionWrite');
              return ns;
            },
          ],
          perOpUs,
        ),
    );

    // ---- 2. MappedRegion.read32/write32: loads and stores on a mapping ---------------------
    // As test/host/mapped-region.test.ts makes one: native().mmap of the file's fd,
    // wrapped as a device view is. C maps the same fd itself.
    const mmioReps = pick(2_000_000, 500_000, 1000);
    const mmio = [HOST_CASES.mmioRead, HOST_CASES.atomicsLoad, HOST_CASES.mmioWrite, HOST_CASES.plainStore];
    if (mmio.some(wanted)) {
      const view = new MappedRegion(0, 0n, BigInt(FILE_SIZE), native().mmap(fd, 0n, BigInt(FILE_SIZE), true), () => {});
      // The reference rows' arrays: what MappedRegion keeps inside, over the same memory.
      const u32 = view.u32;
      const R = READ_REG / 4;
      const W = WRITE_REG / 4;
      try {
        await benchRows(
          [
            [HOST_CASES.mmioRead, 0, 1],
            [HOST_CASES.atomicsLoad, 2, 1],
          ],
          () =>
            interleave(
              mmioReps,
              ROUNDS,
              [
                (n) => {
                  const t0 = hr();
                  const sum = mmioLoads(view, READ_REG, n);
                  const ns = Number(hr() - t0);
                  expectSum(sum, n, 'MappedRegion.read32');
                  sink = (sink + sum) >>> 0;
                  return ns;
                },
                async (n) => {
                  const [ns, sum] = await cb.run(`mmio-read32 ${n} ${FD} ${FILE_SIZE} ${READ_REG}`);
                  if (sum !== n * REG_VALUE) throw new Error(`C volatile loads read the wrong value (sum ${sum})`);
                  return ns!;
                },
                (n) => {
                  const t0 = hr();
                  const sum = atomicsLoads(u32, R, n);
                  const ns = Number(hr() - t0);
                  expectSum(sum, n, 'Atomics.load');
                  sink = (sink + sum) >>> 0;
                  return ns;
                },
              ],
              perOpNs,
            ),
        );
        const stored = (n: number, who: string): void => {
          const got = view.read32(WRITE_REG);
          if (got !== n - 1) throw new Error(`${who}: the register holds ${got} after ${n} stores, not ${n - 1}`);
        };
        await benchRows(
          [
            [HOST_CASES.mmioWrite, 0, 1],
            [HOST_CASES.plainStore, 2, 1],
          ],
          () =>
            interleave(
              mmioReps,
              ROUNDS,
              [
                (n) => {
                  const t0 = hr();
                  mmioStores(view, WRITE_REG, n);
                  const ns = Number(hr() - t0);
                  stored(n, 'MappedRegion.write32');
                  return ns;
                },
                async (n) => {
                  const [ns, last] = await cb.run(`mmio-write32 ${n} ${FD} ${FILE_SIZE} ${WRITE_REG}`);
                  if (last !== n - 1) throw new Error(`C volatile stores: the register holds ${last}`);
                  stored(n, 'C volatile stores');
                  return ns!;
                },
                (n) => {
                  const t0 = hr();
                  plainStores(u32, W, n);
                  const ns = Number(hr() - t0);
                  stored(n, 'u32[i] = v');
                  return ns;
                },
              ],
              perOpNs,
            ),
        );
      } finally {
        view.unmap();
      }
    }

    // ---- 3. Interrupts: eventfd → handler → eventfd -----------------------------------------
    // Ours: C signals A and waits on B (epoll); our handler, woken by uv_poll on A,
    // signals B with the count it got. C: the same with a C thread on epoll as the
    // handler. C times every round trip.
    const echoedBy = async (n: number, f: () => Promise<number[]>): Promise<number[]> => {
      const before = echoed;
      const r = await f();
      if (echoed - before !== n) throw new Error(`the handler echoed ${echoed - before} of ${n} signals`);
      return r;
    };
    await benchRows(
      [
        [HOST_CASES.irqLatency, 0, 1],
        [HOST_CASES.irqLatencyEmit, 2, 1],
      ],
      () =>
        interleave(
          pick(5000, 1000, 20),
          ROUNDS,
          [
            (n) => echoedBy(n, () => cb.run(`js-irq-latency ${n} ${RAW}`)),
            (n) => cb.run(`irq-latency ${n}`),
            (n) => echoedBy(n, () => cb.run(`js-irq-latency ${n} ${EMIT}`)),
          ],
          perOpUs,
        ),
    );
    await benchRows(
      [
        [HOST_CASES.irqThroughput, 0, 1],
        [HOST_CASES.irqThroughputEmit, 2, 1],
      ],
      () =>
        interleave(
          pick(BURST * 256, BURST * 64, BURST * 2),
          ROUNDS,
          [
            async (n) => woke(0, await echoedBy(n, () => cb.run(`js-irq-burst ${n} ${RAW} ${BURST}`))),
            async (n) => woke(1, await cb.run(`irq-burst ${n} ${BURST}`)),
            async (n) => woke(2, await echoedBy(n, () => cb.run(`js-irq-burst ${n} ${EMIT} ${BURST}`))),
          ],
          (ns, _n, [delivered]) => delivered! / (ns / 1e9),
        ),
    );

    // ---- 4. DmaMapper bookkeeping at 64k live mappings ---------------------------------------
    const mapperCase = (spec: CaseSpec, holes: boolean): Promise<void> =>
      bench(spec, async () => {
        const buf = allocDmaBuffer(LIVE * PAGE);
        try {
          const m = new DmaMapper(new NullSpace(), { pinning: false });
          if (holes) {
            // Every other page, in a shuffled order: the trees are filled from the
            // middle and the allocator's free list has 64k one-page holes.
            for (const i of shuffled(LIVE, 0x9e3779b9)) m.map(buf, { offset: i * PAGE, size: PAGE, iova: 0x100000 + i * 2 * PAGE });
          } else {
            for (let i = 0; i < LIVE; i++) m.map(buf, { offset: i * PAGE, size: PAGE });
          }
          if (m.stats().mappings !== LIVE) throw new Error(`${m.stats().mappings} live mappings, not ${LIVE}`);
          let k = 0;
          const batch: Batch = (n) => {
            const t0 = hr();
            for (let i = 0; i < n; i++, k++) m.unmap(m.map(buf, { offset: (k % LIVE) * PAGE, size: PAGE }));
            return Number(hr() - t0);
          };
          const [ours] = await interleave(pick(50000, 10000, 100), ROUNDS, [batch], perOpUs);
          if (m.stats().mappings !== LIVE) throw new Error(`${m.stats().mappings} live mappings after the run, not ${LIVE}`);
          m.unmapAll();
          return { ours: ours!, c: null };
        } finally {
          buf.free();
        }
      });
    await mapperCase(HOST_CASES.mapper, false);
    await mapperCase(HOST_CASES.mapperHoles, true);
  } finally {
    cb.close();
    irqs.close(); // closes emitA
    for (const e of [rawA, rawB, emitB]) e.close();
    fd.close();
  }

  const cpu = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown';
  const report: BenchReport = {
    cases: results,
    env: {
      section: 'host',
      kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
      cpu,
      cpus: cpus().length,
      node: process.version,
      rounds: ROUNDS,
      quick: size === 'full' ? 0 : 1,
      size,
      // The 1-minute load average before and after: above 0 means other work shared the CPUs.
      load1Before: Math.round(load0 * 100) / 100,
      load1After: Math.round(loadavg()[0]! * 100) / 100,
      seconds: Math.round((Date.now() - started) / 1000),
      loadedSum: sink,
      // Each burst's 64 signals coalesce in the eventfd counter: how many wake-ups
      // the answering side took per burst (median), ours (raw handler), C, ours (Interrupts).
      irqWakeupsPerBurst: wakeups.map((w) => (w.length ? stats(w, 1).median.toFixed(1) : '—')).join(' / '),
    },
    date: new Date().toISOString(),
  };
  if (o.outDir && results.length) {
    mkdirSync(o.outDir, { recursive: true });
    writeFileSync(join(o.outDir, 'host.json'), JSON.stringify(report, null, 2) + '\n');
    writeFileSync(join(o.outDir, 'host.txt'), renderTable(report) + '\n');
  }
  return { report, code: results.some((r) => r.error?.startsWith('failed')) ? 1 : 0 };
}

if (process.argv[1] && /(^|\/)bench\/host\.(ts|js)$/.test(process.argv[1])) {
  const args = process.argv.slice(2);
  const onlyAt = args.indexOf('--only');
  runHostBench({
    size: args.includes('--tiny') ? 'tiny' : args.includes('--quick') ? 'quick' : 'full',
    only: onlyAt >= 0 ? (args[onlyAt + 1] ?? '').split(',').filter(Boolean) : null,
    cBin: process.env.VFIO_HOST_BENCH_C ?? join(process.cwd(), 'build', 'bench', 'host_bench'),
    outDir: join(process.cwd(), 'bench-results'),
  }).then(
    ({ report, code }) => {
      if (report.cases.length) process.stdout.write(`${renderTable(report)}\n`);
      else if (code === 0) process.stderr.write('[bench host] no host case matches --only: nothing run, nothing written\n');
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`[bench host] ${String((e as Error).stack ?? e)}\n`);
      process.exitCode = 1;
    },
  );
}
