/**
 * One DMA-mapping interface over both backends — the type1 container and the
 * iommufd IOAS — so a driver written against it does not care which it got.
 */
import { native, type NativeDmaBuffer } from '../native.js';
import { toU64 } from '../resource.js';

/** Page-aligned memory owned by native code, that a device may DMA to and from. */
export type DmaBuffer = NativeDmaBuffer;

export interface DmaAllocOptions {
  /** Back it with 2 MiB huge pages (needs /proc/sys/vm/nr_hugepages reserved). */
  hugepage?: boolean;
  /** Back it with a memfd (an fd that can be shared with another process). */
  memfd?: boolean;
}

/**
 * Allocates a zeroed DMA buffer of `size` bytes (a multiple of the page size,
 * or of 2 MiB with `hugepage`). Its `buffer` is an ArrayBuffer over the memory;
 * it cannot be freed while mapped for DMA, and its views are detached once freed.
 */
export function allocDmaBuffer(size: bigint | number, options: DmaAllocOptions = {}): DmaBuffer {
  return native().dmaAlloc(toU64(size, 'size'), options.hugepage === true, options.memfd === true);
}

/** An inclusive IOVA range. */
export interface IovaRange {
  start: bigint;
  last: bigint;
}

export interface DmaMapOptions {
  /** Where the device sees the memory. Required on type1; on iommufd the kernel picks one when absent. */
  iova?: bigint | number;
  /** Offset into the buffer (default 0). */
  offset?: bigint | number;
  /** Bytes to map (default: the rest of the buffer). */
  size?: bigint | number;
  /** The device may read the memory (default true). */
  read?: boolean;
  /** The device may write the memory (default true). */
  write?: boolean;
}

/** What the type1 container and the iommufd IOAS both offer. */
export interface DmaSpace {
  readonly backend: 'type1' | 'iommufd';
  /** Maps (part of) a buffer; returns the IOVA. */
  map(buffer: DmaBuffer, options: DmaMapOptions): bigint;
  /** Unmaps whole mappings within [iova, iova+size); returns the bytes unmapped. */
  unmap(iova: bigint | number, size: bigint | number): bigint;
  /** Unmaps everything; returns the bytes unmapped. */
  unmapAll(): bigint;
  /** Where mappings may go, and the alignment they need. */
  iovaRanges(): { ranges: IovaRange[]; alignment: bigint };
}
