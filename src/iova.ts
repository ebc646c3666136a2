/**
 * IOVA allocation: first fit over the usable ranges of a DMA space (what
 * `DmaSpace.iovaRanges()` reports: inclusive ranges and an alignment), below an
 * optional limit (a device's DMA mask), with a coalescing free list so freed
 * space is reused. Pure bookkeeping: nothing here talks to the kernel.
 */
import { VfioError } from './errors.js';
import type { IovaRange } from './dma.js';
import { toU64 } from './resource.js';

const U64_END = 1n << 64n;
const EINVAL = 22;
const EEXIST = 17;
const ENOENT = 2;
const ENOSPC = 28;

export interface IovaAllocatorOptions {
  /** Every allocation's size and address is a multiple of this (a power of two; default 4096). */
  alignment?: bigint | number;
  /** Lowest IOVA handed out or reserved (default 0). */
  min?: bigint | number;
  /** Exclusive upper bound: every allocation ends at or below it (e.g. 0x10000000 for a 28-bit DMA mask). */
  limit?: bigint | number;
}

/** A half-open block [start, end) of IOVA space. */
interface Block {
  start: bigint;
  end: bigint;
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
 */
export class IovaAllocator {
  readonly alignment: bigint;
  /** The usable space after clipping to [min, limit), as inclusive ranges. */
  readonly ranges: readonly IovaRange[];
  /** Free blocks, sorted and coalesced. */
  #free: Block[] = [];
  /** Allocations by start → size. */
  readonly #used = new Map<bigint, bigint>();

  constructor(ranges: readonly IovaRange[], options: IovaAllocatorOptions = {}) {
    const alignment = toU64(options.alignment ?? 4096n, 'alignment');
    if (!isPow2(alignment)) throw new RangeError(`alignment must be a power of two, got ${alignment}`);
    this.alignment = alignment;
    const min = toU64(options.min ?? 0n, 'min');
    const limit = options.limit === undefined ? U64_END : toU64(options.limit, 'limit');
    const blocks: Block[] = [];
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
    for (const b of blocks) {
      const last = this.#free.at(-1);
      if (last && b.start <= last.end) last.end = b.end > last.end ? b.end : last.end;
      else this.#free.push(b);
    }
    this.ranges = this.#free.map((b) => ({ start: b.start, last: b.end - 1n }));
  }

  /** Bytes still free. */
  get freeBytes(): bigint {
    return this.#free.reduce((n, b) => n + (b.end - b.start), 0n);
  }

  /** The largest free block's size. */
  get largestFree(): bigint {
    return this.#free.reduce((n, b) => (b.end - b.start > n ? b.end - b.start : n), 0n);
  }

  /** The free blocks, as inclusive ranges. */
  freeRanges(): IovaRange[] {
    return this.#free.map((b) => ({ start: b.start, last: b.end - 1n }));
  }

  /** The allocations (and reservations), sorted by address. */
  allocations(): { iova: bigint; size: bigint }[] {
    return [...this.#used].map(([iova, size]) => ({ iova, size })).sort((a, b) => (a.iova < b.iova ? -1 : 1));
  }

  #checkSize(size: bigint, operation: string): void {
    if (size === 0n) throw err('EINVAL', 'a zero-length IOVA range', operation);
    if (size % this.alignment !== 0n) throw err('EINVAL', `size ${hex(size)} is not a multiple of the IOVA alignment ${hex(this.alignment)}`, operation);
  }

  /**
   * The lowest free address of `size` bytes aligned to `align` (default: the
   * allocator's alignment). ENOSPC when nothing fits.
   */
  alloc(size: bigint | number, options: { align?: bigint | number } = {}): bigint {
    const n = toU64(size, 'size');
    this.#checkSize(n, 'IOVA alloc');
    const align = options.align === undefined ? this.alignment : toU64(options.align, 'align');
    if (!isPow2(align) || align < this.alignment) throw new RangeError(`align must be a power of two of at least ${this.alignment}, got ${align}`);
    for (const b of this.#free) {
      const start = alignUp(b.start, align);
      if (start + n <= b.end) {
        this.#take(b, start, n);
        return start;
      }
    }
    throw err(
      'ENOSPC',
      `no free IOVA range of ${hex(n)} bytes (aligned to ${hex(align)}) in ${this.#describe()}: ${hex(this.freeBytes)} bytes free, the largest block ${hex(this.largestFree)}`,
      'IOVA alloc',
    );
  }

  /** Claims [iova, iova+size): EINVAL if unaligned or outside the ranges, EEXIST if any of it is taken. */
  reserve(iova: bigint | number, size: bigint | number): void {
    const start = toU64(iova, 'iova');
    const n = toU64(size, 'size');
    this.#checkSize(n, 'IOVA reserve');
    if (start % this.alignment !== 0n) throw err('EINVAL', `IOVA ${hex(start)} is not aligned to ${hex(this.alignment)}`, 'IOVA reserve');
    const end = start + n;
    const block = this.#free.find((b) => b.start <= start && end <= b.end);
    if (block) {
      this.#take(block, start, n);
      return;
    }
    const inRange = this.ranges.some((r) => r.start <= start && end - 1n <= r.last);
    if (!inRange) {
      throw err('EINVAL', `IOVA range ${hex(start)}..${hex(end - 1n)} is outside the usable ranges (${this.#describe()})`, 'IOVA reserve');
    }
    const clash = this.allocations().find((a) => a.iova < end && start < a.iova + a.size)!;
    throw err('EEXIST', `IOVA range ${hex(start)}..${hex(end - 1n)} overlaps ${hex(clash.iova)}..${hex(clash.iova + clash.size - 1n)}`, 'IOVA reserve');
  }

  /** Gives back the allocation starting at `iova`; returns its size. ENOENT if there is none. */
  free(iova: bigint | number): bigint {
    const start = toU64(iova, 'iova');
    const size = this.#used.get(start);
    if (size === undefined) throw err('ENOENT', `no IOVA allocation starts at ${hex(start)}`, 'IOVA free');
    this.#used.delete(start);
    this.#insertFree({ start, end: start + size });
    return size;
  }

  /** Frees every allocation. */
  reset(): void {
    for (const iova of [...this.#used.keys()]) this.free(iova);
  }

  /** The allocation containing `iova`, if any. */
  find(iova: bigint): { iova: bigint; size: bigint } | undefined {
    for (const [start, size] of this.#used) if (start <= iova && iova < start + size) return { iova: start, size };
    return undefined;
  }

  #describe(): string {
    return this.ranges.length ? this.ranges.map((r) => `${hex(r.start)}..${hex(r.last)}`).join(', ') : 'no usable range';
  }

  /** Removes [start, start+n) from free block `b`, which contains it. */
  #take(b: Block, start: bigint, n: bigint): void {
    const i = this.#free.indexOf(b);
    const pieces: Block[] = [];
    if (b.start < start) pieces.push({ start: b.start, end: start });
    if (start + n < b.end) pieces.push({ start: start + n, end: b.end });
    this.#free.splice(i, 1, ...pieces);
    this.#used.set(start, n);
  }

  /** Inserts a free block, merging it with adjacent ones. */
  #insertFree(block: Block): void {
    const free = this.#free;
    let i = 0;
    while (i < free.length && free[i]!.start < block.start) i++;
    const prev = free[i - 1];
    const next = free[i];
    if (prev && prev.end > block.start) throw new Error(`internal: free block ${hex(block.start)} overlaps ${hex(prev.start)}..${hex(prev.end)}`);
    if (next && block.end > next.start) throw new Error(`internal: free block ${hex(block.start)} overlaps ${hex(next.start)}..${hex(next.end)}`);
    if (prev && prev.end === block.start) {
      prev.end = block.end;
      if (next && next.start === prev.end) {
        prev.end = next.end;
        free.splice(i, 1);
      }
    } else if (next && next.start === block.end) {
      next.start = block.start;
    } else {
      free.splice(i, 0, { ...block });
    }
  }
}
