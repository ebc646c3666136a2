/**
 * Device-side DMA logging (VFIO_DEVICE_FEATURE_DMA_LOGGING_*): the checks a
 * range set must pass before it reaches the kernel, and the report bitmap's
 * decoding. Pure: no syscall here (Device.dmaLoggingStart/Report make them).
 */
import { toU64 } from '../resource.js';

/** One IOVA range to log, in bytes. */
export interface LoggingRange {
  /** The first IOVA, a multiple of the page size. */
  iova: bigint | number;
  /** Bytes, a non-zero multiple of the page size. */
  length: bigint | number;
}

/** The kernel's limit on ranges per DMA_LOGGING_START: PAGE_SIZE / sizeof(range) = 4096 / 16. */
export const MAX_LOGGING_RANGES = 256;
const U64_END = 1n << 64n;

/**
 * Checks a DMA_LOGGING_START range set the way the kernel will (and a little
 * more): 1 to 256 ranges, each non-empty, page-aligned in start and length, not
 * wrapping past 2^64, none overlapping another; the page size a power of two of
 * at least 4096. Returns the ranges encoded as the kernel's array of
 * `{ u64 iova, u64 length }`, sorted by IOVA.
 *
 * @throws RangeError naming the first bad range and why
 * @throws TypeError for a value that is not a number or bigint
 */
export function checkLoggingRanges(
  ranges: readonly LoggingRange[],
  pageSize: bigint | number,
): {
  /** The ranges as the kernel's array, sorted by IOVA. */
  bytes: Buffer;
  /** The page size, checked. */
  pageSize: bigint;
} {
  if (!Array.isArray(ranges)) throw new TypeError('ranges must be an array of { iova, length }');
  const ps = toU64(pageSize, 'pageSize');
  if (ps < 4096n || (ps & (ps - 1n)) !== 0n) throw new RangeError(`pageSize must be a power of two of at least 4096, got ${ps}`);
  if (ranges.length === 0) throw new RangeError('DMA logging needs at least one range');
  if (ranges.length > MAX_LOGGING_RANGES) throw new RangeError(`at most ${MAX_LOGGING_RANGES} ranges (the kernel's limit), got ${ranges.length}`);
  const rs = ranges.map((r, i) => {
    if (typeof r !== 'object' || r === null) throw new TypeError(`range ${i} must be an object { iova, length }`);
    const iova = toU64(r.iova, `ranges[${i}].iova`);
    const length = toU64(r.length, `ranges[${i}].length`);
    if (length === 0n) throw new RangeError(`range ${i} is empty`);
    if (iova % ps !== 0n || length % ps !== 0n) throw new RangeError(`range ${i} (0x${iova.toString(16)}+0x${length.toString(16)}) is not aligned to the page size 0x${ps.toString(16)}`);
    if (iova + length > U64_END) throw new RangeError(`range ${i} (0x${iova.toString(16)}+0x${length.toString(16)}) wraps past 2^64`);
    return { i, iova, length };
  });
  rs.sort((a, b) => (a.iova < b.iova ? -1 : a.iova > b.iova ? 1 : 0));
  for (let k = 1; k < rs.length; k++) {
    const p = rs[k - 1]!;
    const c = rs[k]!;
    if (c.iova < p.iova + p.length) throw new RangeError(`ranges ${p.i} and ${c.i} overlap (0x${p.iova.toString(16)}+0x${p.length.toString(16)} and 0x${c.iova.toString(16)}+0x${c.length.toString(16)})`);
  }
  const bytes = Buffer.alloc(rs.length * 16);
  rs.forEach((r, k) => {
    bytes.writeBigUInt64LE(r.iova, k * 16);
    bytes.writeBigUInt64LE(r.length, k * 16 + 8);
  });
  return { bytes, pageSize: ps };
}

/** The IOVAs of the set bits of a DMA_LOGGING_REPORT bitmap of [iova, …) at `pageSize`. */
export function loggedPages(bitmap: Uint8Array, iova: bigint, length: bigint, pageSize: bigint): bigint[] {
  const pages: bigint[] = [];
  const n = Number(length / pageSize);
  for (let i = 0; i < n; i++) if ((bitmap[i >> 3]! >> (i & 7)) & 1) pages.push(iova + BigInt(i) * pageSize);
  return pages;
}
