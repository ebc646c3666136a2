/**
 * mdpy and mbochs through the core API (kernel-6.12-facts §1.2, §1.3):
 * framebuffer mmap, gfx planes (region and dmabuf), reset, EDID, DISPI, and
 * views detached on close and reset.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VfioError } from '../../src/errors.js';
import { createMdev, openOnGroup, removeMdev, type Opened, useOpenedMdev } from './fixtures.js';

const XR24 = 0x34325258;

const MDPY = [
  { type: 'mdpy-vga', width: 640, height: 480, mem: 0x200000n },
  { type: 'mdpy-xga', width: 1024, height: 768, mem: 0x400000n },
  { type: 'mdpy-hd', width: 1920, height: 1080, mem: 0x800000n },
];

describe.each(MDPY)('$type', ({ type, width, height, mem }) => {
  let uuid: string;
  let o: Opened;
  useOpenedMdev(type, (opened, id) => ((o = opened), (uuid = id)));

  const rowValue = (y: number): number => Math.floor((y * 255) / height);

  it('has the framebuffer BAR at 0x1000 and the config region at 0', () => {
    expect(o.device.regionInfo(0)).toMatchObject({ name: 'BAR0', offset: 0x1000n, size: mem, flags: 0x7, flagNames: ['READ', 'WRITE', 'MMAP'] });
    expect(o.device.regionInfo(7)).toMatchObject({ name: 'CONFIG', offset: 0n, size: 0xffn, flags: 0x3 });
    expect(o.device.regionInfo(16)).toMatchObject({ offset: 0x1000n, size: mem });
  });

  it('shows the gradient through the mapped framebuffer, and a write reads back through a second view', () => {
    const view = o.device.mmap(0);
    const other = o.device.mmap(0);
    try {
      expect(view.length).toBe(mem);
      const px = new DataView(view.buffer);
      for (const y of [0, 1, height >> 1, height - 1]) {
        const v = rowValue(y);
        expect(px.getUint32((y * width + (width >> 1)) * 4, true)).toBe((v | (v << 8) | (v << 16) | (v << 24)) >>> 0);
      }
      expect(view.bytes[(height - 1) * width * 4]).toBe(0xfe);
      view.bytes.set([1, 2, 3, 4], 64);
      expect([...other.bytes.subarray(64, 68)]).toEqual([1, 2, 3, 4]);
    } finally {
      view.unmap();
      other.unmap();
    }
  });

  it('describes its plane: XR24, the mode, stride, the power-of-two size and region 16', () => {
    expect(o.device.gfxPlaneSupported('region')).toBe(true);
    expect(o.device.gfxPlaneSupported('dmabuf')).toBe(false);
    expect(o.device.queryGfxPlane({ kind: 'region' })).toMatchObject({
      drmFormat: XR24,
      width,
      height,
      stride: width * 4,
      size: Number(mem),
      regionIndex: 16,
    });
  });

  it('repaints on reset, and the reset detaches existing views', () => {
    const view = o.device.mmap(0);
    const bytes = view.bytes;
    bytes.fill(0x33, 0, width * 4);
    o.device.reset();
    expect(view.mapped).toBe(false);
    expect(bytes.length).toBe(0);
    expect(bytes[0]).toBeUndefined();
    const again = o.device.mmap(0);
    expect(again.bytes[0]).toBe(0);
    expect(again.bytes[(height - 1) * width * 4]).toBe(0xfe);
    again.unmap();
  });

  it('has the driver config space with its vendor capability', () => {
    const cfg = o.device.pciConfigBytes();
    expect([cfg.readUInt16LE(0), cfg.readUInt16LE(2), cfg.readUInt16LE(0x0a)]).toEqual([0x1b36, 0x000f, 0x0380]);
    expect(cfg[0x34]).toBe(0x40);
    expect([cfg[0x40], cfg.readUInt32LE(0x44), cfg.readUInt32LE(0x48), cfg.readUInt32LE(0x4c)]).toEqual([0x09, XR24, width, height]);
  });

  it('refuses read()/write() of the framebuffer (the driver ignores the offset)', () => {
    expect(() => o.device.region(0).read32(0)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_DRIVER_QUIRK' }));
  });
});

const MBOCHS = [
  { type: 'mbochs-small', mb: 4, maxX: 800, maxY: 600 },
  { type: 'mbochs-medium', mb: 16, maxX: 1920, maxY: 1440 },
  { type: 'mbochs-large', mb: 64, maxX: 0, maxY: 0 },
];
const MMIO = 2;
const DISPI = (i: number) => 0x500 + 2 * i;
const [ID, XRES, YRES, BPP, ENABLE] = [0, 1, 2, 3, 4];
const VIDEO_MEMORY_64K = 10;

describe.each(MBOCHS)('$type', ({ type, mb, maxX, maxY }) => {
  let uuid: string;
  let o: Opened;
  useOpenedMdev(type, (opened, id) => ((o = opened), (uuid = id)));

  it('has 10 regions: VRAM at 0x3000, MMIO at 0x1000, EDID with its type capability', () => {
    expect(o.device.info().numRegions).toBe(10);
    expect(o.device.regionInfo(0)).toMatchObject({ offset: 0x3000n, size: BigInt(mb) << 20n, flags: 0x7 });
    expect(o.device.regionInfo(MMIO)).toMatchObject({ offset: 0x1000n, size: 0x1000n, flags: 0x3 });
    const edid = o.device.regionInfo(9);
    expect(edid).toMatchObject({ offset: 0x2000n, size: 0x1000n, flags: 0xb, argsz: 48, truncated: false });
    expect(edid.caps).toEqual([expect.objectContaining({ id: 2, version: 1, kind: 'type', type: 1, subtype: 1 })]);
  });

  it('answers the DISPI registers with 2-byte accesses', () => {
    const mmio = o.device.region(MMIO);
    expect(mmio.read16(DISPI(ID))).toBe(0xb0c5);
    expect(mmio.read16(DISPI(VIDEO_MEMORY_64K))).toBe((mb << 20) / 0x10000);
  });

  it('reports its EDID registers', () => {
    const r = o.device.region(9);
    expect([r.read32(0), r.read32(4), r.read32(12), r.read32(16)]).toEqual([0x800, 0x400, maxX, maxY]);
  });

  it('exports the mode set through DISPI as a dma-buf of the plane, whose pixels are the VRAM drawn', () => {
    const mmio = o.device.region(MMIO);
    const [w, h] = [640, 480];
    mmio.write16(DISPI(XRES), w);
    mmio.write16(DISPI(YRES), h);
    mmio.write16(DISPI(BPP), 32);
    mmio.write16(DISPI(ENABLE), 0x41);
    const vram = o.device.mmap(0, { length: BigInt(w * h * 4) });
    const px = new Uint32Array(vram.buffer);
    for (let i = 0; i < w * h; i++) px[i] = (i * 2654435761) >>> 0;
    // The driver answers ENOMEM to the first query of a new mode: queryGfxPlane retries.
    const plane = o.device.queryGfxPlane({ kind: 'dmabuf' });
    expect(plane).toMatchObject({ drmFormat: XR24, width: w, height: h, stride: w * 4, size: w * h * 4, xPos: 0, yPos: 0 });
    expect(plane.dmabufId).toBeGreaterThanOrEqual(1);
    const dmabuf = o.device.getGfxDmabuf(plane.dmabufId!);
    expect(dmabuf.info()).toMatchObject({ size: w * h * 4, exporter: 'mbochs' });
    // Linux 6.12 cannot map an mbochs dma-buf from userspace (read-only file, VM_SHARED
    // required): the library says so with the kernel's reason, and the pixels are
    // read where the plane says they are, in VRAM at offset 0.
    let err: VfioError | undefined;
    try {
      dmabuf.map(plane.size);
    } catch (e) {
      err = e as VfioError;
    }
    expect(err).toMatchObject({ code: 'EINVAL', syscall: 'mmap', operation: 'dma-buf mmap' });
    expect(err!.hint).toMatch(/VM_SHARED/);
    const again = o.device.mmap(0, { length: BigInt(plane.size) });
    expect(Buffer.from(again.buffer).equals(Buffer.from(vram.buffer))).toBe(true);
    expect(new Uint32Array(again.buffer)[12345]).toBe((12345 * 2654435761) >>> 0);
    dmabuf.close();
    expect(() => dmabuf.fd).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    again.unmap();
    vram.unmap();
  });

  it('refuses read()/write() of VRAM (the driver corrupts kernel memory there)', () => {
    let err: VfioError | undefined;
    try {
      o.device.region(0).read8(0);
    } catch (e) {
      err = e as VfioError;
    }
    expect(err).toMatchObject({ code: 'ERR_VFIO_DRIVER_QUIRK' });
    expect(err!.hint).toMatch(/mmap/);
  });
});

describe('views and device lifetime', () => {
  it('detaches every view when the device is closed, with no crash on stale access', () => {
    const uuid = createMdev('mdpy-vga');
    try {
      const o = openOnGroup(uuid);
      const view = o.device.mmap(0);
      const bytes = view.bytes;
      const dv = new DataView(view.buffer);
      expect(bytes.length).toBe(0x200000);
      o.close();
      expect(view.mapped).toBe(false);
      expect(bytes.length).toBe(0);
      expect(bytes[100]).toBeUndefined();
      expect(() => dv.getUint32(0)).toThrow(TypeError);
      expect(() => view.bytes).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    } finally {
      removeMdev(uuid);
    }
  });
});
