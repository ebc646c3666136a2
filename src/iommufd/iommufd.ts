/**
 * iommufd (/dev/iommu): IO address spaces (IOAS), hardware page tables (HWPT),
 * options and IOMMU hardware info.
 */
import { VfioError } from '../errors.js';
import { type DmaBuffer, type DmaMapOptions, type DmaSpace, type IovaRange } from '../dma/buffer.js';
import { native, type NativeFd } from '../native.js';
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

export const IOMMUFD_PATH = '/dev/iommu';

/** IOMMU_IOAS_MAP/COPY flags: FIXED_IOVA when an iova is given; readable and writeable unless refused. */
function mapFlags(o: { iova?: unknown; read?: boolean; write?: boolean }): number {
  return (o.iova === undefined ? 0 : IOMMU_IOAS_MAP_FIXED_IOVA) | (o.read === false ? 0 : IOMMU_IOAS_MAP_READABLE) | (o.write === false ? 0 : IOMMU_IOAS_MAP_WRITEABLE);
}
const U64_MAX = 0xffff_ffff_ffff_ffffn;

export interface HwInfo {
  /** IOMMU_HW_INFO_TYPE_*: 0 none, 1 Intel VT-d. */
  type: number;
  typeName: 'none' | 'intel-vtd' | `type ${number}`;
  maxPasidLog2: number;
  capabilities: bigint;
  /** Decoded for Intel VT-d. */
  vtd?: IommuHwInfoVtd;
  /** The raw data, for other types. */
  raw: Buffer;
}

export class IommuFd extends Resource {
  readonly #fd: NativeFd;

  /** @internal */
  constructor(fd: NativeFd) {
    super();
    this.#fd = fd;
  }

  /** Opens /dev/iommu (or `path`). */
  static open(path = IOMMUFD_PATH): IommuFd {
    return new IommuFd(native().open(path, 'iommufd'));
  }

  /** Adopts an iommufd handed in by another process (duplicated; yours stays yours). */
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

  /** @internal Makes `r` close before this iommufd. */
  own(r: Resource): void {
    this.adopt(r);
  }

  /** IOMMU_IOAS_ALLOC: a new, empty IO address space. */
  allocIoas(): Ioas {
    const id = native().ioasAlloc(this.handle('allocate IOAS'));
    const ioas = new Ioas(this, id);
    this.adopt(ioas);
    return ioas;
  }

  /**
   * IOMMU_HWPT_ALLOC: a hardware page table for device `devId` on `parent`
   * (an IOAS or HWPT id). Emulated (mdev) devices have none: ENOENT.
   */
  allocHwpt(devId: number, parent: Ioas | number, options: { flags?: number; dataType?: number; data?: Uint8Array } = {}): Hwpt {
    const ptId = typeof parent === 'number' ? toU32(parent, 'parent') : parent.id;
    const id = native().hwptAlloc(this.handle('allocate HWPT'), toU32(options.flags ?? 0, 'flags'), toU32(devId, 'devId'), ptId, toU32(options.dataType ?? 0, 'dataType'), options.data);
    const hwpt = new Hwpt(this, id);
    this.adopt(hwpt);
    return hwpt;
  }

  /** IOMMU_GET_HW_INFO for a bound device (by the devid its bind returned). */
  hwInfo(devId: number): HwInfo {
    const r = native().getHwInfo(this.handle('hw info'), toU32(devId, 'devId'), 64);
    const typeName = r.type === 0 ? 'none' : r.type === IOMMU_HW_INFO_TYPE_INTEL_VTD ? 'intel-vtd' : (`type ${r.type}` as const);
    const info: HwInfo = { type: r.type, typeName, maxPasidLog2: r.maxPasidLog2, capabilities: r.capabilities, raw: r.data.subarray(0, r.dataLen) };
    if (r.type === IOMMU_HW_INFO_TYPE_INTEL_VTD) info.vtd = decodeHwInfoVtd(r.data);
    return info;
  }

  /** IOMMU_OPTION get (`value` omitted) or set, for `objectId` (0 = the whole iommufd). Returns the value. */
  option(optionId: number, objectId = 0, value?: bigint): bigint {
    const op = value === undefined ? IOMMU_OPTION_OP_GET : IOMMU_OPTION_OP_SET;
    return native().iommufdOption(this.handle('option'), toU32(optionId, 'optionId'), op, toU32(objectId, 'objectId'), value === undefined ? 0n : toU64(value, 'value'));
  }

  /** RLIMIT accounting: 'user' (iommufd's default) or 'mm' (per process, like type1). */
  rlimitMode(mode?: 'user' | 'mm'): 'user' | 'mm' {
    const v = this.option(IOMMU_OPTION_RLIMIT_MODE, 0, mode === undefined ? undefined : mode === 'mm' ? 1n : 0n);
    return v === 1n ? 'mm' : 'user';
  }

  /** Whether an IOAS may use huge IOMMU pages (IOMMU_OPTION_HUGE_PAGES). */
  hugePages(ioas: Ioas, enable?: boolean): boolean {
    return this.option(IOMMU_OPTION_HUGE_PAGES, ioas.id, enable === undefined ? undefined : enable ? 1n : 0n) === 1n;
  }

  /** IOMMU_DESTROY of any object by id (IOAS, HWPT, …). Prefer the objects' close(). */
  destroy(id: number): void {
    native().iommufdDestroy(this.handle('destroy'), toU32(id, 'id'));
  }

  protected release(): void {
    this.#fd.close();
  }
}

/** An IO address space. Devices attached to it close before it; it closes before its iommufd. */
export class Ioas extends Resource implements DmaSpace {
  readonly backend = 'iommufd' as const;
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

  /** IOMMU_IOAS_IOVA_RANGES: the usable ranges (inclusive) and the required alignment. */
  iovaRanges(): { ranges: IovaRange[]; alignment: bigint } {
    const h = this.#h('iova ranges');
    let r = native().ioasIovaRanges(h, this.id, 8);
    if (r.numIovas > 8) r = native().ioasIovaRanges(h, this.id, r.numIovas);
    return { ranges: decodeIovaRanges(r.ranges, r.numIovas), alignment: r.alignment };
  }

  /** IOMMU_IOAS_ALLOW_IOVAS: restricts where the kernel may place mappings. */
  allowIovas(ranges: readonly IovaRange[]): void {
    const b = Buffer.alloc(16 * ranges.length);
    ranges.forEach((r, i) => {
      b.writeBigUInt64LE(toU64(r.start, 'start'), 16 * i);
      b.writeBigUInt64LE(toU64(r.last, 'last'), 16 * i + 8);
    });
    native().ioasAllowIovas(this.#h('allow iovas'), this.id, b);
  }

  /** IOMMU_IOAS_MAP; without `iova` the kernel chooses one. Returns the IOVA. */
  map(buffer: DmaBuffer, o: DmaMapOptions = {}): bigint {
    // Numbers pass through to the native seam, which checks offset and size against the buffer.
    const offset = u64Arg(o.offset ?? 0, 'offset');
    const size = o.size === undefined ? buffer.size - BigInt(offset) : u64Arg(o.size, 'size');
    return native().ioasMap(this.#h('map'), mapFlags(o), this.id, buffer, offset, size, o.iova === undefined ? 0 : u64Arg(o.iova, 'iova'));
  }

  /** IOMMU_IOAS_UNMAP of whole mappings within the range (ENOENT if it holds none). */
  unmap(iova: bigint | number, size: bigint | number): bigint {
    return native().ioasUnmap(this.#h('unmap'), this.id, u64Arg(iova, 'iova'), u64Arg(size, 'size'));
  }

  /** Unmaps everything in this IOAS. */
  unmapAll(): bigint {
    return native().ioasUnmap(this.#h('unmap'), this.id, 0n, U64_MAX);
  }

  /**
   * IOMMU_IOAS_COPY: maps into this IOAS the pages `src` maps at
   * [srcIova, srcIova+length). Without `iova` the kernel chooses one. Returns the IOVA.
   */
  copyFrom(src: Ioas, srcIova: bigint | number, length: bigint | number, o: { iova?: bigint | number; read?: boolean; write?: boolean } = {}): bigint {
    if (src.#iommufd !== this.#iommufd) throw new VfioError({ code: 'EINVAL', errno: 22, operation: 'IOMMU_IOAS_COPY', message: 'both IOASes must belong to the same iommufd' });
    return native().ioasCopy(this.#h('copy'), mapFlags(o), this.id, src.id, toU64(length, 'length'), o.iova === undefined ? 0n : toU64(o.iova, 'iova'), toU64(srcIova, 'srcIova'));
  }

  protected release(): void {
    if (!this.#iommufd.closed) native().iommufdDestroy(this.#iommufd.handle('destroy IOAS'), this.id);
  }
}

/** A hardware page table (vfio-pci devices behind a real or emulated IOMMU). */
export class Hwpt extends Resource {
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

  /** IOMMU_HWPT_SET_DIRTY_TRACKING (the HWPT must be allocated with DIRTY_TRACKING). */
  setDirtyTracking(enable: boolean): void {
    this.ensureOpen('dirty tracking');
    native().hwptSetDirtyTracking(this.#iommufd.handle('dirty tracking'), this.id, enable);
  }

  /** IOMMU_HWPT_GET_DIRTY_BITMAP: one bit per `pageSize` page of [iova, iova+length). */
  dirtyBitmap(iova: bigint | number, length: bigint | number, pageSize: bigint | number = 4096n, flags = 0): Buffer {
    this.ensureOpen('dirty bitmap');
    return native().hwptGetDirtyBitmap(this.#iommufd.handle('dirty bitmap'), this.id, toU64(iova, 'iova'), toU64(length, 'length'), toU64(pageSize, 'pageSize'), flags);
  }

  protected release(): void {
    if (!this.#iommufd.closed) native().iommufdDestroy(this.#iommufd.handle('destroy HWPT'), this.id);
  }
}
