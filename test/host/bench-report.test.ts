/**
 * The benchmark's verdicts and report: statistics, ratios, targets on either
 * side of the comparison, refused and failed cases, and the table.
 */
import { describe, expect, it } from 'vitest';
import { makeCase, refusedCase, renderTable, stats, type CaseSpec } from '../../bench/report.js';

const lower: CaseSpec = { name: 'ioctl', unit: 'µs/op', target: 1.2, better: 'lower' };
const higher: CaseSpec = { name: 'copy', unit: 'MiB/s', target: 0.9, better: 'higher' };

describe('stats', () => {
  it('takes the median of odd and even sample counts, with min, max and n', () => {
    expect(stats([5, 1, 3], 10)).toEqual({ median: 3, min: 1, max: 5, n: 3, reps: 10 });
    expect(stats([4, 1, 3, 2], 1)).toEqual({ median: 2.5, min: 1, max: 4, n: 4, reps: 1 });
  });

  it('refuses empty, negative and non-finite samples', () => {
    expect(() => stats([], 1)).toThrow(RangeError);
    expect(() => stats([1, -1], 1)).toThrow(RangeError);
    expect(() => stats([1, Infinity], 1)).toThrow(RangeError);
    expect(() => stats([NaN], 1)).toThrow(RangeError);
  });
});

describe('makeCase', () => {
  it('divides our median by C and meets a lower-is-better target at or under it', () => {
    const c = makeCase(lower, stats([12], 1), stats([10], 1));
    expect(c.ratio).toBeCloseTo(1.2);
    expect(c.met).toBe(true);
    expect(makeCase(lower, stats([13], 1), stats([10], 1)).met).toBe(false);
  });

  it('meets a higher-is-better target at or over it', () => {
    expect(makeCase(higher, stats([95], 1), stats([100], 1)).met).toBe(true);
    expect(makeCase(higher, stats([85], 1), stats([100], 1)).met).toBe(false);
  });

  it('judges a target on our own figure when asked (growth, heap), with C optional', () => {
    const heap: CaseSpec = { name: 'heap', unit: 'B', target: 256, better: 'lower', targetOn: 'ours' };
    expect(makeCase(heap, stats([200], 1), null).met).toBe(true);
    expect(makeCase(heap, stats([300], 1), null).met).toBe(false);
    const growth: CaseSpec = { name: 'growth', unit: 'x', target: 1.3, better: 'lower', targetOn: 'ours' };
    // Our growth decides, even when C grew more or less.
    expect(makeCase(growth, stats([1.25], 1), stats([2], 1)).met).toBe(true);
    expect(makeCase(growth, stats([1.4], 1), stats([1], 1)).met).toBe(false);
  });

  it('reports a case without a target as met: null, with its ratio', () => {
    const c = makeCase({ ...lower, target: null }, stats([3], 1), stats([2], 1));
    expect(c.met).toBeNull();
    expect(c.ratio).toBe(1.5);
  });

  it('fails a case whose C baseline produced nothing, never "infinitely fast"', () => {
    const c = makeCase(lower, stats([1], 1), null, 'failed: C baseline: EBADF');
    expect(c.met).toBe(false);
    expect(c.ratio).toBeNull();
    expect(c.error).toBe('failed: C baseline: EBADF');
    expect(makeCase(lower, stats([1], 1), null).error).toMatch(/C baseline produced no result/);
  });

  it('fails a case our side could not run', () => {
    const c = makeCase({ ...lower, target: null }, null, stats([1], 1));
    expect(c.met).toBe(false);
    expect(c.error).toMatch(/our side/);
  });
});

describe('refusedCase and renderTable', () => {
  it('marks a refused case with its reason and shows it under the table', () => {
    const refused = refusedCase({ ...lower, name: 'edu read32' }, 'no edu device');
    expect(refused).toMatchObject({ ours: null, c: null, ratio: null, met: false, error: 'refused: no edu device' });
    const table = renderTable({ cases: [makeCase(lower, stats([11, 12, 13], 100), stats([10, 10, 10], 100)), refused], env: {}, date: '' });
    const lines = table.split('\n');
    expect(lines[0]).toMatch(/^case\s+unit\s+ours\s+C\s+ratio\s+target\s+met/);
    expect(lines[2]).toMatch(/^ioctl\s+µs\/op\s+12\.0\s+10\.0\s+1\.200\s+≤ 1\.2\s+yes\s+11\.0–13\.0\s+10\.0–10\.0\s+3×100$/);
    expect(lines[3]).toMatch(/^edu read32 .*—.*NO/);
    expect(table).toContain('edu read32: refused: no edu device');
    expect(lines.at(-1)).toBe('targets met: 1 of 2');
  });
});
