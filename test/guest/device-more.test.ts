/**
 * Containers, raw DMA mapping, device features, reset and hot reset, and the
 * rest of the SET_IRQS surface (DATA_BOOL), on mtty, mdpy and edu.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VfioError } from '../../src/errors.js';
import { native } from '../../src/native.js';
import { createMdev, eduAddress, openOnGroup, removeMdev, type Opened, useOpenedMdev } from './fixtures.js';

const MIGRATION = 1;
const MIG_DATA_SIZE = 9;

describe('an mdev-only type1 container', () => {
  let o: Opened;
  useOpenedMdev('mtty-2', (opened) => (o = opened));

  it('speaks API version 0 with TYPE1v2 and UNMAP_ALL', () => {
    expect(o.container.apiVersion()).toBe(0);
    expect(o.container.extensions()).toMatchObject({ TYPE1: true, TYPE1v2: true, UNMAP_ALL: true, SPAPR_TCE: false, NOIOMMU: false });
  });

  it('reports the 72-byte IOMMU info: migration and DMA-available caps, no IOVA ranges', () => {
    const info = o.container.iommuInfo();
    expect(info).toMatchObject({ argsz: 72, flags: 0x3, iovaPgsizes: 0xfffffffffffff000n, truncated: false });
    expect(info.caps.map((c) => c.kind)).toEqual(['migration', 'dma-avail']);
    expect(info.caps[0]).toMatchObject({ pgsizeBitmap: 0x1000n, maxDirtyBitmapSize: 0x10000000n });
  });

  it('maps and unmaps native buffers, refuses overlaps (EEXIST), and pins buffers while mapped', () => {
    const buf = native().dmaAlloc(0x4000n, false, false);
    const avail = (): number => (o.container.iommuInfo().caps.find((c) => c.kind === 'dma-avail') as { avail: number }).avail;
    const before = avail();
    o.container.mapDma(buf, { iova: 0x100000n });
    expect(buf.pins).toBe(1);
    expect(avail()).toBe(before - 1);
    expect(() => o.container.mapDma(buf, { iova: 0x102000n, offset: 0, size: 0x1000 })).toThrow(expect.objectContaining({ code: 'EEXIST', operation: 'VFIO_IOMMU_MAP_DMA' }));
    expect(() => buf.free()).toThrow(expect.objectContaining({ code: 'EBUSY' }));
    o.container.mapDma(buf, { iova: 0x200000n, offset: 0x1000, size: 0x1000, write: false });
    expect(buf.pins).toBe(2);
    expect(o.container.unmapDma(0x100000n, 0x4000n)).toBe(0x4000n);
    expect(buf.pins).toBe(1);
    expect(o.container.unmapAll()).toBe(0x1000n);
    expect(buf.pins).toBe(0);
    expect(avail()).toBe(before);
    buf.free();
    expect(() => o.container.mapDma(buf, { iova: 0x100000n })).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    expect(() => o.container.mapDma(native().dmaAlloc(4096n, false, false), { iova: 0, size: 8192 })).toThrow(RangeError);
  });

  it('offers the migration feature on mtty: STOP_COPY|P2P|PRE_COPY and 96 bytes of state for two ports', () => {
    expect(o.device.featureProbe(MIGRATION)).toBe(true);
    expect(o.device.featureGet(MIGRATION, 8).readBigUInt64LE(0)).toBe(7n);
    expect(o.device.featureGet(MIG_DATA_SIZE, 8).readBigUInt64LE(0)).toBe(96n);
    expect(o.device.featureProbe(0x7ff)).toBe(false);
  });

  it('masks, unmasks and triggers INTx with DATA_BOOL', async () => {
    const irq = o.device.enableInterrupts(0);
    try {
      o.device.setIrqs({ index: 0, action: 'mask', data: { bools: [true] } });
      o.device.setIrqs({ index: 0, action: 'trigger', data: { bools: [true] } });
      await new Promise((r) => setTimeout(r, 200));
      expect(irq.totals).toEqual([0]);
      o.device.setIrqs({ index: 0, action: 'unmask', data: { bools: [true] } });
      const got = irq.next({ signal: AbortSignal.timeout(5000) });
      o.device.setIrqs({ index: 0, action: 'trigger', data: { bools: [true] } });
      expect(await got).toEqual({ vector: 0, count: 1 });
      // mask with an eventfd as data is not a thing for INTx (ENOTTY)
      expect(() => o.device.setIrqs({ index: 0, action: 'mask', data: { eventfds: [irq.fds[0]!] } })).toThrow(expect.objectContaining({ code: 'ENOTTY' }));
      expect(() => o.device.setIrqs({ index: 0, action: 'trigger', data: { bools: [true, true] }, count: 1 })).toThrow(RangeError);
    } finally {
      irq.close();
    }
  });

  it('resets: mtty accepts VFIO_DEVICE_RESET though its info flags do not say so', () => {
    expect(o.device.info().flagNames).not.toContain('RESET');
    expect(() => o.device.reset()).not.toThrow();
  });
});

describe('mdpy', () => {
  it('has no device features and refuses SET_IRQS (EINVAL)', () => {
    const uuid = createMdev('mdpy-vga');
    const o = openOnGroup(uuid);
    try {
      expect(o.device.featureProbe(MIGRATION)).toBe(false);
      expect(o.device.irqs().map((i) => ('count' in i ? i.count : i.error))).toEqual([0, 0, 0, 0, 0]);
      expect(() => o.device.trigger(0)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    } finally {
      o.close();
      removeMdev(uuid);
    }
  });
});

describe('edu container and device', () => {
  let o: Opened;
  beforeAll(() => {
    o = openOnGroup(eduAddress());
  });
  afterAll(() => o?.close());

  it('reports the VT-d IOVA ranges around the MSI window and 4K/2M/1G page sizes', () => {
    const info = o.container.iommuInfo();
    const ranges = info.caps.find((c) => c.kind === 'iova-range') as { ranges: { start: bigint; end: bigint }[] } | undefined;
    expect(ranges?.ranges[0]).toEqual({ start: 0n, end: 0xfedfffffn });
    expect(ranges?.ranges[1]?.start).toBe(0xfef00000n);
    expect(info.iovaPgsizes & 0x40201000n).toBe(0x40201000n);
  });

  it('lists INTx, MSI (1 vector), no MSI-X, no ERR (not PCIe), and REQ', () => {
    expect(o.device.irqs().map((i) => ('count' in i ? `${i.name}:${i.count}` : i.error))).toEqual(['INTx:1', 'MSI:1', 'MSI-X:0', 'EINVAL', 'REQ:1']);
    expect(o.device.pciConfig().capabilities.map((c) => c.name)).toEqual(['MSI']);
  });

  it('has no reset method: reset is EINVAL and hot reset info ENODEV, each with a hint', () => {
    expect(o.device.info().flagNames).not.toContain('RESET');
    let err: VfioError | undefined;
    try {
      o.device.reset();
    } catch (e) {
      err = e as VfioError;
    }
    expect(err).toMatchObject({ code: 'EINVAL', operation: 'VFIO_DEVICE_RESET' });
    expect(err!.hint).toMatch(/no working reset/);
    expect(() => o.device.hotResetInfo()).toThrow(expect.objectContaining({ code: 'ENODEV', hint: expect.stringMatching(/root bus/) }));
  });
});
