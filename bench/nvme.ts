/**
 * The NVMe benchmark, run inside the test-bed guest by bench/run.ts: 4 KiB
 * random reads and writes at QD1 and QD32 on the bed's QEMU NVMe controller,
 *
 * - through this package's driver (src/drivers/nvme), in polling mode and in
 *   interrupt mode (MSI-X), the controller on vfio-pci;
 * - through the kernel's nvme driver, the same controller rebound to it, with
 *   fio (Debian's) and io_uring, then libaio, O_DIRECT on /dev/nvme0n1.
 *
 * Every engine runs each configuration for the same wall time after a warm-up
 * (under TCG, code runs slowly until QEMU has translated it: the first second
 * of a fresh process is not representative), on the same 64 MiB namespace,
 * written through once first so no engine reads holes. Two rounds in ABBA
 * order (ours then the kernel's, then the kernel's then ours) so drift hits
 * both alike; each configuration keeps its better round. The controller is
 * bound back to vfio-pci at the end, whatever happened.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NvmeController, findNvme, type NvmeMode } from '../src/drivers/nvme/driver.js';
import { bindPciDriver } from '../src/pci/bind.js';
import { failedRow, nvmeTargets, parseFio, summarize, type NvmeReport, type NvmeRow, type NvmeRw } from './nvme-report.js';

const BS = 4096;
const PATTERNS: NvmeRw[] = ['randread', 'randwrite'];
const DEPTHS = [1, 32];
const hr = (): bigint => process.hrtime.bigint();
/** Per-command latencies of one configuration, reused by every one (16 MB allocated once, not per case). */
const LATENCIES = new Float64Array(2_000_000);

/** Options of {@link nvmeBench}. */
export interface NvmeBenchOptions {
  /** Wall time of each configuration, in seconds (whole seconds: fio's runtime). */
  seconds: number;
  /** Rounds (1 or more); the second runs the engines in the opposite order. */
  rounds: number;
  log: (s: string) => void;
}

/** Our driver: `qd` workers each keep one command in flight for `seconds`. */
async function ours(mode: NvmeMode, rw: NvmeRw, qd: number, seconds: number): Promise<NvmeRow> {
  const engine = `vfio ${mode}`;
  const c = await NvmeController.open({ mode, queueDepth: Math.max(64, qd + 2) });
  try {
    const ns = await c.namespace(1);
    const per = BS / ns.blockSize;
    const slots = Number(ns.blocks / BigInt(per));
    const data = new Uint8Array(BS).fill(0x5a);
    let seed = 0x9e3779b9 ^ qd;
    const lba = (): bigint => {
      seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
      return BigInt((seed % slots) * per);
    };
    // Each worker reads into a buffer of its own, as fio's do: nothing is allocated per command.
    const bufs = Array.from({ length: qd }, () => new Uint8Array(BS));
    const one: (w: number) => Promise<unknown> = rw === 'randread' ? (w) => ns.read(lba(), per, bufs[w]) : () => ns.write(lba(), data);
    // Warm-up: the JIT, QEMU's translation of it, and the queues; not timed.
    const warmEnd = Date.now() + 1000;
    while (Date.now() < warmEnd) await Promise.all(bufs.map((_, w) => one(w)));
    const lat = LATENCIES;
    let n = 0;
    const t0 = hr();
    const end = t0 + BigInt(Math.round(seconds * 1e9));
    const worker = async (w: number): Promise<void> => {
      while (hr() < end) {
        const s = hr();
        await one(w);
        if (n < lat.length) lat[n++] = Number(hr() - s);
      }
    };
    await Promise.all(bufs.map((_, w) => worker(w)));
    return summarize(engine, rw, qd, lat, n, Number(hr() - t0) / 1e9);
  } finally {
    await c.close();
  }
}

/** fio on the kernel driver: one job, `qd` deep, O_DIRECT, percentiles of the total latency. */
function fio(ioengine: 'io_uring' | 'libaio', rw: NvmeRw, qd: number, seconds: number, dir: string): NvmeRow {
  const engine = `fio ${ioengine}`;
  const out = join(dir, `${ioengine}-${rw}-${qd}.json`);
  const args = [
    '--name=bench',
    '--filename=/dev/nvme0n1',
    '--direct=1',
    `--ioengine=${ioengine}`,
    `--rw=${rw}`,
    `--bs=${BS}`,
    `--iodepth=${qd}`,
    // Submit and reap one at a time at QD1; in batches up to the depth otherwise (fio's default is 1 too).
    '--numjobs=1',
    '--time_based',
    `--runtime=${seconds}`,
    '--ramp_time=1',
    '--norandommap',
    '--randrepeat=0',
    '--lat_percentiles=1',
    '--percentile_list=50:99:99.9',
    '--output-format=json',
    `--output=${out}`,
  ];
  const r = spawnSync('fio', args, { encoding: 'utf8', timeout: (seconds + 60) * 1000 });
  if (r.error) return failedRow(engine, rw, qd, `fio did not run: ${r.error.message}`);
  if (r.status !== 0) return failedRow(engine, rw, qd, `fio exit ${r.status ?? r.signal}: ${(r.stderr || r.stdout).trim().split('\n').slice(-2).join(' ')}`);
  try {
    return parseFio(engine, rw, qd, readFileSync(out, 'utf8'));
  } catch (e) {
    return failedRow(engine, rw, qd, (e as Error).message);
  }
}

/** Binds `address` to the kernel's nvme driver and waits for its namespace's block device. */
async function toKernel(address: string): Promise<void> {
  bindPciDriver(address, 'nvme');
  const deadline = Date.now() + 30_000;
  while (!existsSync('/dev/nvme0n1')) {
    if (Date.now() > deadline) throw new Error('no /dev/nvme0n1 30 s after binding nvme');
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Runs every configuration; resolves with the report (rows that failed say why). */
export async function nvmeBench(o: NvmeBenchOptions): Promise<NvmeReport> {
  const started = Date.now();
  const address = findNvme();
  const best = new Map<string, NvmeRow>();
  const keep = (row: NvmeRow): void => {
    const key = `${row.engine}/${row.rw}/${row.qd}`;
    const prev = best.get(key);
    if (!prev || (prev.error && !row.error) || (!row.error && row.iops > prev.iops)) best.set(key, row);
  };
  const run = async (engine: string, rw: NvmeRw, qd: number, f: () => Promise<NvmeRow> | NvmeRow): Promise<void> => {
    o.log(`nvme ${engine} ${rw} QD${qd} …`);
    let row: NvmeRow;
    try {
      row = await f();
    } catch (e) {
      row = failedRow(engine, rw, qd, (e as Error).message);
    }
    keep(row);
    o.log(`nvme ${engine} ${rw} QD${qd}: ${row.error ?? `${row.iops.toFixed(0)} IOPS, p50 ${row.p50Us.toFixed(1)} µs, p99 ${row.p99Us.toFixed(1)} µs`}`);
  };
  // Write the namespace through once, so reads never hit unwritten (sparse) blocks on any engine.
  const c = await NvmeController.open({ mode: 'poll' });
  try {
    const ns = await c.namespace(1);
    const chunk = 128 * 1024;
    const fill = new Uint8Array(chunk).fill(0xa5);
    const per = chunk / ns.blockSize;
    for (let l = 0n; l < ns.blocks; l += BigInt(per)) await ns.write(l, fill);
    await ns.flush();
  } finally {
    await c.close();
  }
  const oursAll = async (): Promise<void> => {
    for (const mode of ['poll', 'irq'] as const) for (const rw of PATTERNS) for (const qd of DEPTHS) await run(`vfio ${mode}`, rw, qd, () => ours(mode, rw, qd, o.seconds));
  };
  const kernelAll = async (): Promise<void> => {
    const dir = mkdtempSync(join(tmpdir(), 'vfio-nvme-bench-'));
    try {
      await toKernel(address);
      for (const ioengine of ['io_uring', 'libaio'] as const) for (const rw of PATTERNS) for (const qd of DEPTHS) await run(`fio ${ioengine}`, rw, qd, () => fio(ioengine, rw, qd, o.seconds, dir));
    } catch (e) {
      for (const ioengine of ['io_uring', 'libaio'] as const) for (const rw of PATTERNS) for (const qd of DEPTHS) keep(failedRow(`fio ${ioengine}`, rw, qd, (e as Error).message));
    } finally {
      rmSync(dir, { recursive: true, force: true });
      bindPciDriver(address, 'vfio-pci');
    }
  };
  for (let r = 0; r < o.rounds; r++) {
    o.log(`nvme round ${r + 1} of ${o.rounds}`);
    if (r % 2 === 0) {
      await oursAll();
      await kernelAll();
    } else {
      await kernelAll();
      await oursAll();
    }
  }
  const order = (r: NvmeRow): number => ['vfio poll', 'vfio irq', 'fio io_uring', 'fio libaio'].indexOf(r.engine) * 100 + PATTERNS.indexOf(r.rw) * 10 + DEPTHS.indexOf(r.qd);
  const rows = [...best.values()].sort((a, b) => order(a) - order(b));
  const fioVersion = spawnSync('fio', ['--version'], { encoding: 'utf8' }).stdout?.trim() ?? 'unknown';
  return {
    rows,
    targets: nvmeTargets(rows),
    env: { device: address, seconds: o.seconds, rounds: o.rounds, 'kept': 'the better round', fio: fioVersion, elapsed: Math.round((Date.now() - started) / 1000) },
    date: new Date().toISOString(),
  };
}
