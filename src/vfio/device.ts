/**
 * A VFIO device: info, regions (with capability chains), width-exact and bulk
 * region access, mmap'd views, interrupts, reset, hot reset, device features
 * and gfx planes. Works the same whether the fd came from a group or a cdev.
 */
import { fstatSync, readFileSync, realpathSync } from 'node:fs';
import { basename } from 'node:path';
import { VfioError } from '../errors.js';
import { Interrupts, type InterruptEvent } from './interrupts.js';
import { MappedRegion, Region, type MmapOptions } from './region.js';
import { Migration } from './migration.js';
import { EventEmitter } from 'node:events';
import { checkLoggingRanges, type LoggingRange } from '../dma/logging.js';
import type { Hwpt, IommuFd, Ioas } from '../iommufd/iommufd.js';
import { native, type NativeFd, type NativeFdKey, type NativeMapping } from '../native.js';
import { boundDriver, checkDmabufReexport } from './quirks.js';
import { holdDevice } from '../registry.js';
import { Resource, toU32, toU64 } from '../resource.js';
import {
  VFIO_DEVICE_FEATURE_GET,
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_DEVICE_FEATURE_PROBE,
  VFIO_DEVICE_FEATURE_SET,
  VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY,
  VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
  VFIO_DEVICE_FEATURE_LOW_POWER_EXIT,
  VFIO_GFX_PLANE_TYPE_DMABUF,
  VFIO_GFX_PLANE_TYPE_PROBE,
  VFIO_GFX_PLANE_TYPE_REGION,
  VFIO_IRQ_SET_ACTION_MASK,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_ACTION_UNMASK,
  VFIO_IRQ_SET_DATA_BOOL,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_ERR_IRQ_INDEX,
  VFIO_PCI_REQ_IRQ_INDEX,
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_WRITE,
} from '../uapi/constants.js';
import {
  decodeDeviceFeature,
  decodeDeviceInfo,
  decodeGfxPlaneInfo,
  decodeHotResetInfo,
  decodeIrqInfo,
  decodeRegionInfo,
  encodeDeviceFeature,
  encodeGfxPlaneQuery,
  encodeHotReset,
  encodeIrqSet,
  type DeviceInfo,
  type GfxPlaneInfo,
  type HotResetInfo,
  type IrqInfo,
  type RegionInfo,
} from '../uapi/vfio.js';
import type { SparseMmapCap } from '../uapi/caps.js';
import { parsePciConfig, type PciConfig } from '../pci/config.js';
import { LAYOUTS } from '../uapi/layouts.js';

/** Until a cdev is bound, GET_INFO cannot be asked. */
const UNBOUND_INFO: DeviceInfo = { argsz: 0, flags: 0, flagNames: [], numRegions: 0, numIrqs: 0, capOffset: 0, caps: [], truncated: false };

/**
 * The sysfs name of the device behind a VFIO device cdev fd, found through
 * the fd's character-device number in `/sys/dev/char`.
 *
 * @param fd - an open fd of `/dev/vfio/devices/vfioN`
 * @param sysRoot - where `/sys` is found; default `/`
 * @returns the mdev UUID or PCI address, or null when `fd` is not a VFIO device cdev
 */
export function cdevDeviceName(fd: number, sysRoot = '/'): string | null {
  try {
    const st = fstatSync(fd);
    if (!st.isCharacterDevice()) return null;
    const major = Number((BigInt(st.rdev) >> 8n) & 0xfffn);
    const minor = Number((BigInt(st.rdev) & 0xffn) | ((BigInt(st.rdev) >> 12n) & 0xfff00n));
    const dev = realpathSync(`${sysRoot.replace(/\/$/, '')}/sys/dev/char/${major}:${minor}`);
    if (!/\/vfio-dev\/vfio\d+$/.test(dev)) return null;
    return basename(realpathSync(`${dev}/device`));
  } catch {
    return null;
  }
}

/** How a {@link Device}'s fd was obtained: from a {@link Group} (`'group'`) or a device cdev (`'cdev'`). */
export type Backend = 'group' | 'cdev';

const REGION_INFO_SIZE = 32;
// The replies of the hot INFO queries land here (the addon copies the kernel's
// reply in), so a query makes no Buffer; the decoders copy every field out, and
// a reply with a capability chain is asked for again into a Buffer of its own.
// Module state is per thread, so workers do not share these.
const REGION_REPLY = Buffer.alloc(REGION_INFO_SIZE);
const IRQ_REPLY = Buffer.alloc(LAYOUTS.vfio_irq_info.size);
const DEVICE_INFO_SIZE = 24;
const PCI_COMMAND = 4;
const PCI_COMMAND_MEMORY = 0x2;

/**
 * One entry of {@link Device.regions} or {@link Device.irqs}: the info, or
 * the index with the error code the kernel answered for it (mtty answers
 * EINVAL for the IRQ indexes it lacks) instead of throwing.
 */
export type IndexResult<T> =
  | T
  | {
      /** The region or IRQ index that was refused. */
      index: number;
      /** The error code the kernel answered, such as `'EINVAL'`. */
      error: string;
    };

/** The SET_IRQS action of {@link Device.setIrqs}: VFIO_IRQ_SET_ACTION_TRIGGER, _MASK or _UNMASK. */
export type IrqAction = 'trigger' | 'mask' | 'unmask';

/** One VFIO_DEVICE_SET_IRQS call, for {@link Device.setIrqs}. */
export interface SetIrqsOptions {
  /** The IRQ index: on PCI {@link VFIO_PCI_INTX_IRQ_INDEX} (0), MSI (1), MSI-X (2), ERR (3), REQ (4). */
  index: number;
  /** Trigger, mask or unmask. */
  action: IrqAction;
  /** The first vector (sub-index) affected. Default 0. */
  start?: number;
  /**
   * How many vectors from `start`. Default: the length of `data`, or 1
   * without data. With DATA_NONE and the trigger action, 0 disables the index.
   */
  count?: number;
  /**
   * The payload: none (DATA_NONE, the default), one boolean per vector
   * (DATA_BOOL), or one eventfd number per vector (DATA_EVENTFD; -1
   * de-assigns that vector's eventfd).
   */
  data?:
    | {
        /** One flag per vector: trigger, mask or unmask it when true. */
        bools: readonly boolean[];
      }
    | {
        /** One eventfd per vector that the kernel signals on interrupt; -1 de-assigns. */
        eventfds: readonly number[];
      };
}

/** The device events of {@link Device.on}. */
export type DeviceEvent = 'request' | 'error-irq';

/** What a 'request' or 'error-irq' listener gets. */
export interface DeviceEventInfo {
  /** Which event. */
  event: DeviceEvent;
  /** The device's name. */
  device: string;
  /** Signals since the last delivery (the eventfd counter). */
  count: number;
}

function eventIndex(event: DeviceEvent): number {
  if (event === 'request') return VFIO_PCI_REQ_IRQ_INDEX;
  if (event === 'error-irq') return VFIO_PCI_ERR_IRQ_INDEX;
  throw new TypeError(`event must be 'request' or 'error-irq', got ${String(event)}`);
}

/** Which plane {@link Device.queryGfxPlane} asks about. */
export interface GfxPlaneQueryOptions {
  /** 'region' (mdpy) or 'dmabuf' (mbochs). */
  kind: 'region' | 'dmabuf';
  /** DRM plane type: 0 overlay, 1 primary (default), 2 cursor. */
  drmPlaneType?: number;
}

/**
 * A dma-buf fd from VFIO_DEVICE_GET_GFX_DMABUF, from
 * {@link Device.getGfxDmabuf}; map it read-only with `map()` (where the
 * exporter allows it). Its device closes it before itself.
 */
export class GfxDmabuf extends Resource {
  /** The plane's `dmabufId` (from {@link GfxPlaneInfo.dmabufId}) it was exported for. */
  readonly id: number;
  readonly #fd: NativeFd;
  readonly #maps = new Set<NativeMapping>();

  /** @internal */
  constructor(id: number, fd: NativeFd) {
    super();
    this.id = id;
    this.#fd = fd;
  }
  protected describe(): string {
    return `dmabuf ${this.id}`;
  }
  /**
   * What the kernel says of the dma-buf in /proc/self/fdinfo.
   *
   * @throws {@link VfioError} ERR_VFIO_CLOSED after close
   */
  info(): {
    /** The dma-buf's size in bytes. */
    size: number;
    /** The exporting driver's name (`exp_name`, e.g. 'mbochs'). */
    exporter: string;
    /** The dma-buf's name, or '' when it has none. */
    name: string;
  } {
    const text = readFileSync(`/proc/self/fdinfo/${this.fd}`, 'utf8');
    const field = (k: string): string => new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(text)?.[1]?.trim() ?? '';
    return { size: Number(field('size')), exporter: field('exp_name'), name: field('name') };
  }

  /** The dma-buf fd number (still owned by this object). */
  get fd(): number {
    this.ensureOpen('fd');
    return this.#fd.fd;
  }
  /**
   * Maps `length` bytes read-only (PROT_READ, MAP_SHARED: the dma-buf is
   * read-only). Read it with `readInto()`; a JS view of read-only memory would
   * fault on write, so none is given. The mapping is unmapped when this
   * object closes.
   *
   * @param length - bytes to map from the start of the dma-buf
   * @throws {@link VfioError} from mmap; mbochs' dma-bufs answer EINVAL on Linux
   *   6.12 (see the hint: read the plane from the VRAM region instead)
   */
  map(length: bigint | number): MappedRegion {
    this.ensureOpen('map');
    const m = native().mmap(this.#fd, 0n, toU64(length, 'length'), false);
    this.#maps.add(m);
    return new MappedRegion(-1, 0n, toU64(length, 'length'), m, () => this.#maps.delete(m));
  }
  protected release(): void {
    for (const m of this.#maps) m.unmap();
    this.#maps.clear();
    this.#fd.close();
  }
}

/**
 * A VFIO device fd with everything the kernel offers on it: info, regions and
 * their capabilities, width-exact register access ({@link Device.region}),
 * mmap'd views ({@link Device.mmap}), interrupts, reset and hot reset, device
 * features, gfx planes and PCI config space. It works the same whether the fd
 * came from a {@link Group} or from a device cdev bound to an {@link IommuFd}.
 *
 * Get one with {@link openDevice}, {@link Group.openDevice},
 * {@link Device.openCdev} or {@link Device.adoptCdev}. Closing it unmaps its
 * views, disables its interrupts and closes its dma-bufs first. Every method
 * throws a {@link VfioError} with code {@link ERR_VFIO_CLOSED} after close.
 */
export class Device extends Resource {
  /** The device's name: an mdev UUID or a PCI address. */
  readonly name: string;
  /** How the fd was obtained: from a group or a device cdev. */
  readonly backend: Backend;
  /** The kernel driver bound to the device ('mtty', 'vfio-pci', …), from sysfs; null if unknown. */
  readonly driver: string | null;
  readonly #fd: NativeFd;
  readonly #release: () => void;
  readonly #views = new Set<MappedRegion>();
  /** Set by a successful LOW_POWER_ENTRY(_WITH_WAKEUP) feature SET, cleared by LOW_POWER_EXIT: no BAR mappings meanwhile. */
  #lowPower = false;
  readonly #irqs = new Map<number, Interrupts>();
  /** Encoded DATA_NONE SET_IRQS structs by action/index/start/count (triggers repeat). */
  readonly #irqSetCache = new Map<number, Buffer>();
  /** Every dma-buf exported from this device, by plane id (one export per id: see getGfxDmabuf). */
  readonly #dmabufs = new Map<number, GfxDmabuf>();
  #info: DeviceInfo;

  #devid: number | null = null;
  #attached: Ioas | Hwpt | null = null;
  /** undefined: not asked yet; null: the device has no migration. */
  #migration: Migration | null | undefined;
  /** 'request' and 'error-irq' listeners, and the IRQ each is wired to while it has any. */
  readonly #events = new EventEmitter();
  readonly #eventIrqs = new Map<DeviceEvent, Interrupts>();

  /** @internal Use Group.openDevice(), Device.openCdev() or openDevice(). */
  constructor(name: string, fd: NativeFd, backend: Backend) {
    super();
    this.name = name;
    this.backend = backend;
    this.#fd = fd;
    this.driver = boundDriver(name);
    this.#release = holdDevice(name);
    try {
      // mtty and mdpy validate IRQ indexes against a stored GET_INFO reply: ask once
      // up front (kernel-6.12-facts §0.7). A cdev answers nothing before it is bound.
      this.#info = backend === 'group' ? this.#queryInfo() : UNBOUND_INFO;
    } catch (e) {
      this.#release();
      fd.close();
      throw e;
    }
  }

  /**
   * Opens a VFIO device cdev (/dev/vfio/devices/vfioN). Bind it to an iommufd
   * and attach it to an IOAS before anything else: until bound the kernel
   * answers every ioctl with EINVAL.
   *
   * @param path - an absolute cdev path such as `/dev/vfio/devices/vfio0`
   * @throws TypeError for a path that is not absolute
   * @throws {@link VfioError} ENOENT (no such cdev, or no CONFIG_VFIO_DEVICE_CDEV), EACCES
   */
  static openCdev(path: string): Device {
    if (typeof path !== 'string' || !path.startsWith('/')) throw new TypeError(`a cdev path like /dev/vfio/devices/vfio0 is needed, got ${String(path)}`);
    const fd = native().open(path, 'device');
    return new Device(cdevDeviceName(fd.fd) ?? basename(path), fd, 'cdev');
  }

  /**
   * Adopts a device cdev fd handed in by another process (as a VMM would).
   * The fd is duplicated: the caller keeps and closes its own.
   *
   * @throws {@link VfioError} ENOTTY when `fd` is not a VFIO device cdev
   */
  static adoptCdev(fd: number): Device {
    const h = native().adopt(fd, 'device', `device fd ${fd}`);
    const name = cdevDeviceName(h.fd);
    if (name === null) {
      h.close();
      throw new VfioError({ code: 'ENOTTY', errno: 25, operation: 'adopt device cdev', message: `fd ${fd} is not a VFIO device cdev` });
    }
    return new Device(name, h, 'cdev');
  }

  /** The iommufd device id after bind() (cdev only), else null. */
  get devid(): number | null {
    return this.#devid;
  }

  /**
   * VFIO_DEVICE_BIND_IOMMUFD (cdev only). The device then closes before the
   * iommufd, and its info is read again (the kernel answers it only now).
   *
   * @returns the iommufd device id, also kept in {@link Device.devid}
   * @throws {@link VfioError} EPERM without interrupt remapping (see the hint)
   */
  bind(iommufd: IommuFd): number {
    const h = this.handle('bind');
    const devid = native().deviceBindIommufd(h, iommufd.handle('bind'));
    this.#devid = devid;
    iommufd.own(this);
    this.#info = this.#queryInfo();
    return devid;
  }

  /**
   * VFIO_DEVICE_ATTACH_IOMMUFD_PT to an IOAS or HWPT; returns the pt id the
   * kernel reports (for vfio-pci on an IOAS: the HWPT it created). The device
   * then closes before what it is attached to.
   *
   * @throws {@link VfioError} EINVAL before {@link Device.bind} (an mdev can only attach to an IOAS)
   */
  attach(target: Ioas | Hwpt): number {
    const pt = native().deviceAttachPt(this.handle('attach'), target.id);
    this.#attached = target;
    target.own(this);
    return pt;
  }

  /** VFIO_DEVICE_DETACH_IOMMUFD_PT: detaches the cdev from its IOAS or HWPT; DMA through it stops. */
  detach(): void {
    native().deviceDetachPt(this.handle('detach'));
    this.#attached = null;
  }

  /** The IOAS or HWPT this cdev is attached to, or null. */
  get attachedTo(): Ioas | Hwpt | null {
    return this.#attached;
  }

  protected describe(): string {
    return `device ${this.name}`;
  }

  /** @internal The native fd, checked open. */
  handle(operation: string): NativeFd {
    this.ensureOpen(operation);
    return this.#fd;
  }

  /** @internal The native fd's key, checked open: what the register path passes. */
  key(operation: string): NativeFdKey {
    return this.fdKey(this.#fd, operation);
  }

  #queryInfo(): DeviceInfo {
    const first = decodeDeviceInfo(native().deviceGetInfo(this.#fd, DEVICE_INFO_SIZE));
    return first.truncated ? decodeDeviceInfo(native().deviceGetInfo(this.#fd, first.argsz)) : first;
  }

  /**
   * VFIO_DEVICE_GET_INFO, asked again on every call: flags (with their names),
   * region and IRQ counts, capabilities.
   */
  info(): DeviceInfo {
    this.ensureOpen('info');
    this.#info = this.#queryInfo();
    return this.#info;
  }

  /**
   * VFIO_DEVICE_GET_REGION_INFO with the two-step argsz protocol: the bare
   * struct first, then exactly the size the kernel asks for (mbochs rejects
   * anything over 48). The capability chain is decoded (sparse mmap areas,
   * type/subtype, MSI-X mappable; unknown capabilities are kept raw).
   *
   * @param index - the region index: on PCI, BAR0–5 are 0–5, ROM 6, config space 7, VGA 8
   * @throws {@link VfioError} EINVAL for an index the device does not have
   */
  regionInfo(index: number): RegionInfo {
    toU32(index, 'index');
    const h = this.key('region info');
    native().deviceGetRegionInfo(h, index, REGION_REPLY);
    const first = decodeRegionInfo(REGION_REPLY);
    if (!first.truncated) return first;
    return decodeRegionInfo(native().deviceGetRegionInfo(h, index, first.argsz));
  }

  /**
   * The info of every region, 0 to numRegions − 1; an index the kernel
   * refuses is reported as `{ index, error }` instead of throwing.
   */
  regions(): IndexResult<RegionInfo>[] {
    return this.#each(this.#info.numRegions, (i) => this.regionInfo(i));
  }

  /**
   * VFIO_DEVICE_GET_IRQ_INFO: the number of vectors of IRQ `index` and its
   * flags (eventfd, maskable, automasked, noresize).
   *
   * @throws {@link VfioError} EINVAL for an index the device does not have
   */
  irqInfo(index: number): IrqInfo {
    toU32(index, 'index');
    native().deviceGetIrqInfo(this.key('irq info'), index, IRQ_REPLY);
    return decodeIrqInfo(IRQ_REPLY);
  }

  /**
   * The info of every IRQ index, 0 to numIrqs − 1; an index the kernel
   * refuses (mtty answers EINVAL for 2–4) is reported as `{ index, error }`.
   */
  irqs(): IndexResult<IrqInfo>[] {
    return this.#each(this.#info.numIrqs, (i) => this.irqInfo(i));
  }

  #each<T>(n: number, f: (i: number) => T): IndexResult<T>[] {
    const out: IndexResult<T>[] = [];
    for (let i = 0; i < n; i++) {
      try {
        out.push(f(i));
      } catch (e) {
        if (!(e instanceof VfioError) || e.syscall !== 'ioctl') throw e;
        out.push({ index: i, error: e.code });
      }
    }
    return out;
  }

  /**
   * Register and bulk access to a region through pread/pwrite on the device
   * fd: bounds-checked, and each register access exactly the width asked.
   *
   * @param index - the region index (see {@link Device.regionInfo})
   */
  region(index: number): Region {
    return new Region(this, this.regionInfo(index));
  }

  /**
   * The PCI config space, decoded: header, BARs, capability and
   * extended-capability lists.
   *
   * @throws {@link VfioError} EINVAL on a device without a config region (not PCI)
   */
  pciConfig(): PciConfig {
    return parsePciConfig(this.pciConfigBytes());
  }

  /** The PCI config region's bytes (region 7), all of them (256, or 4096 for PCI Express on vfio-pci). */
  pciConfigBytes(): Buffer {
    const r = this.region(VFIO_PCI_CONFIG_REGION_INDEX);
    return r.read(0, Number(r.size));
  }

  /**
   * Maps (part of) a region with MAP_SHARED. The region must have the MMAP
   * flag; with a SPARSE_MMAP capability only its areas may be mapped.
   * Regions without the WRITE flag are mapped read-only (no JS view; use
   * `readInto()`). The view is detached when unmapped, when the device is
   * closed or reset, and before a config write that clears Memory Space Enable.
   *
   * @param index - the region index (a BAR: 0–5)
   * @param options - offset and length within the region, or a sparse-mmap `area`;
   *   default the whole region
   * @throws {@link VfioError} EINVAL when the region has no MMAP flag; ERR_VFIO_MEMORY_DISABLED for a BAR of a PCI function whose memory decoding is off, or of a device put in low power (an access would SIGBUS)
   * @throws RangeError when the range lies outside the region or a sparse area,
   *   or the offset is not page-aligned
   */
  mmap(index: number, options: MmapOptions = {}): MappedRegion {
    const info = this.regionInfo(index);
    if ((info.flags & VFIO_REGION_INFO_FLAG_MMAP) === 0) {
      throw new VfioError({ code: 'EINVAL', errno: 22, operation: 'mmap', message: `region ${info.name} (index ${index}) cannot be mmap'd (no MMAP flag)` });
    }
    const sparse = info.caps.find((c): c is SparseMmapCap => c.kind === 'sparse-mmap');
    let start = 0n;
    let end = info.size;
    if (options.area !== undefined) {
      const area = sparse?.areas[toU32(options.area, 'area')];
      if (!area) throw new RangeError(`region ${info.name} has no sparse-mmap area ${options.area}`);
      start = area.offset;
      end = area.offset + area.size;
    }
    const offset = options.offset === undefined ? start : toU64(options.offset, 'offset');
    const length = options.length === undefined ? end - offset : toU64(options.length, 'length');
    if (offset < start || length === 0n || offset + length > end) {
      throw new RangeError(`mmap of ${length} bytes at ${offset} is outside region ${info.name} [${start}, ${end})`);
    }
    if (sparse && options.area === undefined && !sparse.areas.some((a) => offset >= a.offset && offset + length <= a.offset + a.size)) {
      throw new RangeError(`region ${info.name} is sparse: ${length} bytes at ${offset} are not inside one mmap area`);
    }
    if (offset % 4096n !== 0n) throw new RangeError(`mmap offset ${offset} must be page-aligned`);
    if (index <= 5) this.#checkMemoryDecoding(index);
    const writable = (info.flags & VFIO_REGION_INFO_FLAG_WRITE) !== 0;
    const m = native().mmap(this.handle('mmap'), info.offset + offset, length, writable);
    const view = new MappedRegion(index, offset, length, m, (v) => this.#views.delete(v));
    this.#views.add(view);
    return view;
  }

  /**
   * A PCI function with Memory Space Enable clear in PCI_COMMAND answers a BAR
   * access through a mapping with SIGBUS (vfio-pci zaps the mapping and
   * refuses to fault it in), so no BAR view is made then. (Clearing the bit
   * later revokes the views first: see beforeWrite.)
   */
  #checkMemoryDecoding(index: number): void {
    if (this.#lowPower) {
      throw new VfioError({
        code: 'ERR_VFIO_MEMORY_DISABLED',
        operation: 'mmap',
        message: `ERR_VFIO_MEMORY_DISABLED: refusing to map BAR${index} of ${this.describe()}: the device was put in low power (VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY), where vfio-pci answers every access through a mapping with SIGBUS`,
        hint: 'leave low power first: device.featureSet(VFIO_DEVICE_FEATURE_LOW_POWER_EXIT)',
      });
    }
    if ((this.#info.flags & VFIO_DEVICE_FLAGS_PCI) === 0) return;
    let command: number;
    try {
      command = this.region(VFIO_PCI_CONFIG_REGION_INDEX).read16(PCI_COMMAND);
    } catch {
      return; // no readable config space: nothing to check against
    }
    if ((command & PCI_COMMAND_MEMORY) !== 0) return;
    throw new VfioError({
      code: 'ERR_VFIO_MEMORY_DISABLED',
      operation: 'mmap',
      message: `ERR_VFIO_MEMORY_DISABLED: refusing to map BAR${index} of ${this.describe()}: memory decoding is off (PCI_COMMAND 0x${command.toString(16).padStart(4, '0')}), so any access would fault with SIGBUS`,
      hint: 'set Memory Space Enable (bit 1 of PCI_COMMAND) first, e.g. config.write16(4, config.read16(4) | 2) on device.region(7)',
    });
  }

  /**
   * Unmaps views made by {@link Device.mmap}, detaching their buffers.
   *
   * @param indexes - only the views of these regions; default every view
   */
  revokeViews(indexes?: readonly number[]): void {
    for (const v of [...this.#views]) if (!indexes || indexes.includes(v.index)) v.unmap();
  }

  /**
   * @internal Region writes pass here first: clearing Memory Space Enable in
   * PCI_COMMAND makes vfio-pci zap BAR mappings (a later access would SIGBUS),
   * so BAR views are revoked before such a write reaches the kernel.
   */
  beforeWrite(index: number, at: bigint | number, length: number, byteAt: (i: number) => number): void {
    if (index !== VFIO_PCI_CONFIG_REGION_INDEX || this.#views.size === 0) return;
    const offset = toU64(at, 'offset');
    if (offset <= BigInt(PCI_COMMAND) && offset + BigInt(length) > BigInt(PCI_COMMAND)) {
      const low = byteAt(Number(BigInt(PCI_COMMAND) - offset));
      if ((low & PCI_COMMAND_MEMORY) === 0) this.revokeViews([0, 1, 2, 3, 4, 5]);
    }
  }

  /**
   * VFIO_DEVICE_SET_IRQS, the whole surface: trigger, mask or unmask any
   * range of vectors with no data, booleans or eventfds. {@link Device.enableInterrupts}
   * is the convenient way to receive interrupts.
   *
   * @throws TypeError for an unknown action
   * @throws {@link VfioError} EINVAL for an index, range or action the IRQ does not support
   */
  setIrqs(o: SetIrqsOptions): void {
    const action = { trigger: VFIO_IRQ_SET_ACTION_TRIGGER, mask: VFIO_IRQ_SET_ACTION_MASK, unmask: VFIO_IRQ_SET_ACTION_UNMASK }[o.action];
    if (action === undefined) throw new TypeError(`action must be 'trigger', 'mask' or 'unmask', got ${String(o.action)}`);
    let dataType = VFIO_IRQ_SET_DATA_NONE;
    let data: readonly (boolean | number)[] | undefined;
    if (o.data && 'bools' in o.data) {
      dataType = VFIO_IRQ_SET_DATA_BOOL;
      data = o.data.bools;
    } else if (o.data && 'eventfds' in o.data) {
      dataType = VFIO_IRQ_SET_DATA_EVENTFD;
      data = o.data.eventfds;
    }
    const count = o.count ?? (data ? data.length : 1);
    const start = o.start ?? 0;
    if (dataType === VFIO_IRQ_SET_DATA_NONE) return this.#setIrqsNone(action, o.index, start, count);
    native().deviceSetIrqs(this.handle('set irqs'), encodeIrqSet({ flags: dataType | action, index: o.index, start, count, data }));
  }

  /**
   * SET_IRQS with DATA_NONE. Software triggers, masks and unmasks repeat (an
   * interrupt hot path), so each distinct struct is encoded once and kept.
   */
  #setIrqsNone(action: number, index: number, start: number, count: number): void {
    const small = (index | start | count) >>> 0 === (index | start | count) && index < 256 && start < 65536 && count < 65536 && Number.isInteger(index + start + count);
    const key = small ? ((action * 256 + index) * 65536 + start) * 65536 + count : -1;
    let bytes = small ? this.#irqSetCache.get(key) : undefined;
    if (!bytes) {
      bytes = encodeIrqSet({ flags: VFIO_IRQ_SET_DATA_NONE | action, index, start, count });
      if (small && this.#irqSetCache.size < 64) this.#irqSetCache.set(key, bytes);
    }
    native().deviceSetIrqs(this.handle('set irqs'), bytes);
  }

  /**
   * Enables `count` vectors of IRQ `index` from `start` with fresh eventfds and
   * returns them as an Interrupts emitter / async iterable. Closing it disables the index.
   *
   * @param index - the IRQ index (on PCI: 0 INTx, 1 MSI, 2 MSI-X)
   * @param options - the first vector (default 0) and the number of vectors (default 1)
   * @throws RangeError when `count` is 0, or the vectors lie beyond the IRQ's count (GET_IRQ_INFO)
   * @throws {@link VfioError} EBUSY when the index is already enabled through this
   *   object; EINVAL for an index the device does not have
   */
  enableInterrupts(index: number, options: { start?: number; count?: number } = {}): Interrupts {
    this.ensureOpen('enable interrupts');
    toU32(index, 'index');
    const start = toU32(options.start ?? 0, 'start');
    const count = toU32(options.count ?? 1, 'count');
    if (count === 0) throw new RangeError('count must be at least 1');
    if (this.#irqs.has(index)) throw new VfioError({ code: 'EBUSY', errno: 16, operation: 'enable interrupts', message: `IRQ index ${index} is already enabled on ${this.describe()}: close it first` });
    // One eventfd per vector: the range is checked against the IRQ's vector count
    // first (the fuzzer asked for 2^31 of them), and on any failure the eventfds
    // made so far are closed before the error is thrown.
    const info = this.irqInfo(index);
    if (start + count > info.count) {
      throw new RangeError(`vectors ${start}..${start + count - 1} are outside IRQ ${info.name} (index ${index}) of ${this.describe()}, which has ${info.count}`);
    }
    const fds: ReturnType<ReturnType<typeof native>['eventfd']>[] = [];
    try {
      for (let i = 0; i < count; i++) fds.push(native().eventfd());
      this.setIrqs({ index, action: 'trigger', start, count, data: { eventfds: fds.map((f) => f.fd) } });
    } catch (e) {
      for (const f of fds) f.close();
      throw e;
    }
    const irqs = new Interrupts(index, start, fds, () => {
      this.#irqs.delete(index);
      if (!this.closed) this.disableInterrupts(index);
    });
    this.#irqs.set(index, irqs);
    return irqs;
  }

  /**
   * Disables IRQ `index` (TRIGGER with DATA_NONE and count 0), releasing its
   * eventfds in the kernel. Prefer closing the {@link Interrupts} object.
   */
  disableInterrupts(index: number): void {
    this.setIrqs({ index, action: 'trigger', start: 0, count: 0 });
  }

  /**
   * Software-triggers vectors (TRIGGER|DATA_NONE): the kernel signals their
   * eventfds as if the device had raised them.
   *
   * @param index - the IRQ index
   * @param start - the first vector; default 0
   * @param count - how many vectors; default 1
   */
  trigger(index: number, start = 0, count = 1): void {
    this.#setIrqsNone(VFIO_IRQ_SET_ACTION_TRIGGER, index, start, count);
  }
  /**
   * Masks vectors (MASK|DATA_NONE): the kernel holds their interrupts back
   * until unmasked. Only for IRQs whose {@link Device.irqInfo} flags include
   * MASKABLE (vfio-pci masks INTx only).
   *
   * @param index - the IRQ index
   * @param start - the first vector; default 0
   * @param count - how many vectors; default 1
   */
  mask(index: number, start = 0, count = 1): void {
    this.#setIrqsNone(VFIO_IRQ_SET_ACTION_MASK, index, start, count);
  }
  /**
   * Unmasks vectors (UNMASK|DATA_NONE). An automasked INTx must be unmasked
   * after each interrupt before it can fire again.
   *
   * @param index - the IRQ index
   * @param start - the first vector; default 0
   * @param count - how many vectors; default 1
   */
  unmask(index: number, start = 0, count = 1): void {
    this.#setIrqsNone(VFIO_IRQ_SET_ACTION_UNMASK, index, start, count);
  }

  /**
   * VFIO_DEVICE_RESET. Views are revoked first: a reset may zap the device's mappings.
   *
   * @throws {@link VfioError} EINVAL when the device has no reset method (no RESET in `info().flags`)
   */
  reset(): void {
    const h = this.handle('reset');
    this.revokeViews();
    native().deviceReset(h);
  }

  /**
   * VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, growing argsz as the kernel asks:
   * the devices affected by a bus or slot reset of this one.
   *
   * @throws {@link VfioError} ENODEV when neither the slot nor the bus can be reset
   */
  hotResetInfo(): HotResetInfo {
    const h = this.handle('hot reset info');
    let argsz = 12 + 8 * 8;
    for (let i = 0; i < 4; i++) {
      const info = decodeHotResetInfo(native().deviceGetPciHotResetInfo(h, argsz));
      const need = 12 + 8 * info.count;
      if (need <= argsz) return info;
      argsz = need;
    }
    throw new VfioError({ code: 'ERR_VFIO_BAD_STRUCT', message: 'hot-reset info kept growing' });
  }

  /**
   * VFIO_DEVICE_PCI_HOT_RESET, proving ownership with the given group fds (or
   * an empty list on the cdev path). Views of this device are revoked first.
   *
   * @param groupFds - fds of the groups of every affected device (see {@link Device.hotResetInfo})
   * @throws {@link VfioError} when the kernel refuses: an affected device is not
   *   proven owned, or (ENODEV) neither the slot nor the bus can be reset
   */
  hotReset(groupFds: readonly number[] = []): void {
    const h = this.handle('hot reset');
    this.revokeViews();
    native().devicePciHotReset(h, encodeHotReset(groupFds));
  }

  /**
   * VFIO_DEVICE_FEATURE with PROBE: does the device support `feature` for get and/or set?
   *
   * @param feature - a feature number, e.g. {@link VFIO_DEVICE_FEATURE_MIGRATION}
   * @param ops - which directions to probe; default `{ get: true }`
   * @returns false when the kernel answers ENOTTY, EINVAL or EOPNOTSUPP
   */
  featureProbe(feature: number, ops: { get?: boolean; set?: boolean } = { get: true }): boolean {
    const flags = toU32(feature, 'feature') | VFIO_DEVICE_FEATURE_PROBE | (ops.get ? VFIO_DEVICE_FEATURE_GET : 0) | (ops.set ? VFIO_DEVICE_FEATURE_SET : 0);
    try {
      native().deviceFeature(this.handle('feature probe'), encodeDeviceFeature(flags));
      return true;
    } catch (e) {
      if (e instanceof VfioError && (e.code === 'ENOTTY' || e.code === 'EINVAL' || e.code === 'EOPNOTSUPP')) return false;
      throw e;
    }
  }

  /**
   * VFIO_DEVICE_FEATURE GET.
   *
   * @param feature - a feature number, e.g. {@link VFIO_DEVICE_FEATURE_MIGRATION}
   * @param size - the size of the feature's data struct in bytes
   * @returns the `size` data bytes the kernel filled in
   */
  featureGet(feature: number, size: number): Buffer {
    const bytes = encodeDeviceFeature(toU32(feature, 'feature') | VFIO_DEVICE_FEATURE_GET, Buffer.alloc(toU32(size, 'size')));
    return decodeDeviceFeature(native().deviceFeature(this.handle('feature get'), bytes)).data;
  }

  /**
   * VFIO_DEVICE_FEATURE SET.
   *
   * @param feature - a feature number, e.g. {@link VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE}
   * @param data - the feature's data struct; default none
   * @returns the data as the kernel left it (some features write results back)
   */
  featureSet(feature: number, data: Uint8Array = Buffer.alloc(0)): Buffer {
    const id = toU32(feature, 'feature');
    const bytes = encodeDeviceFeature(id | VFIO_DEVICE_FEATURE_SET, data);
    const entry = id === VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY || id === VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP;
    // vfio-pci zaps BAR mappings on low-power entry and answers a fault with
    // SIGBUS until the exit, so BAR views are revoked before the entry reaches
    // the kernel, and no new one is made until LOW_POWER_EXIT (see mmap).
    if (entry) this.revokeViews([0, 1, 2, 3, 4, 5]);
    const out = decodeDeviceFeature(native().deviceFeature(this.handle('feature set'), bytes)).data;
    if (entry) this.#lowPower = true;
    else if (id === VFIO_DEVICE_FEATURE_LOW_POWER_EXIT) this.#lowPower = false;
    return out;
  }

  /**
   * VFIO_DEVICE_QUERY_GFX_PLANE. mbochs answers ENOMEM to the first query of a
   * mode it has not seen; `retries` (default 1) repeats the query for that case.
   *
   * @param o - the plane kind ('region' for mdpy, 'dmabuf' for mbochs) and DRM plane type
   * @param retries - how many times to repeat the query after ENOMEM
   * @throws TypeError for an unknown kind
   * @throws {@link VfioError} EINVAL when the device offers no such plane
   */
  queryGfxPlane(o: GfxPlaneQueryOptions, retries = 1): GfxPlaneInfo {
    const flags = o.kind === 'region' ? VFIO_GFX_PLANE_TYPE_REGION : o.kind === 'dmabuf' ? VFIO_GFX_PLANE_TYPE_DMABUF : NaN;
    if (Number.isNaN(flags)) throw new TypeError(`kind must be 'region' or 'dmabuf', got ${String(o.kind)}`);
    const query = encodeGfxPlaneQuery({ flags, drmPlaneType: o.drmPlaneType ?? 1 });
    for (let attempt = 0; ; attempt++) {
      try {
        return decodeGfxPlaneInfo(native().deviceQueryGfxPlane(this.handle('query gfx plane'), query));
      } catch (e) {
        if (!(e instanceof VfioError) || e.code !== 'ENOMEM' || attempt >= retries) throw e;
      }
    }
  }

  /**
   * Probes whether the device offers gfx planes of `kind` (VFIO_GFX_PLANE_TYPE_PROBE).
   *
   * @returns false when the kernel answers EINVAL or ENOTTY
   */
  gfxPlaneSupported(kind: 'region' | 'dmabuf'): boolean {
    const flags = VFIO_GFX_PLANE_TYPE_PROBE | (kind === 'region' ? VFIO_GFX_PLANE_TYPE_REGION : VFIO_GFX_PLANE_TYPE_DMABUF);
    try {
      native().deviceQueryGfxPlane(this.handle('query gfx plane'), encodeGfxPlaneQuery({ flags }));
      return true;
    } catch (e) {
      if (e instanceof VfioError && (e.code === 'EINVAL' || e.code === 'ENOTTY')) return false;
      throw e;
    }
  }

  /**
   * VFIO_DEVICE_GET_GFX_DMABUF: a dma-buf fd for plane `dmabufId`. The kernel
   * is asked once per id: while the first GfxDmabuf of an id is open, asking
   * again returns it. On mbochs, which mishandles the references of a second
   * export (kernel-6.12-facts H10), asking again after closing it is refused.
   *
   * @param dmabufId - {@link GfxPlaneInfo.dmabufId} from a 'dmabuf' plane query
   * @returns the dma-buf, which this device closes before itself
   * @throws {@link VfioError} ERR_VFIO_DRIVER_QUIRK for a second export on mbochs; ENOENT for an unknown id
   */
  getGfxDmabuf(dmabufId: number): GfxDmabuf {
    const id = toU32(dmabufId, 'dmabufId');
    const known = this.#dmabufs.get(id);
    if (known && !known.closed) return known;
    if (known) checkDmabufReexport(this.driver, id);
    const fd = native().deviceGetGfxDmabuf(this.handle('get gfx dmabuf'), id);
    const d = new GfxDmabuf(id, fd);
    this.adopt(d);
    this.#dmabufs.set(id, d);
    return d;
  }

  /** @internal Makes `r` (a migration data fd) close before this device. */
  own(r: Resource): void {
    this.adopt(r);
  }

  /**
   * The device's migration v2 interface, or null when its MIGRATION feature
   * does not answer (mdpy, mbochs, vfio-pci devices without a variant driver).
   * Asked of the kernel once.
   */
  get migration(): Migration | null {
    this.ensureOpen('migration');
    if (this.#migration === undefined) {
      if (this.backend === 'cdev' && this.#devid === null) return null; // an unbound cdev answers nothing yet
      const flags = Migration.probe(this);
      this.#migration = flags === null ? null : new Migration(this, flags);
    }
    return this.#migration;
  }

  /**
   * VFIO_DEVICE_FEATURE DMA_LOGGING_START: the device logs the pages it writes
   * by DMA within `ranges`. The ranges are checked first (page-aligned, not
   * overlapping, at most 256, no wrap past 2^64), so a bad set never reaches
   * the kernel.
   *
   * @param ranges - IOVA ranges in bytes
   * @param pageSize - the granule the device should log at (a power of two ≥ 4096)
   * @returns the page size the device chose (it may differ)
   * @throws RangeError for bad ranges; {@link VfioError} ENOTTY where the device does no DMA logging
   */
  dmaLoggingStart(ranges: readonly LoggingRange[], pageSize: bigint | number = 4096n): bigint {
    const { bytes, pageSize: ps } = checkLoggingRanges(ranges, pageSize);
    return native().deviceDmaLoggingStart(this.handle('dma logging start'), ps, bytes);
  }

  /** VFIO_DEVICE_FEATURE DMA_LOGGING_STOP. */
  dmaLoggingStop(): void {
    native().deviceDmaLoggingStop(this.handle('dma logging stop'));
  }

  /**
   * VFIO_DEVICE_FEATURE DMA_LOGGING_REPORT: the pages of [iova, iova + length)
   * the device wrote since the last report (the device's log is cleared for them).
   *
   * @returns one bit per page, least significant bit of byte 0 first
   */
  dmaLoggingReport(iova: bigint | number, length: bigint | number, pageSize: bigint | number = 4096n): Buffer {
    return native().deviceDmaLoggingReport(this.handle('dma logging report'), toU64(iova, 'iova'), toU64(length, 'length'), toU64(pageSize, 'pageSize'));
  }

  /**
   * Listens for the kernel's request to release the device ('request': the REQ
   * IRQ, signalled when the device is being unbound or unplugged; close the
   * device to let that finish) or for an error the device reported ('error-irq':
   * the ERR IRQ, offered by vfio-pci on PCIe functions only). The IRQ is enabled
   * with the first listener and disabled after the last is removed; it does
   * not keep the process alive.
   *
   * @throws {@link VfioError} ERR_VFIO_IRQ_NOT_OFFERED when the device has no such IRQ
   *   (ERR on conventional PCI, either on an mdev), with the reason
   */
  on(event: DeviceEvent, listener: (e: DeviceEventInfo) => void): this {
    const index = eventIndex(event);
    this.ensureOpen(`on('${event}')`);
    if (!this.#eventIrqs.has(event)) {
      let count = 0;
      try {
        count = this.irqInfo(index).count;
      } catch (e) {
        if (!(e instanceof VfioError) || e.code !== 'EINVAL') throw e;
      }
      if (count === 0) {
        throw new VfioError({
          code: 'ERR_VFIO_IRQ_NOT_OFFERED',
          errno: 0,
          operation: `on('${event}')`,
          message: `ERR_VFIO_IRQ_NOT_OFFERED: ${this.describe()} offers no ${event === 'request' ? 'REQ' : 'ERR'} IRQ (index ${index})`,
          hint:
            event === 'error-irq'
              ? 'vfio-pci offers the ERR IRQ only on PCIe functions (AER); this device is conventional PCI or not a vfio-pci device'
              : 'the REQ IRQ comes from vfio-pci; mdev drivers do not implement it (they block the unbinding instead)',
        });
      }
      const irqs = this.enableInterrupts(index).unref();
      irqs.on('interrupt', (e: InterruptEvent) => this.#events.emit(event, { event, device: this.name, count: e.count } satisfies DeviceEventInfo));
      this.#eventIrqs.set(event, irqs);
    }
    this.#events.on(event, listener);
    return this;
  }

  /** Removes a listener added with {@link Device.on}; the IRQ is disabled with the last one. */
  off(event: DeviceEvent, listener: (e: DeviceEventInfo) => void): this {
    eventIndex(event);
    this.#events.off(event, listener);
    if (this.#events.listenerCount(event) === 0) {
      const irqs = this.#eventIrqs.get(event);
      this.#eventIrqs.delete(event);
      if (irqs && !this.closed) irqs.close();
    }
    return this;
  }

  /**
   * Closes the device when the kernel asks for it back (the REQ IRQ), so an
   * unbind or unplug does not wait on this process. `then` runs after the close.
   * Returns a function that undoes it.
   */
  closeOnRequest(then?: (e: DeviceEventInfo) => void): () => void {
    const listener = (e: DeviceEventInfo): void => {
      // Not from inside the eventfd's own callback: on the next turn.
      setImmediate(() => {
        this.close();
        then?.(e);
      });
    };
    this.on('request', listener);
    return () => {
      if (!this.closed) this.off('request', listener);
    };
  }

  protected override beforeClose(): void {
    this.#migration?.beforeClose();
  }

  protected release(): void {
    this.revokeViews();
    this.#eventIrqs.clear();
    this.#events.removeAllListeners();
    for (const irq of [...this.#irqs.values()]) irq.close();
    this.#irqs.clear();
    this.#fd.close();
    this.#release();
  }
}
