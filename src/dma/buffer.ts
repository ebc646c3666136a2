/**
 * One DMA-mapping interface over both backends — the type1 container and the
 * iommufd IOAS — so a driver written against it does not care which it got.
 */
import { native, type NativeDmaBuffer } from '../native.js';
import { toU64 } from '../resource.js';

/**
 * Page-aligned, zeroed memory owned by native code, that a device may DMA to
 * and from; from {@link allocDmaBuffer}. Its `size` is in bytes (a bigint),
 * `buffer` is an ArrayBuffer over the memory, `pins` counts the containers
 * and IOASes that map it, `memfd` is the backing memfd (-1 without one), and
 * `free()` releases it and detaches `buffer` (it throws a {@link VfioError}
 * EBUSY while `pins` is not 0). JavaScript memory is never handed to the
 * kernel for DMA.
 */
export type DmaBuffer = NativeDmaBuffer;

/** How {@link allocDmaBuffer} backs the memory. */
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
 *
 * @param size - bytes; a multiple of 4096 (of 2 MiB with `hugepage`)
 * @throws RangeError for a size that is 0, not a multiple of the page size
 *   (of 2 MiB with `hugepage`), or over 2^40
 * @throws {@link VfioError} the errno of mmap (ENOMEM), memfd_create or
 *   ftruncate; with `hugepage`, when no huge pages are free (see the hint)
 */
export function allocDmaBuffer(size: bigint | number, options: DmaAllocOptions = {}): DmaBuffer {
  return native().dmaAlloc(toU64(size, 'size'), options.hugepage === true, options.memfd === true);
}

/** An inclusive IOVA range. */
export interface IovaRange {
  /** The first usable IOVA. */
  start: bigint;
  /** The last usable IOVA (inclusive: `0xffff_ffff_ffff_ffffn` for the top of the space). */
  last: bigint;
}

/** Where and how {@link DmaSpace.map} maps a buffer; sizes and offsets are in bytes. */
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

/**
 * What the type1 {@link Container} and the iommufd {@link Ioas} both offer,
 * so a driver written against it does not care which backend it got.
 * {@link DmaMapper} adds IOVA allocation and limits on top.
 */
export interface DmaSpace {
  /** Which kernel interface this is: the legacy type1 container or an iommufd IOAS. */
  readonly backend: 'type1' | 'iommufd';
  /**
   * Maps (part of) a buffer for the device.
   *
   * @returns the IOVA the device uses: `options.iova`, or the one the kernel chose (iommufd only)
   * @throws TypeError on type1 without `options.iova`
   * @throws {@link VfioError} ENOMEM past RLIMIT_MEMLOCK, EEXIST over a mapping,
   *   ENOSPC (type1) past `dma_entry_limit`, EINVAL outside the IOVA ranges
   */
  map(buffer: DmaBuffer, options: DmaMapOptions): bigint;
  /**
   * Unmaps the whole mappings within `[iova, iova + size)`.
   *
   * @returns the number of bytes unmapped
   */
  unmap(iova: bigint | number, size: bigint | number): bigint;
  /**
   * Unmaps every mapping.
   *
   * @returns the number of bytes unmapped
   */
  unmapAll(): bigint;
  /** Where mappings may go, and the alignment they need. */
  iovaRanges(): {
    /** The inclusive IOVA ranges that mappings may use, in ascending order. */
    ranges: IovaRange[];
    /** The alignment every IOVA and size must have, in bytes (the smallest IOMMU page size). */
    alignment: bigint;
  };
}
