import { describe, expect, it } from 'vitest';
import { VfioError } from '../../src/errors.js';
import {
  IOMMU_HW_INFO_TYPE_INTEL_VTD,
  decodeHwInfo,
  decodeHwInfoVtd,
  decodeIoasIovaRanges,
  decodeIovaRanges,
} from '../../src/uapi/index.js';

const hx = (s: string): Buffer => Buffer.from(s.replace(/[\s|]/g, ''), 'hex');

describe('iommufd decoders', () => {
  it('the single full range of an mdev-only IOAS: [0, 2^64-1] inclusive', () => {
    expect(decodeIovaRanges(hx(`0000000000000000 ffffffffffffffff`))).toEqual([{ start: 0n, last: 0xffffffffffffffffn }]);
  });

  it('two ranges around the x86 MSI window, by count', () => {
    const b = hx(`0000000000000000 ffffdffe00000000 | 0000f0fe00000000 ffffffffffff0000 | 1111111111111111 2222222222222222`);
    expect(decodeIovaRanges(b, 2)).toEqual([
      { start: 0n, last: 0xfedfffffn },
      { start: 0xfef00000n, last: 0xffffffffffffn },
    ]);
    expect(decodeIovaRanges(b, 0)).toEqual([]);
    expect(decodeIovaRanges(b)).toHaveLength(3);
  });

  it('rejects a ragged array, a count the bytes cannot hold, and a bad count', () => {
    expect(() => decodeIovaRanges(Buffer.alloc(24))).toThrow(VfioError);
    expect(() => decodeIovaRanges(Buffer.alloc(32), 3)).toThrow(VfioError);
    expect(() => decodeIovaRanges(Buffer.alloc(32), -1)).toThrow(RangeError);
    expect(() => decodeIovaRanges(Buffer.alloc(32), 1.5)).toThrow(RangeError);
    expect(() => decodeIovaRanges({} as Buffer)).toThrow(TypeError);
  });

  it('iommu_ioas_iova_ranges header: num_iovas and out_iova_alignment', () => {
    // size 32 | ioas_id 1 | num_iovas 1 | reserved | allowed_iovas ptr | out_iova_alignment 4096
    const b = hx(`20000000 01000000 01000000 00000000 00a0b0c0d0e00000 0010000000000000`);
    expect(decodeIoasIovaRanges(b)).toEqual({ ioasId: 1, numIovas: 1, outIovaAlignment: 4096n });
  });

  it('iommu_hw_info header', () => {
    // size 40 | flags 0 | dev_id 1 | data_len 24 | data_uptr | type INTEL_VTD | pasid log2 20 | reserved[3] | caps DIRTY_TRACKING
    const b = hx(`28000000 00000000 01000000 18000000 00100000007f0000 01000000 14 000000 0100000000000000`);
    expect(decodeHwInfo(b)).toEqual({
      size: 40,
      flags: 0,
      devId: 1,
      dataLen: 24,
      dataUptr: 0x7f0000001000n,
      outDataType: IOMMU_HW_INFO_TYPE_INTEL_VTD,
      outMaxPasidLog2: 20,
      outCapabilities: 1n,
      capabilityNames: ['DIRTY_TRACKING'],
    });
    expect(() => decodeHwInfo(b.subarray(0, 39))).toThrow(VfioError);
  });

  it('Intel VT-d hw info: flags, cap_reg, ecap_reg', () => {
    // flags ERRATA_772415_SPR17 | reserved | cap_reg | ecap_reg
    const b = hx(`01000000 00000000 620466408c00d200 5e0ff00000000000`);
    expect(decodeHwInfoVtd(b)).toEqual({
      flags: 1,
      flagNames: ['ERRATA_772415_SPR17'],
      errata772415Spr17: true,
      capReg: 0x00d2008c40660462n,
      ecapReg: 0xf00f5en,
    });
    const clean = Buffer.from(b);
    clean.writeUInt32LE(0, 0);
    expect(decodeHwInfoVtd(clean)).toMatchObject({ flags: 0, flagNames: [], errata772415Spr17: false });
    expect(() => decodeHwInfoVtd(b.subarray(0, 23))).toThrow(VfioError);
  });
});
