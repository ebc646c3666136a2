import { describe, expect, it } from 'vitest';
import { VfioError } from '../../src/errors.js';
import {
  bitNames,
  VFIO_DEVICE_FEATURE_GET,
  VFIO_DEVICE_FEATURE_MIGRATION,
  VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
  VFIO_DEVICE_FEATURE_PROBE,
  VFIO_DEVICE_FEATURE_SET,
  VFIO_DEVICE_STATE_STOP,
  VFIO_GFX_PLANE_TYPE_DMABUF,
  VFIO_GFX_PLANE_TYPE_PROBE,
  VFIO_GFX_PLANE_TYPE_REGION,
  VFIO_IRQ_SET_ACTION_MASK,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_ACTION_UNMASK,
  VFIO_IRQ_SET_DATA_BOOL,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  decodeDeviceFeature,
  decodeDeviceInfo,
  decodeEdidRegs,
  decodeGfxPlaneInfo,
  decodeGroupStatus,
  decodeHotResetInfo,
  decodeIrqInfo,
  decodeMigDataSize,
  decodeMigState,
  decodeMigrationFeature,
  decodePrecopyInfo,
  decodeRegionInfo,
  decodeType1Info,
  deviceFlagNames,
  encodeDeviceFeature,
  encodeGfxPlaneQuery,
  encodeHotReset,
  encodeIrqSet,
  encodeMigState,
  fourccToString,
  irqFlagNames,
  irqName,
  regionFlagNames,
  regionName,
} from '../../src/uapi/index.js';

/** Bytes from hex text; whitespace and `|` separators are ignored. */
const hx = (s: string): Buffer => Buffer.from(s.replace(/[\s|]/g, ''), 'hex');

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(VfioError);
    return (e as VfioError).code;
  }
  throw new Error('expected a VfioError');
}

// Fixtures: little-endian struct images written from uapi-6.12-layout.txt and
// kernel-6.12-facts.md §1-§2 (offsets in the comments).

// mbochs region 9 (EDID), reply to argsz 32: argsz 48 | flags 0xb | index 9 | cap_offset 32 | size 0x1000 | offset 0x2000
const MBOCHS_EDID_SHORT = hx(`30000000 0b000000 09000000 20000000 | 0010000000000000 | 0020000000000000`);
// ... and to argsz 48: + TYPE cap @32: id 2 | version 1 | next 0 | type 1 (GFX) | subtype 1 (EDID)
const MBOCHS_EDID_FULL = Buffer.concat([MBOCHS_EDID_SHORT, hx(`0200 0100 00000000 | 01000000 01000000`)]);

describe('decodeRegionInfo', () => {
  it('mbochs EDID, short reply: CAPS and cap_offset 32 but no chain bytes → truncated, argsz 48', () => {
    const r = decodeRegionInfo(MBOCHS_EDID_SHORT);
    expect(r).toEqual({
      argsz: 48,
      flags: 0xb,
      flagNames: ['READ', 'WRITE', 'CAPS'],
      index: 9,
      name: 'REGION9',
      capOffset: 32,
      size: 0x1000n,
      offset: 0x2000n,
      caps: [],
      truncated: true,
    });
  });

  it('mbochs EDID, full 48-byte reply: one TYPE cap GFX/EDID', () => {
    const r = decodeRegionInfo(MBOCHS_EDID_FULL);
    expect(r.truncated).toBe(false);
    expect(r.caps).toEqual([{ id: 2, version: 1, kind: 'type', type: 1, subtype: 1 }]);
    expect(r.name).toBe('GFX/EDID');
    expect(r.size).toBe(4096n);
    expect(r.offset).toBe(8192n);
  });

  it('mtty regions: READ|WRITE, offsets index<<40, argsz echoed, no caps', () => {
    // BAR0: argsz 32 | flags 3 | index 0 | cap_offset 0 | size 8 | offset 0
    const bar0 = decodeRegionInfo(hx(`20000000 03000000 00000000 00000000 0800000000000000 0000000000000000`));
    expect(bar0).toMatchObject({ argsz: 32, flags: 3, flagNames: ['READ', 'WRITE'], index: 0, name: 'BAR0', size: 8n, offset: 0n, caps: [] });
    // CONFIG: index 7 | size 0xff | offset 0x700_0000_0000
    const cfg = decodeRegionInfo(hx(`20000000 03000000 07000000 00000000 ff00000000000000 0000000000070000`));
    expect(cfg).toMatchObject({ index: 7, name: 'CONFIG', size: 255n, offset: 0x70000000000n, truncated: false });
    // mtty-1 BAR1: size 0, offset 0x100_0000_0000
    const bar1 = decodeRegionInfo(hx(`20000000 03000000 01000000 00000000 0000000000000000 0000000000010000`));
    expect(bar1).toMatchObject({ name: 'BAR1', size: 0n, offset: 0x10000000000n });
  });

  it('mdpy BAR0 and mbochs BAR0 (argsz 48 with trailing zeros) are mmap-able regions without caps', () => {
    const mdpy = decodeRegionInfo(hx(`20000000 07000000 00000000 00000000 0000200000000000 0010000000000000`));
    expect(mdpy).toMatchObject({ flagNames: ['READ', 'WRITE', 'MMAP'], size: 0x200000n, offset: 0x1000n, caps: [] });
    const mbochs = decodeRegionInfo(
      Buffer.concat([hx(`30000000 07000000 00000000 00000000 0000000100000000 0030000000000000`), Buffer.alloc(16)]),
    );
    expect(mbochs).toMatchObject({ argsz: 48, size: 0x1000000n, offset: 0x3000n, caps: [], truncated: false });
  });

  it('a reply shorter than 32 bytes is a VfioError, not an out-of-bounds read', () => {
    expect(codeOf(() => decodeRegionInfo(MBOCHS_EDID_SHORT.subarray(0, 31)))).toBe('ERR_VFIO_BAD_STRUCT');
  });

  it('accepts a Uint8Array and rejects non-buffers with TypeError', () => {
    expect(decodeRegionInfo(new Uint8Array(MBOCHS_EDID_FULL)).name).toBe('GFX/EDID');
    expect(() => decodeRegionInfo('abc' as unknown as Buffer)).toThrow(TypeError);
    expect(() => decodeRegionInfo([1, 2, 3] as unknown as Buffer)).toThrow(TypeError);
  });
});

describe('decodeIrqInfo', () => {
  it('mtty INTx (0x7) and MSI (0x9)', () => {
    expect(decodeIrqInfo(hx(`10000000 07000000 00000000 01000000`))).toEqual({
      flags: 7,
      flagNames: ['EVENTFD', 'MASKABLE', 'AUTOMASKED'],
      index: 0,
      name: 'INTx',
      count: 1,
    });
    expect(decodeIrqInfo(hx(`10000000 09000000 01000000 01000000`))).toEqual({
      flags: 9,
      flagNames: ['EVENTFD', 'NORESIZE'],
      index: 1,
      name: 'MSI',
      count: 1,
    });
  });

  it('mdpy: count 0, flags echoed (0)', () => {
    expect(decodeIrqInfo(hx(`10000000 00000000 02000000 00000000`))).toEqual({
      flags: 0,
      flagNames: [],
      index: 2,
      name: 'MSI-X',
      count: 0,
    });
  });
});

describe('decodeDeviceInfo', () => {
  it('mtty: flags PCI, 9 regions, 5 irqs (only 16 bytes written back; rest zeroed by native)', () => {
    const d = decodeDeviceInfo(hx(`18000000 02000000 09000000 05000000 00000000 00000000`));
    expect(d).toEqual({
      argsz: 24,
      flags: 2,
      flagNames: ['PCI'],
      numRegions: 9,
      numIrqs: 5,
      capOffset: 0,
      caps: [],
      truncated: false,
    });
  });

  it('vfio-pci with a PCI_ATOMIC_COMP cap at 24', () => {
    // argsz 40 | flags RESET|PCI|CAPS | 9 | 5 | cap_offset 24 | pad ; cap: id 5 v1 next 0 | flags COMP32|COMP64 | reserved
    const d = decodeDeviceInfo(hx(`28000000 83000000 09000000 05000000 18000000 00000000 | 0500 0100 00000000 03000000 00000000`));
    expect(d.flagNames).toEqual(['RESET', 'PCI', 'CAPS']);
    expect(d.caps).toEqual([{ id: 5, version: 1, kind: 'pci-atomic-comp', flags: 3, flagNames: ['COMP32', 'COMP64'] }]);
  });

  it('CAPS with argsz larger than the buffer (cap_offset 0, uapi convention) → truncated', () => {
    const d = decodeDeviceInfo(hx(`28000000 83000000 09000000 05000000 00000000 00000000`));
    expect(d).toMatchObject({ argsz: 40, truncated: true, caps: [] });
  });

  it('ignores cap_offset when the CAPS flag is clear', () => {
    const d = decodeDeviceInfo(hx(`18000000 02000000 09000000 05000000 ff000000 00000000`));
    expect(d).toMatchObject({ capOffset: 255, caps: [], truncated: false });
  });
});

describe('decodeType1Info', () => {
  // mdev-only container (facts §2.4): argsz 72 | flags PGSIZES|CAPS | iova_pgsizes PAGE_MASK | cap_offset 24 | pad
  //   @24 MIGRATION: id 2 v1 next 56 | flags 0 | pad | pgsize_bitmap 0x1000 | max_dirty_bitmap_size 0x10000000
  //   @56 DMA_AVAIL: id 3 v1 next 0 | avail 65535 | pad
  const MDEV_TYPE1 = hx(`
    48000000 03000000 00f0ffffffffffff 18000000 00000000
    0200 0100 38000000 00000000 00000000 0010000000000000 0000001000000000
    0300 0100 00000000 ffff0000 00000000`);

  it('decodes the 72-byte reply of an mdev-only container', () => {
    expect(MDEV_TYPE1.length).toBe(72);
    expect(decodeType1Info(MDEV_TYPE1)).toEqual({
      argsz: 72,
      flags: 3,
      flagNames: ['PGSIZES', 'CAPS'],
      iovaPgsizes: 0xfffffffffffff000n,
      capOffset: 24,
      caps: [
        { id: 2, version: 1, kind: 'migration', flags: 0, pgsizeBitmap: 0x1000n, maxDirtyBitmapSize: 0x10000000n },
        { id: 3, version: 1, kind: 'dma-avail', avail: 65535 },
      ],
      truncated: false,
    });
  });

  it('a 24-byte first reply asks for 72', () => {
    const first = hx(`48000000 03000000 00f0ffffffffffff 00000000 00000000`);
    expect(decodeType1Info(first)).toMatchObject({ argsz: 72, truncated: true, caps: [] });
  });

  it('decodes an IOVA_RANGE cap with inclusive ends', () => {
    // argsz 72 | PGSIZES|CAPS | pgsizes 0x40201000 | cap_offset 24 ; @24 id 1 v1 next 0 | nr_iovas 2 | reserved | 2 ranges
    const b = hx(`48000000 03000000 0010204000000000 18000000 00000000
      0100 0100 00000000 02000000 00000000
      0000000000000000 ffffdffe00000000
      0000f0fe00000000 ffffffffffff0000`);
    const t = decodeType1Info(b);
    expect(t.iovaPgsizes).toBe(0x40201000n);
    expect(t.caps).toEqual([
      {
        id: 1,
        version: 1,
        kind: 'iova-range',
        ranges: [
          { start: 0n, end: 0xfedfffffn },
          { start: 0xfef00000n, end: 0xffffffffffffn },
        ],
      },
    ]);
  });
});

describe('decodeGroupStatus', () => {
  it('decodes VIABLE and CONTAINER_SET', () => {
    expect(decodeGroupStatus(hx(`08000000 03000000`))).toEqual({
      flags: 3,
      flagNames: ['VIABLE', 'CONTAINER_SET'],
      viable: true,
      containerSet: true,
    });
    expect(decodeGroupStatus(hx(`08000000 01000000`))).toMatchObject({ viable: true, containerSet: false });
  });
});

describe('gfx planes', () => {
  // mdpy-vga REGION reply: argsz 64 | flags REGION | plane PRIMARY | XR24 | mod 0 | 640 | 480 | 2560 | 0x200000 |
  // x_pos y_pos x_hot y_hot 0 | region_index 16 | reserved
  const MDPY_PLANE = hx(`40000000 04000000 01000000 58523234 0000000000000000
    80020000 e0010000 000a0000 00002000 00000000 00000000 00000000 00000000 10000000 00000000`);

  it('decodes the mdpy region plane', () => {
    expect(decodeGfxPlaneInfo(MDPY_PLANE)).toEqual({
      flags: 4,
      flagNames: ['REGION'],
      drmPlaneType: 1,
      drmFormat: 0x34325258,
      drmFormatName: 'XR24',
      drmFormatMod: 0n,
      width: 640,
      height: 480,
      stride: 2560,
      size: 0x200000,
      xPos: 0,
      yPos: 0,
      xHot: 0,
      yHot: 0,
      regionIndex: 16,
      dmabufId: undefined,
    });
  });

  it('decodes an mbochs dmabuf plane: the shared word is dmabuf_id; a 64-bit format modifier is a bigint', () => {
    const b = Buffer.from(MDPY_PLANE);
    b.writeUInt32LE(2, 4); // flags DMABUF
    b.writeUInt32LE(1228800, 36);
    b.writeUInt32LE(1, 56); // dmabuf_id
    b.writeBigUInt64LE(0x0100000000000001n, 16); // I915_FORMAT_MOD_X_TILED
    const p = decodeGfxPlaneInfo(b);
    expect(p).toMatchObject({ flagNames: ['DMABUF'], size: 1228800, dmabufId: 1, regionIndex: undefined });
    expect(p.drmFormatMod).toBe(0x0100000000000001n);
  });

  it('accepts mdpy’s 60-byte minsz, rejects 59', () => {
    expect(decodeGfxPlaneInfo(MDPY_PLANE.subarray(0, 60)).regionIndex).toBe(16);
    expect(codeOf(() => decodeGfxPlaneInfo(MDPY_PLANE.subarray(0, 59)))).toBe('ERR_VFIO_BAD_STRUCT');
  });

  it('encodes a query: 64 bytes, argsz 64, flags, plane type (PRIMARY by default)', () => {
    const q = encodeGfxPlaneQuery({ flags: VFIO_GFX_PLANE_TYPE_PROBE | VFIO_GFX_PLANE_TYPE_REGION });
    expect(q.equals(Buffer.concat([hx(`40000000 05000000 01000000`), Buffer.alloc(52)]))).toBe(true);
    const d = encodeGfxPlaneQuery({ flags: VFIO_GFX_PLANE_TYPE_DMABUF, drmPlaneType: 2 });
    expect(decodeGfxPlaneInfo(d)).toMatchObject({ flags: 2, drmPlaneType: 2, dmabufId: 0, drmFormatName: '0x0' });
  });

  it('rejects bad queries', () => {
    expect(() => encodeGfxPlaneQuery({ flags: 8 })).toThrow(RangeError);
    expect(() => encodeGfxPlaneQuery({ flags: -1 })).toThrow(RangeError);
    expect(() => encodeGfxPlaneQuery({ flags: '4' as unknown as number })).toThrow(TypeError);
    expect(() => encodeGfxPlaneQuery({ flags: 4, drmPlaneType: 2 ** 32 })).toThrow(RangeError);
    expect(() => encodeGfxPlaneQuery(null as unknown as { flags: number })).toThrow(TypeError);
  });

  it('fourccToString', () => {
    expect(fourccToString(0x34325258)).toBe('XR24');
    expect(fourccToString(0x34325241)).toBe('AR24');
    expect(fourccToString(0)).toBe('0x0');
  });
});

describe('decodeEdidRegs', () => {
  it('mbochs-medium initial registers', () => {
    expect(decodeEdidRegs(hx(`00080000 00040000 00000000 80070000 a0050000 00000000`))).toEqual({
      edidOffset: 0x800,
      edidMaxSize: 0x400,
      edidSize: 0,
      maxXres: 1920,
      maxYres: 1440,
      linkState: 0,
    });
    expect(codeOf(() => decodeEdidRegs(Buffer.alloc(20)))).toBe('ERR_VFIO_BAD_STRUCT');
  });
});

describe('PCI hot reset', () => {
  // argsz 28 | flags 0 | count 2 | {group 12, seg 0, bus 0, devfn 0x18} {group 13, seg 1, bus 0x3a, devfn 0x0b}
  const INFO = hx(`1c000000 00000000 02000000 | 0c000000 0000 00 18 | 0d000000 0100 3a 0b`);

  it('decodes two dependent devices with group ids and addresses', () => {
    expect(decodeHotResetInfo(INFO)).toEqual({
      argsz: 28,
      flags: 0,
      flagNames: [],
      count: 2,
      devices: [
        { groupId: 12, devid: undefined, segment: 0, bus: 0, devfn: 0x18, slot: 3, function: 0, address: '0000:00:03.0' },
        { groupId: 13, devid: undefined, segment: 1, bus: 0x3a, devfn: 0x0b, slot: 1, function: 3, address: '0001:3a:01.3' },
      ],
      truncated: false,
      neededArgsz: 28,
    });
  });

  it('with FLAG_DEV_ID the union is a devid (NOT_OWNED = 0xffffffff)', () => {
    const b = Buffer.from(INFO);
    b.writeUInt32LE(3, 4);
    b.writeUInt32LE(1, 12);
    b.writeInt32LE(-1, 20);
    const r = decodeHotResetInfo(b);
    expect(r.flagNames).toEqual(['DEV_ID', 'DEV_ID_OWNED']);
    expect(r.devices.map((d) => [d.groupId, d.devid])).toEqual([
      [undefined, 1],
      [undefined, 0xffffffff],
    ]);
  });

  it('a header-only reply (ENOSPC) reports the size needed', () => {
    expect(decodeHotResetInfo(INFO.subarray(0, 12))).toMatchObject({ count: 2, devices: [], truncated: true, neededArgsz: 28 });
    expect(decodeHotResetInfo(INFO.subarray(0, 27))).toMatchObject({ devices: [], truncated: true });
  });

  it('encodeHotReset', () => {
    expect(encodeHotReset([5, 9]).equals(hx(`14000000 00000000 02000000 05000000 09000000`))).toBe(true);
    expect(encodeHotReset(new Int32Array([3])).equals(hx(`10000000 00000000 01000000 03000000`))).toBe(true);
    expect(encodeHotReset([]).equals(hx(`0c000000 00000000 00000000`))).toBe(true);
    expect(() => encodeHotReset([-1])).toThrow(RangeError);
    expect(() => encodeHotReset([2 ** 31])).toThrow(RangeError);
    expect(() => encodeHotReset([1.5])).toThrow(RangeError);
    expect(() => encodeHotReset(['3'] as unknown as number[])).toThrow(TypeError);
    expect(() => encodeHotReset(3 as unknown as number[])).toThrow(TypeError);
  });
});

describe('encodeIrqSet', () => {
  const TRIGGER_EVENTFD = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;

  it('eventfd trigger for INTx: argsz 24 with one s32', () => {
    const b = encodeIrqSet({ flags: TRIGGER_EVENTFD, index: 0, start: 0, count: 1, data: [7] });
    expect(b.equals(hx(`18000000 24000000 00000000 00000000 01000000 07000000`))).toBe(true);
  });

  it('eventfds with -1 (de-assign) from an Int32Array', () => {
    const b = encodeIrqSet({ flags: TRIGGER_EVENTFD, index: 2, start: 0, count: 3, data: new Int32Array([10, -1, 11]) });
    expect(b.equals(hx(`20000000 24000000 02000000 00000000 03000000 0a000000 ffffffff 0b000000`))).toBe(true);
  });

  it('DATA_BOOL mask of [1,0,1] from start 1: one byte each', () => {
    const flags = VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_MASK;
    const b = encodeIrqSet({ flags, index: 0, start: 1, count: 3, data: [true, false, 1] });
    expect(b.equals(hx(`17000000 0a000000 00000000 01000000 03000000 010001`))).toBe(true);
    const u = encodeIrqSet({ flags, index: 0, start: 1, count: 3, data: new Uint8Array([1, 0, 1]) });
    expect(u.equals(b)).toBe(true);
  });

  it('DATA_NONE: unmask, software trigger, and disable with count 0', () => {
    const unmask = encodeIrqSet({ flags: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, index: 0, start: 0, count: 1 });
    expect(unmask.equals(hx(`14000000 11000000 00000000 00000000 01000000`))).toBe(true);
    const disable = encodeIrqSet({ flags: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, index: 1, start: 0, count: 0, data: [] });
    expect(disable.equals(hx(`14000000 21000000 01000000 00000000 00000000`))).toBe(true);
  });

  it('rejects data whose length is not count × element', () => {
    expect(() => encodeIrqSet({ flags: TRIGGER_EVENTFD, index: 0, start: 0, count: 2, data: [7] })).toThrow(RangeError);
    expect(() => encodeIrqSet({ flags: TRIGGER_EVENTFD, index: 0, start: 0, count: 1, data: [7, 8] })).toThrow(RangeError);
    expect(() =>
      encodeIrqSet({ flags: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, index: 0, start: 0, count: 1, data: [1] }),
    ).toThrow(RangeError);
    expect(() => encodeIrqSet({ flags: TRIGGER_EVENTFD, index: 0, start: 0, count: 1 })).toThrow(TypeError);
  });

  it('rejects bad flags', () => {
    const base = { index: 0, start: 0, count: 0 };
    expect(() => encodeIrqSet({ ...base, flags: VFIO_IRQ_SET_ACTION_TRIGGER })).toThrow(RangeError); // no DATA_*
    expect(() => encodeIrqSet({ ...base, flags: 0x3 | VFIO_IRQ_SET_ACTION_TRIGGER })).toThrow(RangeError); // two DATA_*
    expect(() => encodeIrqSet({ ...base, flags: VFIO_IRQ_SET_DATA_NONE })).toThrow(RangeError); // no ACTION_*
    expect(() => encodeIrqSet({ ...base, flags: VFIO_IRQ_SET_DATA_NONE | 0x18 })).toThrow(RangeError); // two ACTION_*
    expect(() => encodeIrqSet({ ...base, flags: 0x40 | 0x21 })).toThrow(RangeError); // unknown bit
    expect(() => encodeIrqSet({ ...base, flags: '33' as unknown as number })).toThrow(TypeError);
  });

  it('rejects bad numbers and data types', () => {
    const ok = { flags: TRIGGER_EVENTFD, index: 0, start: 0, count: 1, data: [7] };
    expect(() => encodeIrqSet({ ...ok, index: -1 })).toThrow(RangeError);
    expect(() => encodeIrqSet({ ...ok, index: 2 ** 32 })).toThrow(RangeError);
    expect(() => encodeIrqSet({ ...ok, start: 0.5 })).toThrow(RangeError);
    expect(() => encodeIrqSet({ ...ok, start: 1n as unknown as number })).toThrow(TypeError);
    expect(() => encodeIrqSet({ ...ok, start: 2 ** 32 - 1, count: 1 })).toThrow(RangeError); // start + count overflows
    expect(() => encodeIrqSet({ ...ok, data: [-2] })).toThrow(RangeError);
    expect(() => encodeIrqSet({ ...ok, data: [2 ** 31] })).toThrow(RangeError);
    expect(() => encodeIrqSet({ ...ok, data: ['7'] as unknown as number[] })).toThrow(TypeError);
    expect(() => encodeIrqSet({ ...ok, data: '7' as unknown as number[] })).toThrow(TypeError);
    expect(() => encodeIrqSet({ ...ok, data: new Uint8Array([7]) })).toThrow(TypeError);
    const bool = { flags: VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER, index: 0, start: 0, count: 1 };
    expect(() => encodeIrqSet({ ...bool, data: [2] })).toThrow(TypeError);
    expect(() => encodeIrqSet({ ...bool, data: new Int32Array([1]) })).toThrow(TypeError);
    expect(() => encodeIrqSet(undefined as unknown as typeof ok)).toThrow(TypeError);
  });
});

describe('device features', () => {
  it('encodes a PROBE of MIGRATION: header only', () => {
    const b = encodeDeviceFeature(VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_MIGRATION);
    expect(b.equals(hx(`08000000 01000400`))).toBe(true);
    expect(decodeDeviceFeature(b)).toMatchObject({ argsz: 8, feature: 1, get: false, set: false, probe: true });
  });

  it('encodes a MIG_DEVICE_STATE SET with its payload', () => {
    const b = encodeDeviceFeature(VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, encodeMigState(VFIO_DEVICE_STATE_STOP));
    expect(b.equals(hx(`10000000 02000200 01000000 ffffffff`))).toBe(true);
    const f = decodeDeviceFeature(b);
    expect(f).toMatchObject({ feature: 2, set: true, get: false });
    expect(f.data.equals(hx(`01000000 ffffffff`))).toBe(true);
  });

  it('rejects bad flags and data', () => {
    expect(() => encodeDeviceFeature(VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET | 1)).toThrow(RangeError);
    expect(encodeDeviceFeature(VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_PROBE | 1).length).toBe(8);
    expect(() => encodeDeviceFeature(1 << 19)).toThrow(RangeError);
    expect(() => encodeDeviceFeature(-1)).toThrow(RangeError);
    expect(() => encodeDeviceFeature(VFIO_DEVICE_FEATURE_GET, 'x' as unknown as Buffer)).toThrow(TypeError);
    expect(() => encodeMigState(-1)).toThrow(RangeError);
  });

  it('decodes MIGRATION, MIG_DEVICE_STATE and MIG_DATA_SIZE replies (header + payload)', () => {
    expect(decodeMigrationFeature(hx(`10000000 01000100 0700000000000000`))).toEqual({
      flags: 7n,
      flagNames: ['STOP_COPY', 'P2P', 'PRE_COPY'],
    });
    expect(decodeMigState(hx(`10000000 02000100 03000000 09000000`))).toEqual({
      deviceState: 3,
      deviceStateName: 'STOP_COPY',
      dataFd: 9,
    });
    expect(decodeMigState(hx(`10000000 02000100 02000000 ffffffff`))).toMatchObject({ deviceStateName: 'RUNNING', dataFd: -1 });
    expect(decodeMigDataSize(hx(`10000000 09000100 0000000001000000`))).toEqual({ stopCopyLength: 0x100000000n });
    expect(codeOf(() => decodeMigDataSize(hx(`10000000 09000100 00000000`)))).toBe('ERR_VFIO_BAD_STRUCT');
    expect(decodePrecopyInfo(hx(`18000000 00000000 0010000000000000 0000000000000000`))).toEqual({
      initialBytes: 4096n,
      dirtyBytes: 0n,
    });
  });
});

describe('name helpers', () => {
  it('flag names, with unknown bits as BIT<n>', () => {
    expect(deviceFlagNames(0x2)).toEqual(['PCI']);
    expect(deviceFlagNames(0x183)).toEqual(['RESET', 'PCI', 'CAPS', 'CDX']);
    expect(deviceFlagNames(0x202)).toEqual(['PCI', 'BIT9']);
    expect(regionFlagNames(0x7)).toEqual(['READ', 'WRITE', 'MMAP']);
    expect(regionFlagNames(0)).toEqual([]);
    expect(irqFlagNames(0x80000009)).toEqual(['EVENTFD', 'NORESIZE', 'BIT31']);
  });

  it('bitNames refuses what is not a flags word instead of looping (the fuzzer found bitNames(-1n) hanging)', () => {
    expect(bitNames((1n << 64n) - 1n, { A: 1 })).toHaveLength(64);
    expect(bitNames(2n ** 63n, { A: 1 })).toEqual(['BIT63']);
    for (const bad of [-1n, -1, 1n << 64n, 1.5, NaN, Infinity, -Infinity, 2 ** 53]) expect(() => bitNames(bad, { A: 1 }), String(bad)).toThrow(RangeError);
    expect(() => bitNames('1' as unknown as number, { A: 1 })).toThrow(TypeError);
  });

  it('bitNames refuses a table whose masks are not unsigned integers (the fuzzer found a SyntaxError escaping from BigInt)', () => {
    for (const bad of ['x', 1.5, -1, NaN, 2 ** 53, 1n, null]) {
      expect(() => bitNames(1, { A: bad } as unknown as Record<string, number>), String(bad)).toThrow(TypeError);
    }
    for (const bad of [null, undefined, 'READ', 7]) expect(() => bitNames(1, bad as unknown as Record<string, number>), String(bad)).toThrow(TypeError);
    expect(bitNames(0b101, { A: 1, B: 2, C: 4 })).toEqual(['A', 'C']);
  });

  it('region names: fixed, by type/subtype, or REGION<n>', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7, 8].map((i) => regionName(i))).toEqual([
      'BAR0',
      'BAR1',
      'BAR2',
      'BAR3',
      'BAR4',
      'BAR5',
      'ROM',
      'CONFIG',
      'VGA',
    ]);
    expect(regionName(9)).toBe('REGION9');
    expect(regionName(16)).toBe('REGION16');
    expect(regionName(9, { type: 1, subtype: 1 })).toBe('GFX/EDID');
    expect(regionName(9, { type: 1, subtype: 9 })).toBe('GFX/9');
    expect(regionName(10, { type: 0x80008086, subtype: 1 })).toBe('PCI_VENDOR_8086/IGD_OPREGION');
    expect(regionName(11, { type: 0x80001af4, subtype: 2 })).toBe('PCI_VENDOR_1af4/2');
    expect(regionName(12, { type: 2, subtype: 3 })).toBe('CCW/CRW');
    expect(regionName(13, { type: 5, subtype: 2 })).toBe('TYPE5/2');
  });

  it('irq names', () => {
    expect([0, 1, 2, 3, 4, 5].map(irqName)).toEqual(['INTx', 'MSI', 'MSI-X', 'ERR', 'REQ', 'IRQ5']);
  });
});
