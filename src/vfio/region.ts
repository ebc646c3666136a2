/**
 * A device region's two access paths: `Region`, bounds-checked pread/pwrite of
 * exactly the width asked, and `MappedRegion`, an mmap'd view with
 * width-exact volatile loads and stores, detached on unmap, close or reset.
 */
import { markAsUntransferable } from 'node:worker_threads';
import { VfioError } from '../errors.js';
import { native, type NativeMapping } from '../native.js';
import { toU32, toU64, u64Arg } from '../resource.js';
import { VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE } from '../uapi/constants.js';
import type { RegionInfo } from '../uapi/vfio.js';
import { checkRegionAccess } from './quirks.js';
import type { Device } from './device.js';

/** Options to map part of a region; offsets are relative to the region. */
export interface MmapOptions {
  /** Byte offset in the region (page-aligned). Default 0, or the sparse area's start. */
  offset?: bigint | number;
  /** Length in bytes. Default: the rest of the region (or of the sparse area). */
  length?: bigint | number;
  /** Map this sparse-mmap area (index into the SPARSE_MMAP capability's areas). */
  area?: number;
}

const U64_MAX = 0xffff_ffff_ffff_ffffn;

/**
 * A bigint offset as a number for the register fast path, or NaN (which fails
 * every fast-path check and sends the access to the native path, whose checks
 * throw the right RangeError or TypeError). Anything that is not a number is
 * passed through the same way.
 */
function small(offset: unknown): number {
  return typeof offset === 'bigint' && offset >= 0n && offset < 0x1_0000_0000n ? Number(offset) : NaN;
}

/**
 * An mmap'd piece of a region. `bytes` views the device memory directly; it is
 * detached (length 0) once the view is unmapped or the device is closed or
 * reset, so a stale reference reads nothing instead of faulting.
 */
export class MappedRegion {
  /** The region index that is mapped (-1 for a {@link GfxDmabuf} mapping). */
  readonly index: number;
  /** Offset of the view within the region. */
  readonly offset: bigint;
  /** Length of the view in bytes. */
  readonly length: bigint;
  readonly #m: NativeMapping;
  readonly #onUnmap: (m: MappedRegion) => void;
  #bytes: Uint8Array | null = null;
  /**
   * Typed arrays over the whole mapping, for the register fast path (writable
   * mappings only; null for read-only ones, whose accesses stay native). When
   * the view is revoked the ArrayBuffer is detached and their length drops to
   * 0, so every access then fails the bounds check below and takes the native
   * path, which throws ERR_VFIO_CLOSED.
   */
  #a8: Uint8Array | null = null;
  #a16: Uint16Array | null = null;
  #a32: Uint32Array | null = null;
  #a64: BigUint64Array | null = null;

  /** @internal */
  constructor(index: number, offset: bigint, length: bigint, m: NativeMapping, onUnmap: (m: MappedRegion) => void) {
    this.index = index;
    this.offset = offset;
    this.length = length;
    this.#m = m;
    this.#onUnmap = onUnmap;
    if (m.writable) {
      const buf = m.buffer;
      markAsUntransferable(buf);
      const n = buf.byteLength;
      this.#a8 = new Uint8Array(buf);
      this.#a16 = new Uint16Array(buf, 0, n >>> 1);
      this.#a32 = new Uint32Array(buf, 0, n >>> 2);
      this.#a64 = new BigUint64Array(buf, 0, Math.floor(n / 8));
    }
  }

  /** False once unmapped (by `unmap()`, or by the device's close, reset or views revocation). */
  get mapped(): boolean {
    return this.#m.mapped;
  }

  /** Whether the mapping is writable; read-only mappings have no `buffer`, only `readInto()`. */
  get writable(): boolean {
    return this.#m.writable;
  }

  /**
   * The ArrayBuffer over the device memory (writable mappings only). It is
   * detached (byteLength 0) once unmapped, and cannot be transferred to a worker.
   *
   * @throws TypeError on a read-only mapping
   * @throws {@link VfioError} ERR_VFIO_CLOSED once unmapped
   */
  get buffer(): ArrayBuffer {
    return this.#m.buffer;
  }

  /**
   * A byte view over the device memory (writable mappings only), for bulk
   * data such as framebuffers; use `read32()` and friends for registers.
   *
   * @throws {@link VfioError} ERR_VFIO_CLOSED once unmapped
   */
  get bytes(): Uint8Array {
    if (!this.#m.mapped) throw VfioError.closed(`mapping of region ${this.index}`);
    this.#bytes ??= new Uint8Array(this.#m.buffer);
    return this.#bytes;
  }

  /**
   * The mapping as 8-, 16-, 32- and 64-bit typed arrays (writable mappings
   * only), for drivers that want the arrays themselves. The rule for registers:
   * load with `Atomics.load(a, i)`, store with a plain `a[i] = v`, and never
   * use `Atomics.store`, `Atomics.exchange` or the other read-modify-write
   * operations on device memory. Index `i` is the byte offset divided by the
   * width. `read32()` and friends follow this rule.
   *
   * Why (checked on Node 20, V8 11.3, x86-64, by disassembling the
   * `AtomicsLoad`/`AtomicsStore` builtins and TurboFan's code for the callers
   * with `--print-opt-code` and gdb; see README#Performance):
   * - `Atomics.load` is a single `mov` of the element's width in every tier
   *   (TurboFan calls the builtin), and the spec forbids merging or eliding it;
   * - `Atomics.store` is an `xchg`: a locked read-modify-write, which on
   *   uncached MMIO is a bus-locked read of the register followed by the write,
   *   so the device sees a read it was not sent (a read-to-clear register loses
   *   its bits) and the kernel's bus-lock detection may throttle the process;
   * - a plain typed-array store is a single `mov` of the element's width;
   *   TurboFan keeps every one of them (two stores to one element stay two).
   * - `set()`, `slice()`, `fill()` and DataView copy with whatever widths
   *   memcpy picks: keep them for bulk data such as framebuffers.
   *
   * The arrays have length 0 once the view is revoked (unmap, close, reset),
   * so a stale one reads `undefined` and never faults; `read32()` and friends
   * throw ERR_VFIO_CLOSED instead.
   *
   * @throws TypeError on a read-only mapping
   * @throws {@link VfioError} ERR_VFIO_CLOSED once unmapped
   */
  get u8(): Uint8Array {
    return this.#array(this.#a8);
  }
  /** The mapping as a Uint16Array; see {@link MappedRegion.u8} for the rule. */
  get u16(): Uint16Array {
    return this.#array(this.#a16);
  }
  /** The mapping as a Uint32Array; see {@link MappedRegion.u8} for the rule. */
  get u32(): Uint32Array {
    return this.#array(this.#a32);
  }
  /** The mapping as a BigUint64Array; see {@link MappedRegion.u8} for the rule. */
  get u64(): BigUint64Array {
    return this.#array(this.#a64);
  }
  #array<T>(a: T | null): T {
    if (!this.#m.mapped) throw VfioError.closed(`mapping of region ${this.index}`);
    if (a === null) return this.#m.buffer as never; // throws the read-only TypeError
    return a;
  }

  /**
   * Copies `dst.length` bytes out of the mapping at `offset` (works on read-only mappings).
   *
   * @returns the number of bytes copied
   * @throws RangeError when the span lies outside the mapping
   */
  readInto(offset: bigint | number, dst: Uint8Array): number {
    return this.#m.readInto(toU64(offset, 'offset'), dst);
  }

  /**
   * Copies `src` into the mapping at `offset`.
   *
   * @returns the number of bytes copied
   * @throws RangeError when the span lies outside the mapping
   * @throws TypeError on a read-only mapping
   */
  writeFrom(offset: bigint | number, src: Uint8Array): number {
    return this.#m.writeFrom(toU64(offset, 'offset'), src);
  }

  /**
   * One 8-bit volatile load. This and the other `readN`/`writeN` methods are
   * width-exact, naturally aligned single accesses, for device registers:
   * a DataView reads bytewise and memcpy picks its own widths, which MMIO
   * registers (edu's, for one) answer differently or not at all.
   *
   * They run in JavaScript, without crossing into the addon: `Atomics.load`
   * and plain element stores on typed arrays over the mapping (see
   * {@link MappedRegion.u8} for why those, and not `Atomics.store`). Anything off the fast path
   * (a misaligned or out-of-range offset, a value that does not fit, a
   * read-only or revoked mapping, a bigint offset of 2^32 or more) goes to the
   * native access, which throws the RangeError, TypeError or ERR_VFIO_CLOSED;
   * a misaligned access therefore throws, it is never split.
   *
   * @param offset - byte offset within the mapping
   * @throws RangeError when outside the mapping
   * @throws {@link VfioError} ERR_VFIO_CLOSED once unmapped
   */
  read8(offset: bigint | number): number {
    const a = this.#a8;
    const o = typeof offset === 'number' ? offset : small(offset);
    if (a !== null && o >>> 0 === o && o < a.length) return Atomics.load(a, o);
    return this.#m.load(u64Arg(offset, 'offset'), 1);
  }
  /**
   * One 16-bit volatile load.
   *
   * @param offset - byte offset within the mapping, a multiple of the width
   * @throws RangeError when misaligned or outside the mapping
   * @throws {@link VfioError} ERR_VFIO_CLOSED once unmapped
   */
  read16(offset: bigint | number): number {
    const a = this.#a16;
    const o = typeof offset === 'number' ? offset : small(offset);
    const i = o >>> 1;
    if (a !== null && i * 2 === o && i < a.length) return Atomics.load(a, i);
    return this.#m.load(u64Arg(offset, 'offset'), 2);
  }
  /**
   * One 32-bit volatile load.
   *
   * @param offset - byte offset within the mapping, a multiple of the width
   * @throws RangeError when misaligned or outside the mapping
   * @throws {@link VfioError} ERR_VFIO_CLOSED once unmapped
   */
  read32(offset: bigint | number): number {
    const a = this.#a32;
    const o = typeof offset === 'number' ? offset : small(offset);
    const i = o >>> 2;
    if (a !== null && i * 4 === o && i < a.length) return Atomics.load(a, i);
    return this.#m.load(u64Arg(offset, 'offset'), 4);
  }
  /**
   * One 64-bit volatile load.
   *
   * @param offset - byte offset within the mapping, a multiple of the width
   * @throws RangeError when misaligned or outside the mapping
   * @throws {@link VfioError} ERR_VFIO_CLOSED once unmapped
   */
  read64(offset: bigint | number): bigint {
    const a = this.#a64;
    const o = typeof offset === 'number' ? offset : small(offset);
    const i = o >>> 3;
    if (a !== null && i * 8 === o && i < a.length) return Atomics.load(a, i);
    return this.#m.load(u64Arg(offset, 'offset'), 8);
  }
  /**
   * One 8-bit volatile store.
   *
   * @param offset - byte offset within the mapping, a multiple of the width
   * @param value - must fit in 8 bits
   * @throws RangeError when misaligned, outside the mapping, or the value does not fit
   * @throws TypeError on a read-only mapping
   * @throws {@link VfioError} ERR_VFIO_CLOSED once unmapped
   */
  write8(offset: bigint | number, value: number): void {
    const a = this.#a8;
    const o = typeof offset === 'number' ? offset : small(offset);
    if (a !== null && o >>> 0 === o && o < a.length && (value & 0xff) === value) {
      a[o] = value; // one plain store of the width (not Atomics.store: see u8)
      return;
    }
    this.#m.store(u64Arg(offset, 'offset'), 1, value);
  }
  /**
   * One 16-bit volatile store.
   *
   * @param offset - byte offset within the mapping, a multiple of the width
   * @param value - must fit in 16 bits
   * @throws RangeError when misaligned, outside the mapping, or the value does not fit
   * @throws TypeError on a read-only mapping
   * @throws {@link VfioError} ERR_VFIO_CLOSED once unmapped
   */
  write16(offset: bigint | number, value: number): void {
    const a = this.#a16;
    const o = typeof offset === 'number' ? offset : small(offset);
    const i = o >>> 1;
    if (a !== null && i * 2 === o && i < a.length && (value & 0xffff) === value) {
      a[i] = value; // one plain store of the width (not Atomics.store: see u8)
      return;
    }
    this.#m.store(u64Arg(offset, 'offset'), 2, value);
  }
  /**
   * One 32-bit volatile store.
   *
   * @param offset - byte offset within the mapping, a multiple of the width
   * @param value - must fit in 32 bits
   * @throws RangeError when misaligned, outside the mapping, or the value does not fit
   * @throws TypeError on a read-only mapping
   * @throws {@link VfioError} ERR_VFIO_CLOSED once unmapped
   */
  write32(offset: bigint | number, value: number): void {
    const a = this.#a32;
    const o = typeof offset === 'number' ? offset : small(offset);
    const i = o >>> 2;
    if (a !== null && i * 4 === o && i < a.length && value >>> 0 === value) {
      a[i] = value; // one plain store of the width (not Atomics.store: see u8)
      return;
    }
    this.#m.store(u64Arg(offset, 'offset'), 4, value);
  }
  /**
   * One 64-bit volatile store.
   *
   * @param offset - byte offset within the mapping, a multiple of the width
   * @param value - must fit in 64 bits (a bigint)
   * @throws RangeError when misaligned, outside the mapping, or the value does not fit
   * @throws TypeError on a read-only mapping
   * @throws {@link VfioError} ERR_VFIO_CLOSED once unmapped
   */
  write64(offset: bigint | number, value: bigint): void {
    const a = this.#a64;
    const o = typeof offset === 'number' ? offset : small(offset);
    const i = o >>> 3;
    if (a !== null && i * 8 === o && i < a.length && typeof value === 'bigint' && value >= 0n && value <= U64_MAX) {
      a[i] = value; // one plain store of the width (not Atomics.store: see u8)
      return;
    }
    this.#m.store(u64Arg(offset, 'offset'), 8, value);
  }

  /** Unmaps; the view is detached. Idempotent. */
  unmap(): void {
    if (!this.#m.mapped) return;
    this.#m.unmap();
    this.#bytes = null;
    this.#a8 = this.#a16 = this.#a32 = this.#a64 = null;
    this.#onUnmap(this);
  }

  /** Same as `unmap()`, for `using`. */
  [Symbol.dispose](): void {
    this.unmap();
  }
}

/**
 * Bounds-checked access to one region through pread/pwrite. Offsets are
 * relative to the region; every access is checked against its size before any
 * syscall (RangeError), and is exactly the width asked for.
 */
export class Region {
  /** The region's info as {@link Device.regionInfo} returned it when this object was made. */
  readonly info: RegionInfo;
  readonly #dev: Device;
  /** The region's offset and size as numbers when both are safe integers (the fast path), else -1. */
  readonly #base: number;
  readonly #size: number;

  /** @internal */
  constructor(dev: Device, info: RegionInfo) {
    this.#dev = dev;
    this.info = info;
    const safe = info.offset + info.size <= BigInt(Number.MAX_SAFE_INTEGER);
    this.#base = safe ? Number(info.offset) : -1;
    this.#size = safe ? Number(info.size) : -1;
  }

  /** The region index. */
  get index(): number {
    return this.info.index;
  }
  /** The region's size in bytes. */
  get size(): bigint {
    return this.info.size;
  }

  /** The device-fd offset of a `width`-byte access at `offset`, checked against the region. */
  #at(offset: bigint | number, width: number, write: boolean): number | bigint {
    const need = write ? VFIO_REGION_INFO_FLAG_WRITE : VFIO_REGION_INFO_FLAG_READ;
    if ((this.info.flags & need) === 0) throw new VfioError({ code: 'EACCES', errno: 13, operation: `region ${this.info.name} ${write ? 'write' : 'read'}`, message: `region ${this.info.name} is not ${write ? 'writable' : 'readable'}` });
    checkRegionAccess(this.#dev.driver, this.info.index);
    // Fast path: plain numbers, no BigInt made (register accesses are hot).
    if (typeof offset === 'number' && this.#base >= 0 && Number.isInteger(offset) && offset >= 0 && offset + width <= this.#size) return this.#base + offset;
    const off = toU64(offset, 'offset');
    if (off + BigInt(width) > this.info.size) {
      throw new RangeError(`${width}-byte access at offset ${off} is outside region ${this.info.name} (size ${this.info.size})`);
    }
    return this.info.offset + off;
  }

  #read(offset: bigint | number, width: 1 | 2 | 4): number {
    const at = this.#at(offset, width, false);
    return native().regionRead(this.#dev.key('region read'), at, width);
  }

  #write(offset: bigint | number, width: 1 | 2 | 4, value: number): void {
    const limit = 2 ** (8 * width);
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value >= limit) {
      throw new RangeError(`value must be an integer in 0..${limit - 1}, got ${String(value)}`);
    }
    const at = this.#at(offset, width, true);
    this.#dev.beforeWrite(this.info.index, offset, width, (i) => (value >>> (8 * i)) & 0xff);
    native().regionWrite(this.#dev.key('region write'), at, width, value);
  }

  /**
   * One 1-byte pread at `offset`, so the device sees exactly one 8-bit access.
   *
   * @param offset - byte offset within the region
   * @throws RangeError when the access lies outside the region
   * @throws {@link VfioError} EACCES when the region is not readable; ERR_VFIO_DRIVER_QUIRK
   *   for a region a sample driver mishandles (see the hint); the errno of a failed pread
   */
  read8(offset: bigint | number): number {
    return this.#read(offset, 1);
  }
  /**
   * One 2-byte pread at `offset`, so the device sees exactly one 16-bit access.
   *
   * @param offset - byte offset within the region
   * @throws RangeError when the access lies outside the region
   * @throws {@link VfioError} EACCES when the region is not readable; ERR_VFIO_DRIVER_QUIRK
   *   for a region a sample driver mishandles (see the hint); the errno of a failed pread
   */
  read16(offset: bigint | number): number {
    return this.#read(offset, 2);
  }
  /**
   * One 4-byte pread at `offset`, so the device sees exactly one 32-bit access.
   *
   * @param offset - byte offset within the region
   * @throws RangeError when the access lies outside the region
   * @throws {@link VfioError} EACCES when the region is not readable; ERR_VFIO_DRIVER_QUIRK
   *   for a region a sample driver mishandles (see the hint); the errno of a failed pread
   */
  read32(offset: bigint | number): number {
    return this.#read(offset, 4);
  }
  /**
   * One 8-byte pread at `offset`, so the device sees exactly one 64-bit access.
   *
   * @param offset - byte offset within the region
   * @throws RangeError when the access lies outside the region
   * @throws {@link VfioError} EACCES when the region is not readable; ERR_VFIO_DRIVER_QUIRK
   *   for a region a sample driver mishandles (see the hint); the errno of a failed pread
   */
  read64(offset: bigint | number): bigint {
    const at = this.#at(offset, 8, false);
    return native().regionRead(this.#dev.key('region read'), at, 8);
  }
  /**
   * One 1-byte pwrite at `offset`, so the device sees exactly one 8-bit access.
   * A config-space write that clears Memory Space Enable first revokes the BAR views.
   *
   * @param offset - byte offset within the region
   * @param value - an integer in 0 … 2^8 − 1
   * @throws RangeError when the access lies outside the region or the value does not fit
   * @throws {@link VfioError} EACCES when the region is not writable; ERR_VFIO_DRIVER_QUIRK
   *   for a region a sample driver mishandles (see the hint); the errno of a failed pwrite
   */
  write8(offset: bigint | number, value: number): void {
    this.#write(offset, 1, value);
  }
  /**
   * One 2-byte pwrite at `offset`, so the device sees exactly one 16-bit access.
   * A config-space write that clears Memory Space Enable first revokes the BAR views.
   *
   * @param offset - byte offset within the region
   * @param value - an integer in 0 … 2^16 − 1
   * @throws RangeError when the access lies outside the region or the value does not fit
   * @throws {@link VfioError} EACCES when the region is not writable; ERR_VFIO_DRIVER_QUIRK
   *   for a region a sample driver mishandles (see the hint); the errno of a failed pwrite
   */
  write16(offset: bigint | number, value: number): void {
    this.#write(offset, 2, value);
  }
  /**
   * One 4-byte pwrite at `offset`, so the device sees exactly one 32-bit access.
   * A config-space write that clears Memory Space Enable first revokes the BAR views.
   *
   * @param offset - byte offset within the region
   * @param value - an integer in 0 … 2^32 − 1
   * @throws RangeError when the access lies outside the region or the value does not fit
   * @throws {@link VfioError} EACCES when the region is not writable; ERR_VFIO_DRIVER_QUIRK
   *   for a region a sample driver mishandles (see the hint); the errno of a failed pwrite
   */
  write32(offset: bigint | number, value: number): void {
    this.#write(offset, 4, value);
  }
  /**
   * One 8-byte pwrite at `offset`, so the device sees exactly one 64-bit access.
   * A config-space write that clears Memory Space Enable first revokes the BAR views.
   *
   * @param offset - byte offset within the region
   * @param value - a bigint of at most 64 bits
   * @throws RangeError when the access lies outside the region or the value does not fit
   * @throws {@link VfioError} EACCES when the region is not writable; ERR_VFIO_DRIVER_QUIRK
   *   for a region a sample driver mishandles (see the hint); the errno of a failed pwrite
   * @throws TypeError when the value is not a bigint
   */
  write64(offset: bigint | number, value: bigint): void {
    if (typeof value !== 'bigint') throw new TypeError('a 64-bit value must be a bigint');
    if (value < 0n || value > 0xffff_ffff_ffff_ffffn) throw new RangeError('value must fit in 64 bits');
    const at = this.#at(offset, 8, true);
    this.#dev.beforeWrite(this.info.index, offset, 8, (i) => Number((value >> BigInt(8 * i)) & 0xffn));
    native().regionWrite(this.#dev.key('region write'), at, 8, value);
  }

  /**
   * Reads `dst.length` bytes at `offset` into `dst` with one pread (the
   * driver decides the access widths; use `read32()` and friends for registers).
   *
   * @returns `dst`
   * @throws TypeError when `dst` is not a Uint8Array
   * @throws RangeError when the span lies outside the region
   * @throws {@link VfioError} EACCES when the region is not readable; ERR_VFIO_DRIVER_QUIRK (see the hint)
   */
  readInto(offset: bigint | number, dst: Uint8Array): Uint8Array {
    if (!(dst instanceof Uint8Array)) throw new TypeError('dst must be a Uint8Array or Buffer');
    const at = this.#at(offset, dst.length, false);
    // The handle first, so that an empty read of a closed device is ERR_VFIO_CLOSED too.
    const h = this.#dev.handle('region read');
    if (dst.length) native().regionReadInto(h, at, dst);
    return dst;
  }

  /**
   * Reads `length` bytes at `offset` into a new Buffer, as {@link Region.readInto} does.
   *
   * @throws RangeError when the span lies outside the region
   */
  read(offset: bigint | number, length: number): Buffer {
    return this.readInto(offset, Buffer.alloc(toU32(length, 'length'))) as Buffer;
  }

  /**
   * Writes all of `src` at `offset` with one pwrite (the driver decides the
   * access widths).
   *
   * @throws TypeError when `src` is not a Uint8Array
   * @throws RangeError when the span lies outside the region
   * @throws {@link VfioError} EACCES when the region is not writable; ERR_VFIO_DRIVER_QUIRK (see the hint)
   */
  write(offset: bigint | number, src: Uint8Array): void {
    if (!(src instanceof Uint8Array)) throw new TypeError('src must be a Uint8Array or Buffer');
    const at = this.#at(offset, src.length, true);
    const h = this.#dev.handle('region write'); // an empty write of a closed device is ERR_VFIO_CLOSED too
    this.#dev.beforeWrite(this.info.index, offset, src.length, (i) => src[i]!);
    if (src.length) native().regionWriteFrom(h, at, src);
  }
}
