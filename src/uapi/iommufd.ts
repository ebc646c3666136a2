/**
 * Decoders for the outputs of iommufd ioctls (include/uapi/linux/iommufd.h,
 * Linux 6.12). The structs with user pointers are built by the native
 * addon; TypeScript decodes what comes back: the iova range array of
 * IOMMU_IOAS_IOVA_RANGES, the iommu_hw_info header of IOMMU_GET_HW_INFO and
 * the Intel VT-d data it points to. Layouts of every iommufd struct are in
 * `LAYOUTS` (see {@link sizeOf} and {@link offsetOf}).
 */
import { ERR_VFIO_BAD_STRUCT, asBuffer, bitNames, malformed, view } from './binary.js';
import { HW_INFO_CAPS, IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17, VTD_INFO_FLAGS } from './constants.js';
import { LAYOUTS } from './layouts.js';

/** One usable IOVA range; `last` is inclusive. */
export interface IommuIovaRange {
  /** The first usable IOVA. */
  start: bigint;
  /** The last usable IOVA (inclusive). */
  last: bigint;
}

/**
 * Decodes an array of struct iommu_iova_range (16 bytes each). With `count`
 * (the returned num_iovas) exactly that many are read and must fit; without
 * it the buffer length must be a multiple of 16.
 *
 * @throws {@link VfioError} {@link ERR_VFIO_BAD_STRUCT} when the ranges do not fit the buffer
 * @throws RangeError for a `count` that is not a non-negative integer
 */
export function decodeIovaRanges(buf: Buffer | Uint8Array, count?: number): IommuIovaRange[] {
  const b = asBuffer(buf);
  const elem = LAYOUTS.iommu_iova_range.size;
  let n: number;
  if (count === undefined) {
    if (b.length % elem !== 0) {
      throw malformed(ERR_VFIO_BAD_STRUCT, `an iommu_iova_range array must be a multiple of ${elem} bytes, got ${b.length}`);
    }
    n = b.length / elem;
  } else {
    if (!Number.isInteger(count) || count < 0) throw new RangeError(`count must be a non-negative integer, got ${count}`);
    if (count * elem > b.length) {
      throw malformed(ERR_VFIO_BAD_STRUCT, `${count} iova ranges need ${count * elem} bytes, but the buffer holds ${b.length}`);
    }
    n = count;
  }
  return Array.from({ length: n }, (_, i) => {
    const r = view(b, 'iommu_iova_range', i * elem);
    return { start: r.u64('start'), last: r.u64('last') };
  });
}

/** The output fields of struct iommu_ioas_iova_ranges. */
export interface IoasIovaRangesHeader {
  /** The IOAS the ranges are of. */
  ioasId: number;
  /** How many ranges exist (also set when the kernel answered EMSGSIZE). */
  numIovas: number;
  /** Required IOVA alignment, in bytes. */
  outIovaAlignment: bigint;
}

/**
 * Decodes the 32-byte struct iommu_ioas_iova_ranges (the ranges themselves come from {@link decodeIovaRanges}).
 *
 * @throws {@link VfioError} {@link ERR_VFIO_BAD_STRUCT} when the buffer is shorter than the struct
 */
export function decodeIoasIovaRanges(buf: Buffer | Uint8Array): IoasIovaRangesHeader {
  const v = view(asBuffer(buf), 'iommu_ioas_iova_ranges');
  return { ioasId: v.u32('ioas_id'), numIovas: v.u32('num_iovas'), outIovaAlignment: v.u64('out_iova_alignment') };
}

/** struct iommu_hw_info, decoded. */
export interface IommuHwInfo {
  /** The struct size given (40 on Linux 6.12). */
  size: number;
  /** Input flags (none are defined on Linux 6.12). */
  flags: number;
  /** The iommufd device id that was asked about. */
  devId: number;
  /** Bytes of type-specific data the kernel wrote (or would write). */
  dataLen: number;
  /** The user address the type-specific data was written to. */
  dataUptr: bigint;
  /** IOMMU_HW_INFO_TYPE_NONE (0), IOMMU_HW_INFO_TYPE_INTEL_VTD (1), … */
  outDataType: number;
  /** log2 of the supported PASID count; 0 without PASID support. */
  outMaxPasidLog2: number;
  /** IOMMU_HW_CAP_* bits. */
  outCapabilities: bigint;
  /** 'DIRTY_TRACKING'. */
  capabilityNames: string[];
}

/**
 * Decodes the 40-byte struct iommu_hw_info header of IOMMU_GET_HW_INFO.
 *
 * @throws {@link VfioError} {@link ERR_VFIO_BAD_STRUCT} when the buffer is shorter than the struct
 */
export function decodeHwInfo(buf: Buffer | Uint8Array): IommuHwInfo {
  const v = view(asBuffer(buf), 'iommu_hw_info');
  const outCapabilities = v.u64('out_capabilities');
  return {
    size: v.u32('size'),
    flags: v.u32('flags'),
    devId: v.u32('dev_id'),
    dataLen: v.u32('data_len'),
    dataUptr: v.u64('data_uptr'),
    outDataType: v.u32('out_data_type'),
    outMaxPasidLog2: v.u8('out_max_pasid_log2'),
    outCapabilities,
    capabilityNames: bitNames(outCapabilities, HW_INFO_CAPS),
  };
}

/** struct iommu_hw_info_vtd (IOMMU_HW_INFO_TYPE_INTEL_VTD data), decoded. */
export interface IommuHwInfoVtd {
  /** IOMMU_HW_INFO_VTD_* bits (see {@link VTD_INFO_FLAGS}). */
  flags: number;
  /** 'ERRATA_772415_SPR17'. */
  flagNames: string[];
  /** Sapphire Rapids erratum 772415: stage-2 read-only mappings are not honoured under nesting. */
  errata772415Spr17: boolean;
  /** The VT-d capability register. */
  capReg: bigint;
  /** The VT-d extended capability register. */
  ecapReg: bigint;
}

/**
 * Decodes the 24-byte Intel VT-d hw info data (struct iommu_hw_info_vtd).
 *
 * @throws {@link VfioError} {@link ERR_VFIO_BAD_STRUCT} when the buffer is shorter than the struct
 */
export function decodeHwInfoVtd(buf: Buffer | Uint8Array): IommuHwInfoVtd {
  const v = view(asBuffer(buf), 'iommu_hw_info_vtd');
  const flags = v.u32('flags');
  return {
    flags,
    flagNames: bitNames(flags, VTD_INFO_FLAGS),
    errata772415Spr17: (flags & IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17) !== 0,
    capReg: v.u64('cap_reg'),
    ecapReg: v.u64('ecap_reg'),
  };
}
