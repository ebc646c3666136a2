/**
 * The IOVA allocator: ranges, alignment, limit, first fit, reuse and
 * coalescing, typed errors — and a seeded randomized run against a page-array model.
 */
import { describe, expect, it } from 'vitest';
import { IovaAllocator } from '../../src/iova.js';
import { VfioError } from '../../src/errors.js';

const K4 = 0x1000n;
const U64_MAX = 0xffff_ffff_ffff_ffffn;

function catchErr(f: () => unknown): VfioError | undefined {
  try {
    f();
  } catch (e) {
    return e as VfioError;
  }
  return undefined;
}

/** mulberry32: a small seeded PRNG, so failures reproduce. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('IovaAllocator', () => {
  it('hands out the lowest fitting aligned block, honouring the VT-d reserved MSI window', () => {
    const a = new IovaAllocator([
      { start: 0n, last: 0xfedfffffn },
      { start: 0xfef00000n, last: 0xffffffffffn },
    ]);
    expect(a.ranges).toEqual([
      { start: 0n, last: 0xfedfffffn },
      { start: 0xfef00000n, last: 0xffffffffffn },
    ]);
    expect(a.alloc(0x2000n)).toBe(0n);
    expect(a.alloc(0x1000n)).toBe(0x2000n);
    // A block that does not fit below the window lands above it.
    a.reserve(0x3000n, 0xfedfd000n);
    expect(a.alloc(0x1000n)).toBe(0xfef00000n);
  });

  it('clips ranges to [min, limit) and to whole aligned units', () => {
    const a = new IovaAllocator([{ start: 0n, last: U64_MAX }], { min: 0x1000, limit: 0x10000000 });
    expect(a.ranges).toEqual([{ start: 0x1000n, last: 0xfffffffn }]);
    const b = new IovaAllocator([{ start: 0x1001n, last: 0x5ffen }], { alignment: 0x1000 });
    expect(b.ranges).toEqual([{ start: 0x2000n, last: 0x4fffn }]);
    expect(new IovaAllocator([{ start: 0x100n, last: 0x200n }]).ranges).toEqual([]);
    // Overlapping and adjacent input ranges merge.
    const c = new IovaAllocator([
      { start: 0x4000n, last: 0x7fffn },
      { start: 0x0n, last: 0x1fffn },
      { start: 0x2000n, last: 0x4fffn },
    ]);
    expect(c.ranges).toEqual([{ start: 0n, last: 0x7fffn }]);
  });

  it('reuses freed space and coalesces free neighbours', () => {
    const a = new IovaAllocator([{ start: 0n, last: 0xffffn }]);
    const x = a.alloc(0x4000n);
    const y = a.alloc(0x4000n);
    const z = a.alloc(0x4000n);
    expect([x, y, z]).toEqual([0n, 0x4000n, 0x8000n]);
    expect(a.free(y)).toBe(0x4000n);
    expect(a.alloc(0x2000n)).toBe(0x4000n); // first fit: the hole
    expect(a.free(0x4000n)).toBe(0x2000n);
    a.free(x);
    // [0, 0x8000) is one block again: an 0x8000 allocation fits at 0.
    expect(a.freeRanges()).toEqual([
      { start: 0n, last: 0x7fffn },
      { start: 0xc000n, last: 0xffffn },
    ]);
    expect(a.alloc(0x8000n)).toBe(0n);
    a.reset();
    expect(a.freeRanges()).toEqual([{ start: 0n, last: 0xffffn }]);
    expect(a.allocations()).toEqual([]);
  });

  it('honours a larger per-allocation alignment', () => {
    const a = new IovaAllocator([{ start: 0x1000n, last: 0xffffffn }]);
    expect(a.alloc(0x1000n)).toBe(0x1000n);
    expect(a.alloc(0x200000n, { align: 0x200000n })).toBe(0x200000n);
    expect(a.alloc(0x1000n)).toBe(0x2000n);
    expect(() => a.alloc(0x1000n, { align: 0x800n })).toThrow(RangeError);
    expect(() => a.alloc(0x1000n, { align: 0x3000n })).toThrow(RangeError);
  });

  it('rejects zero and unaligned sizes and unaligned or out-of-range reservations with EINVAL', () => {
    const a = new IovaAllocator([{ start: 0x1000n, last: 0xffffn }]);
    expect(catchErr(() => a.alloc(0n))).toMatchObject({ code: 'EINVAL', operation: 'IOVA alloc' });
    expect(catchErr(() => a.alloc(0x1800n))).toMatchObject({ code: 'EINVAL', message: expect.stringMatching(/not a multiple/) });
    expect(catchErr(() => a.reserve(0x1800n, 0x1000n))).toMatchObject({ code: 'EINVAL', operation: 'IOVA reserve' });
    expect(catchErr(() => a.reserve(0n, 0x1000n))).toMatchObject({ code: 'EINVAL', message: expect.stringMatching(/outside the usable ranges/) });
    expect(catchErr(() => a.reserve(0xf000n, 0x2000n))).toMatchObject({ code: 'EINVAL' });
    expect(catchErr(() => a.reserve(U64_MAX & ~0xfffn, 0x2000n))).toMatchObject({ code: 'EINVAL' });
    expect(() => new IovaAllocator([], { alignment: 3 })).toThrow(RangeError);
    expect(() => new IovaAllocator([{ start: 5n, last: 4n }])).toThrow(RangeError);
    expect(() => a.alloc(-1)).toThrow(RangeError);
    expect(() => a.alloc('1' as unknown as number)).toThrow(TypeError);
    expect(a.allocations()).toEqual([]);
  });

  it('refuses overlapping reservations with EEXIST and unknown frees with ENOENT', () => {
    const a = new IovaAllocator([{ start: 0n, last: 0xffffn }]);
    a.reserve(0x4000n, 0x2000n);
    expect(catchErr(() => a.reserve(0x5000n, 0x2000n))).toMatchObject({ code: 'EEXIST', message: expect.stringMatching(/overlaps 0x4000\.\.0x5fff/) });
    expect(catchErr(() => a.reserve(0x3000n, 0x2000n))).toMatchObject({ code: 'EEXIST' });
    expect(catchErr(() => a.free(0x5000n))).toMatchObject({ code: 'ENOENT', operation: 'IOVA free' });
    expect(a.find(0x5fffn)).toEqual({ iova: 0x4000n, size: 0x2000n });
    expect(a.find(0x6000n)).toBeUndefined();
    expect(a.free(0x4000n)).toBe(0x2000n);
    expect(catchErr(() => a.free(0x4000n))).toMatchObject({ code: 'ENOENT' });
  });

  it('reports exhaustion with ENOSPC, the numbers and a hint', () => {
    const a = new IovaAllocator([{ start: 0n, last: 0xffffffffn }], { limit: 0x10000000n, min: 0x1000n });
    a.alloc(0x8000000n);
    const err = catchErr(() => a.alloc(0x8000000n));
    expect(err).toBeInstanceOf(VfioError);
    expect(err).toMatchObject({ code: 'ENOSPC', errno: -28, operation: 'IOVA alloc' });
    expect(err!.message).toMatch(/0x8000000 bytes.*0x7fff000 bytes free, the largest block 0x7fff000/);
    expect(err!.hint).toMatch(/unmap/);
    expect(a.alloc(0x7fff000n)).toBe(0x8001000n);
    expect(catchErr(() => a.alloc(0x1000n))).toMatchObject({ code: 'ENOSPC' });
    expect(catchErr(() => new IovaAllocator([]).alloc(0x1000n))).toMatchObject({ code: 'ENOSPC', message: expect.stringMatching(/no usable range/) });
  });

  it('handles the top of the 64-bit space', () => {
    const a = new IovaAllocator([{ start: 0n, last: U64_MAX }]);
    const top = (U64_MAX + 1n) - 0x1000n;
    a.reserve(top, 0x1000n);
    expect(a.find(U64_MAX)).toEqual({ iova: top, size: 0x1000n });
    a.free(top);
    expect(a.freeRanges()).toEqual([{ start: 0n, last: U64_MAX }]);
  });

  it('matches a page-array model over 4000 random operations (seed 0x5eed)', () => {
    const PAGES = 256;
    const random = rng(0x5eed);
    const int = (n: number): number => Math.floor(random() * n);
    // A few usable ranges with holes between them, in pages.
    const ranges = [
      { start: 0n, last: 40n * K4 - 1n },
      { start: 48n * K4, last: 130n * K4 - 1n },
      { start: 140n * K4, last: 255n * K4 - 1n },
    ];
    const limit = 250n * K4;
    const a = new IovaAllocator(ranges, { limit, min: K4 });
    const usable = Array.from({ length: PAGES }, (_, p) => p >= 1 && p < 250 && ranges.some((r) => BigInt(p) * K4 >= r.start && BigInt(p + 1) * K4 - 1n <= r.last));
    const owner: (number | null)[] = Array(PAGES).fill(null); // start page of the allocation holding each page
    const live = new Map<number, number>(); // start page → pages
    const fits = (p: number, n: number): boolean => {
      for (let i = p; i < p + n; i++) if (i >= PAGES || !usable[i] || owner[i] !== null) return false;
      return true;
    };
    const firstFit = (n: number, alignPages: number): number | null => {
      for (let p = 0; p < PAGES; p += alignPages) if (fits(p, n)) return p;
      return null;
    };
    const take = (p: number, n: number): void => {
      for (let i = p; i < p + n; i++) owner[i] = p;
      live.set(p, n);
    };
    let allocs = 0;
    let exhausted = 0;
    for (let step = 0; step < 4000; step++) {
      const op = random();
      if (op < 0.45) {
        const n = 1 + int(random() < 0.8 ? 8 : 64);
        const alignPages = random() < 0.2 ? 4 : 1;
        const want = firstFit(n, alignPages);
        const err = catchErr(() => {
          const iova = a.alloc(BigInt(n) * K4, alignPages > 1 ? { align: BigInt(alignPages) * K4 } : {});
          expect(iova % (BigInt(alignPages) * K4)).toBe(0n);
          expect(iova).toBe(BigInt(want ?? -1) * K4);
          take(want!, n);
          allocs++;
        });
        if (want === null) {
          expect(err).toMatchObject({ code: 'ENOSPC' });
          exhausted++;
        } else expect(err).toBeUndefined();
      } else if (op < 0.6) {
        const p = int(PAGES);
        const n = 1 + int(6);
        const ok = fits(p, n);
        const err = catchErr(() => a.reserve(BigInt(p) * K4, BigInt(n) * K4));
        if (ok) {
          expect(err).toBeUndefined();
          take(p, n);
        } else {
          let overlaps = false;
          let outside = false;
          for (let i = p; i < p + n; i++) {
            if (i >= PAGES || !usable[i]) outside = true;
            else if (owner[i] !== null) overlaps = true;
          }
          // A range within one usable stretch that overlaps is EEXIST; anything leaving the ranges is EINVAL.
          expect(err).toMatchObject({ code: outside ? 'EINVAL' : overlaps ? 'EEXIST' : 'none' });
        }
      } else if (live.size > 0) {
        const starts = [...live.keys()];
        const p = starts[int(starts.length)]!;
        const n = live.get(p)!;
        expect(a.free(BigInt(p) * K4)).toBe(BigInt(n) * K4);
        for (let i = p; i < p + n; i++) owner[i] = null;
        live.delete(p);
      } else {
        expect(catchErr(() => a.free(BigInt(int(PAGES)) * K4))).toMatchObject({ code: 'ENOENT' });
      }
      // Invariants after every step: the allocator's table is the model's, and free ∪ used = usable, disjoint.
      expect(a.allocations()).toEqual([...live].sort((x, y) => x[0] - y[0]).map(([p, n]) => ({ iova: BigInt(p) * K4, size: BigInt(n) * K4 })));
      const free = a.freeRanges();
      for (let i = 1; i < free.length; i++) expect(free[i]!.start).toBeGreaterThan(free[i - 1]!.last + 1n); // coalesced
      const freePages = usable.map((u, p) => u && owner[p] === null);
      const fromAllocator = Array(PAGES).fill(false);
      for (const r of free) for (let p = Number(r.start / K4); p <= Number(r.last / K4); p++) fromAllocator[p] = true;
      expect(fromAllocator).toEqual(freePages);
    }
    // The run exercised both outcomes.
    expect(allocs).toBeGreaterThan(200);
    expect(exhausted).toBeGreaterThan(10);
  });
});
