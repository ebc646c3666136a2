/**
 * The NVMe benchmark's results: latency summaries, fio's JSON, the targets and
 * the readable table. Pure: no I/O, tested on the host
 * (test/host/bench-nvme.test.ts); bench/nvme.ts measures.
 */

/** 'randread' or 'randwrite', fio's names. */
export type NvmeRw = 'randread' | 'randwrite';

/** One measured configuration: an engine, a pattern and a queue depth. */
export interface NvmeRow {
  /** 'vfio poll', 'vfio irq', 'fio io_uring', 'fio libaio'. */
  engine: string;
  rw: NvmeRw;
  /** Commands kept in flight. */
  qd: number;
  /** Completed commands. */
  ios: number;
  iops: number;
  /** Latency of one command, submission to completion as the caller sees it, in µs. */
  meanUs: number;
  p50Us: number;
  p99Us: number;
  p999Us: number;
  /** Why there is no result ('failed: …'); the numbers are then 0. */
  error?: string;
}

/** One target: ours in polling mode against the kernel driver with io_uring, by IOPS. */
export interface NvmeTarget {
  rw: NvmeRw;
  qd: number;
  /** vfio poll IOPS / fio io_uring IOPS; null when either is missing. */
  ratio: number | null;
  /** At least this. */
  target: number;
  met: boolean;
}

/** What bench/nvme.ts writes to bench-results/nvme.json. */
export interface NvmeReport {
  rows: NvmeRow[];
  targets: NvmeTarget[];
  env: Record<string, string | number>;
  date: string;
}

/** The target of issue 16: polling mode at least as many IOPS as io_uring on the kernel driver. */
export const NVME_POLL_TARGET = 1.0;

/** The value at quantile `q` (0..1) of sorted samples: nearest rank, as fio reports its percentiles. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) throw new RangeError('no samples');
  if (!(q >= 0 && q <= 1)) throw new RangeError(`q must be in 0..1, got ${q}`);
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[rank - 1]!;
}

/**
 * A row from per-command latencies in nanoseconds (the first `count` of
 * `ns`, in any order) over `seconds` of wall time.
 */
export function summarize(engine: string, rw: NvmeRw, qd: number, ns: Float64Array, count: number, seconds: number): NvmeRow {
  if (!(count > 0) || count > ns.length) throw new RangeError(`count must be 1..${ns.length}, got ${count}`);
  if (!(seconds > 0)) throw new RangeError(`seconds must be positive, got ${seconds}`);
  const s = ns.slice(0, count).sort();
  let sum = 0;
  for (let i = 0; i < count; i++) sum += s[i]!;
  return {
    engine,
    rw,
    qd,
    ios: count,
    iops: count / seconds,
    meanUs: sum / count / 1000,
    p50Us: quantile(s, 0.5) / 1000,
    p99Us: quantile(s, 0.99) / 1000,
    p999Us: quantile(s, 0.999) / 1000,
  };
}

/**
 * A row from fio's `--output-format=json` output, run with `--lat_percentiles=1`
 * (percentiles of the total latency, submission to completion, as ours are).
 *
 * @throws Error naming what is missing when the JSON is not fio's
 */
export function parseFio(engine: string, rw: NvmeRw, qd: number, json: string): NvmeRow {
  let doc: unknown;
  try {
    doc = JSON.parse(json.slice(json.indexOf('{')));
  } catch (e) {
    throw new Error(`fio's output is not JSON: ${(e as Error).message}`);
  }
  const job = (doc as { jobs?: unknown[] }).jobs?.[0] as Record<string, unknown> | undefined;
  if (!job) throw new Error('fio\'s JSON has no jobs');
  if (job.error) throw new Error(`fio's job failed: error ${String(job.error)}`);
  const side = job[rw === 'randread' ? 'read' : 'write'] as { total_ios?: number; iops?: number; lat_ns?: { mean?: number; percentile?: Record<string, number> } } | undefined;
  const pct = side?.lat_ns?.percentile;
  if (!side || typeof side.iops !== 'number' || !side.lat_ns || typeof side.lat_ns.mean !== 'number' || !pct) {
    throw new Error(`fio's JSON has no ${rw === 'randread' ? 'read' : 'write'}.lat_ns percentiles (run it with --lat_percentiles=1)`);
  }
  const p = (k: string): number => {
    const v = pct[k];
    if (typeof v !== 'number') throw new Error(`fio's JSON has no ${k} percentile`);
    return v / 1000;
  };
  return {
    engine,
    rw,
    qd,
    ios: side.total_ios ?? 0,
    iops: side.iops,
    meanUs: side.lat_ns.mean / 1000,
    p50Us: p('50.000000'),
    p99Us: p('99.000000'),
    p999Us: p('99.900000'),
  };
}

/** A row that could not be measured. */
export function failedRow(engine: string, rw: NvmeRw, qd: number, why: string): NvmeRow {
  return { engine, rw, qd, ios: 0, iops: 0, meanUs: 0, p50Us: 0, p99Us: 0, p999Us: 0, error: `failed: ${why}` };
}

/** The targets: 'vfio poll' against 'fio io_uring' for every pattern and depth measured by both. */
export function nvmeTargets(rows: readonly NvmeRow[]): NvmeTarget[] {
  const key = (r: NvmeRow): string => `${r.rw}/${r.qd}`;
  const seen = new Map<string, { rw: NvmeRw; qd: number }>();
  for (const r of rows) seen.set(key(r), { rw: r.rw, qd: r.qd });
  const out: NvmeTarget[] = [];
  for (const { rw, qd } of seen.values()) {
    const ours = rows.find((r) => r.engine === 'vfio poll' && r.rw === rw && r.qd === qd && !r.error);
    const theirs = rows.find((r) => r.engine === 'fio io_uring' && r.rw === rw && r.qd === qd && !r.error);
    const ratio = ours && theirs && theirs.iops > 0 ? ours.iops / theirs.iops : null;
    out.push({ rw, qd, ratio, target: NVME_POLL_TARGET, met: ratio !== null && ratio >= NVME_POLL_TARGET });
  }
  return out;
}

const f = (n: number, w: number, d = 0): string => n.toFixed(d).padStart(w);

/** The readable table: one line per row, then the targets. */
export function renderNvmeTable(report: NvmeReport): string {
  const lines = [
    `NVMe, 4 KiB random I/O on the bed's QEMU controller (${Object.entries(report.env).map(([k, v]) => `${k} ${v}`).join(', ')})`,
    'latency: submission to completion as the caller sees it (fio: lat_ns), µs',
    '',
    `${'engine'.padEnd(14)} ${'pattern'.padEnd(10)} ${'QD'.padStart(3)} ${'IOPS'.padStart(8)} ${'mean'.padStart(8)} ${'p50'.padStart(8)} ${'p99'.padStart(8)} ${'p99.9'.padStart(8)}  vs io_uring`,
  ];
  for (const r of report.rows) {
    const head = `${r.engine.padEnd(14)} ${r.rw.padEnd(10)} ${f(r.qd, 3)}`;
    if (r.error) {
      lines.push(`${head} ${r.error}`);
      continue;
    }
    const base = report.rows.find((x) => x.engine === 'fio io_uring' && x.rw === r.rw && x.qd === r.qd && !x.error);
    const vs = base && base.iops > 0 ? `${(r.iops / base.iops).toFixed(2)}×` : '-';
    lines.push(`${head} ${f(r.iops, 8)} ${f(r.meanUs, 8, 1)} ${f(r.p50Us, 8, 1)} ${f(r.p99Us, 8, 1)} ${f(r.p999Us, 8, 1)}  ${vs}`);
  }
  lines.push('');
  for (const t of report.targets) {
    lines.push(
      `target: vfio poll ≥ ${t.target.toFixed(1)}× fio io_uring IOPS, ${t.rw} QD${t.qd}: ${t.ratio === null ? 'no result' : `${t.ratio.toFixed(2)}×`} ${t.met ? 'met' : 'MISSED'}`,
    );
  }
  return lines.join('\n');
}
