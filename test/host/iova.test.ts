/**
 * The IOVA allocator: ranges, alignment, limit, first fit, reuse and
 * coalescing, typed errors — and a seeded randomized run against a page-array
 * model; and the B+tree it (and the DMA table) keeps its spans in.
 */
import { describe, expect, it } from 'vitest';
import { IovaAllocator } from '../../src/dma/iova.js';
import { BTreeMap, FreeTree, NIL } from '../../src/dma/trees.js';
import { VfioError } from '../../src/errors.js';
import { rng } from './rng.js';

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

describe('BTreeMap (the ordered map under the allocator and the DMA table)', () => {
  /** Compares the tree with the model (a sorted array of keys, values key*3); returns the first difference. */
  function diff(t: BTreeMap, keys: number[], random: () => number): string | undefined {
    const got: number[] = [];
    let bad: string | undefined;
    t.forEach((k, v) => {
      if (v !== k * 3) bad ??= `value ${v} under ${k}`;
      got.push(k);
    });
    if (bad) return bad;
    if (got.join() !== keys.join()) return `keys ${got.length} vs ${keys.length}`;
    if (t.size !== keys.length) return `size ${t.size}`;
    for (let q = 0; q < 20; q++) {
      const k = Math.floor(random() * ((keys.at(-1) ?? 0) + 2)) - 1;
      let i = 0;
      while (i < keys.length && keys[i]! <= k) i++;
      const fl = t.floor(k);
      if ((fl < 0 ? undefined : t.keyAt(fl)) !== keys[i - 1]) return `floor(${k})`;
      const hi = t.higher(k);
      if ((hi < 0 ? undefined : t.keyAt(hi)) !== keys[i]) return `higher(${k})`;
      if (t.get(k) !== (keys[i - 1] === k ? k * 3 : -1)) return `get(${k})`;
    }
    return undefined;
  }
  const check = (t: BTreeMap, keys: number[], random: () => number): void => expect(diff(t, keys, random)).toBeUndefined();

  it('matches a sorted-array model under random inserts and removes, at the edges and in the middle (seed 0xb7)', () => {
    const random = rng(0xb7);
    for (const [range, ops, pAppend] of [
      [64, 3000, 0],
      [5000, 20000, 0],
      [1e9, 20000, 0.7],
    ] as const) {
      const t = new BTreeMap();
      const keys: number[] = [];
      let top = 0;
      let wrong: string | undefined;
      for (let step = 0; step < ops && !wrong; step++) {
        const r = random();
        if (r < 0.55) {
          const k = random() < pAppend ? (top += 1 + Math.floor(random() * 3)) : Math.floor(random() * range);
          const i = keys.findIndex((x) => x >= k);
          const present = i >= 0 && keys[i] === k;
          if (t.set(k, k * 3) !== !present) wrong = `set(${k}) at step ${step}`;
          if (!present) keys.splice(i < 0 ? keys.length : i, 0, k);
          if (k > top) top = k;
        } else {
          // Mostly existing keys, often the largest (the pattern of map+unmap pairs).
          const k = keys.length && random() < 0.9 ? keys[random() < 0.3 ? keys.length - 1 : Math.floor(random() * keys.length)]! : Math.floor(random() * range);
          const i = keys.indexOf(k);
          if (t.remove(k) !== (i >= 0 ? k * 3 : -1)) wrong = `remove(${k}) at step ${step}`;
          if (i >= 0) keys.splice(i, 1);
        }
        if (step % 97 === 0 && !wrong) wrong = diff(t, keys, random);
      }
      expect(wrong).toBeUndefined();
      check(t, keys, random);
      for (const k of [...keys]) expect(t.remove(k)).toBe(k * 3);
      expect(t.size).toBe(0);
      expect(t.height).toBe(1);
    }
  });

  it('stays shallow: full nodes when filled in order, at least 8 entries a node after removals', () => {
    const t = new BTreeMap();
    for (let i = 0; i < 65536; i++) t.set(i, i * 3);
    expect(t.height).toBe(4); // 2048 full leaves of 32
    expect(t.nodeCapacity).toBeLessThan(2048 * 1.6);
    // Remove 7 of every 8 keys: merging keeps the tree from keeping sparse nodes.
    for (let i = 0; i < 65536; i++) if (i % 8 !== 0) t.remove(i);
    expect(t.size).toBe(8192);
    expect(t.height).toBeLessThanOrEqual(4);
    const keys = Array.from({ length: 8192 }, (_, i) => i * 8);
    check(t, keys, rng(1));
    // A pair of insert and remove at the top end of a full leaf neither splits nor merges each time.
    const n = t.nodeCapacity;
    for (let i = 0; i < 1000; i++) {
      t.set(1e6, 3e6);
      t.remove(1e6);
    }
    expect(t.nodeCapacity).toBe(n);
    t.clear();
    expect(t.size).toBe(0);
    expect(t.get(0)).toBe(-1);
    expect(t.floor(5)).toBe(-1);
    expect(t.higher(-5)).toBe(-1);
  });
});

describe('IovaAllocator internals', () => {
  it('clips the space to 2^53 alignment units when the alignment is below 2 KiB', () => {
    const a = new IovaAllocator([{ start: 0n, last: U64_MAX }], { alignment: 1 });
    expect(a.ranges).toEqual([{ start: 0n, last: (1n << 53n) - 1n }]);
    expect(a.alloc(3)).toBe(0n);
    expect(catchErr(() => a.reserve(1n << 60n, 1))).toMatchObject({ code: 'EINVAL', message: expect.stringMatching(/outside the usable ranges/) });
    expect(catchErr(() => a.alloc(1n << 60n))).toMatchObject({ code: 'ENOSPC', message: expect.stringMatching(/no free IOVA range of 0x1000000000000000 bytes/) });
    // With 4 KiB (or any alignment from 2 KiB) the whole 64-bit space is exact.
    expect(new IovaAllocator([{ start: 0n, last: U64_MAX }], { alignment: 2048 }).ranges).toEqual([{ start: 0n, last: U64_MAX }]);
  });

  it('keeps its counts and free list coalesced through allocs, reservations and frees', () => {
    const a = new IovaAllocator([{ start: 0x1000n, last: 0xffffn }]);
    const x = a.alloc(0x2000n);
    a.reserve(0x8000n, 0x1000n);
    expect(a.stats()).toMatchObject({ allocations: 2, freeBlocks: 2 });
    expect(a.freeBytes).toBe(0xf000n - 0x3000n);
    expect(a.largestFree).toBe(0x7000n);
    a.free(x);
    a.free(0x8000n);
    expect(a.stats()).toMatchObject({ allocations: 0, freeBlocks: 1 });
    expect(a.freeBytes).toBe(0xf000n);
    expect(catchErr(() => a.free(0x1800n))).toMatchObject({ code: 'ENOENT', message: expect.stringMatching(/0x1800/) });
  });
});

describe('FreeTree (the AVL tree of free blocks)', () => {
  /** Walks the whole tree: order, heights, AVL balance and every node's longest-block aggregate. */
  function invariantBroken(t: FreeTree): string | undefined {
    let bad: string | undefined;
    const walk = (x: number, lo: number, hi: number): [number, number] => {
      if (x === NIL) return [0, 0];
      if (!(t.start[x]! > lo && t.start[x]! < hi)) bad ??= `order at node ${x}`;
      const [hl, ml] = walk(t.left[x]!, lo, t.start[x]!);
      const [hr, mr] = walk(t.right[x]!, t.start[x]!, hi);
      if (t.height[x] !== 1 + Math.max(hl, hr)) bad ??= `height at node ${x}`;
      if (Math.abs(hl - hr) > 1) bad ??= `balance at node ${x}`;
      const m = Math.max(t.end[x]! - t.start[x]!, ml, mr);
      if (t.maxLen[x] !== m) bad ??= `longest-block aggregate at node ${x}: ${t.maxLen[x]}, not ${m}`;
      return [1 + Math.max(hl, hr), m];
    };
    walk(t.root, -Infinity, Infinity);
    return bad;
  }

  it('keeps order, balance and aggregates, and answers first fit, floor and higher like a sorted list (seed 0xf7)', () => {
    const random = rng(0xf7);
    const t = new FreeTree();
    // Blocks [10k, 10k + len) with len in 1..9: disjoint by construction.
    const live = new Map<number, { node: number; len: number }>();
    let wrong: string | undefined;
    for (let step = 0; step < 6000 && !wrong; step++) {
      const k = Math.floor(random() * 3000);
      const cur = live.get(k);
      if (cur) {
        t.delete(cur.node);
        live.delete(k);
      } else {
        const len = 1 + Math.floor(random() * 9);
        live.set(k, { node: t.add(k * 10, k * 10 + len), len });
      }
      wrong = invariantBroken(t);
      if (wrong || step % 50 !== 0) continue;
      const sorted = [...live].sort((a, b) => a[0] - b[0]);
      if (t.count !== sorted.length) wrong = `count at ${step}`;
      const longest = sorted.reduce((m, [, v]) => Math.max(m, v.len), 0);
      if (t.longest() !== longest) wrong = `longest at ${step}: ${t.longest()} vs ${longest}`;
      for (let n = 1; n <= 10 && !wrong; n++) {
        const want = sorted.find(([, v]) => v.len >= n);
        const got = t.firstFit(n);
        if ((got < 0 ? undefined : t.start[got]) !== (want ? want[0] * 10 : undefined)) wrong = `firstFit(${n}) at ${step}`;
        const aligned = sorted.find(([s, v]) => Math.ceil((s * 10) / 4) * 4 + n <= s * 10 + v.len);
        const ga = t.firstFitAligned(n, 4);
        if ((ga < 0 ? undefined : t.start[ga]) !== (aligned ? aligned[0] * 10 : undefined)) wrong = `firstFitAligned(${n}, 4) at ${step}`;
      }
      const q = Math.floor(random() * 30000);
      const fl = t.floor(q);
      const wantFloor = sorted.filter(([s]) => s * 10 <= q).at(-1);
      if ((fl < 0 ? undefined : t.start[fl]) !== (wantFloor ? wantFloor[0] * 10 : undefined)) wrong = `floor(${q}) at ${step}`;
      const hi = t.higher(q);
      const wantHigher = sorted.find(([s]) => s * 10 > q);
      if ((hi < 0 ? undefined : t.start[hi]) !== (wantHigher ? wantHigher[0] * 10 : undefined)) wrong = `higher(${q}) at ${step}`;
    }
    expect(wrong).toBeUndefined();
    expect(live.size).toBeGreaterThan(500);
    // In-place changes that keep the order: refresh() brings the aggregates back.
    const [k, v] = [...live][0]!;
    t.end[v.node] = k * 10 + 9.5;
    t.refresh(v.node);
    expect(invariantBroken(t)).toBeUndefined();
    expect(t.longest()).toBe(9.5);
  });
});
