/**
 * The legacy VFIO container (/dev/vfio/vfio) with the type1 IOMMU backend.
 */
import { VfioError } from '../errors.js';
import { native, type NativeDmaBuffer, type NativeFd, type NativeFdKey } from '../native.js';
import { Resource, toU64, u64Arg } from '../resource.js';
import { type DmaBuffer, type DmaMapOptions, type DmaSpace, type IovaRange } from '../dma/buffer.js';
import type { Group } from './group.js';
import { VFIO_EXTENSIONS, VFIO_TYPE1v2_IOMMU } from '../uapi/constants.js';
import { decodeType1Info, type Type1Info } from '../uapi/vfio.js';

/** The legacy VFIO container node that {@link Container.open} opens by default. */
export const CONTAINER_PATH = '/dev/vfio/vfio';
const TYPE1_INFO_SIZE = 24;
const DMA_READ = 1;
const DMA_WRITE = 2;
const UNMAP_ALL = 2;

/** Where and how {@link Container.mapDma} maps a buffer. Sizes and offsets are in bytes. */
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

/**
 * A VFIO container (`/dev/vfio/vfio`), the legacy DMA space: put groups in it
 * ({@link Group.setContainer}), choose the IOMMU ({@link Container.setIommu},
 * TYPE1v2 by default), then map DMA. It implements {@link DmaSpace}, so
 * drivers can map through it or through an iommufd {@link Ioas} alike.
 *
 * Closing it closes its groups (and their devices) first.
 */
export class Container extends Resource implements DmaSpace {
  /** Always `'type1'`: which {@link DmaSpace} backend this is. */
  readonly backend = 'type1' as const;
  readonly #fd: NativeFd;
  #iommuSet = false;

  /** @internal */
  constructor(fd: NativeFd) {
    super();
    this.#fd = fd;
  }

  /**
   * Opens a new container.
   *
   * @param path - the container node; default {@link CONTAINER_PATH}
   * @throws {@link VfioError} ENOENT when there is no VFIO container support
   *   (modprobe vfio), EACCES when the node is root-only
   */
  static open(path = CONTAINER_PATH): Container {
    return new Container(native().open(path, 'container'));
  }

  /**
   * Adopts a container fd handed in by another process (for example over a
   * Unix socket). The fd is duplicated: the caller keeps and closes its own.
   *
   * @param fd - an open `/dev/vfio/vfio` fd
   */
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

  /** @internal The native fd's key, checked open: what DMA map/unmap pass. */
  key(operation: string): NativeFdKey {
    return this.fdKey(this.#fd, operation);
  }

  /** @internal Called by Group.setContainer. */
  attach(group: Group): void {
    this.adopt(group);
  }

  /**
   * VFIO_GET_API_VERSION.
   *
   * @returns the VFIO API version, {@link VFIO_API_VERSION} (0) on every kernel so far
   */
  apiVersion(): number {
    return native().getApiVersion(this.handle('api version'));
  }

  /**
   * VFIO_CHECK_EXTENSION.
   *
   * @param extension - an IOMMU type or extension id, e.g. {@link VFIO_TYPE1v2_IOMMU} or {@link VFIO_UNMAP_ALL}
   * @returns whether the kernel supports it
   */
  checkExtension(extension: number): boolean {
    return native().checkExtension(this.handle('check extension'), extension) > 0;
  }

  /**
   * Checks every extension in {@link VFIO_EXTENSIONS}.
   *
   * @returns extension name (`'TYPE1v2'`, `'UNMAP_ALL'`, …) → supported
   */
  extensions(): Record<string, boolean> {
    return Object.fromEntries(Object.entries(VFIO_EXTENSIONS).map(([name, id]) => [name, this.checkExtension(id)]));
  }

  /**
   * VFIO_SET_IOMMU: chooses the IOMMU model. The container must hold at least
   * one group first ({@link Group.setContainer}), and devices can only be
   * opened from its groups afterwards.
   *
   * @param type - the IOMMU type; default {@link VFIO_TYPE1v2_IOMMU}
   * @throws {@link VfioError} EINVAL without a group or for an unsupported type;
   *   EPERM when the platform lacks interrupt remapping (see the hint)
   */
  setIommu(type: number = VFIO_TYPE1v2_IOMMU): void {
    native().setIommu(this.handle('set iommu'), type);
    this.#iommuSet = true;
  }

  /** Whether {@link Container.setIommu} has succeeded on this container. */
  get iommuSet(): boolean {
    return this.#iommuSet;
  }

  /**
   * VFIO_IOMMU_GET_INFO, growing argsz as the kernel asks, with every
   * capability decoded (IOVA ranges, migration, DMA mappings available).
   *
   * @throws {@link VfioError} EINVAL before {@link Container.setIommu}
   */
  iommuInfo(): Type1Info {
    const h = this.handle('iommu info');
    const first = decodeType1Info(native().iommuGetInfo(h, TYPE1_INFO_SIZE));
    return first.truncated ? decodeType1Info(native().iommuGetInfo(h, first.argsz)) : first;
  }

  /**
   * VFIO_IOMMU_MAP_DMA of (part of) a DMA buffer at a fixed IOVA. The buffer
   * cannot be freed while mapped. This is the raw ioctl: no IOVA allocation
   * and no limit checks ({@link DmaMapper} adds those).
   *
   * @param buffer - from {@link allocDmaBuffer}
   * @param o - the IOVA, the part of the buffer, and the device's access (read and write by default)
   * @throws RangeError when offset and size do not lie within the buffer
   * @throws {@link VfioError} ENOMEM past RLIMIT_MEMLOCK, ENOSPC when type1's
   *   `dma_entry_limit` is reached, EEXIST over an existing mapping, EINVAL
   *   for an IOVA outside the IOMMU's ranges or misaligned
   */
  mapDma(buffer: NativeDmaBuffer, o: MapDmaOptions): void {
    // Numbers pass through to the native seam, which checks offset and size against the buffer.
    const offset = u64Arg(o.offset ?? 0, 'offset');
    const size = o.size === undefined ? buffer.size - BigInt(offset) : u64Arg(o.size, 'size');
    const flags = (o.read === false ? 0 : DMA_READ) | (o.write === false ? 0 : DMA_WRITE);
    native().mapDma(this.key('map dma'), flags, buffer, offset, u64Arg(o.iova, 'iova'), size);
  }

  /**
   * VFIO_IOMMU_UNMAP_DMA of the mappings in `[iova, iova + size)`.
   *
   * @returns the number of bytes unmapped (0 when nothing was mapped there)
   * @throws {@link VfioError} EINVAL when the range would split a mapping
   */
  unmapDma(iova: bigint | number, size: bigint | number): bigint {
    return native().unmapDma(this.key('unmap dma'), 0, u64Arg(iova, 'iova'), u64Arg(size, 'size'));
  }

  /**
   * {@link DmaSpace.map} for type1: like {@link Container.mapDma}, but with
   * the backend-neutral options.
   *
   * @returns `options.iova`, as a bigint
   * @throws TypeError when `iova` is missing: type1 has no kernel-chosen IOVAs
   */
  map(buffer: DmaBuffer, o: DmaMapOptions): bigint {
    if (o.iova === undefined) throw new TypeError('the type1 backend needs an iova for every mapping');
    this.mapDma(buffer, { ...o, iova: o.iova });
    return toU64(o.iova, 'iova');
  }

  /**
   * {@link DmaSpace.unmap}: the same as {@link Container.unmapDma}.
   *
   * @returns the number of bytes unmapped
   */
  unmap(iova: bigint | number, size: bigint | number): bigint {
    return this.unmapDma(iova, size);
  }

  /**
   * {@link DmaSpace.iovaRanges}: the IOVA_RANGE capability (inclusive
   * ranges), or the whole 64-bit space when the container has none (only
   * mdev groups); the alignment is the smallest IOMMU page size (4096 when
   * the kernel reports none).
   */
  iovaRanges(): {
    /** The inclusive IOVA ranges that mappings may use, in ascending order. */
    ranges: IovaRange[];
    /** The alignment every IOVA and size must have, in bytes (the smallest IOMMU page size). */
    alignment: bigint;
  } {
    const info = this.iommuInfo();
    const cap = info.caps.find((c) => c.kind === 'iova-range') as { ranges: { start: bigint; end: bigint }[] } | undefined;
    const ranges = cap ? cap.ranges.map((r) => ({ start: r.start, last: r.end })) : [{ start: 0n, last: 0xffff_ffff_ffff_ffffn }];
    const pg = info.iovaPgsizes;
    return { ranges, alignment: pg === 0n ? 4096n : pg & -pg };
  }

  /**
   * Unmaps every mapping in the container (VFIO_IOMMU_UNMAP_DMA with
   * VFIO_DMA_UNMAP_FLAG_ALL; needs the {@link VFIO_UNMAP_ALL} extension).
   *
   * @returns the number of bytes unmapped
   */
  unmapAll(): bigint {
    return native().unmapDma(this.handle('unmap dma'), UNMAP_ALL, 0n, 0n);
  }

  protected release(): void {
    this.#fd.close();
  }
}

/**
 * Throws EINVAL naming `what` when `c` is a container without an IOMMU set.
 *
 * @internal
 */
export function assertIommuSet(c: Container | null, what: string): void {
  if (c && !c.iommuSet) {
    throw new VfioError({ code: 'EINVAL', errno: 22, operation: what, message: `the container has no IOMMU set yet: call container.setIommu() before ${what}` });
  }
}
