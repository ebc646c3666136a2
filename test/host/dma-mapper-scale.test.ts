/**
 * The DmaMapper's complexity claims, checked by counting rather than timing:
 * the nodes its trees visit per operation (which must grow like log n, not n,
 * between 1k and 64k live mappings), the sizes of its structures, the syscalls
 * it makes, and how often it reads /proc for RLIMIT_MEMLOCK (not per map).
 * Speed itself is measured by the benchmarks, not here.
 */
import { describe, expect, it } from 'vitest';
import { allocDmaBuffer, type DmaBuffer, type DmaMapOptions, type DmaSpace, type IovaRange } from '../../src/dma/buffer.js';
import { DmaMapper, type DmaMapping } from '../../src/dma/mapper.js';
import { IovaAllocator } from '../../src/dma/iova.js';
import { treeStats } from '../../src/dma/trees.js';
import { rng } from './rng.js';

const PAGE = 4096n;
const SMALL = 1024;
const LARGE = 65536;

/** A space that maps nothing but counts its calls and hands out rising IOVAs when asked to choose. */
class CountingSpace implements DmaSpace {
  maps = 0;
  unmaps = 0;
  #next = 0x1000n;
  constructor(readonly backend: 'type1' | 'iommufd') {}
  map(_b: DmaBuffer, o: DmaMapOptions): bigint {
    this.maps++;
    if (o.iova !== undefined) return BigInt(o.iova);
    const iova = this.#next;
    this.#next += BigInt(o.size!);
    return iova;
  }
  unmap(_iova: bigint | number, size: bigint | number): bigint {
    this.unmaps++;
    return BigInt(size);
  }
  unmapAll(): bigint {
    return 0n;
  }
  iovaRanges(): { ranges: IovaRange[]; alignment: bigint } {
    return { ranges: [{ start: 0n, last: (1n << 48n) - 1n }], alignment: PAGE };
  }
}


function shuffle<T>(a: T[], random: () => number): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** Tree nodes visited by f, per call. */
function visitsPer(calls: number, f: () => void): number {
  const before = treeStats.visits;
  f();
  return (treeStats.visits - before) / calls;
}

interface Costs {
  map: number;
  steadyPair: number;
  find: number;
  lookup: number;
  unmap: number;
}

/**
 * n mappings of one page each at shuffled fixed IOVAs (so every tree is
 * inserted into and removed from in the middle, not only at the ends) of one
 * buffer, then: map+unmap pairs at steady state, finds, lookups, and unmapping
 * everything in another random order. Returns the nodes visited per operation.
 */
function randomWorkload(n: number, buf: DmaBuffer, seed: number): Costs {
  const random = rng(seed);
  const space = new CountingSpace('type1');
  const m = new DmaMapper(space, { pinning: false });
  // Every other page is used, so the allocator's free list fragments into n blocks.
  const slots = shuffle(
    Array.from({ length: n }, (_, i) => i),
    random,
  );
  const byIova = new Map<bigint, DmaMapping>();
  expect(m.lookup(buf, 0)).toBeUndefined(); // builds the (empty) lookup index up front: maps keep it current
  const map = visitsPer(n, () => {
    for (const i of slots) {
      const x = m.map(buf, { offset: BigInt(i) * PAGE, size: PAGE, iova: 0x100000n + BigInt(i) * 2n * PAGE });
      byIova.set(x.iova, x);
    }
  });
  expect(space.maps).toBe(n);
  expect(m.stats()).toMatchObject({ mappings: n, lookupIndex: true });
  expect(m.allocator.stats()).toMatchObject({ allocations: n, freeBlocks: n + 1 });

  const one = buf;
  const steadyPair = visitsPer(2000, () => {
    for (let k = 0; k < 2000; k++) m.unmap(m.map(one, { offset: BigInt(k % n) * PAGE, size: PAGE }));
  });

  const probes = Array.from({ length: 2000 }, () => Math.floor(random() * n));
  const find = visitsPer(probes.length, () => {
    for (const i of probes) {
      const iova = 0x100000n + BigInt(i) * 2n * PAGE + 123n;
      expect(m.find(iova)?.offset).toBe(BigInt(i) * PAGE);
    }
  });
  const stabBefore = m.stats().lookupVisits;
  const lookupTree = visitsPer(probes.length, () => {
    for (const i of probes) expect(m.lookup(buf, BigInt(i) * PAGE + 7n)).toBe(0x100000n + BigInt(i) * 2n * PAGE + 7n);
  });
  const lookup = lookupTree + (m.stats().lookupVisits - stabBefore) / probes.length;

  const order = shuffle([...byIova.values()], random);
  const unmap = visitsPer(n, () => {
    for (const x of order) m.unmap(x);
  });
  expect(space.unmaps).toBe(n + 2000);
  expect(m.mappings()).toEqual([]);
  expect(m.allocator.stats()).toMatchObject({ allocations: 0, freeBlocks: 1 });
  return { map, steadyPair, find, lookup, unmap };
}

describe('DmaMapper complexity (counted, not timed)', () => {
  const buf = allocDmaBuffer(BigInt(LARGE) * PAGE);

  it('visits O(log n) tree nodes per map, unmap, find and lookup from 1k to 64k live mappings', () => {
    const small = randomWorkload(SMALL, buf, 1);
    const large = randomWorkload(LARGE, buf, 2);
    const log2 = (n: number): number => Math.log2(n);
    for (const op of Object.keys(small) as (keyof Costs)[]) {
      // 64 times the mappings: a linear scan would visit ~64 times as many nodes; a
      // balanced tree about log(64k)/log(1k) = 1.6 times as many.
      expect(large[op], `${op}: ${small[op].toFixed(1)} → ${large[op].toFixed(1)} nodes`).toBeLessThan(small[op] * 2.5);
      // And an absolute bound: a few root-to-leaf walks of a tree of 64k.
      expect(large[op], op).toBeLessThan(16 * log2(LARGE));
    }
  }, 120_000);

  it('keeps the allocator and the table shallow and compact', () => {
    const space = new CountingSpace('type1');
    const m = new DmaMapper(space, { pinning: false });
    for (let i = 0; i < LARGE; i++) m.map(buf, { offset: BigInt(i) * PAGE, size: PAGE });
    const s = m.stats();
    expect(s.mappings).toBe(LARGE);
    // 32-entry B+tree nodes filled by appends: four levels for 64k.
    expect(s.height).toBeLessThanOrEqual(4);
    // Slots grow by doubling: never more than twice what is live.
    expect(s.capacity).toBeLessThanOrEqual(2 * LARGE);
    expect(s.lookupIndex).toBe(false); // no lookup() yet: no index kept
    const a = m.allocator.stats();
    expect(a).toMatchObject({ allocations: LARGE, freeBlocks: 1 });
    expect(a.usedHeight).toBeLessThanOrEqual(4);
    // Appending keeps the B+tree's leaves full: about n/32 nodes (plus growth slack).
    expect(a.usedNodes).toBeLessThan((LARGE / 32) * 1.6);
    // One map, one syscall.
    expect(space.maps).toBe(LARGE);
    m.unmapAll();
    expect(m.stats().mappings).toBe(0);
    expect(m.allocator.stats()).toMatchObject({ allocations: 0, freeBlocks: 1 });
  }, 60_000);

  it('costs the same per map+unmap pair with 1 or 64k other mappings live (type1 allocated, iommufd kernel-chosen)', () => {
    for (const backend of ['type1', 'iommufd'] as const) {
      const perPair = (live: number): number => {
        const m = new DmaMapper(new CountingSpace(backend), { pinning: false });
        for (let i = 0; i < live; i++) m.map(buf, { offset: BigInt(i) * PAGE, size: PAGE });
        const one = allocDmaBuffer(PAGE);
        try {
          m.unmap(m.map(one));
          return visitsPer(1000, () => {
            for (let k = 0; k < 1000; k++) m.unmap(m.map(one));
          });
        } finally {
          m.unmapAll();
          one.free();
        }
      };
      const few = perPair(1);
      const many = perPair(LARGE);
      expect(many, `${backend}: ${few} → ${many}`).toBeLessThanOrEqual(few * 2 + 4);
      expect(many, backend).toBeLessThan(60);
    }
  }, 60_000);

  it('reads /proc for RLIMIT_MEMLOCK a bounded number of times, not once per map', () => {
    for (const n of [SMALL, LARGE]) {
      let reads = 0;
      const limits = 'Max locked memory         unlimited            unlimited            bytes\n';
      const m = new DmaMapper(new CountingSpace('type1'), {
        pinning: true,
        readProc: (path) => {
          reads++;
          return path === '/proc/self/limits' ? limits : 'VmLck:\t0 kB\nVmPin:\t0 kB\nCapEff:\t0000000000000000\n';
        },
      });
      for (let i = 0; i < n; i++) m.map(buf, { offset: BigInt(i) * PAGE, size: PAGE });
      // One reading (limits + status); a test run slower than a second per 64 maps could renew it once or twice.
      expect(reads, `${n} maps`).toBeLessThanOrEqual(6);
      m.unmapAll();
    }
  }, 60_000);

  it('keeps the allocator O(log n) under fragmentation: first fit over 32k scattered holes', () => {
    const a = new IovaAllocator([{ start: 0n, last: (1n << 40n) - 1n }]);
    const n = 32768;
    for (let i = 0; i < 2 * n; i++) a.alloc(PAGE);
    // Free every other page: 32k one-page holes, then ask for two pages (no hole fits).
    for (let i = 0; i < n; i++) a.free(BigInt(2 * i) * PAGE);
    expect(a.stats().freeBlocks).toBe(n + 1);
    const firstFitBig = visitsPer(1, () => expect(a.alloc(2n * PAGE)).toBe(BigInt(2 * n) * PAGE));
    const firstFitSmall = visitsPer(1, () => expect(a.alloc(PAGE)).toBe(0n));
    expect(firstFitBig).toBeLessThan(4 * Math.log2(n));
    expect(firstFitSmall).toBeLessThan(4 * Math.log2(n));
    expect(a.stats().freeDepth).toBeLessThanOrEqual(Math.ceil(1.45 * Math.log2(n + 2)));
  });
});
