import { describe, expect, it } from 'vitest';
import { VfioError } from '../../src/errors.js';
import {
  PCI_CAP_NAMES,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_IO,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_EXT_CAP_NAMES,
  formatPciAddress,
  parsePciConfig,
  pciCapName,
  pciExtCapName,
  type PciMsiCap,
} from '../../src/pci/index.js';

/** A config space of `size` bytes with [offset, width, value] writes, little-endian. */
function cfg(size: number, writes: [number, 1 | 2 | 4, number][]): Buffer {
  const b = Buffer.alloc(size);
  for (const [off, width, v] of writes) b.writeUIntLE(v, off, width);
  return b;
}

// kernel-6.12-facts.md §1.1.2: mtty config space (255 bytes)
const mtty = (ports: 1 | 2): Buffer =>
  cfg(0xff, [
    [0x00, 4, 0x32534348],
    [0x04, 2, 0x0001],
    [0x06, 2, 0x0200],
    [0x08, 1, 0x10],
    [0x09, 1, 0x02],
    [0x0a, 1, 0x00],
    [0x0b, 1, 0x07],
    [0x10, 4, 0x00000001],
    [0x14, 4, ports === 2 ? 0x00000001 : 0],
    [0x2c, 4, 0x32534348],
    [0x34, 1, 0x00],
    [0x3d, 1, 0x01],
    [0x40, 1, 0x23],
    [0x43, 1, 0x80],
    [0x44, 1, 0x23],
    [0x48, 1, 0x23],
    [0x4c, 1, 0x23],
  ]);

// §1.2.2: mdpy-vga config space (255 bytes), vendor cap at 0x40 with XR24 640x480
const MDPY = cfg(0xff, [
  [0x00, 2, 0x1b36],
  [0x02, 2, 0x000f],
  [0x04, 2, 0x0003],
  [0x06, 2, 0x0010],
  [0x08, 1, 0x01],
  [0x0a, 2, 0x0380],
  [0x10, 4, 0x00000008],
  [0x2c, 2, 0x1af4],
  [0x2e, 2, 0x1100],
  [0x34, 1, 0x40],
  [0x40, 1, 0x09],
  [0x41, 1, 0x00],
  [0x42, 1, 0x10],
  [0x44, 4, 0x34325258],
  [0x48, 4, 640],
  [0x4c, 4, 480],
]);

// §1.3.2: mbochs config space (255 bytes)
const MBOCHS = cfg(0xff, [
  [0x00, 2, 0x1234],
  [0x02, 2, 0x1111],
  [0x04, 2, 0x0003],
  [0x08, 1, 0x01],
  [0x0a, 2, 0x0380],
  [0x10, 4, 0x00000008],
  [0x18, 4, 0x00000000],
  [0x2c, 2, 0x1af4],
  [0x2e, 2, 0x1100],
]);

// A synthetic edu-like PCIe function (4096 bytes): MSI (64-bit, 1 vector) → PCIe → PM → MSI-X,
// and extended caps AER → DSN → ACS → SR-IOV.
const EDU = cfg(0x1000, [
  [0x00, 2, 0x1234],
  [0x02, 2, 0x11e8],
  [0x04, 2, 0x0406],
  [0x06, 2, 0x0010],
  [0x08, 1, 0x10],
  [0x0a, 1, 0xff],
  [0x0b, 1, 0x00],
  [0x10, 4, 0xfea00000], // BAR0 mem32
  [0x18, 4, 0x0000000c], // BAR2 mem64 prefetchable, low
  [0x1c, 4, 0x00000008], // BAR3 = high half
  [0x20, 4, 0x0000c001], // BAR4 io
  [0x2c, 2, 0x1af4],
  [0x2e, 2, 0x1100],
  [0x34, 1, 0x40],
  [0x3c, 1, 0x0b],
  [0x3d, 1, 0x01],
  [0x40, 1, 0x05], // MSI
  [0x41, 1, 0x50],
  [0x42, 2, 0x0080], // 64-bit, MMC 0 (1 vector), disabled
  [0x50, 1, 0x10], // PCIe
  [0x51, 1, 0x80],
  [0x52, 2, 0x0002], // version 2, Endpoint
  [0x80, 1, 0x01], // PM
  [0x81, 1, 0x90],
  [0x82, 2, 0x0003], // version 3
  [0x84, 2, 0x0003], // D3hot
  [0x90, 1, 0x11], // MSI-X
  [0x91, 1, 0x00],
  [0x92, 2, 0xc01f], // enable, function mask, 32 entries
  [0x94, 4, 0x00002004], // table BIR 4 offset 0x2000
  [0x98, 4, 0x00003004], // PBA BIR 4 offset 0x3000
  [0x100, 4, 0x14020001], // AER v2 → 0x140
  [0x140, 4, 0x15010003], // DSN v1 → 0x150
  [0x144, 4, 0x12345678],
  [0x148, 4, 0x9abcdef0],
  [0x150, 4, 0x1601000d], // ACS v1 → 0x160
  [0x160, 4, 0x00010010], // SR-IOV v1, end
]);

describe('parsePciConfig: mdev sample devices', () => {
  it('mtty-1: ids, class 0x070002, I/O BAR0, no capabilities, 255 bytes', () => {
    const c = parsePciConfig(mtty(1));
    expect(c).toMatchObject({
      length: 255,
      vendorId: 0x4348,
      deviceId: 0x3253,
      command: 0x0001,
      commandNames: ['IO'],
      status: 0x0200,
      statusNames: [],
      devselTiming: 1,
      revision: 0x10,
      classCode: { baseClass: 0x07, subClass: 0x00, progIf: 0x02, value: 0x070002 },
      headerType: 0,
      multiFunction: false,
      subsystemVendorId: 0x4348,
      subsystemId: 0x3253,
      hasCapabilityList: false,
      capabilitiesPointer: 0,
      interruptLine: 0,
      interruptPin: 1,
      capabilities: [],
      extendedCapabilities: [],
      issues: [],
    });
    expect(c.rawBars).toEqual([1, 0, 0, 0, 0, 0]);
    expect(c.bars[0]).toEqual({ index: 0, kind: 'io', prefetchable: false, address: 0n, raw: 1 });
    expect(c.bars.map((b) => `${b.index}:${b.kind}`)).toEqual(['0:io', '1:mem32', '2:mem32', '3:mem32', '4:mem32', '5:mem32']);
  });

  it('mtty-2: BAR1 is an I/O BAR too', () => {
    expect(parsePciConfig(mtty(2)).bars[1]).toEqual({ index: 1, kind: 'io', prefetchable: false, address: 0n, raw: 1 });
  });

  it('mdpy: 1b36:000f, class 0x0380, prefetchable mem32 BAR0, vendor cap with XR24 640x480', () => {
    const c = parsePciConfig(MDPY);
    expect(c).toMatchObject({
      vendorId: 0x1b36,
      deviceId: 0x000f,
      commandNames: ['IO', 'MEMORY'],
      statusNames: ['CAP_LIST'],
      revision: 1,
      classCode: { baseClass: 0x03, subClass: 0x80, progIf: 0, value: 0x038000 },
      subsystemVendorId: 0x1af4,
      subsystemId: 0x1100,
      hasCapabilityList: true,
      capabilitiesPointer: 0x40,
      interruptPin: 0,
      issues: [],
    });
    expect(c.bars[0]).toEqual({ index: 0, kind: 'mem32', prefetchable: true, address: 0n, raw: 8 });
    expect(c.capabilities).toHaveLength(1);
    const v = c.capabilities[0]!;
    expect(v).toMatchObject({ kind: 'vendor', id: 9, name: 'Vendor', offset: 0x40, next: 0, length: 0x10 });
    const raw = (v as { raw: Buffer }).raw;
    expect(raw.length).toBe(16);
    expect([raw.readUInt32LE(4), raw.readUInt32LE(8), raw.readUInt32LE(12)]).toEqual([0x34325258, 640, 480]);
    expect(raw.subarray(4, 8).toString('latin1')).toBe('XR24');
  });

  it('mbochs: 1234:1111, BAR0 prefetchable, BAR2 mem32, no capability list', () => {
    const c = parsePciConfig(MBOCHS);
    expect(c).toMatchObject({
      vendorId: 0x1234,
      deviceId: 0x1111,
      subsystemVendorId: 0x1af4,
      subsystemId: 0x1100,
      classCode: { value: 0x038000 },
      hasCapabilityList: false,
      capabilities: [],
      issues: [],
    });
    expect(c.bars[0]).toMatchObject({ kind: 'mem32', prefetchable: true });
    expect(c.bars[2]).toMatchObject({ index: 2, kind: 'mem32', prefetchable: false, raw: 0 });
  });
});

describe('parsePciConfig: a PCIe function with MSI, PCIe, PM, MSI-X and extended caps', () => {
  const c = parsePciConfig(EDU);

  it('header and BARs (mem64 consumes two slots)', () => {
    expect(c).toMatchObject({
      length: 4096,
      vendorId: 0x1234,
      deviceId: 0x11e8,
      commandNames: ['MEMORY', 'MASTER', 'INTX_DISABLE'],
      classCode: { baseClass: 0x00, subClass: 0xff, progIf: 0, value: 0x00ff00 },
      interruptLine: 0x0b,
      interruptPin: 1,
      issues: [],
    });
    expect(c.bars).toEqual([
      { index: 0, kind: 'mem32', prefetchable: false, address: 0xfea00000n, raw: 0xfea00000 },
      { index: 1, kind: 'mem32', prefetchable: false, address: 0n, raw: 0 },
      { index: 2, kind: 'mem64', prefetchable: true, address: 0x800000000n, raw: 0xc, rawHigh: 8 },
      { index: 4, kind: 'io', prefetchable: false, address: 0xc000n, raw: 0xc001 },
      { index: 5, kind: 'mem32', prefetchable: false, address: 0n, raw: 0 },
    ]);
  });

  it('capability list in order', () => {
    expect(c.capabilities.map((x) => [x.offset, x.id, x.name, x.kind, x.next])).toEqual([
      [0x40, 0x05, 'MSI', 'msi', 0x50],
      [0x50, 0x10, 'PCIe', 'pcie', 0x80],
      [0x80, 0x01, 'PM', 'pm', 0x90],
      [0x90, 0x11, 'MSI-X', 'msix', 0x00],
    ]);
  });

  it('MSI: 64-bit, 1 vector, no per-vector mask, register offsets', () => {
    expect(c.capabilities[0]).toEqual({
      id: 5,
      name: 'MSI',
      offset: 0x40,
      next: 0x50,
      kind: 'msi',
      control: 0x0080,
      enabled: false,
      multipleMessageCapable: 1,
      multipleMessageEnable: 1,
      is64Bit: true,
      perVectorMask: false,
      addressOffset: 0x44,
      upperAddressOffset: 0x48,
      dataOffset: 0x4c,
      maskOffset: undefined,
      pendingOffset: undefined,
    });
  });

  it('PCIe, PM and MSI-X fields', () => {
    expect(c.capabilities[1]).toMatchObject({ flags: 2, version: 2, deviceType: 0, deviceTypeName: 'Endpoint', slotImplemented: false });
    expect(c.capabilities[2]).toMatchObject({ pmc: 3, version: 3, pmcsr: 3, powerState: 3, powerStateName: 'D3hot' });
    expect(c.capabilities[3]).toMatchObject({
      control: 0xc01f,
      enabled: true,
      functionMask: true,
      tableSize: 32,
      tableBir: 4,
      tableOffset: 0x2000,
      pbaBir: 4,
      pbaOffset: 0x3000,
    });
  });

  it('extended capabilities with names and the DSN serial', () => {
    expect(c.extendedCapabilities).toEqual([
      { id: 0x01, version: 2, name: 'AER', offset: 0x100, next: 0x140 },
      { id: 0x03, version: 1, name: 'DSN', offset: 0x140, next: 0x150, serialNumber: 0x9abcdef012345678n },
      { id: 0x0d, version: 1, name: 'ACS', offset: 0x150, next: 0x160 },
      { id: 0x10, version: 1, name: 'SR-IOV', offset: 0x160, next: 0 },
    ]);
  });

  it('the first 256 bytes alone have the same capabilities and no extended list', () => {
    const s = parsePciConfig(EDU.subarray(0, 256));
    expect(s.capabilities.map((x) => x.kind)).toEqual(['msi', 'pcie', 'pm', 'msix']);
    expect(s.extendedCapabilities).toEqual([]);
  });

  it('MSI with per-vector masking (32-bit): mask and pending follow the data register', () => {
    const b = Buffer.from(EDU.subarray(0, 256));
    b.writeUInt16LE(0x0100 | (5 << 1) | (2 << 4) | 1, 0x42); // masking, MMC 32, MME 4, enabled, 32-bit
    const m = parsePciConfig(b).capabilities[0] as PciMsiCap;
    expect(m).toMatchObject({
      enabled: true,
      multipleMessageCapable: 32,
      multipleMessageEnable: 4,
      is64Bit: false,
      perVectorMask: true,
      addressOffset: 0x44,
      upperAddressOffset: undefined,
      dataOffset: 0x48,
      maskOffset: 0x4c,
      pendingOffset: 0x50,
    });
  });
});

describe('parsePciConfig: malformed lists are truncated, with an issue, never looped', () => {
  const withCaps = (size: number, writes: [number, 1 | 2 | 4, number][]): Buffer =>
    cfg(size, [[0x06, 2, 0x0010], [0x34, 1, 0x40], ...writes]);

  it('a capability list that loops back stops at the repeat', () => {
    const c = parsePciConfig(withCaps(256, [[0x40, 1, 0x09], [0x41, 1, 0x50], [0x50, 1, 0x0c], [0x51, 1, 0x40]]));
    expect(c.capabilities.map((x) => x.offset)).toEqual([0x40, 0x50]);
    expect(c.issues).toEqual(['capability list loops back to 0x40; list ends']);
  });

  it('a capability pointing to itself', () => {
    const c = parsePciConfig(withCaps(256, [[0x40, 1, 0x0c], [0x41, 1, 0x40]]));
    expect(c.capabilities).toHaveLength(1);
    expect(c.issues).toEqual(['capability list loops back to 0x40; list ends']);
  });

  it('a pointer into the header, an 0xff id, and a masked pointer', () => {
    const header = parsePciConfig(withCaps(256, [[0x40, 1, 0x0c], [0x41, 1, 0x20]]));
    expect(header.capabilities).toHaveLength(1);
    expect(header.issues).toEqual(['capability pointer 0x20 points into the header; list ends']);
    const ff = parsePciConfig(withCaps(256, [[0x40, 1, 0x0c], [0x41, 1, 0x60], [0x60, 1, 0xff]]));
    expect(ff.capabilities).toHaveLength(1);
    expect(ff.issues).toEqual(['capability at 0x60 reads 0xff; list ends']);
    const masked = parsePciConfig(withCaps(256, [[0x34, 1, 0x43], [0x40, 1, 0x0c], [0x41, 1, 0x53], [0x50, 1, 0x0d]]));
    expect(masked.capabilitiesPointer).toBe(0x43);
    expect(masked.capabilities.map((x) => [x.offset, x.name])).toEqual([
      [0x40, 'SHPC'],
      [0x50, 'SSVID'],
    ]);
  });

  it('a capability cut off by the end of a 255-byte config space', () => {
    // MSI header at 0xfc: id and next exist, the control word at 0xfe..0xff does not
    const c = parsePciConfig(withCaps(255, [[0x34, 1, 0xfc], [0xfc, 1, 0x05], [0xfd, 1, 0x00]]));
    expect(c.capabilities).toEqual([{ id: 5, name: 'MSI', offset: 0xfc, next: 0, kind: 'other' }]);
    expect(c.issues).toEqual(['MSI capability at 0xfc is cut off by the end of the config space']);
    // a vendor cap at 0xf8 claiming 16 bytes keeps only the bytes that exist
    const v = parsePciConfig(withCaps(255, [[0x34, 1, 0xf8], [0xf8, 1, 0x09], [0xfa, 1, 0x10]]));
    expect((v.capabilities[0] as { raw: Buffer }).raw.length).toBe(7);
  });

  it('a next pointer whose header lies past the end of a short buffer', () => {
    // with 255 bytes a dword-aligned header (2 bytes) always fits; a 128-byte buffer lets 0x90 fall outside
    const c = parsePciConfig(withCaps(128, [[0x40, 1, 0x0c], [0x41, 1, 0x90]]));
    expect(c.capabilities).toHaveLength(1);
    expect(c.issues).toEqual(['capability at 0x90 lies past the end of the 128-byte config space; list ends']);
  });

  it('extended list: a loop and a pointer below 0x100', () => {
    const loop = parsePciConfig(cfg(4096, [[0x100, 4, 0x14010001], [0x140, 4, 0x10010002]]));
    expect(loop.extendedCapabilities.map((x) => x.name)).toEqual(['AER', 'VC']);
    expect(loop.issues).toEqual(['extended capability list loops back to 0x100; list ends']);
    const low = parsePciConfig(cfg(4096, [[0x100, 4, 0x08010001]]));
    expect(low.extendedCapabilities).toHaveLength(1);
    expect(low.issues).toEqual(['extended capability pointer 0x80 is below 0x100; list ends']);
    expect(parsePciConfig(cfg(4096, [[0x100, 4, 0xffffffff]])).extendedCapabilities).toEqual([]);
    expect(parsePciConfig(cfg(4096, [])).extendedCapabilities).toEqual([]);
  });

  it('the CAP_LIST status bit gates the walk', () => {
    const c = parsePciConfig(cfg(256, [[0x34, 1, 0x40], [0x40, 1, 0x05]]));
    expect(c.hasCapabilityList).toBe(false);
    expect(c.capabilities).toEqual([]);
  });
});

describe('parsePciConfig: other headers and bad input', () => {
  it('a multi-function bridge: 2 BARs, no subsystem ids, ROM at 0x38', () => {
    const c = parsePciConfig(cfg(256, [[0x0e, 1, 0x81], [0x10, 4, 0xfe000000], [0x14, 4, 0x1], [0x38, 4, 0xfff00001]]));
    expect(c).toMatchObject({ headerType: 1, multiFunction: true, subsystemVendorId: undefined, subsystemId: undefined, romAddress: 0xfff00001 });
    expect(c.rawBars).toEqual([0xfe000000, 1]);
    expect(c.bars.map((b) => b.kind)).toEqual(['mem32', 'io']);
  });

  it('a 64-bit BAR in the last slot has no upper half', () => {
    const c = parsePciConfig(cfg(256, [[0x24, 4, 0xf0000004]]));
    expect(c.bars[5]).toEqual({ index: 5, kind: 'mem64', prefetchable: false, address: 0xf0000000n, raw: 0xf0000004 });
    expect(c.issues).toEqual(['BAR5 is 64-bit but has no BAR6 for its upper half']);
  });

  it('rejects less than the 64-byte header and non-buffers', () => {
    expect(() => parsePciConfig(Buffer.alloc(63))).toThrow(VfioError);
    expect(() => parsePciConfig(Buffer.alloc(63))).toThrow(/ERR_VFIO_BAD_PCI_CONFIG/);
    expect(() => parsePciConfig('config' as unknown as Buffer)).toThrow(TypeError);
    expect(parsePciConfig(new Uint8Array(64)).vendorId).toBe(0);
  });
});

describe('PCI constants and names', () => {
  it('command bits', () => {
    expect([PCI_COMMAND_IO, PCI_COMMAND_MEMORY, PCI_COMMAND_MASTER, PCI_COMMAND_INTX_DISABLE]).toEqual([0x1, 0x2, 0x4, 0x400]);
  });

  it('capability names', () => {
    expect([PCI_CAP_NAMES[0x01], PCI_CAP_NAMES[0x05], PCI_CAP_NAMES[0x09], PCI_CAP_NAMES[0x10], PCI_CAP_NAMES[0x11]]).toEqual([
      'PM',
      'MSI',
      'Vendor',
      'PCIe',
      'MSI-X',
    ]);
    expect(pciCapName(0x42)).toBe('CAP0x42');
    expect([PCI_EXT_CAP_NAMES[0x01], PCI_EXT_CAP_NAMES[0x03], PCI_EXT_CAP_NAMES[0x0d], PCI_EXT_CAP_NAMES[0x10]]).toEqual([
      'AER',
      'DSN',
      'ACS',
      'SR-IOV',
    ]);
    expect(pciExtCapName(0x7f)).toBe('ECAP0x7f');
  });

  it('formatPciAddress', () => {
    expect(formatPciAddress(0, 0, 0x18)).toBe('0000:00:03.0');
    expect(formatPciAddress(0x10, 0xaf, 0xff)).toBe('0010:af:1f.7');
  });
});
