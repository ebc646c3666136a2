/**
 * The core API on mtty (kernel-6.12-facts §1.1): info, regions, config space,
 * UART loopback with 1-byte accesses, INTx/MSI interrupts, error paths.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Container } from '../../src/vfio/container.js';
import { VfioError } from '../../src/errors.js';
import { Group } from '../../src/vfio/group.js';
import type { Interrupts } from '../../src/vfio/interrupts.js';
import { createMdev, fdCount, groupOf, openOnGroup, removeMdev, type Opened, useOpenedMdev } from './fixtures.js';

const RX = 0, IER = 1, FCR = 2, LCR = 3, LSR = 5, SCR = 7;
const INTX = 0, MSI = 1;

const quiet = (ms = 300) => new Promise((r) => setTimeout(r, ms));

describe.each(['mtty-1', 'mtty-2'])('%s on the group path', (type) => {
  let uuid: string;
  let o: Opened;
  useOpenedMdev(type, (opened, id) => ((o = opened), (uuid = id)));

  it('reports PCI flags, 9 regions and 5 irqs', () => {
    const info = o.device.info();
    expect(info.flags).toBe(0x2);
    expect(info.flagNames).toEqual(['PCI']);
    expect(info.numRegions).toBe(9);
    expect(info.numIrqs).toBe(5);
  });

  it('describes every region with its driver-defined size and offset', () => {
    const regions = o.device.regions();
    expect(regions).toHaveLength(9);
    const sizes = regions.map((r) => ('size' in r ? r.size : r.error));
    expect(sizes).toEqual([8n, type === 'mtty-2' ? 8n : 0n, 0n, 0n, 0n, 0n, 0n, 0xffn, 0n]);
    regions.forEach((r, i) => {
      if (!('offset' in r)) throw new Error(`region ${i}: ${r.error}`);
      expect(r.offset).toBe(BigInt(i) << 40n);
      expect(r.flags).toBe(0x3);
      expect(r.caps).toEqual([]);
    });
    expect(regions.map((r) => ('name' in r ? r.name : ''))).toEqual(['BAR0', 'BAR1', 'BAR2', 'BAR3', 'BAR4', 'BAR5', 'ROM', 'CONFIG', 'VGA']);
  });

  it('reports INTx and MSI, and EINVAL for indexes 2-4', () => {
    const irqs = o.device.irqs();
    expect(irqs[0]).toMatchObject({ index: 0, name: 'INTx', count: 1, flags: 0x7, flagNames: ['EVENTFD', 'MASKABLE', 'AUTOMASKED'] });
    expect(irqs[1]).toMatchObject({ index: 1, name: 'MSI', count: 1, flags: 0x9 });
    expect(irqs.slice(2)).toEqual([
      { index: 2, error: 'EINVAL' },
      { index: 3, error: 'EINVAL' },
      { index: 4, error: 'EINVAL' },
    ]);
  });

  it('has the driver\'s config space ids', () => {
    const cfg = o.device.pciConfigBytes();
    expect(cfg.length).toBe(255);
    expect(cfg.readUInt16LE(0)).toBe(0x4348);
    expect(cfg.readUInt16LE(2)).toBe(0x3253);
    expect(cfg.readUIntLE(9, 3)).toBe(0x070002);
    expect(cfg[8]).toBe(0x10);
    expect(cfg.readUInt32LE(0x2c)).toBe(0x32534348);
  });

  const ports = type === 'mtty-2' ? [0, 1] : [0];
  it.each(ports)('loops bytes back through BAR%i with 1-byte accesses', (bar) => {
    const uart = o.device.region(bar);
    uart.write8(FCR, 0x07);
    uart.write8(SCR, 0x5a);
    expect(uart.read8(SCR)).toBe(0x5a);
    const msg = [...Buffer.from(`port ${bar} ok`)];
    for (const b of msg) uart.write8(RX, b);
    expect(uart.read8(LSR)).toBe(0x01);
    expect(msg.map(() => uart.read8(RX))).toEqual(msg);
    expect(uart.read8(LSR)).toBe(0x60);
    uart.write8(LCR, 0x03);
    expect(uart.read8(LCR)).toBe(0x03);
  });

  describe('interrupts', () => {
    let irq: Interrupts | undefined;
    afterEach(() => {
      irq?.close();
      irq = undefined;
      o.device.region(0).write8(IER, 0);
    });

    it('delivers INTx, automasks, and delivers again after unmask', async () => {
      const uart = o.device.region(0);
      irq = o.device.enableInterrupts(INTX);
      uart.write8(FCR, 0x07);
      const first = irq.next({ signal: AbortSignal.timeout(5000) });
      uart.write8(IER, 0x02); // THRI with an empty FIFO: immediate
      expect(await first).toEqual({ vector: 0, count: 1 });
      uart.write8(IER, 0x02); // masked now: dropped
      await quiet();
      expect(irq.totals).toEqual([1]);
      o.device.unmask(INTX);
      const second = irq.next({ signal: AbortSignal.timeout(5000) });
      uart.write8(IER, 0x02);
      expect(await second).toEqual({ vector: 0, count: 1 });
    });

    it('delivers MSI on received data and on a software trigger, counting coalesced signals', async () => {
      const uart = o.device.region(0);
      irq = o.device.enableInterrupts(MSI);
      uart.write8(FCR, 0x07);
      uart.write8(IER, 0x01); // RDI
      const got = irq.next({ signal: AbortSignal.timeout(5000) });
      uart.write8(RX, 0x41);
      expect(await got).toEqual({ vector: 0, count: 1 });
      expect(uart.read8(RX)).toBe(0x41);
      uart.write8(IER, 0);
      // Three software triggers before the loop runs arrive as one delivery of 3.
      o.device.trigger(MSI);
      o.device.trigger(MSI);
      o.device.trigger(MSI);
      const ev = await irq.next({ signal: AbortSignal.timeout(5000) });
      expect(ev).toEqual({ vector: 0, count: 3 });
    });

    it('refuses MSI while INTx is enabled (EINVAL)', () => {
      irq = o.device.enableInterrupts(INTX);
      let err: unknown;
      try {
        o.device.enableInterrupts(MSI);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(VfioError);
      expect(err).toMatchObject({ code: 'EINVAL', errno: -22, syscall: 'ioctl', operation: 'VFIO_DEVICE_SET_IRQS' });
    });

    it('yields interrupts through the async iterator until aborted', async () => {
      irq = o.device.enableInterrupts(MSI);
      const ac = new AbortController();
      const seen: number[] = [];
      const done = (async () => {
        try {
          for await (const e of irq!.events({ signal: ac.signal })) {
            seen.push(e.count);
            if (seen.length === 2) ac.abort();
          }
        } catch (e) {
          return (e as Error).name;
        }
        return 'ended';
      })();
      o.device.trigger(MSI);
      await quiet(100);
      o.device.trigger(MSI);
      expect(await done).toBe('AbortError');
      expect(seen).toEqual([1, 1]);
    });
  });

  it('rejects out-of-range offsets and widths before any syscall', () => {
    const uart = o.device.region(0);
    expect(() => uart.read8(8)).toThrow(RangeError);
    expect(() => uart.read32(6)).toThrow(RangeError);
    expect(() => uart.read8(-1)).toThrow(RangeError);
    expect(() => uart.read8(2 ** 53)).toThrow(RangeError);
    expect(() => uart.read8('0' as unknown as number)).toThrow(TypeError);
    expect(() => uart.write8(0, 256)).toThrow(RangeError);
    expect(() => o.device.region(9)).toThrow(VfioError);
    expect(() => o.device.mmap(0)).toThrow(/cannot be mmap'd/);
  });
});

describe('errors on the group path', () => {
  let uuid: string;
  beforeAll(() => {
    uuid = createMdev('mtty-1');
  });
  afterAll(() => removeMdev(uuid));

  it('a second open of a group gives EBUSY', () => {
    const g = Group.open(groupOf(uuid));
    try {
      expect(() => Group.open(groupOf(uuid))).toThrow(expect.objectContaining({ code: 'EBUSY', syscall: 'open', path: `/dev/vfio/${groupOf(uuid)}` }));
    } finally {
      g.close();
    }
  });

  it('GET_DEVICE_FD before SET_IOMMU gives EINVAL with a hint', () => {
    const c = Container.open();
    const g = Group.open(groupOf(uuid));
    try {
      g.setContainer(c);
      let err: VfioError | undefined;
      try {
        g.openDevice(uuid);
      } catch (e) {
        err = e as VfioError;
      }
      expect(err).toBeInstanceOf(VfioError);
      expect(err).toMatchObject({ code: 'EINVAL', operation: 'VFIO_GROUP_GET_DEVICE_FD' });
      expect(err!.hint).toMatch(/setIommu/);
    } finally {
      c.close();
    }
  });

  it('a wrong device name gives an error naming it', () => {
    const o = openOnGroup(uuid);
    try {
      expect(() => o.group.openDevice('not-a-device')).toThrow(/not-a-device/);
    } finally {
      o.close();
    }
  });

  it('every use after close throws ERR_VFIO_CLOSED, and close is idempotent', () => {
    const o = openOnGroup(uuid);
    const uart = o.device.region(0);
    o.close();
    o.close();
    expect(o.device.closed && o.group.closed && o.container.closed).toBe(true);
    for (const f of [() => o.device.info(), () => uart.read8(0), () => o.group.status(), () => o.container.apiVersion()]) {
      expect(f).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    }
  });

  it('leaves no fd open after 1,000 open/close cycles', () => {
    const before = fdCount();
    for (let i = 0; i < 1000; i++) {
      const o = openOnGroup(uuid);
      o.device.regionInfo(0);
      o.close();
    }
    expect(fdCount()).toBe(before);
  });
});
