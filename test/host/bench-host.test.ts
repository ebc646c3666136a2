/**
 * The host section of `npm run bench` (bench/host.ts with bench/c/host_bench.c),
 * run in its tiny mode: every case is present with finite numbers, the ratios
 * are computed, and the files are written. Only the report's shape is checked,
 * never a speed (the tiny mode does not even warm the JIT up).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOST_CASES, runHostBench } from '../../bench/host.js';
import type { BenchReport, CaseResult, Stats } from '../../bench/report.js';
import { C_FLAGS, compileHostBench } from '../../scripts/bench.js';

const root = join(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'vfio-bench-host-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function finiteStats(s: Stats | null, what: string): void {
  expect(s, what).not.toBeNull();
  for (const k of ['median', 'min', 'max'] as const) {
    expect(Number.isFinite(s![k]), `${what}.${k} = ${s![k]}`).toBe(true);
    expect(s![k], `${what}.${k}`).toBeGreaterThanOrEqual(0);
  }
  expect(s!.min).toBeLessThanOrEqual(s!.median);
  expect(s!.median).toBeLessThanOrEqual(s!.max);
  expect(s!.n).toBeGreaterThanOrEqual(1);
  expect(s!.reps).toBeGreaterThanOrEqual(1);
}

// The C side is compiled here as `npm run bench` does; without a compiler that fails with
// the apt-get hint (the addon's own build needs the compiler too), it is never skipped.
describe('bench/host.ts (tiny mode)', () => {
  let report: BenchReport;
  let code: number;
  const logs: string[] = [];

  beforeAll(async () => {
    const cBin = compileHostBench(root, dir);
    ({ report, code } = await runHostBench({ size: 'tiny', cBin, outDir: dir, log: (s) => logs.push(s) }));
  }, 120_000);

  it('compiles the C side with the fixed flags plus -pthread', () => {
    expect(C_FLAGS).toEqual(['-O2', '-std=gnu11', '-Wall', '-Wextra', '-Werror']);
  });

  it('runs every case, with no failure', () => {
    expect(code, logs.join('\n')).toBe(0);
    expect(report.cases.map((c) => c.name)).toEqual(Object.values(HOST_CASES).map((s) => s.name));
    for (const c of report.cases) expect(c.error, `${c.name}: ${c.error}`).toBeUndefined();
  });

  it('gives finite numbers on every side that has one, and the ratio where there is a baseline', () => {
    for (const c of report.cases) {
      finiteStats(c.ours, `${c.name} ours`);
      if (c.targetOn === 'ratio') {
        finiteStats(c.c, `${c.name} c`);
        expect(c.ratio, c.name).not.toBeNull();
        expect(c.ratio, c.name).toBeCloseTo(c.ours!.median / c.c!.median, 9);
      }
    }
    // The register cases carry C beside our absolute target; the mapper has no C side.
    const by = (name: string): CaseResult => report.cases.find((c) => c.name === name)!;
    for (const s of [HOST_CASES.mmioRead, HOST_CASES.mmioWrite]) expect(Number.isFinite(by(s.name).ratio)).toBe(true);
    for (const s of [HOST_CASES.mapper, HOST_CASES.mapperHoles]) {
      expect(by(s.name).c).toBeNull();
      expect(by(s.name).ratio).toBeNull();
    }
  });

  it('judges each target and leaves the reference rows without one', () => {
    for (const c of report.cases) {
      if (c.target === null) expect(c.met, c.name).toBeNull();
      else expect(typeof c.met, c.name).toBe('boolean');
    }
    expect(report.cases.filter((c) => c.target !== null).map((c) => c.name)).toEqual([
      HOST_CASES.regionRead.name,
      HOST_CASES.regionWrite.name,
      HOST_CASES.mmioRead.name,
      HOST_CASES.mmioWrite.name,
      HOST_CASES.irqLatency.name,
      HOST_CASES.irqThroughput.name,
      HOST_CASES.mapper.name,
      HOST_CASES.mapperHoles.name,
    ]);
  });

  it('writes host.json (the report) and host.txt (the table)', () => {
    const json = JSON.parse(readFileSync(join(dir, 'host.json'), 'utf8')) as BenchReport;
    expect(json.cases.map((c) => c.name)).toEqual(report.cases.map((c) => c.name));
    expect(json.env).toMatchObject({ section: 'host', size: 'tiny', node: process.version });
    const txt = readFileSync(join(dir, 'host.txt'), 'utf8');
    for (const c of report.cases) expect(txt).toContain(c.name);
    expect(txt).toMatch(/targets met: \d+ of 8/);
  });

  it('runs only the cases --only names, by prefix', async () => {
    const cBin = join(dir, 'host_bench');
    const r = await runHostBench({ size: 'tiny', cBin, outDir: null, only: ['DmaMapper'], log: () => {} });
    expect(r.code).toBe(0);
    expect(r.report.cases.map((c) => c.name)).toEqual([HOST_CASES.mapper.name, HOST_CASES.mapperHoles.name]);
  }, 60_000);

  it('refuses to run without the C baseline (exit 2), making nothing up', async () => {
    const r = await runHostBench({ size: 'tiny', cBin: join(dir, 'absent'), outDir: null, log: () => {} });
    expect(r.code).toBe(2);
    expect(r.report.cases).toEqual([]);
  });
});
