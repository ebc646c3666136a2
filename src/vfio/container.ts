/**
 * The legacy VFIO container (/dev/vfio/vfio) with the type1 IOMMU backend.
 */
import { VfioError } from '../errors.js';
import { native, type NativeDmaBuffer, type NativeFd } from '../native.js';
import { Resource, toU64, u64Arg } from '../resource.js';
import { type DmaBuffer, type DmaMapOptions, type DmaSpace, type IovaRange } from '../dma/buffer.js';
import type { Group } from './group.js';
import { VFIO_EXTENSIONS, VFIO_TYPE1v2_IOMMU } from '../uapi/constants.js';
import { decodeType1Info, type Type1Info } from '../uapi/vfio.js';

export const CONTAINER_PATH = '/dev/vfio/vfio';
const TYPE1_INFO_SIZE = 24;
const DMA_READ = 1;
const DMA_WRITE = 2;
const UNMAP_ALL = 2;

export interface MapDmaOptions {
  /** The I/O virtual address the device will use. */
  iova: bigint | number;
  /** Offset into the buffer (default 0). */
  offset?: bigint | number;
  /** Bytes to map (default: the rest of the buffer). */
  size?: bigint | number;
  /** Device may read (default true). */
  read?: boolean;
  /** Device may write (default true). */
  write?: boolean;
}

export class Container extends Resource implements DmaSpace {
  readonly backend = 'type1' as const;
  readonly #fd: NativeFd;
  #iommuSet = false;

  /** @internal */
  constructor(fd: NativeFd) {
    super();
    this.#fd = fd;
  }

  /** Opens /dev/vfio/vfio (or `path`). */
  static open(path = CONTAINER_PATH): Container {
    return new Container(native().open(path, 'container'));
  }

  /** Adopts a container fd handed in by another process (it is duplicated; yours stays yours). */
  static adopt(fd: number): Container {
    return new Container(native().adopt(fd, 'container', `container fd ${fd}`));
  }

  protected describe(): string {
    return `container ${this.#fd.path}`;
  }

  /** @internal */
  handle(operation: string): NativeFd {
    this.ensureOpen(operation);
    return this.#fd;
  }

  /** @internal Called by Group.setContainer. */
  attach(group: Group): void {
    this.adopt(group);
  }

  /** VFIO_GET_API_VERSION (0 for every kernel so far). */
  apiVersion(): number {
    return native().getApiVersion(this.handle('api version'));
  }

  /** VFIO_CHECK_EXTENSION: true if the kernel supports `extension` (e.g. VFIO_TYPE1v2_IOMMU). */
  checkExtension(extension: number): boolean {
    return native().checkExtension(this.handle('check extension'), extension) > 0;
  }

  /** Every known extension by name → supported. */
  extensions(): Record<string, boolean> {
    return Object.fromEntries(Object.entries(VFIO_EXTENSIONS).map(([name, id]) => [name, this.checkExtension(id)]));
  }

  /** VFIO_SET_IOMMU; needs at least one group in the container. TYPE1v2 by default. */
  setIommu(type: number = VFIO_TYPE1v2_IOMMU): void {
    native().setIommu(this.handle('set iommu'), type);
    this.#iommuSet = true;
  }

  get iommuSet(): boolean {
    return this.#iommuSet;
  }

  /** VFIO_IOMMU_GET_INFO with every capability decoded (IOVA ranges, migration, DMA available). */
  iommuInfo(): Type1Info {
    const h = this.handle('iommu info');
    const first = decodeType1Info(native().iommuGetInfo(h, TYPE1_INFO_SIZE));
    return first.truncated ? decodeType1Info(native().iommuGetInfo(h, first.argsz)) : first;
  }

  /**
   * VFIO_IOMMU_MAP_DMA of (part of) a native DMA buffer. The buffer cannot be
   * freed while mapped. Raw: no IOVA allocation, no limit checks (see the DMA layer).
   */
  mapDma(buffer: NativeDmaBuffer, o: MapDmaOptions): void {
    // Numbers pass through to the native seam, which checks offset and size against the buffer.
    const offset = u64Arg(o.offset ?? 0, 'offset');
    const size = o.size === undefined ? buffer.size - BigInt(offset) : u64Arg(o.size, 'size');
    const flags = (o.read === false ? 0 : DMA_READ) | (o.write === false ? 0 : DMA_WRITE);
    native().mapDma(this.handle('map dma'), flags, buffer, offset, u64Arg(o.iova, 'iova'), size);
  }

  /** VFIO_IOMMU_UNMAP_DMA of [iova, iova+size); returns the bytes unmapped. */
  unmapDma(iova: bigint | number, size: bigint | number): bigint {
    return native().unmapDma(this.handle('unmap dma'), 0, u64Arg(iova, 'iova'), u64Arg(size, 'size'));
  }

  /** DmaSpace.map: type1 has no kernel-chosen IOVAs, so `iova` is required. Returns it. */
  map(buffer: DmaBuffer, o: DmaMapOptions): bigint {
    if (o.iova === undefined) throw new TypeError('the type1 backend needs an iova for every mapping');
    this.mapDma(buffer, { ...o, iova: o.iova });
    return toU64(o.iova, 'iova');
  }

  unmap(iova: bigint | number, size: bigint | number): bigint {
    return this.unmapDma(iova, size);
  }

  /**
   * DmaSpace.iovaRanges: the IOVA_RANGE capability (inclusive ranges), or the
   * whole space when the container has none (only mdev groups); the alignment is
   * the smallest IOMMU page size.
   */
  iovaRanges(): { ranges: IovaRange[]; alignment: bigint } {
    const info = this.iommuInfo();
    const cap = info.caps.find((c) => c.kind === 'iova-range') as { ranges: { start: bigint; end: bigint }[] } | undefined;
    const ranges = cap ? cap.ranges.map((r) => ({ start: r.start, last: r.end })) : [{ start: 0n, last: 0xffff_ffff_ffff_ffffn }];
    const pg = info.iovaPgsizes;
    return { ranges, alignment: pg === 0n ? 4096n : pg & -pg };
  }

  /** Unmaps everything (VFIO_DMA_UNMAP_FLAG_ALL); returns the bytes unmapped. */
  unmapAll(): bigint {
    return native().unmapDma(this.handle('unmap dma'), UNMAP_ALL, 0n, 0n);
  }

  protected release(): void {
    this.#fd.close();
  }
}

export function assertIommuSet(c: Container | null, what: string): void {
  if (c && !c.iommuSet) {
    throw new VfioError({ code: 'EINVAL', errno: 22, operation: what, message: `the container has no IOMMU set yet: call container.setIommu() before ${what}` });
  }
}
