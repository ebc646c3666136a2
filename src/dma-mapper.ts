/**
 * DMA done right, over either backend: IOVAs from an allocator that honours
 * the space's ranges and alignment (or chosen by iommufd), a table of every
 * mapping with vaddr→iova lookup, RLIMIT_MEMLOCK checked before anything is
 * pinned, nothing half-mapped after a failure, and dirty-page tracking where
 * the backend has it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { VfioError } from './errors.js';
import type { DmaBuffer, DmaSpace, IovaRange } from './dma.js';
import type { Device } from './device.js';
import { IovaAllocator } from './iova.js';
import { native, type NativeFd } from './native.js';
import { toU64 } from './resource.js';
import type { Hwpt, HwInfo, Ioas } from './iommufd.js';
import type { Type1Info } from './uapi/vfio.js';
import { IOMMU_HW_CAP_DIRTY_TRACKING, IOMMU_HWPT_ALLOC_DIRTY_TRACKING } from './uapi/constants.js';

const OP_MAP = 'DmaMapper map';
const OP_UNMAP = 'DmaMapper unmap';
const PAGE = 4096n;
const CAP_IPC_LOCK = 14n;
const EINVAL = 22;
const ENOENT = 2;
const ENOMEM = 12;
const EOPNOTSUPP = 95;

const hex = (v: bigint): string => `0x${v.toString(16)}`;

/** One mapping in a DmaMapper's table. */
export interface DmaMapping {
  readonly iova: bigint;
  readonly size: bigint;
  readonly buffer: DmaBuffer;
  /** Where in the buffer the mapping starts. */
  readonly offset: bigint;
  readonly read: boolean;
  readonly write: boolean;
  /** 'allocated' by the mapper's IOVA allocator, 'kernel'-chosen (iommufd), or 'fixed' by the caller. */
  readonly placement: 'allocated' | 'kernel' | 'fixed';
}

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

/** A map refused before pinning because it would pass RLIMIT_MEMLOCK. */
export class DmaLimitError extends VfioError {
  /** Bytes this map would pin. */
  readonly requested: bigint;
  /** Bytes already charged to the process. */
  readonly locked: bigint;
  /** The RLIMIT_MEMLOCK soft limit in bytes. */
  readonly limit: bigint;
  readonly hardLimit: bigint | null;

  constructor(requested: bigint, s: MemlockStatus & { limit: bigint }) {
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
    });
    this.requested = requested;
    this.locked = s.locked;
    this.limit = s.limit;
    this.hardLimit = s.hardLimit;
  }
}

const readProcFile: ProcReader = (path) => readFileSync(path, 'utf8');

/** RLIMIT_MEMLOCK, the memory already charged and CAP_IPC_LOCK, from /proc/self. */
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

interface Entry extends DmaMapping {
  /** The allocator holds [iova, iova+size) for this mapping. */
  allocated: boolean;
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
 */
export class DmaMapper {
  readonly space: DmaSpace;
  readonly allocator: IovaAllocator;
  /** Whether maps pin memory (and are checked against RLIMIT_MEMLOCK). */
  readonly pinning: boolean;
  readonly dirty: DirtyTracking;
  readonly #entries = new Map<bigint, Entry>();
  readonly #kernelIova: boolean;
  readonly #readProc: ProcReader;

  constructor(space: DmaSpace, options: DmaMapperOptions = {}) {
    this.space = space;
    const { ranges, alignment } = space.iovaRanges();
    this.allocator = new IovaAllocator(ranges, {
      // DmaBuffers are page-aligned and both backends map whole pages.
      alignment: alignment > PAGE ? alignment : PAGE,
      min: options.min ?? PAGE,
      ...(options.limit === undefined ? {} : { limit: options.limit }),
    });
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

  /**
   * Maps (part of) `buffer` for DMA and returns the mapping. Checks everything it
   * can before the syscall (alignment, sizes, overlaps, ranges, RLIMIT_MEMLOCK);
   * if the kernel refuses, the IOVA goes back to the allocator and the error is
   * the kernel's (ENOSPC on type1 is `dma_entry_limit`, with its hint).
   */
  map(buffer: DmaBuffer, options: DmaMapperMapOptions = {}): DmaMapping {
    if (buffer.freed) throw VfioError.closed('DmaBuffer (map)');
    const offset = toU64(options.offset ?? 0, 'offset');
    const a = this.alignment;
    if (offset % a !== 0n) throw invalid(`offset ${hex(offset)} is not a multiple of the IOVA alignment ${hex(a)}`);
    if (offset >= buffer.size) throw invalid(`offset ${hex(offset)} is not inside the ${hex(buffer.size)}-byte buffer`);
    const size = options.size === undefined ? buffer.size - offset : toU64(options.size, 'size');
    if (size === 0n) throw invalid('a zero-length DMA mapping');
    if (size % a !== 0n) throw invalid(`size ${hex(size)} is not a multiple of the IOVA alignment ${hex(a)}`);
    if (offset + size > buffer.size) throw invalid(`${hex(size)} bytes at offset ${hex(offset)} run past the end of the ${hex(buffer.size)}-byte buffer`);
    const read = options.read ?? true;
    const write = options.write ?? true;
    if (!read && !write) throw invalid('a mapping must allow the device to read or write');

    const fixed = options.iova === undefined ? undefined : toU64(options.iova, 'iova');
    if (fixed !== undefined) this.#checkFree(fixed, size);
    this.checkLimit(size);

    let iova: bigint;
    let placement: DmaMapping['placement'];
    let allocated = false;
    if (fixed !== undefined || !this.#kernelIova) {
      iova = fixed ?? this.allocator.alloc(size, options.align === undefined ? {} : { align: options.align });
      if (fixed !== undefined) this.allocator.reserve(fixed, size);
      allocated = true;
      placement = fixed === undefined ? 'allocated' : 'fixed';
      try {
        this.space.map(buffer, { iova, offset, size, read, write });
      } catch (e) {
        this.allocator.free(iova);
        throw e;
      }
    } else {
      iova = this.space.map(buffer, { offset, size, read, write });
      placement = 'kernel';
      // Keep the allocator out of the kernel's choice (when it lies in the allocator's ranges).
      if (this.allocator.ranges.some((r) => r.start <= iova && iova + size - 1n <= r.last)) {
        try {
          this.allocator.reserve(iova, size);
          allocated = true;
        } catch (e) {
          this.space.unmap(iova, size);
          throw e;
        }
      }
    }
    const entry: Entry = { iova, size, buffer, offset, read, write, placement, allocated };
    this.#entries.set(iova, entry);
    return publicView(entry);
  }

  /** Refuses a fixed IOVA that is unaligned, outside the ranges or overlapping a mapping in the table. */
  #checkFree(iova: bigint, size: bigint): void {
    if (iova % this.alignment !== 0n) throw invalid(`IOVA ${hex(iova)} is not a multiple of the IOVA alignment ${hex(this.alignment)}`);
    const end = iova + size;
    const clash = [...this.#entries.values()].find((e) => e.iova < end && iova < e.iova + e.size);
    if (clash) {
      throw new VfioError({
        code: 'EEXIST',
        errno: 17,
        operation: OP_MAP,
        message: `EEXIST: IOVA ${hex(iova)}..${hex(end - 1n)} overlaps the mapping at ${hex(clash.iova)}..${hex(clash.iova + clash.size - 1n)}`,
      });
    }
    if (!this.allocator.ranges.some((r) => r.start <= iova && end - 1n <= r.last)) {
      const where = this.allocator.ranges.map((r) => `${hex(r.start)}..${hex(r.last)}`).join(', ') || 'none';
      throw invalid(`IOVA ${hex(iova)}..${hex(end - 1n)} is outside the usable ranges (${where})`);
    }
  }

  /** What RLIMIT_MEMLOCK allows now (see memlockStatus). */
  memlock(): MemlockStatus {
    return memlockStatus(this.space.backend, this.#readProc);
  }

  /** Throws DmaLimitError if pinning `bytes` more would pass RLIMIT_MEMLOCK; a no-op when nothing is pinned or accounted. */
  checkLimit(bytes: bigint | number): void {
    if (!this.pinning) return;
    const s = this.memlock();
    if (s.ipcLock || s.limit === null) return;
    const n = toU64(bytes, 'bytes');
    if (s.locked + n > s.limit) throw new DmaLimitError(n, { ...s, limit: s.limit });
  }

  /**
   * Unmaps one mapping (the object map() returned, or its IOVA) and returns the
   * bytes unmapped. ENOENT, before any syscall, if the table has no mapping
   * starting there. The buffer can be freed once nothing maps it.
   */
  unmap(mapping: DmaMapping | bigint | number): bigint {
    const iova = typeof mapping === 'object' ? mapping.iova : toU64(mapping, 'iova');
    const e = this.#entries.get(iova);
    if (!e || (typeof mapping === 'object' && mapping.buffer !== e.buffer)) {
      throw new VfioError({ code: 'ENOENT', errno: ENOENT, operation: OP_UNMAP, message: `ENOENT: no mapping starts at IOVA ${hex(iova)}` });
    }
    let bytes: bigint;
    try {
      bytes = this.space.unmap(e.iova, e.size);
    } catch (err) {
      // iommufd: ENOENT means the kernel holds nothing there any more (unmapped behind our back).
      if ((err as VfioError).code === 'ENOENT') this.#drop(e);
      throw err;
    }
    this.#drop(e);
    return bytes;
  }

  #drop(e: Entry): void {
    this.#entries.delete(e.iova);
    if (e.allocated) this.allocator.free(e.iova);
  }

  /** Unmaps everything in the space (also what was mapped without this mapper); returns the bytes. */
  unmapAll(): bigint {
    const bytes = this.space.unmapAll();
    for (const e of [...this.#entries.values()]) this.#drop(e);
    return bytes;
  }

  /** The mappings, by IOVA. */
  mappings(): DmaMapping[] {
    return [...this.#entries.values()].sort((a, b) => (a.iova < b.iova ? -1 : 1)).map(publicView);
  }

  /**
   * vaddr → iova: the IOVA at which the device sees byte `offset` of `buffer`
   * (or the first byte of a view over a DmaBuffer's memory), or undefined when
   * no mapping covers it.
   */
  lookup(buffer: DmaBuffer, offset?: bigint | number): bigint | undefined;
  lookup(view: ArrayBufferView): bigint | undefined;
  lookup(target: DmaBuffer | ArrayBufferView, offset: bigint | number = 0): bigint | undefined {
    let off: bigint;
    let match: (e: Entry) => boolean;
    if (ArrayBuffer.isView(target)) {
      off = BigInt(target.byteOffset);
      match = (e) => !e.buffer.freed && e.buffer.buffer === target.buffer;
    } else {
      off = toU64(offset, 'offset');
      match = (e) => e.buffer === target;
    }
    for (const e of this.#entries.values()) if (match(e) && e.offset <= off && off < e.offset + e.size) return e.iova + (off - e.offset);
    return undefined;
  }

  /** The mapping containing `iova`, if any (iova → buffer). */
  find(iova: bigint | number): DmaMapping | undefined {
    const i = toU64(iova, 'iova');
    for (const e of this.#entries.values()) if (e.iova <= i && i < e.iova + e.size) return publicView(e);
    return undefined;
  }
}

function publicView(e: Entry): DmaMapping {
  return Object.freeze({ iova: e.iova, size: e.size, buffer: e.buffer, offset: e.offset, read: e.read, write: e.write, placement: e.placement });
}

/** Whether a device is an mdev (its DMA is only bookkeeping unless its vendor driver pins pages). */
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

/** The outcome of DirtyTracking.probe(). */
export type DirtyProbe =
  | { supported: true; backend: 'type1' | 'iommufd'; pageSize: bigint; detail: string }
  | { supported: false; backend: 'type1' | 'iommufd'; code: string; errno: number; detail: string };

/**
 * Dirty-page tracking over the mapper's space: type1's VFIO_IOMMU_DIRTY_PAGES
 * (the container's MIGRATION capability), or an iommufd HWPT allocated with
 * IOMMU_HWPT_ALLOC_DIRTY_TRACKING that the devices are attached to while
 * tracking. probe() says honestly whether it works, with the kernel's errno
 * when it does not.
 */
export class DirtyTracking {
  readonly #mapper: DmaMapper;
  readonly #devices: readonly Device[];
  #active = false;
  #hwpt: Hwpt | null = null;
  #pageSize = PAGE;

  /** @internal */
  constructor(mapper: DmaMapper, devices: readonly Device[]) {
    this.#mapper = mapper;
    this.#devices = devices;
  }

  get active(): boolean {
    return this.#active;
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

  /** Whether tracking works here; never starts it (on iommufd it may allocate and free a HWPT to learn the kernel's answer). */
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
   * tracking. Throws the kernel's error where unsupported.
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

  /** Stops tracking (iommufd: the devices go back to the IOAS and the HWPT is freed). */
  stop(): void {
    if (!this.#active) return;
    const t1 = this.#type1();
    if (t1) {
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

  /** The raw bitmap of [iova, iova+size): bit i set when page i was dirtied since the last read (type1 clears on read). */
  bitmap(iova: bigint | number, size: bigint | number, pageSize: bigint | number = this.#pageSize): Buffer {
    if (!this.#active) throw new VfioError({ code: 'EINVAL', errno: EINVAL, operation: 'dirty bitmap', message: 'EINVAL: dirty tracking is not started' });
    const t1 = this.#type1();
    if (t1) return native().iommuDirtyPages(t1.handle('dirty bitmap'), 4, toU64(iova, 'iova'), toU64(size, 'size'), toU64(pageSize, 'pageSize'));
    return this.#hwpt!.dirtyBitmap(iova, size, pageSize);
  }

  /** The IOVAs of the dirty pages of a mapping (or range). */
  dirtyPages(range: { iova: bigint; size: bigint }, pageSize: bigint = this.#pageSize): bigint[] {
    const bm = this.bitmap(range.iova, range.size, pageSize);
    const pages: bigint[] = [];
    const n = Number((range.size + pageSize - 1n) / pageSize);
    for (let i = 0; i < n; i++) if ((bm[i >> 3]! >> (i & 7)) & 1) pages.push(range.iova + BigInt(i) * pageSize);
    return pages;
  }
}
