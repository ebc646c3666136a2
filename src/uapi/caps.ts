/**
 * VFIO capability chains (`struct vfio_info_cap_header`, vfio.h:73-98) and
 * the decoders of the capabilities each INFO ioctl can carry. Capability ids
 * are per INFO ioctl: region-info, device-info and type1 IOMMU-info ids
 * overlap numerically, so each namespace has its own decoder.
 *
 * The walker is safe on hostile input: it never loops and never reads out
 * of bounds; a malformed chain throws a VfioError with code
 * `ERR_VFIO_BAD_CAP_CHAIN`, a capability whose contents do not fit its bytes
 * one with `ERR_VFIO_BAD_CAP`.
 */
import {
  ERR_VFIO_BAD_CAP,
  ERR_VFIO_BAD_CAP_CHAIN,
  bitNames,
  malformed,
  view,
  type StructView,
} from './binary.js';
import {
  ATOMIC_COMP_FLAGS,
  VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
  VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION,
  VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
  VFIO_REGION_INFO_CAP_MSIX_MAPPABLE,
  VFIO_REGION_INFO_CAP_SPARSE_MMAP,
  VFIO_REGION_INFO_CAP_TYPE,
} from './constants.js';
import { LAYOUTS, type FieldName, type StructName } from './layouts.js';

/** sizeof(struct vfio_info_cap_header): 8 bytes (id, version, next). */
export const CAP_HEADER_SIZE = LAYOUTS.vfio_info_cap_header.size;

/**
 * Required alignment of a capability offset. The header's `next` is a u32,
 * so 4 is the least that makes sense; the kernel's vfio_info_cap_add() pads
 * every capability to 8 bytes and all info structs have sizes that are
 * multiples of 8, so real chains are 8-aligned and pass this check.
 */
export const CAP_ALIGN = 4;

/** The most capabilities one chain may hold before it is called malformed. */
export const MAX_CAPS = 64;

/** One capability of a chain, undecoded. */
export interface RawCap {
  /** Capability id (meaning depends on the INFO ioctl). */
  id: number;
  /** The capability's version (the header's `version`). */
  version: number;
  /** Byte offset of the header from the start of the info buffer. */
  offset: number;
  /** The header's `next` (0 for the last capability). */
  next: number;
  /**
   * The capability's bytes, header included: from `offset` to `next`, or to
   * the end of the buffer for the last one (padding included). A view of
   * the input buffer, not a copy.
   */
  bytes: Buffer;
}

/** Options of {@link walkCaps}. */
export interface WalkCapsOptions {
  /**
   * The smallest offset a capability may have: the fixed size of the info
   * struct the chain follows (32 for vfio_region_info). Default 8.
   */
  minOffset?: number;
  /** The most capabilities accepted. Default {@link MAX_CAPS}. */
  maxCaps?: number;
}

/**
 * Walks a capability chain starting at `firstOffset` (a `cap_offset`; 0 means
 * no chain and returns `[]`). `buf` should end where the kernel's data ends
 * (at `argsz`). Each offset must be ≥ `minOffset`, a multiple of
 * {@link CAP_ALIGN}, leave room for the 8-byte header inside `buf`, and lie at
 * least one header beyond the previous one (so offsets strictly increase and
 * the walk cannot cycle); at most `maxCaps` capabilities. Anything else
 * throws a VfioError `ERR_VFIO_BAD_CAP_CHAIN`.
 */
export function walkCaps(buf: Buffer, firstOffset: number, options: WalkCapsOptions = {}): RawCap[] {
  const minOffset = options.minOffset ?? CAP_HEADER_SIZE;
  const maxCaps = options.maxCaps ?? MAX_CAPS;
  const caps: RawCap[] = [];
  let offset = firstOffset;
  let floor = minOffset;
  const bad = (why: string): never => {
    throw malformed(ERR_VFIO_BAD_CAP_CHAIN, `capability ${caps.length} at offset ${offset}: ${why}`);
  };
  while (offset !== 0) {
    if (!Number.isInteger(offset)) bad('the offset is not an integer');
    if (caps.length >= maxCaps) bad(`more than ${maxCaps} capabilities`);
    if (offset < floor) {
      bad(
        caps.length === 0
          ? `the first capability must start at or after ${floor} (the end of the fixed struct)`
          : `next must point at least ${CAP_HEADER_SIZE} bytes past the previous capability (${floor}); the chain goes backwards or cycles`,
      );
    }
    if (offset % CAP_ALIGN !== 0) bad(`the offset is not ${CAP_ALIGN}-byte aligned`);
    if (offset + CAP_HEADER_SIZE > buf.length) {
      bad(`the ${CAP_HEADER_SIZE}-byte header does not fit in the ${buf.length} bytes returned`);
    }
    const h = view(buf, 'vfio_info_cap_header', offset);
    const next = h.u32('next');
    caps.push({
      id: h.u16('id'),
      version: h.u16('version'),
      offset,
      next,
      bytes: buf.subarray(offset, next > offset && next <= buf.length ? next : buf.length),
    });
    floor = offset + CAP_HEADER_SIZE;
    offset = next;
  }
  return caps;
}

// ---- decoded capabilities ----------------------------------------------------------

/** Fields every decoded capability has. */
export interface CapBase {
  /** The capability id from its header; its meaning depends on the INFO ioctl (region, device or type1 IOMMU info). */
  id: number;
  /** The capability's version from its header. */
  version: number;
}

/** A capability this package does not decode, kept as raw bytes (header included). */
export interface UnknownCap extends CapBase {
  /** Discriminant of the decoded capability unions: `'unknown'` for an id this package does not decode. */
  kind: 'unknown';
  /** A copy of the capability's bytes, header included (padding included for the last one). */
  raw: Buffer;
}

/** VFIO_REGION_INFO_CAP_SPARSE_MMAP: the only areas of the region that may be mmapped. */
export interface SparseMmapCap extends CapBase {
  /** Discriminant of the decoded capability union: `'sparse-mmap'`. */
  kind: 'sparse-mmap';
  /** The mmappable areas, in the kernel's order. */
  areas: {
    /** Byte offset of the area from the start of the region. */
    offset: bigint;
    /** The area's length in bytes. */
    size: bigint;
  }[];
}

/** VFIO_REGION_INFO_CAP_TYPE: what a device-specific region is. */
export interface RegionTypeCap extends CapBase {
  /** Discriminant of the decoded capability union: `'type'`. */
  kind: 'type';
  /** VFIO_REGION_TYPE_* (PCI_VENDOR_TYPE | vendor id for vendor types). */
  type: number;
  /** VFIO_REGION_SUBTYPE_*, numbered per type (e.g. {@link VFIO_REGION_SUBTYPE_GFX_EDID} of GFX). */
  subtype: number;
}

/** VFIO_REGION_INFO_CAP_MSIX_MAPPABLE: the MSI-X table's BAR may be mmapped (header only). */
export interface MsixMappableCap extends CapBase {
  /** Discriminant of the decoded capability union: `'msix-mappable'`. */
  kind: 'msix-mappable';
}

/** A region-info capability. */
export type RegionCap = SparseMmapCap | RegionTypeCap | MsixMappableCap | UnknownCap;

/** VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE: the usable IOVA ranges. */
export interface IovaRangeCap extends CapBase {
  /** Discriminant of the decoded capability union: `'iova-range'`. */
  kind: 'iova-range';
  /** The usable ranges, in the kernel's order. */
  ranges: {
    /** The first usable IOVA. */
    start: bigint;
    /** The last usable IOVA (inclusive). */
    end: bigint;
  }[];
}

/** VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION: dirty page logging support. */
export interface Type1MigrationCap extends CapBase {
  /** Discriminant of the decoded capability union: `'migration'`. */
  kind: 'migration';
  /** The capability's flags (none are defined on Linux 6.12). */
  flags: number;
  /** Page sizes supported for dirty logging, one bit per power of two (bit 12: 4 KiB). */
  pgsizeBitmap: bigint;
  /** Largest dirty bitmap, in bytes. */
  maxDirtyBitmapSize: bigint;
}

/** VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL: how many more DMA mappings are allowed. */
export interface DmaAvailCap extends CapBase {
  /** Discriminant of the decoded capability union: `'dma-avail'`. */
  kind: 'dma-avail';
  /** How many more mappings the container accepts before ENOSPC (type1's `dma_entry_limit` minus those in use). */
  avail: number;
}

/** A type1 IOMMU-info capability. */
export type Type1Cap = IovaRangeCap | Type1MigrationCap | DmaAvailCap | UnknownCap;

/** VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP: AtomicOp completion widths supported to the root bus. */
export interface PciAtomicCompCap extends CapBase {
  /** Discriminant of the decoded capability union: `'pci-atomic-comp'`. */
  kind: 'pci-atomic-comp';
  /** VFIO_PCI_ATOMIC_COMP* bits (see {@link ATOMIC_COMP_FLAGS}). */
  flags: number;
  /** 'COMP32', 'COMP64', 'COMP128'. */
  flagNames: string[];
}

/** A device-info capability. */
export type DeviceCap = PciAtomicCompCap | UnknownCap;

/** The fixed part of a capability struct, bounds-checked against the capability's own bytes. */
function capView<S extends StructName>(raw: RawCap, struct: S, what: string): StructView<S> {
  const need = LAYOUTS[struct].size;
  if (raw.bytes.length < need) {
    throw malformed(
      ERR_VFIO_BAD_CAP,
      `${what} capability at offset ${raw.offset} needs ${need} bytes, but only ${raw.bytes.length} are present`,
    );
  }
  return view(raw.bytes, struct);
}

/**
 * A capability that is a header, a count and an array (SPARSE_MMAP, IOVA_RANGE):
 * reads the count, checks that the whole array lies inside the capability's
 * bytes (else `ERR_VFIO_BAD_CAP`) and decodes each element.
 */
function capEntries<S extends StructName, E extends StructName, T>(
  raw: RawCap,
  struct: S,
  what: string,
  fields: { count: FieldName<S>; array: FieldName<S> },
  elem: E,
  decode: (v: StructView<E>) => T,
): T[] {
  const v = capView(raw, struct, what);
  const count = v.u32(fields.count);
  const start = v.at(fields.array);
  const size = LAYOUTS[elem].size;
  const room = Math.floor((raw.bytes.length - start) / size);
  if (count > room) {
    throw malformed(
      ERR_VFIO_BAD_CAP,
      `${what} capability at offset ${raw.offset} claims ${count} entries, but its ${raw.bytes.length} bytes hold at most ${Math.max(room, 0)}`,
    );
  }
  return Array.from({ length: count }, (_, i) => decode(view(raw.bytes, elem, start + i * size)));
}

/** An undecoded capability, its bytes copied. @internal */
export function unknownCap(raw: RawCap): UnknownCap {
  return { id: raw.id, version: raw.version, kind: 'unknown', raw: Buffer.from(raw.bytes) };
}

/**
 * Decodes one region-info capability: SPARSE_MMAP, TYPE, MSIX_MAPPABLE; any
 * other id is kept raw as an {@link UnknownCap}.
 *
 * @throws {@link VfioError} {@link ERR_VFIO_BAD_CAP} when its contents do not fit its bytes
 */
export function decodeRegionCap(raw: RawCap): RegionCap {
  const base = { id: raw.id, version: raw.version };
  switch (raw.id) {
    case VFIO_REGION_INFO_CAP_SPARSE_MMAP: {
      const fields = { count: 'nr_areas', array: 'areas' } as const;
      const areas = capEntries(raw, 'vfio_region_info_cap_sparse_mmap', 'SPARSE_MMAP', fields, 'vfio_region_sparse_mmap_area', (a) => ({
        offset: a.u64('offset'),
        size: a.u64('size'),
      }));
      return { ...base, kind: 'sparse-mmap', areas };
    }
    case VFIO_REGION_INFO_CAP_TYPE: {
      const v = capView(raw, 'vfio_region_info_cap_type', 'TYPE');
      return { ...base, kind: 'type', type: v.u32('type'), subtype: v.u32('subtype') };
    }
    case VFIO_REGION_INFO_CAP_MSIX_MAPPABLE:
      return { ...base, kind: 'msix-mappable' };
    default:
      return unknownCap(raw);
  }
}

/**
 * Decodes one type1 IOMMU-info capability: IOVA_RANGE, MIGRATION, DMA_AVAIL;
 * any other id is kept raw as an {@link UnknownCap}.
 *
 * @throws {@link VfioError} {@link ERR_VFIO_BAD_CAP} when its contents do not fit its bytes
 */
export function decodeType1Cap(raw: RawCap): Type1Cap {
  const base = { id: raw.id, version: raw.version };
  switch (raw.id) {
    case VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE: {
      const fields = { count: 'nr_iovas', array: 'iova_ranges' } as const;
      const ranges = capEntries(raw, 'vfio_iommu_type1_info_cap_iova_range', 'IOVA_RANGE', fields, 'vfio_iova_range', (r) => ({
        start: r.u64('start'),
        end: r.u64('end'),
      }));
      return { ...base, kind: 'iova-range', ranges };
    }
    case VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION: {
      const v = capView(raw, 'vfio_iommu_type1_info_cap_migration', 'MIGRATION');
      return {
        ...base,
        kind: 'migration',
        flags: v.u32('flags'),
        pgsizeBitmap: v.u64('pgsize_bitmap'),
        maxDirtyBitmapSize: v.u64('max_dirty_bitmap_size'),
      };
    }
    case VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL: {
      const v = capView(raw, 'vfio_iommu_type1_info_dma_avail', 'DMA_AVAIL');
      return { ...base, kind: 'dma-avail', avail: v.u32('avail') };
    }
    default:
      return unknownCap(raw);
  }
}

/**
 * Decodes one device-info capability: PCI_ATOMIC_COMP; the zPCI ids 1–4 and
 * any other id are kept raw as an {@link UnknownCap}.
 *
 * @throws {@link VfioError} {@link ERR_VFIO_BAD_CAP} when its contents do not fit its bytes
 */
export function decodeDeviceCap(raw: RawCap): DeviceCap {
  if (raw.id === VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP) {
    const v = capView(raw, 'vfio_device_info_cap_pci_atomic_comp', 'PCI_ATOMIC_COMP');
    const flags = v.u32('flags');
    return { id: raw.id, version: raw.version, kind: 'pci-atomic-comp', flags, flagNames: bitNames(flags, ATOMIC_COMP_FLAGS) };
  }
  return unknownCap(raw);
}

/**
 * Walks and decodes a region-info chain (see {@link walkCaps} and {@link decodeRegionCap}).
 *
 * @throws {@link VfioError} {@link ERR_VFIO_BAD_CAP_CHAIN} or {@link ERR_VFIO_BAD_CAP}
 */
export function decodeRegionCaps(buf: Buffer, firstOffset: number, options?: WalkCapsOptions): RegionCap[] {
  return walkCaps(buf, firstOffset, options).map(decodeRegionCap);
}

/**
 * Walks and decodes a type1 IOMMU-info chain (see {@link walkCaps} and {@link decodeType1Cap}).
 *
 * @throws {@link VfioError} {@link ERR_VFIO_BAD_CAP_CHAIN} or {@link ERR_VFIO_BAD_CAP}
 */
export function decodeType1Caps(buf: Buffer, firstOffset: number, options?: WalkCapsOptions): Type1Cap[] {
  return walkCaps(buf, firstOffset, options).map(decodeType1Cap);
}

/**
 * Walks and decodes a device-info chain (see {@link walkCaps} and {@link decodeDeviceCap}).
 *
 * @throws {@link VfioError} {@link ERR_VFIO_BAD_CAP_CHAIN} or {@link ERR_VFIO_BAD_CAP}
 */
export function decodeDeviceCaps(buf: Buffer, firstOffset: number, options?: WalkCapsOptions): DeviceCap[] {
  return walkCaps(buf, firstOffset, options).map(decodeDeviceCap);
}

