/**
 * DMA done right, over either backend: IOVAs from an allocator that honours
 * the space's ranges and alignment (or chosen by iommufd), a table of every
 * mapping with vaddr→iova lookup, RLIMIT_MEMLOCK checked before anything is
 * pinned, nothing half-mapped after a failure, and dirty-page tracking where
 * the backend has it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { VfioError } from '../errors.js';
import type { DmaBuffer, DmaSpace, IovaRange } from './buffer.js';
import type { Device } from '../vfio/device.js';
import { IovaAllocator } from './iova.js';
import { MappingTable, VaddrIndex } from './table.js';
import { NIL } from './trees.js';
import { native, type NativeFd } from '../native.js';
import { toU64 } from '../resource.js';
import type { Hwpt, HwInfo, Ioas } from '../iommufd/iommufd.js';
import type { Type1Info } from '../uapi/vfio.js';
import { IOMMU_HW_CAP_DIRTY_TRACKING, IOMMU_HWPT_ALLOC_DIRTY_TRACKING } from '../uapi/constants.js';
import { MAX_LOGGING_RANGES, checkLoggingRanges, type LoggingRange } from './logging.js';

const OP_MAP = 'DmaMapper map';
const OP_UNMAP = 'DmaMapper unmap';
const PAGE = 4096n;
const CAP_IPC_LOCK = 14n;
const EINVAL = 22;
const ENOENT = 2;
const ENOMEM = 12;
const EOPNOTSUPP = 95;

const hex = (v: bigint): string => `0x${v.toString(16)}`;

/** One mapping in a {@link DmaMapper}'s table, as {@link DmaMapper.map} returns it (a frozen snapshot). */
export interface DmaMapping {
  /** The IOVA at which the device sees the mapping's first byte. */
  readonly iova: bigint;
  /** The mapping's length in bytes. */
  readonly size: bigint;
  /** The buffer mapped; it cannot be freed while mapped. */
  readonly buffer: DmaBuffer;
  /** Where in the buffer the mapping starts. */
  readonly offset: bigint;
  /** Whether the device may read the memory. */
  readonly read: boolean;
  /** Whether the device may write the memory. */
  readonly write: boolean;
  /** 'allocated' by the mapper's IOVA allocator, 'kernel'-chosen (iommufd), or 'fixed' by the caller. */
  readonly placement: 'allocated' | 'kernel' | 'fixed';
}

/** Options of {@link DmaMapper.map}; offsets and sizes are in bytes. */
export interface DmaMapperMapOptions {
  /** Offset into the buffer (default 0); a multiple of the IOVA alignment. */
  offset?: bigint | number;
  /** Bytes to map (default: the rest of the buffer); a non-zero multiple of the IOVA alignment. */
  size?: bigint | number;
  /** The device may read the memory (default true). */
  read?: boolean;
  /** The device may write the memory (default true). */
  write?: boolean;
  /** A fixed IOVA instead of an allocated or kernel-chosen one. */
  iova?: bigint | number;
  /** Align the allocated IOVA to this power of two (default: the space's alignment). */
  align?: bigint | number;
}

/** Reads a /proc file (injectable for tests). */
export type ProcReader = (path: string) => string;

/** Options of the {@link DmaMapper} constructor. */
export interface DmaMapperOptions {
  /** Exclusive upper bound for IOVAs (a device's DMA mask + 1: 0x10000000 for edu's 28 bits). */
  limit?: bigint | number;
  /** The lowest usable IOVA, for allocated and fixed mappings alike (default 4096: never IOVA 0). */
  min?: bigint | number;
  /**
   * Whether mapping pins memory (and so counts against RLIMIT_MEMLOCK): true for
   * a device behind an IOMMU, false when the space holds only mdevs (the kernel
   * only records their mappings). Default 'auto': false if every device in
   * `devices` is an mdev; without devices, on type1, false when the container
   * has no IOMMU domain (no IOVA_RANGE capability); otherwise true.
   */
  pinning?: boolean | 'auto';
  /** The devices using this space: decides `pinning`, and iommufd dirty tracking needs them. */
  devices?: readonly Device[];
  /** iommufd: let the kernel choose IOVAs (default true unless `limit` is given). */
  kernelIova?: boolean;
  /** Reads /proc/self/limits and /proc/self/status (tests). */
  readProc?: ProcReader;
  /** Root of /sys for the mdev check (tests). Default '/'. */
  sysRoot?: string;
}

/** What the process may still lock, read from /proc/self. */
export interface MemlockStatus {
  /** RLIMIT_MEMLOCK soft limit in bytes; null when unlimited. */
  limit: bigint | null;
  /** The hard limit (how far an unprivileged process may raise it); null when unlimited. */
  hardLimit: bigint | null;
  /** Bytes already charged: VmLck (type1 and mlock) or VmPin (iommufd) of this process. */
  locked: bigint;
  /** Which /proc/self/status field `locked` came from. */
  lockedField: 'VmLck' | 'VmPin';
  /** CAP_IPC_LOCK is effective: the kernel does not account at all. */
  ipcLock: boolean;
}

/**
 * A map refused before pinning because it would pass RLIMIT_MEMLOCK: a
 * {@link VfioError} with code ENOMEM and operation 'DmaMapper map', whose
 * hint names the limit to set (in KiB) and the ways to set it.
 */
export class DmaLimitError extends VfioError {
  /** Bytes this map would pin. */
  readonly requested: bigint;
  /** Bytes already charged to the process. */
  readonly locked: bigint;
  /** The RLIMIT_MEMLOCK soft limit in bytes. */
  readonly limit: bigint;
  /** The RLIMIT_MEMLOCK hard limit in bytes (how far an unprivileged process may raise the soft limit); null when unlimited. */
  readonly hardLimit: bigint | null;

  /**
   * Builds the error, its message and its hint (the limit to set, in KiB) from the reading that refuses the map.
   *
   * @param requested - bytes the map would pin
   * @param s - the reading of {@link memlockStatus} that refuses it
   * @param cause - the kernel's ENOMEM, when the limit was found only after the kernel refused
   */
  constructor(requested: bigint, s: MemlockStatus & { limit: bigint }, cause?: unknown) {
    const needKiB = (s.locked + requested + 1023n) / 1024n;
    const hardNote =
      s.hardLimit !== null && s.hardLimit < s.locked + requested ? ` (the hard limit is ${s.hardLimit} bytes: raising it past that needs root)` : '';
    super({
      code: 'ENOMEM',
      errno: ENOMEM,
      operation: OP_MAP,
      message: `ENOMEM: mapping ${requested} bytes for DMA would pin memory past RLIMIT_MEMLOCK: the limit is ${s.limit} bytes and this process has ${s.locked} bytes locked already (${s.lockedField})`,
      hint:
        `raise RLIMIT_MEMLOCK to at least ${needKiB} KiB${hardNote}: \`ulimit -l ${needKiB}\` in the shell that starts the process, LimitMEMLOCK=${needKiB}K in its systemd unit, ` +
        '"memlock" in /etc/security/limits.conf, or `prlimit --memlock=BYTES --pid PID`; or give the process CAP_IPC_LOCK (setcap cap_ipc_lock+ep, AmbientCapabilities=CAP_IPC_LOCK), which the kernel does not account',
      ...(cause === undefined ? {} : { cause }),
    });
    this.requested = requested;
    this.locked = s.locked;
    this.limit = s.limit;
    this.hardLimit = s.hardLimit;
  }
}

const readProcFile: ProcReader = (path) => readFileSync(path, 'utf8');

/**
 * RLIMIT_MEMLOCK, the memory already charged and CAP_IPC_LOCK, from
 * `/proc/self/limits` and `/proc/self/status`.
 *
 * @param backend - which counter the backend charges: type1 `VmLck`, iommufd `VmPin`
 * @param readProc - reads the /proc files; default `fs.readFileSync`
 * @throws {@link VfioError} ERR_VFIO_PROC when /proc/self/limits has no "Max locked memory" line
 */
export function memlockStatus(backend: 'type1' | 'iommufd', readProc: ProcReader = readProcFile): MemlockStatus {
  const limits = readProc('/proc/self/limits');
  const m = /^Max locked memory\s+(\S+)\s+(\S+)/m.exec(limits);
  if (!m) throw new VfioError({ code: 'ERR_VFIO_PROC', operation: 'read RLIMIT_MEMLOCK', path: '/proc/self/limits', message: 'no "Max locked memory" line in /proc/self/limits' });
  const value = (v: string): bigint | null => (v === 'unlimited' ? null : BigInt(v));
  const status = readProc('/proc/self/status');
  const field = (name: string): string | undefined => new RegExp(`^${name}:\\s*(\\S+)`, 'm').exec(status)?.[1];
  // type1 charges mm->locked_vm (VmLck, shared with mlock); iommufd charges the user and counts
  // its pins in mm->pinned_vm (VmPin) — the user-wide counter is not visible from here.
  const lockedField = backend === 'type1' ? 'VmLck' : 'VmPin';
  const kib = field(lockedField);
  const capEff = field('CapEff');
  return {
    limit: value(m[1]!),
    hardLimit: value(m[2]!),
    locked: kib === undefined ? 0n : BigInt(kib) * 1024n,
    lockedField,
    ipcLock: capEff !== undefined && ((BigInt(`0x${capEff}`) >> CAP_IPC_LOCK) & 1n) === 1n,
  };
}

/** Flags column: access, whether the allocator holds the IOVA, and the placement. */
const F_READ = 1;
const F_WRITE = 2;
const F_ALLOCATED = 4;
const PLACEMENT_SHIFT = 3;
const PLACEMENTS = ['allocated', 'kernel', 'fixed'] as const;
const P_ALLOCATED = 0 << PLACEMENT_SHIFT;
const P_KERNEL = 1 << PLACEMENT_SHIFT;
const P_FIXED = 2 << PLACEMENT_SHIFT;

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const MAX_SAFE_BIG = BigInt(MAX_SAFE);

/** How long a /proc reading of RLIMIT_MEMLOCK is trusted while there is headroom. */
const MEMLOCK_TTL_MS = 1000;
/** The clock is looked at every this many pinning maps (a power of two). */
const MEMLOCK_CLOCK_EVERY = 64;

/** A non-negative safe integer from a bigint or number, or -1 (the slow path then sorts out why). */
function exact(v: unknown): number {
  if (typeof v === 'number') return v >= 0 && Number.isSafeInteger(v) ? v : -1;
  if (typeof v === 'bigint') return v >= 0n && v <= MAX_SAFE_BIG ? Number(v) : -1;
  return -1;
}

function invalid(message: string, operation = OP_MAP): VfioError {
  return new VfioError({ code: 'EINVAL', errno: EINVAL, operation, message: `EINVAL: ${message}` });
}

/** The type1 container's extras that dirty tracking needs (Container has them). */
interface Type1Like {
  iommuInfo(): Type1Info;
  handle(operation: string): NativeFd;
}

/**
 * Maps DmaBuffers into one DmaSpace (a type1 Container or an iommufd Ioas) and
 * keeps the table. Every method leaves the table equal to what the kernel holds:
 * a failed map releases its IOVA, a failed unmap keeps its entry.
 *
 * Cost: map, unmap, find and lookup are O(log n) in the live mappings (maps
 * and unmaps at the top of the IOVA space, the usual pattern, touch one B+tree
 * leaf), with no I/O (see checkLimit for when /proc is read). IOVAs, sizes and
 * offsets are kept as numbers in units of the alignment, in typed arrays: about
 * 70 bytes a mapping in the table, 17 in the allocator, and 17 more in the
 * lookup index once lookup() has been used. The DmaMapping objects are made
 * for the caller and not kept.
 */
export class DmaMapper {
  /** The container or IOAS this mapper maps into. */
  readonly space: DmaSpace;
  /**
   * The IOVA allocator over the space's ranges (clipped to `min` and `limit`),
   * at least page-aligned. It holds allocated IOVAs, and reserves fixed ones.
   */
  readonly allocator: IovaAllocator;
  /** Whether maps pin memory (and are checked against RLIMIT_MEMLOCK). */
  readonly pinning: boolean;
  /** Dirty-page tracking over this space (probe it before starting). */
  readonly dirty: DirtyTracking;
  readonly #kernelIova: boolean;
  readonly #readProc: ProcReader;
  /** The IOVA alignment, the unit the table counts in. */
  readonly #unit: number;
  readonly #unitBig: bigint;
  readonly #table = new MappingTable();
  /**
   * Each DmaBuffer's ArrayBuffer, from the first time the mapper sees it: its
   * byteLength is the buffer's size, and 0 once the buffer is freed (freeing
   * detaches it), which saves the native calls for both on every map.
   */
  readonly #memory = new WeakMap<DmaBuffer, ArrayBuffer>();
  /** A number for each buffer (by its ArrayBuffer) in the lookup index, once lookup() has been used. */
  #ids: WeakMap<object, number> | null = null;
  #nextBufferId = 0;
  #seq = 0;
  /** The last size made into a bigint (most mappings share one). */
  #sizeNum = -1;
  #sizeBig = 0n;
  // RLIMIT_MEMLOCK: the last /proc reading, when it was taken, the headroom it
  // left (Infinity when nothing is accounted) and what this mapper pinned since.
  #ml: MemlockStatus | null = null;
  #mlAt = 0;
  #mlTick = 0;
  #mlRoom = Infinity;
  #mlPinned = 0;

  /**
   * @param space - a {@link Container} with its IOMMU set, or an {@link Ioas}
   *   (its ranges are read now, so attach the devices first)
   * @param options - IOVA bounds, pinning, the devices, kernel-chosen IOVAs
   * @throws TypeError for a bad `pinning`
   */
  constructor(space: DmaSpace, options: DmaMapperOptions = {}) {
    this.space = space;
    const { ranges, alignment } = space.iovaRanges();
    this.allocator = new IovaAllocator(ranges, {
      // DmaBuffers are page-aligned and both backends map whole pages.
      alignment: alignment > PAGE ? alignment : PAGE,
      min: options.min ?? PAGE,
      ...(options.limit === undefined ? {} : { limit: options.limit }),
    });
    this.#unit = this.allocator.unit;
    this.#unitBig = this.allocator.alignment;
    this.#kernelIova = space.backend === 'iommufd' && (options.kernelIova ?? options.limit === undefined);
    this.#readProc = options.readProc ?? readProcFile;
    this.pinning = resolvePinning(space, options);
    this.dirty = new DirtyTracking(this, options.devices ?? []);
  }

  /** Bytes of IOVA alignment every mapping needs. */
  get alignment(): bigint {
    return this.allocator.alignment;
  }

  /** Where mappings may go (after `min`/`limit` clipping). */
  get ranges(): readonly IovaRange[] {
    return this.allocator.ranges;
  }

  /** Units → bytes. */
  #big(units: number): bigint {
    const b = units * this.#unit;
    return b <= MAX_SAFE ? BigInt(b) : BigInt(units) * this.#unitBig;
  }

  /** A whole multiple of the alignment → units; NaN if it is not one. */
  #units(v: bigint): number {
    if (v <= MAX_SAFE_BIG) {
      const n = Number(v);
      return n % this.#unit === 0 && n >= 0 ? n / this.#unit : NaN;
    }
    return v % this.#unitBig === 0n && v < 1n << 64n ? Number(v / this.#unitBig) : NaN;
  }

  /** Bytes (below 2^53) → bigint, reusing the last answer. */
  #sizeBigint(n: number): bigint {
    if (n !== this.#sizeNum) {
      this.#sizeBig = BigInt(n);
      this.#sizeNum = n;
    }
    return this.#sizeBig;
  }

  /** The buffer's ArrayBuffer, learnt once; ERR_VFIO_CLOSED if the buffer is freed. */
  #memoryOf(buffer: DmaBuffer): ArrayBuffer {
    const known = this.#memory.get(buffer);
    if (known !== undefined) {
      if (known.byteLength === 0 && buffer.freed) throw VfioError.closed('DmaBuffer (map)');
      return known;
    }
    // Anything else (a Uint8Array, a plain object) is refused here, before its own
    // `buffer` or `size` is taken for a DmaBuffer's (the native side checks the type tag too).
    if (!(buffer instanceof native().DmaBuffer)) throw new TypeError(`buffer must be a DmaBuffer from allocDmaBuffer(), got ${buffer === null ? 'null' : typeof buffer === 'object' ? ((buffer as object).constructor?.name ?? 'an object') : typeof buffer}`);
    let ab: ArrayBuffer;
    try {
      ab = buffer.buffer; // throws once freed: one native call instead of two
    } catch (e) {
      if (buffer.freed) throw VfioError.closed('DmaBuffer (map)');
      throw e;
    }
    if (ab !== undefined) this.#memory.set(buffer, ab);
    return ab;
  }

  /** The buffer's number in the lookup index. */
  #idOf(buffer: DmaBuffer): number {
    const ids = this.#ids!;
    const key = this.#memory.get(buffer) ?? buffer;
    let id = ids.get(key);
    if (id === undefined) {
      id = this.#nextBufferId++;
      ids.set(key, id);
    }
    return id;
  }

  /**
   * Maps (part of) `buffer` for DMA and returns the mapping. Checks everything it
   * can before the syscall (alignment, sizes, overlaps, ranges, RLIMIT_MEMLOCK,
   * the latter without reading /proc each time: see checkLimit); if the kernel
   * refuses, the IOVA goes back to the allocator and the error is the kernel's
   * (ENOSPC on type1 is `dma_entry_limit`, with its hint; ENOMEM while pinning
   * becomes a DmaLimitError when fresh /proc numbers show RLIMIT_MEMLOCK is why).
   *
   * @throws {@link VfioError} EINVAL for an offset or size that is not a multiple
   *   of the alignment or not within the buffer, for neither read nor write, or
   *   for a fixed IOVA that is unaligned, overlapping or outside the ranges;
   *   ENOSPC when the allocator has no room (see the hint); ERR_VFIO_CLOSED for a freed buffer
   * @throws {@link DmaLimitError} when pinning would pass RLIMIT_MEMLOCK
   */
  map(buffer: DmaBuffer, options: DmaMapperMapOptions = {}): DmaMapping {
    const memory = this.#memoryOf(buffer);
    // A DmaBuffer's ArrayBuffer spans all of it (unless transferred away: then ask).
    const bytes = memory?.byteLength > 0 ? memory.byteLength : Number(buffer.size);
    const a = this.#unit;
    const o = options.offset;
    const s = options.size;
    const offset = o === undefined ? 0 : exact(o);
    const size = s === undefined ? bytes - offset : exact(s);
    if (offset < 0 || size <= 0 || offset % a !== 0 || size % a !== 0 || offset >= bytes || offset + size > bytes) this.#badExtent(buffer, options);
    const read = options.read ?? true;
    const write = options.write ?? true;
    if (!read && !write) throw invalid('a mapping must allow the device to read or write');
    const sizeU = size / a;
    const fixed = options.iova;
    const fixedU = fixed === undefined ? -1 : this.#checkFree(fixed, sizeU);
    if (this.pinning) {
      this.#memlockCached();
      if (this.#mlPinned + size > this.#mlRoom) this.#checkRoom(size);
    }

    const offsetBig = typeof o === 'bigint' ? o : offset === 0 ? 0n : BigInt(offset);
    const sizeBig = typeof s === 'bigint' ? s : this.#sizeBigint(size);
    let flags = (read ? F_READ : 0) | (write ? F_WRITE : 0);
    let iovaU: number;
    let iova: bigint;
    const alloc = this.allocator;
    if (fixedU >= 0 || !this.#kernelIova) {
      if (fixedU >= 0) {
        alloc.reserveUnits(fixedU, sizeU);
        iovaU = fixedU;
        iova = typeof fixed === 'bigint' ? fixed : BigInt(fixed!);
        flags |= F_ALLOCATED | P_FIXED;
      } else {
        const align = options.align;
        iovaU = align === undefined ? alloc.allocUnits(sizeU, 1, sizeBig) : alloc.allocUnits(sizeU, alloc.alignUnits(align), sizeBig, toU64(align, 'align'));
        iova = this.#big(iovaU);
        flags |= F_ALLOCATED | P_ALLOCATED;
      }
      try {
        this.space.map(buffer, { iova, offset: offsetBig, size: sizeBig, read, write });
      } catch (e) {
        alloc.freeUnits(iovaU);
        throw this.#mapFailed(e, size);
      }
    } else {
      try {
        iova = this.space.map(buffer, { offset: offsetBig, size: sizeBig, read, write });
      } catch (e) {
        throw this.#mapFailed(e, size);
      }
      if (typeof iova !== 'bigint') iova = toU64(iova, 'iova');
      flags |= P_KERNEL;
      iovaU = this.#units(iova);
      if (Number.isNaN(iovaU)) {
        this.space.unmap(iova, sizeBig);
        throw invalid(`the kernel chose IOVA ${hex(iova)}, which is not a multiple of the IOVA alignment ${hex(this.#unitBig)}`);
      }
      // Keep the allocator out of the kernel's choice (when it lies in the allocator's ranges).
      if (alloc.containsUnits(iovaU, iovaU + sizeU)) {
        try {
          alloc.reserveUnits(iovaU, sizeU);
        } catch (e) {
          this.space.unmap(iova, sizeBig);
          throw e;
        }
        flags |= F_ALLOCATED;
      }
    }

    const t = this.#table;
    const x = t.slot();
    t.iova[x] = iovaU;
    t.size[x] = sizeU;
    t.offset[x] = offset / a;
    if (t.vaddr !== null) t.bufferId[x] = this.#idOf(buffer);
    t.seq[x] = this.#seq++;
    t.flags[x] = flags;
    t.buffers[x] = buffer;
    if (!t.insert(x)) {
      // Only a space that reuses a live IOVA gets here (a kernel never does): undo it all.
      t.discard(x);
      if ((flags & F_ALLOCATED) !== 0) alloc.freeUnits(iovaU);
      this.space.unmap(iova, sizeBig);
      throw new VfioError({ code: 'EEXIST', errno: 17, operation: OP_MAP, message: `EEXIST: the space mapped at IOVA ${hex(iova)}, where the table already has a mapping` });
    }
    if (this.pinning) this.#mlPinned += size;
    return Object.freeze({ iova, size: sizeBig, buffer, offset: offsetBig, read, write, placement: PLACEMENTS[flags >> PLACEMENT_SHIFT]! });
  }

  /** Throws the error map() owes for a bad offset or size (the slow path, with bigints). */
  #badExtent(buffer: DmaBuffer, options: DmaMapperMapOptions): never {
    const offset = toU64(options.offset ?? 0, 'offset');
    const a = this.alignment;
    if (offset % a !== 0n) throw invalid(`offset ${hex(offset)} is not a multiple of the IOVA alignment ${hex(a)}`);
    if (offset >= buffer.size) throw invalid(`offset ${hex(offset)} is not inside the ${hex(buffer.size)}-byte buffer`);
    const size = options.size === undefined ? buffer.size - offset : toU64(options.size, 'size');
    if (size === 0n) throw invalid('a zero-length DMA mapping');
    if (size % a !== 0n) throw invalid(`size ${hex(size)} is not a multiple of the IOVA alignment ${hex(a)}`);
    if (offset + size > buffer.size) throw invalid(`${hex(size)} bytes at offset ${hex(offset)} run past the end of the ${hex(buffer.size)}-byte buffer`);
    throw new Error(`internal: map extent ${offset}+${size} of a ${buffer.size}-byte buffer refused but valid`);
  }

  /** Refuses a fixed IOVA that is unaligned, overlapping a mapping in the table or outside the ranges; returns it in units. */
  #checkFree(value: bigint | number, sizeU: number): number {
    const iova = toU64(value, 'iova');
    if (iova % this.#unitBig !== 0n) throw invalid(`IOVA ${hex(iova)} is not a multiple of the IOVA alignment ${hex(this.#unitBig)}`);
    const u = this.#units(iova);
    const end = u + sizeU;
    const t = this.#table;
    // The table's mappings do not overlap: the lowest one overlapping [u, end) covers u or is the next one up.
    let c = t.floor(u);
    if (c === NIL || t.iova[c]! + t.size[c]! <= u) {
      c = t.higher(u);
      if (c !== NIL && t.iova[c]! >= end) c = NIL;
    }
    const last = iova + this.#big(sizeU) - 1n;
    if (c !== NIL) {
      const ci = this.#big(t.iova[c]!);
      throw new VfioError({
        code: 'EEXIST',
        errno: 17,
        operation: OP_MAP,
        message: `EEXIST: IOVA ${hex(iova)}..${hex(last)} overlaps the mapping at ${hex(ci)}..${hex(ci + this.#big(t.size[c]!) - 1n)}`,
      });
    }
    if (!this.allocator.containsUnits(u, end)) {
      const where = this.allocator.ranges.map((r) => `${hex(r.start)}..${hex(r.last)}`).join(', ') || 'none';
      throw invalid(`IOVA ${hex(iova)}..${hex(last)} is outside the usable ranges (${where})`);
    }
    return u;
  }

  /**
   * What RLIMIT_MEMLOCK allows now (see {@link memlockStatus}): always a fresh read of
   * /proc/self, which also replaces the reading checkLimit() works from.
   */
  memlock(): MemlockStatus {
    const s = memlockStatus(this.space.backend, this.#readProc);
    this.#ml = s;
    this.#mlAt = Date.now();
    this.#mlTick = 0;
    this.#mlPinned = 0;
    this.#mlRoom = s.ipcLock || s.limit === null ? Infinity : Number(s.limit) - Number(s.locked);
    return s;
  }

  /** The cached reading, re-read when there is none or it is older than MEMLOCK_TTL_MS. */
  #memlockCached(): MemlockStatus {
    const s = this.#ml;
    if (s === null) return this.memlock();
    if ((++this.#mlTick & (MEMLOCK_CLOCK_EVERY - 1)) === 0 && Date.now() - this.#mlAt >= MEMLOCK_TTL_MS) return this.memlock();
    return s;
  }

  /**
   * Throws {@link DmaLimitError} if pinning `bytes` more would pass RLIMIT_MEMLOCK; a
   * no-op when nothing is pinned or accounted (CAP_IPC_LOCK, or no limit).
   *
   * The policy, which keeps /proc off the hot path: the mapper reads
   * /proc/self/limits and /proc/self/status once, then counts what it pins and
   * unpins itself. While that reading's headroom covers the request, nothing is
   * read. When it does not, /proc is read again and only those fresh numbers can
   * refuse (so a raised limit, or memory unlocked elsewhere, is seen). The
   * reading, including "unlimited" and CAP_IPC_LOCK, is also renewed when older
   * than a second, by memlock(), after unmapAll(), and when a pinning map fails
   * with ENOMEM or EPERM; a kernel ENOMEM that the fresh numbers explain becomes
   * a DmaLimitError (the kernel's error is its `cause`). Memory locked by others
   * in between (mlock, another mapper) is seen at the next read at the latest,
   * and the kernel still enforces the limit itself.
   */
  checkLimit(bytes: bigint | number): void {
    if (!this.pinning) return;
    const s = this.#memlockCached();
    if (s.ipcLock || s.limit === null) return;
    const n = toU64(bytes, 'bytes');
    if (this.#mlPinned + Number(n) > this.#mlRoom) this.#checkRoom(Number(n), n);
  }

  /** The cached headroom is short of `n` bytes: decide on fresh numbers. */
  #checkRoom(n: number, big?: bigint): void {
    const s = this.memlock();
    if (s.ipcLock || s.limit === null) return;
    const requested = big ?? BigInt(n);
    if (s.locked + requested > s.limit) throw new DmaLimitError(requested, { ...s, limit: s.limit });
  }

  /** The error a failed space.map() becomes: the kernel's, or a DmaLimitError when fresh /proc numbers explain its ENOMEM. */
  #mapFailed(e: unknown, size: number): unknown {
    if (!this.pinning) return e;
    const code = (e as VfioError | undefined)?.code;
    if (code !== 'ENOMEM' && code !== 'EPERM') return e;
    let s: MemlockStatus;
    try {
      s = this.memlock();
    } catch {
      this.#ml = null;
      return e;
    }
    const requested = BigInt(size);
    if (code === 'ENOMEM' && !s.ipcLock && s.limit !== null && s.locked + requested > s.limit) return new DmaLimitError(requested, { ...s, limit: s.limit }, e);
    return e;
  }

  /**
   * Unmaps one mapping (the object map() returned, or its IOVA) and returns the
   * bytes unmapped. ENOENT, before any syscall, if the table has no mapping
   * starting there. The buffer can be freed once nothing maps it.
   *
   * @throws {@link VfioError} ENOENT when no mapping starts at that IOVA; the
   *   kernel's error when it refuses (the mapping then stays in the table)
   */
  unmap(mapping: DmaMapping | bigint | number): bigint {
    const isObject = typeof mapping === 'object';
    const iova = isObject ? mapping.iova : toU64(mapping, 'iova');
    const t = this.#table;
    const x = typeof iova === 'bigint' ? t.get(this.#units(iova)) : NIL;
    if (x === NIL || (isObject && mapping.buffer !== t.buffers[x])) {
      throw new VfioError({ code: 'ENOENT', errno: ENOENT, operation: OP_UNMAP, message: `ENOENT: no mapping starts at IOVA ${hex(iova)}` });
    }
    const size = t.size[x]! * this.#unit;
    let bytes: bigint;
    try {
      bytes = this.space.unmap(iova, this.#sizeBigint(size));
    } catch (err) {
      // iommufd: ENOENT means the kernel holds nothing there any more (unmapped behind our back).
      if ((err as VfioError | undefined)?.code === 'ENOENT') {
        this.#drop(x);
        this.#ml = null;
      }
      throw err;
    }
    this.#drop(x);
    if (this.pinning) this.#mlPinned -= size;
    return bytes;
  }

  #drop(x: number): void {
    const t = this.#table;
    const allocated = (t.flags[x]! & F_ALLOCATED) !== 0;
    const iovaU = t.iova[x]!;
    t.delete(x);
    if (allocated) this.allocator.freeUnits(iovaU);
  }

  /**
   * Unmaps everything in the space (also what was mapped without this mapper)
   * and empties the table and the allocator.
   *
   * @returns the number of bytes the kernel unmapped
   */
  unmapAll(): bigint {
    const bytes = this.space.unmapAll();
    const t = this.#table;
    const allocated: number[] = [];
    t.forEach((x) => {
      if ((t.flags[x]! & F_ALLOCATED) !== 0) allocated.push(t.iova[x]!);
    });
    t.clear();
    // Memory this mapper never mapped may have been unpinned too.
    this.#ml = null;
    // Top down: each free comes off the end of the allocator's tables.
    for (let i = allocated.length - 1; i >= 0; i--) this.allocator.freeUnits(allocated[i]!);
    return bytes;
  }

  #view(x: number): DmaMapping {
    const t = this.#table;
    const f = t.flags[x]!;
    return Object.freeze({
      iova: this.#big(t.iova[x]!),
      size: this.#big(t.size[x]!),
      buffer: t.buffers[x]!,
      offset: this.#big(t.offset[x]!),
      read: (f & F_READ) !== 0,
      write: (f & F_WRITE) !== 0,
      placement: PLACEMENTS[f >> PLACEMENT_SHIFT]!,
    });
  }

  /** Every mapping in the table, in ascending IOVA order (O(n)). */
  mappings(): DmaMapping[] {
    const out: DmaMapping[] = [];
    this.#table.forEach((x) => out.push(this.#view(x)));
    return out;
  }

  /** The lookup index, built the first time lookup() is called and kept up to date from then on. */
  #lookupIndex(): VaddrIndex {
    const t = this.#table;
    if (t.vaddr !== null) return t.vaddr;
    const index = new VaddrIndex(t);
    this.#ids = new WeakMap();
    t.forEach((x) => {
      t.bufferId[x] = this.#idOf(t.buffers[x]!);
      index.insert(x);
    });
    t.vaddr = index;
    return index;
  }

  /**
   * vaddr → iova: the IOVA at which the device sees byte `offset` of `buffer`
   * (or the first byte of a view over a DmaBuffer's memory), or undefined when
   * no mapping covers it (several: the one mapped first). The first call builds
   * an index (O(n log n)); from then on a lookup is O(log n) and each map and
   * unmap keeps the index up to date.
   */
  lookup(buffer: DmaBuffer, offset?: bigint | number): bigint | undefined;
  lookup(view: ArrayBufferView): bigint | undefined;
  lookup(target: DmaBuffer | ArrayBufferView, offset: bigint | number = 0): bigint | undefined {
    const index = this.#lookupIndex();
    let id: number | undefined;
    let off: number;
    const isView = ArrayBuffer.isView(target);
    if (isView) {
      id = this.#ids!.get(target.buffer);
      off = target.byteOffset;
    } else {
      off = exact(offset);
      if (off < 0) {
        toU64(offset, 'offset'); // throws unless it is a u64 past 2^53: no buffer is that large
        return undefined;
      }
      id = this.#ids!.get(this.#memory.get(target) ?? target);
    }
    if (id === undefined) return undefined;
    const a = this.#unit;
    const t = this.#table;
    const x = index.stab(id, Math.floor(off / a));
    if (x === NIL) return undefined;
    // A view of a freed buffer maps nothing.
    if (isView && target.buffer.byteLength === 0 && t.buffers[x]!.freed) return undefined;
    const delta = off - t.offset[x]! * a;
    const base = t.iova[x]! * a;
    return base + delta <= MAX_SAFE ? BigInt(base + delta) : BigInt(t.iova[x]!) * this.#unitBig + BigInt(delta);
  }

  /** iova → buffer: the mapping containing `iova` (anywhere inside it), or undefined. O(log n). */
  find(iova: bigint | number): DmaMapping | undefined {
    const i = toU64(iova, 'iova');
    const q = i <= MAX_SAFE_BIG ? Math.floor(Number(i) / this.#unit) : Number(i / this.#unitBig);
    const t = this.#table;
    const x = t.floor(q);
    if (x === NIL || q >= t.iova[x]! + t.size[x]!) return undefined;
    return this.#view(x);
  }

  /** @internal The table's shape (for the complexity tests). */
  stats(): { mappings: number; height: number; capacity: number; lookupIndex: boolean; lookupDepth: number; lookupVisits: number } {
    const t = this.#table;
    return {
      mappings: t.count,
      height: t.byIova.height,
      capacity: t.capacity,
      lookupIndex: t.vaddr !== null,
      lookupDepth: t.vaddr?.depth() ?? 0,
      lookupVisits: t.vaddr?.stabVisits ?? 0,
    };
  }
}

/**
 * Whether a device is an mdev (its DMA is only bookkeeping unless its vendor
 * driver pins pages), by its entry in `/sys/bus/mdev/devices`.
 *
 * @param sysRoot - where `/sys` is found; default `/`
 */
export function isMdev(device: Device, sysRoot = '/'): boolean {
  return existsSync(join(sysRoot, 'sys/bus/mdev/devices', device.name));
}

function resolvePinning(space: DmaSpace, o: DmaMapperOptions): boolean {
  if (typeof o.pinning === 'boolean') return o.pinning;
  if (o.pinning !== undefined && o.pinning !== 'auto') throw new TypeError(`pinning must be true, false or 'auto', got ${String(o.pinning)}`);
  if (o.devices?.length) return o.devices.some((d) => !isMdev(d, o.sysRoot));
  const t1 = space as Partial<Type1Like>;
  if (space.backend === 'type1' && typeof t1.iommuInfo === 'function') {
    // type1 reports IOVA ranges only once a group with a real IOMMU domain is in the container.
    return t1.iommuInfo().caps.some((c) => c.kind === 'iova-range');
  }
  return true;
}

/** The outcome of {@link DirtyTracking.probe}. */
export type DirtyProbe =
  | {
      /** Tracking works here. */
      supported: true;
      /** The space's backend. */
      backend: 'type1' | 'iommufd';
      /** The page size the bitmaps count in, in bytes. */
      pageSize: bigint;
      /** How it is tracked, in words. */
      detail: string;
    }
  | {
      /** Tracking does not work here. */
      supported: false;
      /** The space's backend. */
      backend: 'type1' | 'iommufd';
      /** Why, as an errno name: the kernel's answer ('EOPNOTSUPP', 'ENOENT', …), or EINVAL without devices on iommufd. */
      code: string;
      /** The positive errno of `code`. */
      errno: number;
      /** Why, in words. */
      detail: string;
    };

/** The live mappings as logging ranges: sorted, adjacent ones merged, one range over all when more than 256 remain. */
function liveRanges(mappings: readonly DmaMapping[]): LoggingRange[] {
  const sorted = [...mappings].sort((a, b) => (a.iova < b.iova ? -1 : a.iova > b.iova ? 1 : 0));
  const out: { iova: bigint; length: bigint }[] = [];
  for (const m of sorted) {
    const last = out.at(-1);
    if (last && last.iova + last.length === m.iova) last.length += m.size;
    else out.push({ iova: m.iova, length: m.size });
  }
  if (out.length === 0) throw new RangeError('no live mappings to log: map something first, or pass ranges');
  if (out.length > MAX_LOGGING_RANGES) {
    const end = out.at(-1)!.iova + out.at(-1)!.length;
    return [{ iova: out[0]!.iova, length: end - out[0]!.iova }];
  }
  return out;
}

/**
 * Dirty-page tracking over the mapper's space: type1's VFIO_IOMMU_DIRTY_PAGES
 * (the container's MIGRATION capability), or an iommufd HWPT allocated with
 * IOMMU_HWPT_ALLOC_DIRTY_TRACKING that the devices are attached to while
 * tracking (start()); or the devices' own DMA logging (startDevice()). probe()
 * says honestly whether the IOMMU's works, with the kernel's errno when it does not.
 */
export class DirtyTracking {
  readonly #mapper: DmaMapper;
  readonly #devices: readonly Device[];
  #active = false;
  /** Whether the active tracker is the devices' own DMA logging (startDevice) rather than the IOMMU's. */
  #deviceLog = false;
  #hwpt: Hwpt | null = null;
  #pageSize = PAGE;

  /** @internal */
  constructor(mapper: DmaMapper, devices: readonly Device[]) {
    this.#mapper = mapper;
    this.#devices = devices;
  }

  /** Whether tracking is started. */
  get active(): boolean {
    return this.#active;
  }

  /** Which tracker is active: 'iommu' (type1 or iommufd, from start()), 'device' (startDevice()), or null. */
  get tracker(): 'iommu' | 'device' | null {
    return this.#active ? (this.#deviceLog ? 'device' : 'iommu') : null;
  }

  /**
   * Starts device-side DMA logging (VFIO_DEVICE_FEATURE_DMA_LOGGING_START) on
   * every device given in {@link DmaMapperOptions.devices}: the device itself
   * logs the pages it writes, whatever the IOMMU can do. `ranges` default to
   * the mapper's live mappings, adjacent ones merged (one range over all of
   * them when more than 256 remain). The ranges are checked before the
   * syscall (see {@link checkLoggingRanges}); a device that fails stops the
   * ones already started. Does nothing when started.
   *
   * @returns the page size the devices log at
   * @throws RangeError for bad ranges, or none to log; {@link VfioError} EINVAL
   *   without devices, the kernel's error (ENOTTY: no DMA logging) otherwise
   */
  startDevice(options: { ranges?: readonly LoggingRange[]; pageSize?: bigint | number } = {}): bigint {
    if (this.#active) return this.#pageSize;
    if (this.#devices.length === 0) throw invalid('device DMA logging needs the devices: pass them as DmaMapperOptions.devices', 'dirty tracking');
    const ranges = options.ranges ?? liveRanges(this.#mapper.mappings());
    let pageSize = toU64(options.pageSize ?? PAGE, 'pageSize');
    checkLoggingRanges(ranges, pageSize);
    const started: Device[] = [];
    try {
      for (const d of this.#devices) {
        pageSize = d.dmaLoggingStart(ranges, pageSize);
        started.push(d);
      }
    } catch (e) {
      for (const d of started) d.dmaLoggingStop();
      throw e;
    }
    this.#pageSize = pageSize;
    this.#deviceLog = true;
    this.#active = true;
    return pageSize;
  }

  /** The HWPT tracking on iommufd while active, else null. */
  get hwpt(): Hwpt | null {
    return this.#hwpt;
  }

  #type1(): Type1Like | null {
    const s = this.#mapper.space as Partial<Type1Like>;
    return this.#mapper.space.backend === 'type1' && typeof s.iommuInfo === 'function' && typeof s.handle === 'function' ? (s as Type1Like) : null;
  }

  #ioas(): Ioas | null {
    const s = this.#mapper.space as Partial<Ioas>;
    return this.#mapper.space.backend === 'iommufd' && s.iommufd !== undefined && typeof s.id === 'number' ? (s as Ioas) : null;
  }

  #cdevs(): Device[] {
    return this.#devices.filter((d) => d.devid !== null);
  }

  /**
   * Whether tracking works here; never starts it (on iommufd it may allocate
   * and free a HWPT to learn the kernel's answer). It does not throw for
   * "unsupported": the kernel's errno is in the result.
   */
  probe(): DirtyProbe {
    const backend = this.#mapper.space.backend;
    const t1 = this.#type1();
    if (t1) {
      const cap = t1.iommuInfo().caps.find((c) => c.kind === 'migration') as { pgsizeBitmap: bigint; maxDirtyBitmapSize: bigint } | undefined;
      if (!cap) return { supported: false, backend, code: 'EOPNOTSUPP', errno: EOPNOTSUPP, detail: 'the container reports no MIGRATION capability (VFIO_IOMMU_DIRTY_PAGES unsupported)' };
      const pageSize = cap.pgsizeBitmap & -cap.pgsizeBitmap;
      return { supported: true, backend, pageSize, detail: `type1 dirty bitmap, page size ${pageSize}, at most ${cap.maxDirtyBitmapSize} bytes per bitmap` };
    }
    const ioas = this.#ioas();
    if (!ioas) return { supported: false, backend, code: 'EOPNOTSUPP', errno: EOPNOTSUPP, detail: 'this DmaSpace is neither a type1 Container nor an iommufd Ioas' };
    const devs = this.#cdevs();
    if (devs.length === 0) return { supported: false, backend, code: 'EINVAL', errno: EINVAL, detail: 'iommufd dirty tracking needs the bound devices: pass them as DmaMapperOptions.devices' };
    for (const d of devs) {
      let hw: HwInfo;
      try {
        hw = ioas.iommufd.hwInfo(d.devid!);
      } catch (e) {
        const v = e as VfioError;
        return { supported: false, backend, code: v.code, errno: -v.errno, detail: `IOMMU_GET_HW_INFO on ${d.name} failed (${v.message}): an mdev has no IOMMU of its own` };
      }
      if ((hw.capabilities & BigInt(IOMMU_HW_CAP_DIRTY_TRACKING)) === 0n) {
        // Ask the kernel anyway, so the answer carries its errno.
        try {
          ioas.iommufd.allocHwpt(d.devid!, ioas, { flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING }).close();
        } catch (e) {
          const v = e as VfioError;
          return { supported: false, backend, code: v.code, errno: -v.errno, detail: `${d.name}: the IOMMU (${hw.typeName}) lacks IOMMU_HW_CAP_DIRTY_TRACKING; IOMMU_HWPT_ALLOC with DIRTY_TRACKING: ${v.message}` };
        }
      }
    }
    return { supported: true, backend, pageSize: PAGE, detail: 'iommufd HWPT dirty tracking' };
  }

  /**
   * Starts tracking. type1: VFIO_IOMMU_DIRTY_PAGES START. iommufd: allocates a
   * HWPT with DIRTY_TRACKING on the IOAS, attaches the devices to it and enables
   * tracking. Throws the kernel's error where unsupported. Does nothing when started.
   *
   * @throws {@link VfioError} EINVAL on iommufd without bound devices in
   *   {@link DmaMapperOptions.devices}; the kernel's error (ENOENT, EOPNOTSUPP, …)
   *   where tracking is unsupported, with the devices back on the IOAS
   */
  start(): void {
    if (this.#active) return;
    const t1 = this.#type1();
    if (t1) {
      const p = this.probe();
      if (p.supported) this.#pageSize = p.pageSize;
      native().iommuDirtyPages(t1.handle('dirty pages start'), 1);
      this.#active = true;
      return;
    }
    const ioas = this.#requireIoas();
    const devs = this.#cdevs();
    if (devs.length === 0) throw invalid('iommufd dirty tracking needs the bound devices: pass them as DmaMapperOptions.devices', 'dirty tracking');
    const hwpt = ioas.iommufd.allocHwpt(devs[0]!.devid!, ioas, { flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING });
    try {
      for (const d of devs) d.attach(hwpt);
      hwpt.setDirtyTracking(true);
    } catch (e) {
      for (const d of devs) if (d.attachedTo === hwpt) d.attach(ioas);
      hwpt.close();
      throw e;
    }
    this.#hwpt = hwpt;
    this.#pageSize = PAGE;
    this.#active = true;
  }

  #requireIoas(): Ioas {
    const ioas = this.#ioas();
    if (!ioas) throw new VfioError({ code: 'EOPNOTSUPP', errno: EOPNOTSUPP, operation: 'dirty tracking', message: 'EOPNOTSUPP: dirty tracking needs a type1 Container or an iommufd Ioas' });
    return ioas;
  }

  /** Stops tracking (iommufd: the devices go back to the IOAS and the HWPT is freed). Does nothing when stopped. */
  stop(): void {
    if (!this.#active) return;
    const t1 = this.#type1();
    if (this.#deviceLog) {
      for (const d of this.#devices) if (!d.closed) d.dmaLoggingStop();
      this.#deviceLog = false;
    } else if (t1) {
      native().iommuDirtyPages(t1.handle('dirty pages stop'), 2);
    } else {
      const ioas = this.#requireIoas();
      const hwpt = this.#hwpt!;
      hwpt.setDirtyTracking(false);
      for (const d of this.#cdevs()) d.attach(ioas);
      hwpt.close();
      this.#hwpt = null;
    }
    this.#active = false;
  }

  /**
   * The raw bitmap of [iova, iova+size): bit i set when page i was dirtied
   * since the last read (both backends clear the bits they report).
   *
   * @param pageSize - bytes per bit; default the page size tracking started with
   * @returns one bit per page, least significant bit of byte 0 first
   * @throws {@link VfioError} EINVAL when tracking is not started
   */
  bitmap(iova: bigint | number, size: bigint | number, pageSize: bigint | number = this.#pageSize): Buffer {
    if (!this.#active) throw new VfioError({ code: 'EINVAL', errno: EINVAL, operation: 'dirty bitmap', message: 'EINVAL: dirty tracking is not started' });
    if (this.#deviceLog) {
      // Each device reports (and clears) its own log: the union is what was written.
      let out: Buffer | null = null;
      for (const d of this.#devices) {
        const b = d.dmaLoggingReport(iova, size, pageSize);
        if (out === null) out = b;
        else for (let i = 0; i < out.length; i++) out[i]! |= b[i]!;
      }
      return out!;
    }
    const t1 = this.#type1();
    if (t1) return native().iommuDirtyPages(t1.handle('dirty bitmap'), 4, toU64(iova, 'iova'), toU64(size, 'size'), toU64(pageSize, 'pageSize'));
    return this.#hwpt!.dirtyBitmap(iova, size, pageSize);
  }

  /**
   * The IOVAs of the dirty pages of a mapping (or range), from {@link DirtyTracking.bitmap}.
   *
   * @param range - a {@link DmaMapping}, or any `{ iova, size }` in bytes
   * @param pageSize - bytes per page; default the page size tracking started with
   */
  dirtyPages(range: { iova: bigint; size: bigint }, pageSize: bigint = this.#pageSize): bigint[] {
    const bm = this.bitmap(range.iova, range.size, pageSize);
    const pages: bigint[] = [];
    const n = Number((range.size + pageSize - 1n) / pageSize);
    for (let i = 0; i < n; i++) if ((bm[i >> 3]! >> (i & 7)) & 1) pages.push(range.iova + BigInt(i) * pageSize);
    return pages;
  }
}
