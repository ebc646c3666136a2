/**
 * iommufd (/dev/iommu): IO address spaces (IOAS), hardware page tables (HWPT),
 * options and IOMMU hardware info.
 */
import { VfioError } from '../errors.js';
import { type DmaBuffer, type DmaMapOptions, type DmaSpace, type IovaRange } from '../dma/buffer.js';
import { native, type NativeFd, type NativeFdKey } from '../native.js';
import { Resource, toU32, toU64, u64Arg } from '../resource.js';
import {
  IOMMU_HW_INFO_TYPE_INTEL_VTD,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_OPTION_HUGE_PAGES,
  IOMMU_OPTION_OP_GET,
  IOMMU_OPTION_OP_SET,
  IOMMU_OPTION_RLIMIT_MODE,
} from '../uapi/constants.js';
import { decodeHwInfoVtd, decodeIovaRanges, type IommuHwInfoVtd } from '../uapi/iommufd.js';

/** The iommufd node that {@link IommuFd.open} opens by default. */
export const IOMMUFD_PATH = '/dev/iommu';

/** IOMMU_IOAS_MAP/COPY flags: FIXED_IOVA when an iova is given; readable and writeable unless refused. */
function mapFlags(o: { iova?: unknown; read?: boolean; write?: boolean }): number {
  return (o.iova === undefined ? 0 : IOMMU_IOAS_MAP_FIXED_IOVA) | (o.read === false ? 0 : IOMMU_IOAS_MAP_READABLE) | (o.write === false ? 0 : IOMMU_IOAS_MAP_WRITEABLE);
}
const U64_MAX = 0xffff_ffff_ffff_ffffn;

/** What the IOMMU behind a bound device offers, from {@link IommuFd.hwInfo}. */
export interface HwInfo {
  /** IOMMU_HW_INFO_TYPE_*: 0 none, 1 Intel VT-d. */
  type: number;
  /** `type` by name: 'none', 'intel-vtd', or 'type N' for a type this package does not know. */
  typeName: 'none' | 'intel-vtd' | `type ${number}`;
  /** log2 of the number of PASIDs the IOMMU supports for the device (0: no PASID). */
  maxPasidLog2: number;
  /** IOMMU_HW_CAP_* bits; see {@link HW_INFO_CAPS} (DIRTY_TRACKING). */
  capabilities: bigint;
  /** Decoded for Intel VT-d. */
  vtd?: IommuHwInfoVtd;
  /** The raw data, for other types. */
  raw: Buffer;
}

/**
 * An iommufd (`/dev/iommu`), the modern DMA-space interface: allocate IO
 * address spaces ({@link IommuFd.allocIoas}), bind device cdevs to it
 * ({@link Device.bind}) and attach them to an IOAS or a hardware page table.
 *
 * ```ts
 * using iommufd = IommuFd.open();
 * const ioas = iommufd.allocIoas();
 * const device = Device.openCdev('/dev/vfio/devices/vfio0');
 * device.bind(iommufd);
 * device.attach(ioas);
 * ```
 *
 * Closing it closes its devices, HWPTs and IOASes first.
 */
export class IommuFd extends Resource {
  readonly #fd: NativeFd;

  /** @internal */
  constructor(fd: NativeFd) {
    super();
    this.#fd = fd;
  }

  /**
   * Opens a new iommufd.
   *
   * @param path - default {@link IOMMUFD_PATH}
   * @throws {@link VfioError} ENOENT without iommufd (modprobe iommufd), EACCES when the node is root-only
   */
  static open(path = IOMMUFD_PATH): IommuFd {
    return new IommuFd(native().open(path, 'iommufd'));
  }

  /**
   * Adopts an iommufd handed in by another process. The fd is duplicated:
   * the caller keeps and closes its own.
   *
   * @param fd - an open `/dev/iommu` fd
   */
  static adopt(fd: number): IommuFd {
    return new IommuFd(native().adopt(fd, 'iommufd', `iommufd fd ${fd}`));
  }

  protected describe(): string {
    return `iommufd ${this.#fd.path}`;
  }

  /** @internal */
  handle(operation: string): NativeFd {
    this.ensureOpen(operation);
    return this.#fd;
  }

  /** @internal The native fd's key, checked open: what DMA map/unmap pass. */
  key(operation: string): NativeFdKey {
    return this.fdKey(this.#fd, operation);
  }

  /** @internal Makes `r` close before this iommufd. */
  own(r: Resource): void {
    this.adopt(r);
  }

  /** IOMMU_IOAS_ALLOC: a new, empty IO address space, which this iommufd closes before itself. */
  allocIoas(): Ioas {
    const id = native().ioasAlloc(this.handle('allocate IOAS'));
    const ioas = new Ioas(this, id);
    this.adopt(ioas);
    return ioas;
  }

  /**
   * IOMMU_HWPT_ALLOC: a hardware page table for device `devId` on `parent`
   * (an IOAS or HWPT id). Emulated (mdev) devices have none: ENOENT.
   *
   * @param devId - the devid {@link Device.bind} returned
   * @param parent - the IOAS (or a parent HWPT id for nesting)
   * @param options - IOMMU_HWPT_ALLOC_* `flags` (e.g. {@link IOMMU_HWPT_ALLOC_DIRTY_TRACKING}),
   *   and a driver-specific `dataType` with its `data` for nested tables
   * @throws {@link VfioError} ENOENT for a device without a real IOMMU (mdev),
   *   EOPNOTSUPP for flags the IOMMU lacks
   */
  allocHwpt(devId: number, parent: Ioas | number, options: { flags?: number; dataType?: number; data?: Uint8Array } = {}): Hwpt {
    const ptId = typeof parent === 'number' ? toU32(parent, 'parent') : parent.id;
    const id = native().hwptAlloc(this.handle('allocate HWPT'), toU32(options.flags ?? 0, 'flags'), toU32(devId, 'devId'), ptId, toU32(options.dataType ?? 0, 'dataType'), options.data);
    const hwpt = new Hwpt(this, id);
    this.adopt(hwpt);
    return hwpt;
  }

  /**
   * IOMMU_GET_HW_INFO for a bound device: the IOMMU's type, capabilities and,
   * for Intel VT-d, its cap/ecap registers decoded.
   *
   * @param devId - the devid {@link Device.bind} returned
   * @throws {@link VfioError} ENOENT for a device without a real IOMMU (an mdev's devid names no IOMMU device)
   */
  hwInfo(devId: number): HwInfo {
    const r = native().getHwInfo(this.handle('hw info'), toU32(devId, 'devId'), 64);
    const typeName = r.type === 0 ? 'none' : r.type === IOMMU_HW_INFO_TYPE_INTEL_VTD ? 'intel-vtd' : (`type ${r.type}` as const);
    const info: HwInfo = { type: r.type, typeName, maxPasidLog2: r.maxPasidLog2, capabilities: r.capabilities, raw: r.data.subarray(0, r.dataLen) };
    if (r.type === IOMMU_HW_INFO_TYPE_INTEL_VTD) info.vtd = decodeHwInfoVtd(r.data);
    return info;
  }

  /**
   * IOMMU_OPTION: gets (`value` omitted) or sets an option.
   *
   * @param optionId - {@link IOMMU_OPTION_RLIMIT_MODE} or {@link IOMMU_OPTION_HUGE_PAGES}
   * @param objectId - the object the option applies to: 0 for the whole iommufd, or an IOAS id
   * @param value - the value to set
   * @returns the option's value (after setting)
   * @throws {@link VfioError} EPERM when setting the RLIMIT mode without CAP_SYS_RESOURCE,
   *   EBUSY when setting it once the iommufd holds objects
   */
  option(optionId: number, objectId = 0, value?: bigint): bigint {
    const op = value === undefined ? IOMMU_OPTION_OP_GET : IOMMU_OPTION_OP_SET;
    return native().iommufdOption(this.handle('option'), toU32(optionId, 'optionId'), op, toU32(objectId, 'objectId'), value === undefined ? 0n : toU64(value, 'value'));
  }

  /**
   * Gets or sets how pinned pages are charged against RLIMIT_MEMLOCK:
   * 'user' (per user, iommufd's default) or 'mm' (per process, like type1).
   *
   * @param mode - the mode to set; omitted, the mode is only read
   * @returns the mode now in effect
   * @throws {@link VfioError} EBUSY when setting it once the iommufd holds objects
   *   (an IOAS, a bound device); EPERM without CAP_SYS_RESOURCE
   */
  rlimitMode(mode?: 'user' | 'mm'): 'user' | 'mm' {
    const v = this.option(IOMMU_OPTION_RLIMIT_MODE, 0, mode === undefined ? undefined : mode === 'mm' ? 1n : 0n);
    return v === 1n ? 'mm' : 'user';
  }

  /**
   * Gets or sets whether an IOAS may use huge IOMMU pages (IOMMU_OPTION_HUGE_PAGES;
   * on by default). Set it before mapping.
   *
   * @param enable - the value to set; omitted, it is only read
   * @returns whether huge pages are enabled now
   */
  hugePages(ioas: Ioas, enable?: boolean): boolean {
    return this.option(IOMMU_OPTION_HUGE_PAGES, ioas.id, enable === undefined ? undefined : enable ? 1n : 0n) === 1n;
  }

  /**
   * IOMMU_DESTROY of any object by id (IOAS, HWPT, …). Prefer the objects' close().
   *
   * @throws {@link VfioError} EBUSY while the object is in use (a device is attached to it)
   */
  destroy(id: number): void {
    native().iommufdDestroy(this.handle('destroy'), toU32(id, 'id'));
  }

  protected release(): void {
    this.#fd.close();
  }
}

/**
 * An IO address space of an iommufd, from {@link IommuFd.allocIoas}: the
 * mappings that devices attached to it see. It implements {@link DmaSpace};
 * unlike type1, the kernel can choose IOVAs. Devices attached to it close
 * before it; it closes before its iommufd.
 */
export class Ioas extends Resource implements DmaSpace {
  /** Always `'iommufd'`: which {@link DmaSpace} backend this is. */
  readonly backend = 'iommufd' as const;
  /** The IOAS object id within its iommufd (what {@link Device.attach} passes to the kernel). */
  readonly id: number;
  readonly #iommufd: IommuFd;

  /** @internal */
  constructor(iommufd: IommuFd, id: number) {
    super();
    this.#iommufd = iommufd;
    this.id = id;
  }

  protected describe(): string {
    return `IOAS ${this.id}`;
  }

  /** The iommufd this IOAS belongs to. */
  get iommufd(): IommuFd {
    return this.#iommufd;
  }

  /** @internal Makes `r` (an attached device) close before this IOAS. */
  own(r: Resource): void {
    this.adopt(r);
  }

  #h(operation: string): NativeFd {
    this.ensureOpen(operation);
    return this.#iommufd.handle(operation);
  }

  #k(operation: string): NativeFdKey {
    this.ensureOpen(operation);
    return this.#iommufd.key(operation);
  }

  /**
   * IOMMU_IOAS_IOVA_RANGES: the usable ranges (inclusive) and the required
   * alignment, given the devices attached now (each narrows them).
   */
  iovaRanges(): {
    /** The inclusive IOVA ranges that mappings may use, in ascending order. */
    ranges: IovaRange[];
    /** The alignment every IOVA and size must have, in bytes. */
    alignment: bigint;
  } {
    const h = this.#h('iova ranges');
    let r = native().ioasIovaRanges(h, this.id, 8);
    if (r.numIovas > 8) r = native().ioasIovaRanges(h, this.id, r.numIovas);
    return { ranges: decodeIovaRanges(r.ranges, r.numIovas), alignment: r.alignment };
  }

  /**
   * IOMMU_IOAS_ALLOW_IOVAS: restricts where the kernel may choose IOVAs for
   * maps without a fixed one. An empty list lifts the restriction.
   *
   * @throws {@link VfioError} when the kernel refuses the ranges (EADDRINUSE
   *   over a range reserved for an attached device)
   */
  allowIovas(ranges: readonly IovaRange[]): void {
    const b = Buffer.alloc(16 * ranges.length);
    ranges.forEach((r, i) => {
      b.writeBigUInt64LE(toU64(r.start, 'start'), 16 * i);
      b.writeBigUInt64LE(toU64(r.last, 'last'), 16 * i + 8);
    });
    native().ioasAllowIovas(this.#h('allow iovas'), this.id, b);
  }

  /**
   * IOMMU_IOAS_MAP of (part of) a DMA buffer; without `options.iova` the kernel chooses one.
   *
   * @returns the IOVA of the mapping
   * @throws RangeError when offset and size do not lie within the buffer
   * @throws {@link VfioError} ENOMEM past RLIMIT_MEMLOCK (see the hint), EEXIST over an
   *   existing mapping, ENOSPC when no free IOVA range is large enough
   */
  map(buffer: DmaBuffer, o: DmaMapOptions = {}): bigint {
    // Numbers pass through to the native seam, which checks offset and size against the buffer.
    const offset = u64Arg(o.offset ?? 0, 'offset');
    const size = o.size === undefined ? buffer.size - BigInt(offset) : u64Arg(o.size, 'size');
    return native().ioasMap(this.#k('map'), mapFlags(o), this.id, buffer, offset, size, o.iova === undefined ? 0 : u64Arg(o.iova, 'iova'));
  }

  /**
   * IOMMU_IOAS_UNMAP of the whole mappings within `[iova, iova + size)`.
   *
   * @returns the number of bytes unmapped
   * @throws {@link VfioError} ENOENT when the range holds no mapping
   */
  unmap(iova: bigint | number, size: bigint | number): bigint {
    return native().ioasUnmap(this.#k('unmap'), this.id, u64Arg(iova, 'iova'), u64Arg(size, 'size'));
  }

  /**
   * Unmaps everything in this IOAS.
   *
   * @returns the number of bytes unmapped
   */
  unmapAll(): bigint {
    return native().ioasUnmap(this.#h('unmap'), this.id, 0n, U64_MAX);
  }

  /**
   * IOMMU_IOAS_COPY: maps into this IOAS the pages `src` maps at
   * [srcIova, srcIova+length), without pinning them again. Without `iova`
   * the kernel chooses one.
   *
   * @param src - another IOAS of the same iommufd
   * @param o - a fixed IOVA, and the device's access (read and write by default)
   * @returns the IOVA in this IOAS
   * @throws {@link VfioError} EINVAL when `src` belongs to another iommufd;
   *   ENOENT when the source range is not exactly covered by mappings
   */
  copyFrom(src: Ioas, srcIova: bigint | number, length: bigint | number, o: { iova?: bigint | number; read?: boolean; write?: boolean } = {}): bigint {
    if (src.#iommufd !== this.#iommufd) throw new VfioError({ code: 'EINVAL', errno: 22, operation: 'IOMMU_IOAS_COPY', message: 'both IOASes must belong to the same iommufd' });
    return native().ioasCopy(this.#h('copy'), mapFlags(o), this.id, src.id, toU64(length, 'length'), o.iova === undefined ? 0n : toU64(o.iova, 'iova'), toU64(srcIova, 'srcIova'));
  }

  protected release(): void {
    if (!this.#iommufd.closed) native().iommufdDestroy(this.#iommufd.handle('destroy IOAS'), this.id);
  }
}

/**
 * A hardware page table from {@link IommuFd.allocHwpt}, for vfio-pci devices
 * behind a real (or emulated) IOMMU: attach devices to it instead of the
 * IOAS to use its features, such as dirty tracking. It closes before its iommufd.
 */
export class Hwpt extends Resource {
  /** The HWPT object id within its iommufd. */
  readonly id: number;
  readonly #iommufd: IommuFd;

  /** @internal */
  constructor(iommufd: IommuFd, id: number) {
    super();
    this.#iommufd = iommufd;
    this.id = id;
  }

  protected describe(): string {
    return `HWPT ${this.id}`;
  }

  /** @internal */
  own(r: Resource): void {
    this.adopt(r);
  }

  /**
   * IOMMU_HWPT_SET_DIRTY_TRACKING: starts or stops recording which pages
   * devices write.
   *
   * @throws {@link VfioError} EOPNOTSUPP unless the HWPT was allocated with
   *   {@link IOMMU_HWPT_ALLOC_DIRTY_TRACKING}
   */
  setDirtyTracking(enable: boolean): void {
    this.ensureOpen('dirty tracking');
    native().hwptSetDirtyTracking(this.#iommufd.handle('dirty tracking'), this.id, enable);
  }

  /**
   * IOMMU_HWPT_GET_DIRTY_BITMAP: which pages of `[iova, iova + length)`
   * devices wrote since the last read (the bits are cleared as they are read
   * unless `flags` has IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR).
   *
   * @param pageSize - bytes each bit stands for; default 4096
   * @returns one bit per page, least significant bit first
   */
  dirtyBitmap(iova: bigint | number, length: bigint | number, pageSize: bigint | number = 4096n, flags = 0): Buffer {
    this.ensureOpen('dirty bitmap');
    return native().hwptGetDirtyBitmap(this.#iommufd.handle('dirty bitmap'), this.id, toU64(iova, 'iova'), toU64(length, 'length'), toU64(pageSize, 'pageSize'), flags);
  }

  protected release(): void {
    if (!this.#iommufd.closed) native().iommufdDestroy(this.#iommufd.handle('destroy HWPT'), this.id);
  }
}
