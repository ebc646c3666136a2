/**
 * Codecs of the VFIO uapi structs (include/uapi/linux/vfio.h, Linux 6.12).
 *
 * Decoders take the raw bytes the native addon copied out of the kernel
 * (for INFO ioctls: `argsz` bytes, capability chain included) and return
 * plain objects; every u64 is a bigint. Malformed kernel data throws a
 * VfioError (`ERR_VFIO_BAD_STRUCT`, `ERR_VFIO_BAD_CAP_CHAIN`,
 * `ERR_VFIO_BAD_CAP`). Encoders build the bytes of pointer-free input structs
 * and validate every argument first (TypeError / RangeError), never
 * truncating silently.
 */
import { formatPciAddress, pciFunction, pciSlot } from '../pci/address.js';
import {
  StructWriter,
  asBuffer,
  bitNames,
  checkFd,
  checkFlagBits,
  checkU32,
  popcount,
  view,
  type StructView,
} from './binary.js';
import {
  decodeDeviceCap,
  decodeRegionCap,
  decodeType1Cap,
  walkCaps,
  type DeviceCap,
  type RawCap,
  type RegionCap,
  type RegionTypeCap,
  type Type1Cap,
} from './caps.js';
import {
  DRM_PLANE_TYPE_PRIMARY,
  GFX_PLANE_FLAGS,
  GROUP_FLAGS,
  HOT_RESET_FLAGS,
  MIGRATION_FLAGS,
  MIG_STATE_NAMES,
  TYPE1_INFO_FLAGS,
  VFIO_DEVICE_FEATURE_GET,
  VFIO_DEVICE_FEATURE_MASK,
  VFIO_DEVICE_FEATURE_PROBE,
  VFIO_DEVICE_FEATURE_SET,
  VFIO_DEVICE_FLAGS_CAPS,
  VFIO_GFX_PLANE_TYPE_DMABUF,
  VFIO_GFX_PLANE_TYPE_REGION,
  VFIO_GROUP_FLAGS_CONTAINER_SET,
  VFIO_GROUP_FLAGS_VIABLE,
  VFIO_IOMMU_INFO_CAPS,
  VFIO_IRQ_SET_ACTION_TYPE_MASK,
  VFIO_IRQ_SET_DATA_BOOL,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_IRQ_SET_DATA_TYPE_MASK,
  VFIO_PCI_HOT_RESET_FLAG_DEV_ID,
  VFIO_REGION_INFO_FLAG_CAPS,
  deviceFlagNames,
  irqFlagNames,
  irqName,
  regionFlagNames,
  regionName,
} from './constants.js';
import { LAYOUTS, offsetOf, type StructName } from './layouts.js';

// ---- capability chains inside INFO structs --------------------------------------------

/** The INFO structs that end in a capability chain. */
type InfoStruct = 'vfio_device_info' | 'vfio_region_info' | 'vfio_iommu_type1_info';

/**
 * Reads an INFO reply's argsz, flags and cap_offset and walks its capability
 * chain. The chain is walked only when the CAPS flag (`capsFlag`) is set,
 * `cap_offset` is non-zero and the kernel's `argsz` fits in the bytes
 * returned; the walk stops at `argsz`. When `argsz` is larger than the
 * buffer, the kernel wanted more room: `truncated` is true and the caller
 * should repeat the ioctl with `argsz` bytes.
 */
function infoReply<S extends InfoStruct>(buf: Buffer | Uint8Array, struct: S, capsFlag: number) {
  const b = asBuffer(buf);
  const v = view(b, struct);
  const argsz = v.u32('argsz');
  const flags = v.u32('flags');
  const capOffset = v.u32('cap_offset');
  const size = LAYOUTS[struct].size;
  const hasCaps = (flags & capsFlag) !== 0;
  const truncated = hasCaps && argsz > b.length;
  const walk = hasCaps && !truncated && capOffset !== 0;
  const end = argsz >= size ? argsz : b.length;
  const raws: RawCap[] = walk ? walkCaps(b.subarray(0, end), capOffset, { minOffset: size }) : [];
  return { v, argsz, flags, capOffset, raws, truncated };
}

/** struct vfio_region_info's offsets, looked up once. */
const REGION_INFO = {
  size: LAYOUTS.vfio_region_info.size,
  argsz: offsetOf('vfio_region_info', 'argsz'),
  flags: offsetOf('vfio_region_info', 'flags'),
  index: offsetOf('vfio_region_info', 'index'),
  capOffset: offsetOf('vfio_region_info', 'cap_offset'),
  sizeField: offsetOf('vfio_region_info', 'size'),
  offset: offsetOf('vfio_region_info', 'offset'),
} as const;

/** The fields every decoded INFO reply with a capability chain has. */
export interface InfoWithCaps<C> {
  /**
   * The size the kernel needs for the whole reply. When it is larger than the
   * bytes given (`truncated`), repeat the ioctl with this argsz to get the
   * capability chain.
   */
  argsz: number;
  /** The reply's flags word (see `flagNames`). */
  flags: number;
  /** Names of the set flag bits. */
  flagNames: string[];
  /** Byte offset of the first capability from the start of the reply; 0 when there is no chain. */
  capOffset: number;
  /** Decoded capabilities ([] when there are none or they were not returned). */
  caps: C[];
  /** The kernel has capabilities that did not fit: repeat with `argsz` bytes. */
  truncated: boolean;
}

// ---- group -------------------------------------------------------------------------------

/** struct vfio_group_status, decoded. */
export interface GroupStatus {
  /** VFIO_GROUP_FLAGS_* bits (see {@link GROUP_FLAGS}). */
  flags: number;
  /** 'VIABLE', 'CONTAINER_SET'. */
  flagNames: string[];
  /** All devices of the group are bound to VFIO drivers (or unbound). */
  viable: boolean;
  /** The group has a container (or iommufd). */
  containerSet: boolean;
}

/**
 * Decodes the reply of VFIO_GROUP_GET_STATUS.
 *
 * @throws {@link VfioError} {@link ERR_VFIO_BAD_STRUCT} when the buffer is shorter than the struct
 */
export function decodeGroupStatus(buf: Buffer | Uint8Array): GroupStatus {
  const v = view(asBuffer(buf), 'vfio_group_status');
  const flags = v.u32('flags');
  return {
    flags,
    flagNames: bitNames(flags, GROUP_FLAGS),
    viable: (flags & VFIO_GROUP_FLAGS_VIABLE) !== 0,
    containerSet: (flags & VFIO_GROUP_FLAGS_CONTAINER_SET) !== 0,
  };
}

// ---- device info ---------------------------------------------------------------------------

/** struct vfio_device_info, decoded with its capabilities (flag names 'RESET', 'PCI', 'CAPS', …). */
export interface DeviceInfo extends InfoWithCaps<DeviceCap> {
  /** How many regions the device has: indexes 0 to numRegions − 1 (vfio-pci: at least 9). */
  numRegions: number;
  /** How many IRQ indexes the device has: 0 to numIrqs − 1 (vfio-pci: 5). */
  numIrqs: number;
}

/**
 * Decodes the reply of VFIO_DEVICE_GET_INFO (24 bytes plus any capability chain).
 *
 * @throws {@link VfioError} {@link ERR_VFIO_BAD_STRUCT} when the buffer is shorter than the struct; {@link ERR_VFIO_BAD_CAP_CHAIN} or {@link ERR_VFIO_BAD_CAP} for a malformed chain
 */
export function decodeDeviceInfo(buf: Buffer | Uint8Array): DeviceInfo {
  const { v, argsz, flags, capOffset, raws, truncated } = infoReply(buf, 'vfio_device_info', VFIO_DEVICE_FLAGS_CAPS);
  return {
    argsz,
    flags,
    flagNames: deviceFlagNames(flags),
    numRegions: v.u32('num_regions'),
    numIrqs: v.u32('num_irqs'),
    capOffset,
    caps: raws.map(decodeDeviceCap),
    truncated,
  };
}

// ---- region info -------------------------------------------------------------------------------

/** struct vfio_region_info, decoded with its capabilities (flag names 'READ', 'WRITE', 'MMAP', 'CAPS'). */
export interface RegionInfo extends InfoWithCaps<RegionCap> {
  /** The region index that was asked about. */
  index: number;
  /** 'BAR0'…, 'CONFIG', 'GFX/EDID', 'REGION<n>' (see {@link regionName}). */
  name: string;
  /** Region size in bytes. */
  size: bigint;
  /** Offset of the region in the device fd (for pread/pwrite/mmap). */
  offset: bigint;
}

/**
 * Decodes VFIO_DEVICE_GET_REGION_INFO. Capabilities are decoded only when
 * the chain bytes are present (the returned argsz ≤ the buffer length);
 * mbochs' short reply to a 32-byte query (argsz 48, CAPS, cap_offset 32)
 * therefore gives `truncated: true` and no caps.
 *
 * @throws {@link VfioError} {@link ERR_VFIO_BAD_STRUCT} when the buffer is shorter than the struct; {@link ERR_VFIO_BAD_CAP_CHAIN} or {@link ERR_VFIO_BAD_CAP} for a malformed chain
 */
export function decodeRegionInfo(buf: Buffer | Uint8Array): RegionInfo {
  // The common reply (no chain in it) is read at fixed offsets: no view, no walk.
  if (Buffer.isBuffer(buf) && buf.length >= REGION_INFO.size) {
    const flags = buf.readUInt32LE(REGION_INFO.flags);
    const argsz = buf.readUInt32LE(REGION_INFO.argsz);
    if ((flags & VFIO_REGION_INFO_FLAG_CAPS) === 0 || argsz > buf.length) {
      const index = buf.readUInt32LE(REGION_INFO.index);
      return {
        argsz,
        flags,
        flagNames: regionFlagNames(flags),
        index,
        name: regionName(index),
        capOffset: buf.readUInt32LE(REGION_INFO.capOffset),
        size: buf.readBigUInt64LE(REGION_INFO.sizeField),
        offset: buf.readBigUInt64LE(REGION_INFO.offset),
        caps: [],
        truncated: (flags & VFIO_REGION_INFO_FLAG_CAPS) !== 0,
      };
    }
  }
  const { v, argsz, flags, capOffset, raws, truncated } = infoReply(buf, 'vfio_region_info', VFIO_REGION_INFO_FLAG_CAPS);
  const index = v.u32('index');
  const caps = raws.map(decodeRegionCap);
  const typeCap = caps.find((c): c is RegionTypeCap => c.kind === 'type');
  return {
    argsz,
    flags,
    flagNames: regionFlagNames(flags),
    index,
    name: regionName(index, typeCap),
    capOffset,
    size: v.u64('size'),
    offset: v.u64('offset'),
    caps,
    truncated,
  };
}

// ---- irqs ----------------------------------------------------------------------------------------

/** struct vfio_irq_info, decoded. */
export interface IrqInfo {
  /** VFIO_IRQ_INFO_* bits (see {@link IRQ_FLAGS}). */
  flags: number;
  /** 'EVENTFD', 'MASKABLE', 'AUTOMASKED', 'NORESIZE'. */
  flagNames: string[];
  /** The IRQ index that was asked about. */
  index: number;
  /** 'INTx', 'MSI', 'MSI-X', 'ERR', 'REQ', else 'IRQ<n>'. */
  name: string;
  /** Number of vectors (0: not implemented). */
  count: number;
}

/**
 * Decodes the reply of VFIO_DEVICE_GET_IRQ_INFO.
 *
 * @throws {@link VfioError} {@link ERR_VFIO_BAD_STRUCT} when the buffer is shorter than the struct
 */
export function decodeIrqInfo(buf: Buffer | Uint8Array): IrqInfo {
  const v = view(asBuffer(buf), 'vfio_irq_info');
  const flags = v.u32('flags');
  const index = v.u32('index');
  return { flags, flagNames: irqFlagNames(flags), index, name: irqName(index), count: v.u32('count') };
}

/** The arguments of VFIO_DEVICE_SET_IRQS. */
export interface IrqSetInput {
  /** Exactly one VFIO_IRQ_SET_DATA_* and one VFIO_IRQ_SET_ACTION_* bit. */
  flags: number;
  /** The IRQ index. */
  index: number;
  /** First vector. */
  start: number;
  /** Number of vectors (0 with DATA_NONE|ACTION_TRIGGER disables the index). */
  count: number;
  /**
   * DATA_NONE: absent or empty. DATA_BOOL: `count` booleans (or 0/1), or a
   * Uint8Array of `count` bytes. DATA_EVENTFD: `count` fds (-1 to de-assign
   * or skip), as numbers or an Int32Array.
   */
  data?: readonly (boolean | number)[] | Uint8Array | Int32Array | undefined;
}

function irqSetPayload(dataType: number, count: number, data: IrqSetInput['data']): Buffer {
  const length = data === undefined ? 0 : (data as { length: number }).length;
  if (dataType === VFIO_IRQ_SET_DATA_NONE) {
    if (length !== 0) throw new RangeError(`DATA_NONE takes no data, got ${length} elements`);
    return Buffer.alloc(0);
  }
  const kind = dataType === VFIO_IRQ_SET_DATA_BOOL ? 'DATA_BOOL' : 'DATA_EVENTFD';
  if (data === undefined) throw new TypeError(`${kind} needs data: ${count} elements`);
  if (dataType === VFIO_IRQ_SET_DATA_BOOL) {
    if (data instanceof Int32Array) throw new TypeError('DATA_BOOL data must be booleans or a Uint8Array, not an Int32Array');
    if (!(data instanceof Uint8Array) && !Array.isArray(data)) {
      throw new TypeError('DATA_BOOL data must be an array of booleans or a Uint8Array');
    }
  } else if (!(data instanceof Int32Array) && !Array.isArray(data)) {
    throw new TypeError('DATA_EVENTFD data must be an array of fds or an Int32Array');
  }
  if (length !== count) throw new RangeError(`${kind} data has ${length} elements, count is ${count}`);
  if (dataType === VFIO_IRQ_SET_DATA_BOOL) {
    const out = Buffer.alloc(count);
    if (data instanceof Uint8Array) {
      out.set(data);
      return out;
    }
    (data as readonly unknown[]).forEach((x, i) => {
      if (typeof x === 'boolean') out[i] = x ? 1 : 0;
      else if (x === 0 || x === 1) out[i] = x;
      else throw new TypeError(`DATA_BOOL data[${i}] must be a boolean, 0 or 1, got ${String(x)}`);
    });
    return out;
  }
  const out = Buffer.alloc(count * 4);
  for (let i = 0; i < count; i++) out.writeInt32LE(checkFd((data as ArrayLike<unknown>)[i], `DATA_EVENTFD data[${i}]`, true), i * 4);
  return out;
}

/**
 * Encodes VFIO_DEVICE_SET_IRQS: struct vfio_irq_set followed by its data,
 * `argsz` = 20 + data bytes (1 per vector for DATA_BOOL, 4 for DATA_EVENTFD,
 * 0 for DATA_NONE). Throws TypeError/RangeError for bad input before
 * building anything.
 *
 * @throws TypeError when a field has the wrong type, or the data the wrong kind for the DATA_* flag
 * @throws RangeError when `flags` has unknown bits or not exactly one DATA_* and one ACTION_*
 *   bit, start + count overflows 32 bits, or the data length is not `count`
 */
export function encodeIrqSet(input: IrqSetInput): Buffer {
  if (typeof input !== 'object' || input === null) throw new TypeError('encodeIrqSet needs an object argument');
  const flags = checkU32(input.flags, 'flags');
  const index = checkU32(input.index, 'index');
  const start = checkU32(input.start, 'start');
  const count = checkU32(input.count, 'count');
  checkFlagBits(flags, VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK, 'flags');
  const dataType = flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
  if (popcount(dataType) !== 1) throw new RangeError('flags must contain exactly one of DATA_NONE, DATA_BOOL, DATA_EVENTFD');
  if (popcount(flags & VFIO_IRQ_SET_ACTION_TYPE_MASK) !== 1) {
    throw new RangeError('flags must contain exactly one of ACTION_MASK, ACTION_UNMASK, ACTION_TRIGGER');
  }
  if (start + count > 0xffff_ffff) throw new RangeError(`start + count must fit in 32 bits, got ${start} + ${count}`);
  const payload = irqSetPayload(dataType, count, input.data);
  const w = new StructWriter('vfio_irq_set', payload.length);
  w.u32('argsz', w.buf.length).u32('flags', flags).u32('index', index).u32('start', start).u32('count', count);
  payload.copy(w.buf, w.at('data'));
  return w.buf;
}

// ---- gfx planes ------------------------------------------------------------------------------------

/** The inputs of VFIO_DEVICE_QUERY_GFX_PLANE. */
export interface GfxPlaneQuery {
  /** VFIO_GFX_PLANE_TYPE_* bits: DMABUF or REGION, optionally with PROBE. */
  flags: number;
  /** DRM_PLANE_TYPE_*; default PRIMARY (1). */
  drmPlaneType?: number;
}

/**
 * Encodes a 64-byte struct vfio_device_gfx_plane_info query (argsz 64).
 *
 * @throws RangeError when `flags` has bits other than VFIO_GFX_PLANE_TYPE_*
 */
export function encodeGfxPlaneQuery(query: GfxPlaneQuery): Buffer {
  if (typeof query !== 'object' || query === null) throw new TypeError('encodeGfxPlaneQuery needs an object argument');
  const flags = checkU32(query.flags, 'flags');
  checkFlagBits(flags, Object.values(GFX_PLANE_FLAGS).reduce((a, b) => a | b, 0), 'flags');
  const planeType = checkU32(query.drmPlaneType ?? DRM_PLANE_TYPE_PRIMARY, 'drmPlaneType');
  const w = new StructWriter('vfio_device_gfx_plane_info');
  return w.u32('argsz', w.buf.length).u32('flags', flags).u32('drm_plane_type', planeType).buf;
}

/** struct vfio_device_gfx_plane_info, decoded. */
export interface GfxPlaneInfo {
  /** VFIO_GFX_PLANE_TYPE_* bits: which kind of plane this is. */
  flags: number;
  /** 'PROBE', 'DMABUF', 'REGION'. */
  flagNames: string[];
  /** DRM_PLANE_TYPE_*: 0 overlay, 1 primary, 2 cursor. */
  drmPlaneType: number;
  /** DRM fourcc (0x34325258 = XRGB8888); 0 when the plane is disabled. */
  drmFormat: number;
  /** The fourcc as text ('XR24'), or hex when not printable. */
  drmFormatName: string;
  /** DRM format modifier (0: linear). */
  drmFormatMod: bigint;
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** Bytes per line. */
  stride: number;
  /** Size of the plane in bytes. */
  size: number;
  /** Horizontal position of the plane on the screen, in pixels (cursor planes). */
  xPos: number;
  /** Vertical position of the plane on the screen, in pixels (cursor planes). */
  yPos: number;
  /** Horizontal hotspot of a cursor plane, in pixels. */
  xHot: number;
  /** Vertical hotspot of a cursor plane, in pixels. */
  yHot: number;
  /** The region holding the plane, for REGION queries (shares its bytes with dmabufId). */
  regionIndex: number | undefined;
  /** The id to pass to VFIO_DEVICE_GET_GFX_DMABUF, for DMABUF queries. */
  dmabufId: number | undefined;
}

/**
 * A DRM fourcc as text, least significant byte first: 'XR24' for 0x34325258.
 *
 * @returns the four characters, or hex ('0x0') when any byte is not printable ASCII
 */
export function fourccToString(code: number): string {
  const bytes = [0, 8, 16, 24].map((s) => (code >>> s) & 0xff);
  return bytes.every((c) => c >= 0x20 && c < 0x7f) ? String.fromCharCode(...bytes) : `0x${(code >>> 0).toString(16)}`;
}

/**
 * Decodes VFIO_DEVICE_QUERY_GFX_PLANE. At least 60 bytes (through
 * region_index, mdpy's minsz) must be present.
 *
 * @throws {@link VfioError} {@link ERR_VFIO_BAD_STRUCT} when fewer than 60 bytes are present
 */
export function decodeGfxPlaneInfo(buf: Buffer | Uint8Array): GfxPlaneInfo {
  const v = view(asBuffer(buf), 'vfio_device_gfx_plane_info', 0, offsetOf('vfio_device_gfx_plane_info', 'reserved'));
  const flags = v.u32('flags');
  const drmFormat = v.u32('drm_format');
  return {
    flags,
    flagNames: bitNames(flags, GFX_PLANE_FLAGS),
    drmPlaneType: v.u32('drm_plane_type'),
    drmFormat,
    drmFormatName: fourccToString(drmFormat),
    drmFormatMod: v.u64('drm_format_mod'),
    width: v.u32('width'),
    height: v.u32('height'),
    stride: v.u32('stride'),
    size: v.u32('size'),
    xPos: v.u32('x_pos'),
    yPos: v.u32('y_pos'),
    xHot: v.u32('x_hot'),
    yHot: v.u32('y_hot'),
    regionIndex: flags & VFIO_GFX_PLANE_TYPE_REGION ? v.u32('region_index') : undefined,
    dmabufId: flags & VFIO_GFX_PLANE_TYPE_DMABUF ? v.u32('dmabuf_id') : undefined,
  };
}

// ---- EDID region --------------------------------------------------------------------------------------

/** struct vfio_region_gfx_edid (the register block at the start of a GFX/EDID region). */
export interface EdidRegs {
  /** Where the EDID blob starts, relative to the region. */
  edidOffset: number;
  /** The most EDID bytes the region holds. */
  edidMaxSize: number;
  /** The EDID blob's current size in bytes (write it to change the EDID). */
  edidSize: number;
  /** 0 = no limit. */
  maxXres: number;
  /** 0 = no limit. */
  maxYres: number;
  /** VFIO_DEVICE_GFX_LINK_STATE_UP (1) / DOWN (2); mbochs starts at 0. */
  linkState: number;
}

/**
 * Decodes the 24-byte EDID register block read from the start of a GFX/EDID region.
 *
 * @throws {@link VfioError} {@link ERR_VFIO_BAD_STRUCT} when the buffer is shorter than the struct
 */
export function decodeEdidRegs(buf: Buffer | Uint8Array): EdidRegs {
  const v = view(asBuffer(buf), 'vfio_region_gfx_edid');
  return {
    edidOffset: v.u32('edid_offset'),
    edidMaxSize: v.u32('edid_max_size'),
    edidSize: v.u32('edid_size'),
    maxXres: v.u32('max_xres'),
    maxYres: v.u32('max_yres'),
    linkState: v.u32('link_state'),
  };
}

// ---- type1 IOMMU info ------------------------------------------------------------------------------------

/** struct vfio_iommu_type1_info, decoded with its capabilities (flag names 'PGSIZES', 'CAPS'; argsz 72 for an mdev-only container). */
export interface Type1Info extends InfoWithCaps<Type1Cap> {
  /** Bitmap of supported IOMMU page sizes. */
  iovaPgsizes: bigint;
}

/**
 * Decodes the reply of VFIO_IOMMU_GET_INFO on a type1 container.
 *
 * @throws {@link VfioError} {@link ERR_VFIO_BAD_STRUCT} when the buffer is shorter than the struct; {@link ERR_VFIO_BAD_CAP_CHAIN} or {@link ERR_VFIO_BAD_CAP} for a malformed chain
 */
export function decodeType1Info(buf: Buffer | Uint8Array): Type1Info {
  const { v, argsz, flags, capOffset, raws, truncated } = infoReply(buf, 'vfio_iommu_type1_info', VFIO_IOMMU_INFO_CAPS);
  return {
    argsz,
    flags,
    flagNames: bitNames(flags, TYPE1_INFO_FLAGS),
    iovaPgsizes: v.u64('iova_pgsizes'),
    capOffset,
    caps: raws.map(decodeType1Cap),
    truncated,
  };
}

// ---- PCI hot reset -----------------------------------------------------------------------------------------

/** struct vfio_pci_dependent_device, decoded. */
export interface DependentDevice {
  /** The IOMMU group (group/container API); undefined with FLAG_DEV_ID. */
  groupId: number | undefined;
  /**
   * The iommufd device id (cdev API, FLAG_DEV_ID): > 0 owned with a devid,
   * VFIO_PCI_DEVID_OWNED (0) owned through its group, VFIO_PCI_DEVID_NOT_OWNED
   * (0xffffffff) not owned; undefined without FLAG_DEV_ID.
   */
  devid: number | undefined;
  /** PCI segment (domain). */
  segment: number;
  /** PCI bus number. */
  bus: number;
  /** PCI device and function, packed as (slot << 3) | function. */
  devfn: number;
  /** PCI slot (device) number, from `devfn`. */
  slot: number;
  /** PCI function number, from `devfn`. */
  function: number;
  /** 'DDDD:BB:SS.F', e.g. '0000:00:03.0'. */
  address: string;
}

/** struct vfio_pci_hot_reset_info, decoded. */
export interface HotResetInfo {
  /** The argsz the kernel reports. */
  argsz: number;
  /** VFIO_PCI_HOT_RESET_FLAG_* bits (see {@link HOT_RESET_FLAGS}). */
  flags: number;
  /** 'DEV_ID', 'DEV_ID_OWNED'. */
  flagNames: string[];
  /** Number of affected devices. */
  count: number;
  /** The affected devices ([] when `truncated`). */
  devices: DependentDevice[];
  /** The devices did not fit: repeat with `neededArgsz` bytes. */
  truncated: boolean;
  /** 12 + 8 × count. */
  neededArgsz: number;
}

/**
 * Decodes VFIO_DEVICE_GET_PCI_HOT_RESET_INFO (12-byte header plus `count` 8-byte devices).
 *
 * @throws {@link VfioError} {@link ERR_VFIO_BAD_STRUCT} when the buffer is shorter than the struct header
 */
export function decodeHotResetInfo(buf: Buffer | Uint8Array): HotResetInfo {
  const b = asBuffer(buf);
  const v = view(b, 'vfio_pci_hot_reset_info');
  const flags = v.u32('flags');
  const count = v.u32('count');
  const first = v.at('devices');
  const elem = LAYOUTS.vfio_pci_dependent_device.size;
  const neededArgsz = first + count * elem;
  const truncated = neededArgsz > b.length;
  const byDevid = (flags & VFIO_PCI_HOT_RESET_FLAG_DEV_ID) !== 0;
  const devices: DependentDevice[] = [];
  for (let i = 0; !truncated && i < count; i++) {
    const d = view(b, 'vfio_pci_dependent_device', first + i * elem);
    const segment = d.u16('segment');
    const bus = d.u8('bus');
    const devfn = d.u8('devfn');
    devices.push({
      groupId: byDevid ? undefined : d.u32('group_id'),
      devid: byDevid ? d.u32('devid') : undefined,
      segment,
      bus,
      devfn,
      slot: pciSlot(devfn),
      function: pciFunction(devfn),
      address: formatPciAddress(segment, bus, devfn),
    });
  }
  return {
    argsz: v.u32('argsz'),
    flags,
    flagNames: bitNames(flags, HOT_RESET_FLAGS),
    count,
    devices,
    truncated,
    neededArgsz,
  };
}

/**
 * Encodes VFIO_DEVICE_PCI_HOT_RESET: struct vfio_pci_hot_reset with the
 * group fds proving ownership (empty for cdev-opened devices), flags 0.
 *
 * @throws TypeError when `groupFds` is not an array or Int32Array, or holds a non-number
 * @throws RangeError for an fd outside 0 … 2^31 − 1
 */
export function encodeHotReset(groupFds: readonly number[] | Int32Array): Buffer {
  if (!Array.isArray(groupFds) && !(groupFds instanceof Int32Array)) {
    throw new TypeError('groupFds must be an array of file descriptors or an Int32Array');
  }
  const fds = Array.from(groupFds as ArrayLike<unknown>, (fd, i) => checkFd(fd, `groupFds[${i}]`));
  const elem = 4;
  const w = new StructWriter('vfio_pci_hot_reset', fds.length * elem);
  w.u32('argsz', w.buf.length).u32('flags', 0).u32('count', fds.length);
  fds.forEach((fd, i) => w.buf.writeInt32LE(fd, w.at('group_fds') + i * elem));
  return w.buf;
}

// ---- device features -----------------------------------------------------------------------------------------

/**
 * Encodes VFIO_DEVICE_FEATURE: struct vfio_device_feature followed by
 * `data`. `flags` = feature id (bits 0-15) | GET / SET / PROBE; GET and SET
 * together only with PROBE, as the kernel requires.
 *
 * @throws RangeError for unknown flag bits, or GET and SET without PROBE
 */
export function encodeDeviceFeature(flags: number, data?: Buffer | Uint8Array): Buffer {
  checkU32(flags, 'flags');
  checkFlagBits(
    flags,
    VFIO_DEVICE_FEATURE_MASK | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_PROBE,
    'flags',
  );
  const getSet = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET;
  if ((flags & getSet) === getSet && !(flags & VFIO_DEVICE_FEATURE_PROBE)) {
    throw new RangeError('flags may combine GET and SET only with PROBE');
  }
  const payload = data === undefined ? Buffer.alloc(0) : asBuffer(data, 'data');
  const w = new StructWriter('vfio_device_feature', payload.length);
  w.u32('argsz', w.buf.length).u32('flags', flags);
  payload.copy(w.buf, w.at('data'));
  return w.buf;
}

/** struct vfio_device_feature, decoded. */
export interface DeviceFeature {
  /** The header's argsz: 8 plus the data's length. */
  argsz: number;
  /** The feature id and the GET/SET/PROBE bits. */
  flags: number;
  /** flags & VFIO_DEVICE_FEATURE_MASK. */
  feature: number;
  /** VFIO_DEVICE_FEATURE_GET is set. */
  get: boolean;
  /** VFIO_DEVICE_FEATURE_SET is set. */
  set: boolean;
  /** VFIO_DEVICE_FEATURE_PROBE is set. */
  probe: boolean;
  /** The bytes after the 8-byte header (a view). */
  data: Buffer;
}

/**
 * Decodes a VFIO_DEVICE_FEATURE buffer (header + data).
 *
 * @throws {@link VfioError} {@link ERR_VFIO_BAD_STRUCT} when the buffer is shorter than the struct header
 */
export function decodeDeviceFeature(buf: Buffer | Uint8Array): DeviceFeature {
  const b = asBuffer(buf);
  const v = view(b, 'vfio_device_feature');
  const flags = v.u32('flags');
  return {
    argsz: v.u32('argsz'),
    flags,
    feature: flags & VFIO_DEVICE_FEATURE_MASK,
    get: (flags & VFIO_DEVICE_FEATURE_GET) !== 0,
    set: (flags & VFIO_DEVICE_FEATURE_SET) !== 0,
    probe: (flags & VFIO_DEVICE_FEATURE_PROBE) !== 0,
    data: b.subarray(v.at('data')),
  };
}

/** The payload struct of a VFIO_DEVICE_FEATURE reply (header + data). */
function featurePayload<S extends StructName>(buf: Buffer | Uint8Array, struct: S): StructView<S> {
  return view(asBuffer(buf), struct, offsetOf('vfio_device_feature', 'data'));
}

/** VFIO_DEVICE_FEATURE_MIGRATION (GET), decoded. */
export interface MigrationFeature {
  /** VFIO_MIGRATION_* bits (a u64). */
  flags: bigint;
  /** 'STOP_COPY', 'P2P', 'PRE_COPY'. */
  flagNames: string[];
}

/** Decodes a VFIO_DEVICE_FEATURE_MIGRATION GET reply (header + struct vfio_device_feature_migration). */
export function decodeMigrationFeature(buf: Buffer | Uint8Array): MigrationFeature {
  const flags = featurePayload(buf, 'vfio_device_feature_migration').u64('flags');
  return { flags, flagNames: bitNames(flags, MIGRATION_FLAGS) };
}

/** VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, decoded. */
export interface MigState {
  /** enum vfio_device_mig_state. */
  deviceState: number;
  /** 'RUNNING', 'STOP_COPY', … or 'STATE<n>'. */
  deviceStateName: string;
  /** The migration data fd a SET returned (-1 when none). */
  dataFd: number;
}

/** Decodes a VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE reply (header + struct vfio_device_feature_mig_state). */
export function decodeMigState(buf: Buffer | Uint8Array): MigState {
  const v = featurePayload(buf, 'vfio_device_feature_mig_state');
  const deviceState = v.u32('device_state');
  return {
    deviceState,
    deviceStateName: MIG_STATE_NAMES[deviceState] ?? `STATE${deviceState}`,
    dataFd: v.s32('data_fd'),
  };
}

/**
 * The 8-byte payload of a MIG_DEVICE_STATE SET: `device_state`, `data_fd` -1.
 * Pass it to {@link encodeDeviceFeature}.
 */
export function encodeMigState(deviceState: number): Buffer {
  const state = checkU32(deviceState, 'deviceState');
  return new StructWriter('vfio_device_feature_mig_state').u32('device_state', state).s32('data_fd', -1).buf;
}

/** Decodes a VFIO_DEVICE_FEATURE_MIG_DATA_SIZE GET reply: the estimated STOP_COPY length in bytes. */
export function decodeMigDataSize(buf: Buffer | Uint8Array): {
  /** How many bytes reading the device state in STOP_COPY is estimated to give. */
  stopCopyLength: bigint;
} {
  return { stopCopyLength: featurePayload(buf, 'vfio_device_feature_mig_data_size').u64('stop_copy_length') };
}

/** Decodes VFIO_MIG_GET_PRECOPY_INFO (struct vfio_precopy_info). */
export function decodePrecopyInfo(buf: Buffer | Uint8Array): {
  /** Bytes of initial state still to read from the data fd in PRE_COPY. */
  initialBytes: bigint;
  /** Bytes of state the device has changed since, still to read. */
  dirtyBytes: bigint;
} {
  const v = view(asBuffer(buf), 'vfio_precopy_info');
  return { initialBytes: v.u64('initial_bytes'), dirtyBytes: v.u64('dirty_bytes') };
}
