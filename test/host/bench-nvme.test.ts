import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { failedRow, nvmeTargets, parseFio, quantile, renderNvmeTable, summarize, type NvmeRow } from '../../bench/nvme-report.js';

const FIO = readFileSync(new URL('./fixtures/fio-3.33-randwrite.json', import.meta.url), 'utf8');

describe('NVMe bench report', () => {
  it('quantile is nearest rank, as fio reports percentiles', () => {
    const s = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
    expect(quantile(s, 0.5)).toBe(50);
    expect(quantile(s, 0.99)).toBe(100);
    expect(quantile(s, 0)).toBe(10);
    expect(() => quantile([], 0.5)).toThrow(RangeError);
    expect(() => quantile(s, 1.5)).toThrow(RangeError);
  });

  it('summarize turns per-command nanoseconds into IOPS, mean and percentiles, ignoring the unused tail', () => {
    const ns = new Float64Array(2000).fill(1e9);
    for (let i = 0; i < 1000; i++) ns[i] = (1000 - i) * 1000; // 1000..1 µs, reversed
    const r = summarize('vfio poll', 'randread', 1, ns, 1000, 0.5);
    expect(r).toMatchObject({ engine: 'vfio poll', rw: 'randread', qd: 1, ios: 1000, iops: 2000 });
    expect(r.meanUs).toBeCloseTo(500.5, 6);
    expect(r.p50Us).toBe(500);
    expect(r.p99Us).toBe(990);
    expect(r.p999Us).toBe(999);
    expect(ns[0]).toBe(1000 * 1000); // the caller's samples are not reordered
    expect(() => summarize('x', 'randread', 1, ns, 0, 1)).toThrow(RangeError);
    expect(() => summarize('x', 'randread', 1, ns, 3000, 1)).toThrow(RangeError);
  });

  it('parseFio reads the write side of fio 3.33\'s JSON, after a warning line', () => {
    const r = parseFio('fio io_uring', 'randwrite', 32, `fio: some warning\n${FIO}`);
    const doc = JSON.parse(FIO) as { jobs: { write: { iops: number; total_ios: number; lat_ns: { mean: number; percentile: Record<string, number> } } }[] };
    const w = doc.jobs[0]!.write;
    expect(r).toEqual({
      engine: 'fio io_uring',
      rw: 'randwrite',
      qd: 32,
      ios: w.total_ios,
      iops: w.iops,
      meanUs: w.lat_ns.mean / 1000,
      p50Us: w.lat_ns.percentile['50.000000']! / 1000,
      p99Us: w.lat_ns.percentile['99.000000']! / 1000,
      p999Us: w.lat_ns.percentile['99.900000']! / 1000,
    });
    expect(r.iops).toBeGreaterThan(0);
    // The read side of this run has no percentiles: a clear error, not zeros.
    expect(() => parseFio('fio io_uring', 'randread', 1, FIO)).toThrow(/read\.lat_ns percentiles/);
    expect(() => parseFio('x', 'randread', 1, 'not json')).toThrow(/not JSON/);
    expect(() => parseFio('x', 'randread', 1, '{"jobs":[{"error":5}]}')).toThrow(/error 5/);
  });

  it('targets compare vfio poll with fio io_uring by IOPS, and the table shows both and the misses', () => {
    const row = (engine: string, rw: 'randread' | 'randwrite', qd: number, iops: number): NvmeRow => ({ engine, rw, qd, ios: iops, iops, meanUs: 1e6 / iops, p50Us: 1, p99Us: 2, p999Us: 3 });
    const rows = [
      row('vfio poll', 'randread', 1, 1200),
      row('vfio irq', 'randread', 1, 900),
      row('fio io_uring', 'randread', 1, 1000),
      row('vfio poll', 'randread', 32, 3000),
      row('fio io_uring', 'randread', 32, 4000),
      failedRow('fio io_uring', 'randwrite', 1, 'fio exit 1'),
      row('vfio poll', 'randwrite', 1, 800),
    ];
    const t = nvmeTargets(rows);
    expect(t).toEqual([
      { rw: 'randread', qd: 1, ratio: 1.2, target: 1, met: true },
      { rw: 'randread', qd: 32, ratio: 0.75, target: 1, met: false },
      { rw: 'randwrite', qd: 1, ratio: null, target: 1, met: false },
    ]);
    const table = renderNvmeTable({ rows, targets: t, env: { device: '0000:01:00.0' }, date: '2026-12-03T00:00:00Z' });
    expect(table).toMatch(/^vfio poll +randread +1 +1200 .* 1\.20×$/m);
    expect(table).toMatch(/^vfio irq +randread +1 +900 .* 0\.90×$/m);
    expect(table).toMatch(/^fio io_uring +randwrite +1 failed: fio exit 1$/m);
    expect(table).toMatch(/randread QD32: 0\.75× MISSED/);
    expect(table).toMatch(/randread QD1: 1\.20× met/);
    expect(table).toMatch(/randwrite QD1: no result MISSED/);
  });
});
