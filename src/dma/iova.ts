/**
 * IOVA allocation: first fit over the usable ranges of a DMA space (what
 * `DmaSpace.iovaRanges()` reports: inclusive ranges and an alignment), below an
 * optional limit (a device's DMA mask), with a coalescing free list so freed
 * space is reused. Pure bookkeeping: nothing here talks to the kernel.
 *
 * Inside, addresses are counted in units of the alignment and kept in plain
 * numbers (an IOVA over a 4 KiB alignment is below 2^52, exact in a double),
 * in balanced trees over typed arrays: no object and no bigint per block, and
 * every operation walks O(log n) nodes. Bigints appear only at the API.
 */
import { VfioError } from '../errors.js';
import type { IovaRange } from './buffer.js';
import { toU64 } from '../resource.js';
import { BTreeMap, FreeTree, NIL } from './trees.js';

const U64_END = 1n << 64n;
/** Exclusive bound on unit counts: integers below it are exact in a double. */
const UNIT_END = 2 ** 53;
const UNIT_END_BIG = 1n << 53n;
const EINVAL = 22;
const EEXIST = 17;
const ENOENT = 2;
const ENOSPC = 28;

/** Options of the {@link IovaAllocator} constructor; addresses and sizes are in bytes. */
export interface IovaAllocatorOptions {
  /** Every allocation's size and address is a multiple of this (a power of two; default 4096). */
  alignment?: bigint | number;
  /** Lowest IOVA handed out or reserved (default 0). */
  min?: bigint | number;
  /** Exclusive upper bound: every allocation ends at or below it (e.g. 0x10000000 for a 28-bit DMA mask). */
  limit?: bigint | number;
}

const hex = (v: bigint): string => `0x${v.toString(16)}`;
const isPow2 = (v: bigint): boolean => v > 0n && (v & (v - 1n)) === 0n;
const alignUp = (v: bigint, a: bigint): bigint => (v + a - 1n) & -a;

function err(code: 'EINVAL' | 'EEXIST' | 'ENOENT' | 'ENOSPC', message: string, operation: string): VfioError {
  const errno = { EINVAL, EEXIST, ENOENT, ENOSPC }[code];
  return new VfioError({ code, errno, operation, message: `${code}: ${message}` });
}

/**
 * Hands out aligned, non-overlapping IOVA ranges. `alloc()` returns the lowest
 * fitting address (first fit); `reserve()` claims a given range (a fixed or
 * kernel-chosen IOVA); `free()` gives an allocation back, merging it with its
 * free neighbours.
 *
 * Cost: alloc, reserve, free and find are O(log n) in the number of
 * allocations and free blocks (alloc with an `align` above the allocator's
 * alignment may also look at blocks that are long enough but too short once
 * aligned); the listings are O(n). Addresses are kept as multiples of the
 * alignment in doubles, exact below 2^53 units: with an alignment under 2 KiB,
 * space above 2^53 × alignment is not used (ranges are clipped there).
 */
export class IovaAllocator {
  /** Every allocation's address and size is a multiple of this many bytes. */
  readonly alignment: bigint;
  /** The usable space after clipping to [min, limit), as inclusive ranges. */
  readonly ranges: readonly IovaRange[];
  /** @internal The alignment as a number: the unit every internal address counts in. */
  readonly unit: number;
  /** The usable blocks in units (sorted, disjoint, not adjacent). */
  readonly #rangeStart: Float64Array;
  readonly #rangeEnd: Float64Array;
  /** Free blocks, sorted and coalesced. */
  readonly #free = new FreeTree();
  /** Allocations and reservations: start → end. */
  readonly #used = new BTreeMap();
  #freeUnits = 0;

  /**
   * @param ranges - the usable inclusive ranges, as {@link DmaSpace.iovaRanges}
   *   reports them; they are clipped to `[min, limit)` and to whole aligned
   *   units, and overlapping ones are merged
   * @param options - alignment, and the bounds `min` and `limit`
   * @throws RangeError for an alignment that is not a power of two, or a range that ends before it starts
   */
  constructor(ranges: readonly IovaRange[], options: IovaAllocatorOptions = {}) {
    const alignment = toU64(options.alignment ?? 4096n, 'alignment');
    if (!isPow2(alignment)) throw new RangeError(`alignment must be a power of two, got ${alignment}`);
    this.alignment = alignment;
    this.unit = Number(alignment); // a power of two: exact
    const min = toU64(options.min ?? 0n, 'min');
    let limit = options.limit === undefined ? U64_END : toU64(options.limit, 'limit');
    const unitEnd = UNIT_END_BIG * alignment;
    if (limit > unitEnd) limit = unitEnd;
    const blocks: { start: bigint; end: bigint }[] = [];
    for (const r of ranges) {
      const start = toU64(r.start, 'range start');
      const last = toU64(r.last, 'range last');
      if (last < start) throw new RangeError(`range ${hex(start)}..${hex(last)} ends before it starts`);
      // Only whole aligned units of a range are usable.
      const s = alignUp(start > min ? start : min, alignment);
      const lastEnd = last + 1n < limit ? last + 1n : limit;
      const e = lastEnd & -alignment;
      if (s < e) blocks.push({ start: s, end: e });
    }
    blocks.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    const merged: { start: bigint; end: bigint }[] = [];
    for (const b of blocks) {
      const last = merged.at(-1);
      if (last && b.start <= last.end) last.end = b.end > last.end ? b.end : last.end;
      else merged.push(b);
    }
    this.ranges = merged.map((b) => ({ start: b.start, last: b.end - 1n }));
    this.#rangeStart = Float64Array.from(merged, (b) => Number(b.start / alignment));
    this.#rangeEnd = Float64Array.from(merged, (b) => Number(b.end / alignment));
    this.#fillFree();
  }

  #fillFree(): void {
    this.#free.clear();
    this.#freeUnits = 0;
    for (let i = 0; i < this.#rangeStart.length; i++) {
      this.#free.add(this.#rangeStart[i]!, this.#rangeEnd[i]!);
      this.#freeUnits += this.#rangeEnd[i]! - this.#rangeStart[i]!;
    }
  }

  /** Units → bytes. */
  #bytes(units: number): bigint {
    const b = units * this.unit;
    return b < UNIT_END ? BigInt(b) : BigInt(units) * this.alignment;
  }

  /** Bytes (a multiple of the alignment, or rounded down to one) → units; Infinity past the representable space. */
  #units(bytes: bigint): number {
    if (bytes < UNIT_END_BIG) return Math.floor(Number(bytes) / this.unit);
    const u = bytes / this.alignment;
    return u < UNIT_END_BIG ? Number(u) : Infinity;
  }

  /** Bytes still free, over all free blocks. */
  get freeBytes(): bigint {
    return this.#bytes(this.#freeUnits);
  }

  /** The largest free block's size in bytes: the largest `alloc()` that can succeed. */
  get largestFree(): bigint {
    return this.#bytes(this.#free.longest());
  }

  /** @internal How many allocations (and reservations) are live. */
  get allocationCount(): number {
    return this.#used.size;
  }

  /** The free blocks, as inclusive ranges in ascending order (O(n)). */
  freeRanges(): IovaRange[] {
    const out: IovaRange[] = [];
    const f = this.#free;
    f.forEach((t) => out.push({ start: this.#bytes(f.start[t]!), last: this.#bytes(f.end[t]!) - 1n }));
    return out;
  }

  /** The allocations (and reservations), sorted by address (O(n)). */
  allocations(): {
    /** The first IOVA of the allocation. */
    iova: bigint;
    /** Its size in bytes. */
    size: bigint;
  }[] {
    const out: { iova: bigint; size: bigint }[] = [];
    this.#used.forEach((start, end) => out.push({ iova: this.#bytes(start), size: this.#bytes(end - start) }));
    return out;
  }

  #checkSize(size: bigint, operation: string): void {
    if (size === 0n) throw err('EINVAL', 'a zero-length IOVA range', operation);
    if (size % this.alignment !== 0n) throw err('EINVAL', `size ${hex(size)} is not a multiple of the IOVA alignment ${hex(this.alignment)}`, operation);
  }

  /** @internal Validates an `align` option; returns it in units. */
  alignUnits(align: bigint | number): number {
    const a = toU64(align, 'align');
    if (!isPow2(a) || a < this.alignment) throw new RangeError(`align must be a power of two of at least ${this.alignment}, got ${a}`);
    // Aligning to more than the whole representable space is as good as aligning to 0 only.
    const u = a / this.alignment;
    return u < UNIT_END_BIG ? Number(u) : UNIT_END;
  }

  /**
   * Allocates the lowest free address of `size` bytes aligned to `align`
   * (default: the allocator's alignment).
   *
   * @param size - bytes, a non-zero multiple of the alignment
   * @param options - `align`: a power of two at least the allocator's alignment
   * @returns the IOVA
   * @throws {@link VfioError} EINVAL for a size of 0 or not a multiple of the
   *   alignment; ENOSPC when no free block fits (the message gives the free
   *   bytes and the largest block; see the hint)
   * @throws RangeError for a bad `align`
   */
  alloc(size: bigint | number, options: { align?: bigint | number } = {}): bigint {
    const n = toU64(size, 'size');
    this.#checkSize(n, 'IOVA alloc');
    const align = options.align === undefined ? 1 : this.alignUnits(options.align);
    return this.#bytes(this.allocUnits(this.#units(n), align, n, options.align === undefined ? undefined : toU64(options.align, 'align')));
  }

  /**
   * @internal alloc() in units (n a positive whole number of units, align a power
   * of two); `bytes` and `alignBytes` name them in the ENOSPC message.
   */
  allocUnits(n: number, align = 1, bytes?: bigint, alignBytes?: bigint): number {
    const f = this.#free;
    let b: number;
    let start: number;
    if (align === 1) {
      b = f.firstFit(n);
      start = b === NIL ? 0 : f.start[b]!;
    } else {
      b = f.firstFitAligned(n, align);
      start = b === NIL ? 0 : Math.ceil(f.start[b]! / align) * align;
    }
    if (b === NIL) {
      throw err(
        'ENOSPC',
        `no free IOVA range of ${hex(bytes ?? this.#bytes(n))} bytes (aligned to ${hex(alignBytes ?? this.#bytes(align))}) in ${this.#describe()}: ${hex(this.freeBytes)} bytes free, the largest block ${hex(this.largestFree)}`,
        'IOVA alloc',
      );
    }
    this.#take(b, start, n);
    return start;
  }

  /**
   * Claims `[iova, iova + size)`, e.g. an IOVA the kernel chose or a fixed one.
   *
   * @throws {@link VfioError} EINVAL when unaligned, empty or outside the usable
   *   ranges; EEXIST when any of it is allocated already
   */
  reserve(iova: bigint | number, size: bigint | number): void {
    const start = toU64(iova, 'iova');
    const n = toU64(size, 'size');
    this.#checkSize(n, 'IOVA reserve');
    if (start % this.alignment !== 0n) throw err('EINVAL', `IOVA ${hex(start)} is not aligned to ${hex(this.alignment)}`, 'IOVA reserve');
    this.reserveUnits(this.#units(start), this.#units(n), start, n);
  }

  /**
   * @internal reserve() in units (start and n whole, n positive); `startBytes`
   * and `sizeBytes` name them in error messages.
   */
  reserveUnits(start: number, n: number, startBytes?: bigint, sizeBytes?: bigint): void {
    const f = this.#free;
    const end = start + n;
    const b = f.floor(start);
    if (b !== NIL && end <= f.end[b]!) {
      this.#take(b, start, n);
      return;
    }
    const first = startBytes ?? this.#bytes(start);
    const range = `${hex(first)}..${hex(first + (sizeBytes ?? this.#bytes(n)) - 1n)}`;
    if (!this.containsUnits(start, end)) throw err('EINVAL', `IOVA range ${range} is outside the usable ranges (${this.#describe()})`, 'IOVA reserve');
    // Inside a usable range but not inside one free block: the lowest allocation it overlaps.
    const u = this.#used;
    let c = u.floor(start);
    if (c < 0 || u.valueAt(c) <= start) c = u.higher(start);
    throw err('EEXIST', `IOVA range ${range} overlaps ${hex(this.#bytes(u.keyAt(c)))}..${hex(this.#bytes(u.valueAt(c)) - 1n)}`, 'IOVA reserve');
  }

  /** @internal Whether [start, end) (units) lies inside one usable range. */
  containsUnits(start: number, end: number): boolean {
    const rs = this.#rangeStart;
    const re = this.#rangeEnd;
    // Few ranges (one to a handful): a linear scan.
    for (let i = 0; i < rs.length; i++) if (rs[i]! <= start && end <= re[i]!) return true;
    return false;
  }

  /**
   * Gives back the allocation starting at `iova`, merging it with its free neighbours.
   *
   * @returns its size in bytes
   * @throws {@link VfioError} ENOENT when no allocation starts at `iova`
   */
  free(iova: bigint | number): bigint {
    const start = toU64(iova, 'iova');
    const u = start % this.alignment === 0n ? this.#units(start) : NaN;
    const n = this.freeUnits(u, start);
    return this.#bytes(n);
  }

  /** @internal free() in units; returns the size in units. `bytes` names the IOVA in the ENOENT message. */
  freeUnits(start: number, bytes?: bigint): number {
    const end = this.#used.remove(start);
    if (end < 0) throw err('ENOENT', `no IOVA allocation starts at ${hex(bytes ?? this.#bytes(start))}`, 'IOVA free');
    this.#insertFree(start, end);
    return end - start;
  }

  /** Frees every allocation and reservation. */
  reset(): void {
    this.#used.clear();
    this.#fillFree();
  }

  /** The allocation containing `iova` (anywhere inside it), or undefined. */
  find(iova: bigint): {
    /** The first IOVA of the allocation. */
    iova: bigint;
    /** Its size in bytes. */
    size: bigint;
  } | undefined {
    const at = toU64(iova, 'iova');
    const q = this.#units(at);
    const u = this.#used;
    const h = u.floor(q);
    if (h < 0 || q >= u.valueAt(h)) return undefined;
    return { iova: this.#bytes(u.keyAt(h)), size: this.#bytes(u.valueAt(h) - u.keyAt(h)) };
  }

  #describe(): string {
    return this.ranges.length ? this.ranges.map((r) => `${hex(r.start)}..${hex(r.last)}`).join(', ') : 'no usable range';
  }

  /** Removes [start, start+n) from free block b, which contains it, and records the allocation. */
  #take(b: number, start: number, n: number): void {
    const f = this.#free;
    // b was just found by firstFit or floor, which recorded its path.
    const depth = f.lastDepth;
    const bs = f.start[b]!;
    const be = f.end[b]!;
    const end = start + n;
    if (bs === start) {
      if (be === end) f.delete(b);
      else {
        // Still ordered the same: the block only shrinks from the front.
        f.start[b] = end;
        f.refresh(b, depth);
      }
    } else {
      f.end[b] = start;
      f.refresh(b, depth);
      if (end < be) f.add(end, be);
    }
    this.#freeUnits -= n;
    if (!this.#used.set(start, end)) throw new Error(`internal: IOVA allocation ${hex(this.#bytes(start))} recorded twice`);
  }

  /** Inserts the free block [start, end), merging it with adjacent ones. */
  #insertFree(start: number, end: number): void {
    const f = this.#free;
    f.neighbours(start);
    const prev = f.floorNode;
    const next = f.higherNode;
    const prevDepth = f.floorDepth;
    const nextDepth = f.higherDepth;
    if (prev !== NIL && f.end[prev]! > start) throw new Error(`internal: free block ${hex(this.#bytes(start))} overlaps ${hex(this.#bytes(f.start[prev]!))}..${hex(this.#bytes(f.end[prev]!))}`);
    if (next !== NIL && end > f.start[next]!) throw new Error(`internal: free block ${hex(this.#bytes(start))} overlaps ${hex(this.#bytes(f.start[next]!))}..${hex(this.#bytes(f.end[next]!))}`);
    this.#freeUnits += end - start;
    if (prev !== NIL && f.end[prev] === start) {
      if (next !== NIL && f.start[next] === end) {
        const nextEnd = f.end[next]!;
        f.delete(next);
        f.end[prev] = nextEnd;
      } else f.end[prev] = end;
      f.refresh(prev, prevDepth); // walks down again if delete() changed the shape
    } else if (next !== NIL && f.start[next] === end) {
      f.start[next] = start;
      f.refresh(next, nextDepth);
    } else f.add(start, end);
  }

  /** @internal Sizes of the internal structures (for the complexity tests). */
  stats(): { freeBlocks: number; allocations: number; freeDepth: number; usedHeight: number; freeCapacity: number; usedNodes: number } {
    return {
      freeBlocks: this.#free.count,
      allocations: this.#used.size,
      freeDepth: this.#free.depth(),
      usedHeight: this.#used.height,
      freeCapacity: this.#free.capacity,
      usedNodes: this.#used.nodeCapacity,
    };
  }
}
