/**
 * The edu driver (src/drivers/edu.ts) on vfio-pci behind the emulated VT-d, on
 * the group/type1 path and on the cdev/iommufd path: bus mastering, ID and
 * liveness, factorials completed by MSI and by INTx through the interrupt API,
 * and DMA round trips RAM → edu → RAM whose IOVAs the IOMMU really enforces.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allocDmaBuffer } from '../../src/dma/buffer.js';
import { EDU_DMA_LIMIT, EDU_DMA_MAX, EDU_REG, EduDriver } from '../../src/drivers/edu.js';
import { openDevice } from '../../src/vfio/open.js';
import { eduAddress } from './fixtures.js';

/** n! mod 2^32, computed independently of the driver. */
const u32Factorial = (n: number): number => {
  let f = 1n;
  for (let i = 2n; i <= BigInt(n); i++) f *= i;
  return Number(f % (1n << 32n));
};

/** Deterministic bytes (xorshift32), so a failure reproduces. */
function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe.each(['group', 'cdev'] as const)('edu driver on the %s backend', (backend) => {
  let edu: EduDriver;
  beforeAll(() => {
    // vfio-pci clears Bus Master at open; the driver must set it.
    using raw = openDevice(eduAddress(), { backend });
    expect(raw.device.region(7).read16(4) & 0x4).toBe(0);
    raw.close();
    edu = EduDriver.open({ address: eduAddress(), backend });
  });
  afterAll(() => edu?.close());

  it('opens on the asked backend, with bus mastering on and the ID and liveness registers answering', () => {
    expect(edu.backend).toBe(backend);
    expect(edu.mapper.space.backend).toBe(backend === 'group' ? 'type1' : 'iommufd');
    expect(edu.device.region(7).read16(4) & 0x6).toBe(0x6);
    expect(edu.id()).toBe(0x010000ed);
    for (const v of [0, 0xffffffff, 0x12345678, 0xa5a5a5a5]) expect(edu.liveness(v)).toBe(~v >>> 0);
    // Pinning is on (a real IOMMU domain), and the IOVA space is clipped to edu's 28-bit mask.
    expect(edu.mapper.pinning).toBe(true);
    expect(edu.mapper.ranges.at(-1)!.last).toBe(EDU_DMA_LIMIT - 1n);
  });

  it.each(['msi', 'intx'] as const)('computes factorials with completion raised as %s', async (irq) => {
    for (const n of [0, 1, 5, 12, 13, 20]) {
      const before = edu.interrupts?.index === (irq === 'msi' ? 1 : 0) ? edu.interrupts.totals[0]! : 0;
      expect(await edu.factorial(n, { irq })).toBe(u32Factorial(n));
      const interrupts = edu.interrupts!;
      expect(interrupts.index).toBe(irq === 'msi' ? 1 : 0);
      expect(interrupts.totals[0]).toBe(before + 1);
      // Acknowledged: nothing pending in edu.
      expect(edu.regs.read32(EDU_REG.IRQ_STATUS)).toBe(0);
    }
  });

  it.each(['msi', 'intx'] as const)('delivers nothing over %s when edu is not told to interrupt', async (irq) => {
    const interrupts = edu.useInterrupts(irq);
    const before = interrupts.totals[0]!;
    edu.regs.write32(EDU_REG.STATUS, 0);
    edu.regs.write32(EDU_REG.FACTORIAL, 10);
    for (let i = 0; i < 100 && edu.regs.read32(EDU_REG.STATUS) & 1; i++) await sleep(10);
    expect(edu.regs.read32(EDU_REG.STATUS) & 1).toBe(0);
    expect(edu.regs.read32(EDU_REG.FACTORIAL)).toBe(u32Factorial(10));
    await sleep(200);
    expect(interrupts.totals[0]).toBe(before);
    // A raise through 0x60 is delivered, and acknowledged through 0x64.
    const got = interrupts.next({ signal: AbortSignal.timeout(5000) });
    edu.regs.write32(EDU_REG.IRQ_RAISE, 0x8000);
    expect(await got).toEqual({ vector: 0, count: 1 });
    expect(edu.regs.read32(EDU_REG.IRQ_STATUS)).toBe(0x8000);
    edu.regs.write32(EDU_REG.IRQ_ACK, 0x8000);
    if (irq === 'intx') edu.device.unmask(0);
    expect(edu.regs.read32(EDU_REG.IRQ_STATUS)).toBe(0);
  });

  it.each(['msi', 'intx'] as const)('copies a buffer RAM → edu → RAM by DMA, completed by %s', async (irq) => {
    const data = pattern(EDU_DMA_MAX, irq === 'msi' ? 0x1234 : 0x4321);
    const r = await edu.dmaRoundTrip(data, { irq });
    expect(r.irqStatus).toEqual([0x100, 0x100]);
    expect(Buffer.from(r.result).equals(Buffer.from(data))).toBe(true);
    for (const m of [r.source, r.destination]) {
      expect(m.iova % 4096n).toBe(0n);
      expect(m.iova + m.size).toBeLessThanOrEqual(EDU_DMA_LIMIT);
    }
    expect([r.source.write, r.destination.read]).toEqual([false, false]);
    expect(edu.mapper.mappings()).toEqual([]);
  });

  it('writes only through a mapping: not to an unmapped IOVA, not to a read-only one', async () => {
    const src = allocDmaBuffer(4096);
    const dst = allocDmaBuffer(8192);
    const data = pattern(256, 7);
    new Uint8Array(src.buffer).set(data);
    const ms = edu.mapper.map(src, { write: false });
    const md = edu.mapper.map(dst);
    try {
      await edu.dma('to-device', ms.iova, 256);
      // Second page of dst, through lookup(): vaddr → iova.
      const iova = edu.mapper.lookup(new Uint8Array(dst.buffer, 4096))!;
      expect(iova).toBe(md.iova + 4096n);
      await edu.dma('to-ram', iova, 256);
      expect(Buffer.from(dst.buffer, 4096, 256).equals(Buffer.from(data))).toBe(true);
      expect(Buffer.from(dst.buffer, 0, 4096).every((b) => b === 0)).toBe(true);
      // The device may not write a read-only mapping: the IOMMU drops the write.
      const before = Buffer.from(src.buffer, 0, 256).toString('hex');
      new Uint8Array(dst.buffer).fill(0);
      await edu.dma('to-device', md.iova, 256); // zeros into edu
      await edu.dma('to-ram', ms.iova, 256);
      expect(Buffer.from(src.buffer, 0, 256).toString('hex')).toBe(before);
      // Once unmapped, the IOVA no longer reaches the buffer.
      expect(edu.mapper.unmap(md)).toBe(8192n);
      await edu.dma('to-device', ms.iova, 256);
      await edu.dma('to-ram', md.iova + 4096n, 256);
      expect(Buffer.from(dst.buffer).every((b) => b === 0)).toBe(true);
    } finally {
      edu.mapper.unmapAll();
      src.free();
      dst.free();
    }
  });

  it('refuses transfers that would make QEMU abort, before touching the device', async () => {
    await expect(edu.dma('to-device', 0x1000n, EDU_DMA_MAX + 1)).rejects.toThrow(RangeError);
    await expect(edu.dma('to-ram', 0x1000n, 16, { deviceOffset: EDU_DMA_MAX - 8 })).rejects.toThrow(RangeError);
    await expect(edu.dma('to-ram', EDU_DMA_LIMIT - 8n, 16)).rejects.toThrow(/28-bit DMA mask/);
    await expect(edu.dmaRoundTrip(new Uint8Array(0))).rejects.toThrow(RangeError);
    expect(edu.regs.read32(EDU_REG.DMA_CMD) & 1).toBe(0);
  });
});
