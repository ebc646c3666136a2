/**
 * QEMU's edu device on vfio-pci behind the emulated VT-d (kernel-6.12-facts §5):
 * config ids, BAR0 registers through pread/pwrite and through a mapped view.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eduAddress, openOnGroup, type Opened } from './fixtures.js';

describe('edu on vfio-pci (group path)', () => {
  let o: Opened;
  beforeAll(() => {
    o = openOnGroup(eduAddress());
  });
  afterAll(() => o?.close());

  it('is a PCI device with a 1 MiB mmap-able BAR0 and a 256-byte config region', () => {
    expect(o.device.driver).toBe('vfio-pci');
    expect(o.device.info().flagNames).toContain('PCI');
    expect(o.device.regionInfo(0)).toMatchObject({ size: 0x100000n, offset: 0n, flagNames: expect.arrayContaining(['READ', 'WRITE', 'MMAP']) });
    expect(o.device.regionInfo(7)).toMatchObject({ size: 256n, offset: 7n << 40n });
  });

  it('has config space ids 1234:11e8', () => {
    const cfg = o.device.pciConfigBytes();
    expect([cfg.readUInt16LE(0), cfg.readUInt16LE(2), cfg[8]]).toEqual([0x1234, 0x11e8, 0x10]);
  });

  it('reads the ID register 0x010000ed and inverts through the liveness register', () => {
    const bar = o.device.region(0);
    expect(bar.read32(0)).toBe(0x010000ed);
    bar.write32(4, 0x12345678);
    expect(bar.read32(4)).toBe(0xedcba987);
  });

  it('shows the same registers through a mapped view of BAR0, with width-exact accessors', () => {
    const view = o.device.mmap(0, { length: 4096 });
    try {
      expect(view.read32(0)).toBe(0x010000ed);
      view.write32(4, 0x0f0f0f0f);
      expect(view.read32(4)).toBe(0xf0f0f0f0);
      // A 32-bit typed array element is one 32-bit load too.
      expect(new Uint32Array(view.buffer)[0]).toBe(0x010000ed);
      // edu only answers 4-byte accesses below 0x80: a byte load is not one.
      expect(view.read8(0)).not.toBe(0xed);
      expect(() => view.read32(2)).toThrow(RangeError);
      expect(() => view.read32(4096)).toThrow(RangeError);
    } finally {
      view.unmap();
    }
    expect(() => view.read32(0)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
  });

  it('each width reaches edu as one access of that width, through read/write and through the typed arrays', () => {
    // edu answers only 4-byte accesses below 0x80 (others read all-ones, writes are
    // ignored) and 4- or 8-byte ones from 0x80; 0x84 has no 4-byte register of its own.
    const view = o.device.mmap(0, { length: 4096 });
    try {
      expect(view.read32(0)).toBe(0x010000ed);
      expect(view.read16(0)).not.toBe(0x00ed);
      expect(view.read8(0)).not.toBe(0xed);
      view.write32(4, 0x0f0f0f0f);
      view.write16(4, 0x1234); // not widened into a 4-byte write: ignored
      view.write8(4, 0x56);
      expect(view.read32(4)).toBe(0xf0f0f0f0);
      // One 8-byte store and one 8-byte load: split into halves, the store to 0x84
      // would be ignored and the load of 0x84 would read all-ones.
      const src = view.read64(0x80);
      try {
        view.write64(0x80, 0x0123_4567_89ab_cdefn);
        expect(view.read64(0x80)).toBe(0x0123_4567_89ab_cdefn);
        expect(view.read32(0x80)).toBe(0x89ab_cdef);
        expect(view.read32(0x84)).toBe(0xffff_ffff);
        // The documented rule for the arrays: Atomics.load, plain stores.
        view.u64[0x80 / 8] = 0x0fed_cba9_8765_4321n;
        expect(Atomics.load(view.u64, 0x80 / 8)).toBe(0x0fed_cba9_8765_4321n);
        view.u32[1] = 0x00ff00ff;
        expect(Atomics.load(view.u32, 1)).toBe(0xff00ff00);
        expect(Atomics.load(view.u32, 0)).toBe(0x010000ed);
      } finally {
        view.write64(0x80, src);
      }
    } finally {
      view.unmap();
    }
    expect(() => view.u32).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    expect(() => view.read64(0x80)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
  });

  it('revokes BAR views before a config write that disables memory decoding', () => {
    const cfg = o.device.region(7);
    const cmd = cfg.read16(4);
    const view = o.device.mmap(0, { length: 4096 });
    const bytes = view.bytes;
    cfg.write16(4, cmd & ~0x2);
    expect(view.mapped).toBe(false);
    expect(bytes.length).toBe(0);
    cfg.write16(4, cmd);
    expect(o.device.region(0).read32(0)).toBe(0x010000ed);
  });
});
