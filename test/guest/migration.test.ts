/**
 * VFIO migration v2 on mtty (kernel-6.12-facts §1.1.8): state moved between
 * devices with UART state that can be checked, the stream's error paths,
 * PRE_COPY, the devices without migration, device-side DMA logging, and the
 * CLI's `migrate` commands. Both backends.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { allocDmaBuffer } from '../../src/dma/buffer.js';
import { DmaMapper } from '../../src/dma/mapper.js';
import { MigrationError, migrate } from '../../src/vfio/migration.js';
import { openDevice, type OpenedDevice } from '../../src/vfio/open.js';
import { runVfio } from '../host/mdev-shared.js';
import { createMdev, eduAddress, removeMdev } from './fixtures.js';

const RX = 0, IER = 1, FCR = 2, LCR = 3, MCR = 4, LSR = 5, SCR = 7;
const HEADER = 24;
const PORT_STATE = 36;

/** Distinct, checkable UART state on every port: line control, IER, MCR, scratch, and ≤ 15 bytes in the RX FIFO. */
function setUart(o: OpenedDevice, ports: number, seed: number): number[][] {
  const fifos: number[][] = [];
  for (let p = 0; p < ports; p++) {
    const uart = o.device.region(p);
    uart.write8(FCR, 0x07);
    uart.write8(LCR, 0x03 + p);
    uart.write8(IER, 0x05);
    uart.write8(MCR, 0x0b);
    uart.write8(SCR, (seed + p) & 0xff);
    const bytes = [...Buffer.from(`s${seed}p${p}-fifo`)].slice(0, 12);
    for (const b of bytes) uart.write8(RX, b);
    fifos.push(bytes);
  }
  return fifos;
}

/** What setUart() put there, read back (the FIFO drained). */
function readUart(o: OpenedDevice, ports: number, fifoLengths: number[]): { lcr: number; ier: number; mcr: number; scr: number; lsrDr: number; fifo: number[] }[] {
  const out = [];
  for (let p = 0; p < ports; p++) {
    const uart = o.device.region(p);
    const lcr = uart.read8(LCR);
    const ier = uart.read8(IER);
    const mcr = uart.read8(MCR);
    const scr = uart.read8(SCR);
    const lsrDr = uart.read8(LSR) & 0x01;
    const fifo = Array.from({ length: fifoLengths[p]! }, () => uart.read8(RX));
    out.push({ lcr, ier, mcr, scr, lsrDr, fifo });
  }
  return out;
}

describe.each(['group', 'cdev'] as const)('migration on %s', (backend) => {
  const created: string[] = [];
  const mdev = (type: string): string => {
    const u = createMdev(type);
    created.push(u);
    return u;
  };
  // Each test closes what it opened; its mdevs go right after it (mtty has 24 ports in all).
  afterEach(() => {
    for (const u of created.splice(0)) removeMdev(u);
  });
  const open = (uuid: string): OpenedDevice => openDevice(uuid, { backend });

  it('reports mtty\'s flags, state and data size', () => {
    for (const [type, size] of [['mtty-1', 60n], ['mtty-2', 96n]] as const) {
      const o = open(mdev(type));
      try {
        const m = o.device.migration!;
        expect(m).not.toBeNull();
        expect(m.flags).toMatchObject({ raw: 7n, stopCopy: true, p2p: true, preCopy: true, names: ['STOP_COPY', 'P2P', 'PRE_COPY'] });
        expect(m.state).toBe('RUNNING');
        expect(m.dataSize()).toBe(size);
        m.setState('STOP');
        expect(m.state).toBe('STOP');
        m.setState('RUNNING_P2P');
        expect(m.state).toBe('RUNNING_P2P');
        m.setState('RUNNING');
        expect(m.state).toBe('RUNNING');
        // Refused before any syscall, with the reason.
        expect(() => m.setState('ERROR')).toThrow(expect.objectContaining({ code: 'ERR_VFIO_MIGRATION_STATE', message: expect.stringMatching(/never set/) }));
        expect(() => m.setState('BOGUS' as never)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_MIGRATION_STATE' }));
        expect(m.state).toBe('RUNNING');
      } finally {
        o.close();
      }
    }
  });

  it('migrates mtty-2\'s UART state to a fresh mtty-2: it reads back identically, and the source is left STOP', async () => {
    const src = open(mdev('mtty-2'));
    const dst = open(mdev('mtty-2'));
    try {
      const fifos = setUart(src, 2, 0x40);
      const r = await migrate(src.device, dst.device);
      expect(r).toMatchObject({ bytes: HEADER + 2 * PORT_STATE, precopyBytes: HEADER, sourceState: 'STOP', targetState: 'RUNNING' });
      expect(r.precopyRounds).toBe(1);
      expect(r.downtimeMs).toBeGreaterThan(0);
      expect(r.downtimeMs).toBeLessThanOrEqual(r.totalMs);
      console.log(`[migration] ${backend}: mtty-2 → mtty-2 moved ${r.bytes} bytes (${r.precopyBytes} pre-copy), downtime ${r.downtimeMs.toFixed(3)} ms, total ${r.totalMs.toFixed(3)} ms`);
      expect(src.device.migration!.state).toBe('STOP');
      expect(readUart(dst, 2, fifos.map((f) => f.length))).toEqual(
        fifos.map((fifo, p) => ({ lcr: 0x03 + p, ier: 0x05, mcr: 0x0b, scr: (0x40 + p) & 0xff, lsrDr: 1, fifo })),
      );
    } finally {
      src.close();
      dst.close();
    }
  });

  it('leaves the source RUNNING when asked (a clone), without pre-copy', async () => {
    const src = open(mdev('mtty-2'));
    const dst = open(mdev('mtty-2'));
    try {
      const fifos = setUart(src, 2, 0x10);
      const r = await migrate(src.device, dst.device, { source: 'RUNNING', precopy: false });
      expect(r).toMatchObject({ bytes: 96, precopyBytes: 0, precopyRounds: 0, sourceState: 'RUNNING', targetState: 'RUNNING' });
      const want = fifos.map((fifo, p) => ({ lcr: 0x03 + p, ier: 0x05, mcr: 0x0b, scr: (0x10 + p) & 0xff, lsrDr: 1, fifo }));
      expect(readUart(dst, 2, fifos.map((f) => f.length))).toEqual(want);
      expect(readUart(src, 2, fifos.map((f) => f.length))).toEqual(want);
    } finally {
      src.close();
      dst.close();
    }
  });

  it('saves as a stream and loads from one (a file in between)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vfio-mig-'));
    const src = open(mdev('mtty-1'));
    const dst = open(mdev('mtty-1'));
    try {
      const fifos = setUart(src, 1, 0x22);
      const parts: Buffer[] = [];
      for await (const b of src.device.migration!.save({ chunkSize: 7 })) parts.push(b as Buffer);
      const saved = Buffer.concat(parts);
      expect(saved.length).toBe(60);
      expect(saved.readBigUInt64LE(0)).toBe(0x7e9d09898c3e2c4en);
      expect(saved.readUInt32LE(16)).toBe(1); // nr_ports
      expect(src.device.migration!.state).toBe('STOP');
      writeFileSync(join(dir, 'state.bin'), saved);
      const { createReadStream } = await import('node:fs');
      expect(await dst.device.migration!.load(createReadStream(join(dir, 'state.bin'), { highWaterMark: 16 }), { resume: true })).toEqual({ bytes: 60 });
      expect(dst.device.migration!.state).toBe('RUNNING');
      expect(readUart(dst, 1, [fifos[0]!.length])[0]).toMatchObject({ lcr: 0x03, scr: 0x22, fifo: fifos[0] });
    } finally {
      src.close();
      dst.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('PRE_COPY shows initialBytes 24, then STOP_COPY the full state on the same fd', async () => {
    const o = open(mdev('mtty-2'));
    try {
      const m = o.device.migration!;
      const d = m.setState('PRE_COPY')!;
      expect(d).not.toBeNull();
      expect(m.precopyInfo()).toEqual({ initialBytes: 24n, dirtyBytes: 0n });
      const header = await d.read(1024);
      expect(header.length).toBe(24);
      expect(m.precopyInfo()).toEqual({ initialBytes: 0n, dirtyBytes: 0n });
      expect((await d.read(1024)).length).toBe(0); // nothing more for now
      expect(m.setState('STOP_COPY')).toBeNull(); // the same fd goes on
      expect((await d.read(1024)).length).toBe(2 * PORT_STATE);
      expect((await d.read(1024)).length).toBe(0); // the end
      m.setState('STOP');
      m.setState('RUNNING');
      expect(m.state).toBe('RUNNING');
    } finally {
      o.close();
    }
  });

  it('reading after leaving STOP_COPY is the disabled-fd error, with the hint', async () => {
    const o = open(mdev('mtty-1'));
    try {
      const m = o.device.migration!;
      m.setState('STOP');
      const d = m.setState('STOP_COPY')!;
      m.setState('STOP');
      await expect(d.read()).rejects.toMatchObject({ code: 'ENODEV', syscall: 'read', hint: expect.stringMatching(/read everything before leaving/) });
      m.setState('RUNNING');
    } finally {
      o.close();
    }
  });

  it('a mtty-2 stream into a mtty-1 is refused (port count), and recover() brings the target back', async () => {
    const src = open(mdev('mtty-2'));
    const dst = open(mdev('mtty-1'));
    try {
      const saved = await src.device.migration!.saveToBuffer({ then: 'RUNNING' });
      const m = dst.device.migration!;
      // In one write, mtty checks the length first: 96 bytes for a 60-byte state.
      const err = await m.load(saved).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MigrationError);
      expect(err).toMatchObject({
        code: 'ENOMEM',
        state: 'RESUMING',
        message: expect.stringMatching(/took 0 of 96 bytes.*MIG_DATA_SIZE 60/),
        hint: expect.stringMatching(/too much data.*more ports/),
      });
      expect(m.recover()).toBe('RUNNING');
      // Header first (as a stream arrives): mtty checks the header, whose port count differs.
      const byParts = await m.load(Readable.from([saved.subarray(0, HEADER), saved.subarray(HEADER)])).catch((e: unknown) => e);
      expect(byParts).toMatchObject({ code: 'EFAULT', state: 'RESUMING', hint: expect.stringMatching(/not a stream from a compatible device.*port count/) });
      expect(m.recover()).toBe('RUNNING');
    } finally {
      src.close();
      dst.close();
    }
  });

  it('a corrupted header, too much data and short data each give their typed error, and the device recovers', async () => {
    const src = open(mdev('mtty-1'));
    const dst = open(mdev('mtty-1'));
    try {
      const saved = await src.device.migration!.saveToBuffer({ then: 'RUNNING' });
      const m = dst.device.migration!;
      const bad = Buffer.from(saved);
      bad[0]! ^= 0xff; // the magic
      await expect(m.load(bad)).rejects.toMatchObject({ code: 'EFAULT', hint: expect.stringMatching(/compatible device/) });
      expect(m.recover()).toBe('RUNNING');
      await expect(m.load(Buffer.concat([saved, Buffer.alloc(8)]))).rejects.toMatchObject({ code: 'ENOMEM', hint: expect.stringMatching(/too much data/) });
      expect(m.recover()).toBe('RUNNING');
      const short = await m.load(saved.subarray(0, 40)).catch((e: unknown) => e);
      expect(short).toMatchObject({ code: 'EINVAL', state: 'RESUMING', hint: expect.stringMatching(/short data/) });
      expect(m.recover()).toBe('RUNNING');
      // After all that, a whole stream still loads.
      expect(await m.load(Readable.from([saved.subarray(0, 30), saved.subarray(30)]), { resume: true })).toEqual({ bytes: 60 });
    } finally {
      src.close();
      dst.close();
    }
  });

  it('mtty left RESUMING without its file (closed by a process that died) is refused, not crashed; recover() resets it; our own close resets it', async () => {
    const u = mdev('mtty-1');
    const child = spawnSync(process.execPath, ['--import', 'tsx', 'test/guest/children/mig-resuming.ts', u, backend], { encoding: 'utf8' });
    expect(child.stdout).toBe('resuming\n');
    expect(child.status).toBe(3);
    const o = open(u);
    try {
      const m = o.device.migration!;
      expect(m.state).toBe('RESUMING');
      // Leaving RESUMING would load from a file mtty no longer has: a NULL dereference in the kernel.
      for (const s of ['STOP', 'RUNNING', 'STOP_COPY'] as const) {
        expect(() => m.setState(s)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_DRIVER_QUIRK', hint: expect.stringMatching(/recover\(\)/) }));
      }
      expect(m.recover()).toBe('RUNNING');
      // Our own close of a device left RESUMING resets it first, so the next opener finds RUNNING.
      m.setState('RESUMING');
    } finally {
      o.close();
    }
    const again = open(u);
    try {
      expect(again.device.migration!.state).toBe('RUNNING');
    } finally {
      again.close();
    }
  });

  it('mdpy, mbochs and edu report no migration cleanly, and migrate() refuses them before anything happens', async () => {
    const mt = open(mdev('mtty-1'));
    try {
      for (const spec of [mdev('mdpy-vga'), mdev('mbochs-small'), eduAddress()]) {
        const o = open(spec);
        try {
          expect(o.device.migration).toBeNull();
          await expect(migrate(o.device, mt.device)).rejects.toMatchObject({ code: 'ERR_VFIO_MIGRATION_STATE', message: expect.stringMatching(/does not support migration/) });
        } finally {
          o.close();
        }
      }
      expect(mt.device.migration!.state).toBe('RUNNING');
    } finally {
      mt.close();
    }
  });

  it('device-side DMA logging on mtty: accepted, nothing dirty, ranges checked before the syscall', () => {
    const o = open(mdev('mtty-1'));
    const buf = allocDmaBuffer(64 * 1024);
    try {
      const d = o.device;
      expect(() => d.dmaLoggingStart([{ iova: 0x10000, length: 0x2000 }, { iova: 0x11000, length: 0x1000 }])).toThrow(/overlap/);
      expect(() => d.dmaLoggingStart([{ iova: 0x10800, length: 0x1000 }])).toThrow(/aligned/);
      expect(() => d.dmaLoggingStart(Array.from({ length: 257 }, (_, i) => ({ iova: i * 0x2000, length: 0x1000 })))).toThrow(/at most 256/);
      expect(() => d.dmaLoggingStart([])).toThrow(RangeError);
      expect(() => d.dmaLoggingStart([{ iova: 0, length: 0x1000 }], 4095)).toThrow(/power of two/);
      // Through DirtyTracking, over the mapper's live mappings.
      const mapper = new DmaMapper(o.dma, { devices: [d] });
      const m = mapper.map(buf);
      const t = mapper.dirty;
      expect(t.startDevice()).toBe(4096n);
      expect(t.tracker).toBe('device');
      const bm = t.bitmap(m.iova, m.size);
      expect(bm.length).toBe(8);
      expect([...bm].every((b) => b === 0)).toBe(true);
      expect(t.dirtyPages(m)).toEqual([]);
      t.stop();
      expect(t.tracker).toBeNull();
      // The raw calls: a report's length must be whole pages.
      d.dmaLoggingStart([{ iova: m.iova, length: m.size }]);
      expect(() => d.dmaLoggingReport(m.iova, 0x1800n)).toThrow(RangeError);
      expect(d.dmaLoggingReport(m.iova, m.size).every((b) => b === 0)).toBe(true);
      d.dmaLoggingStop();
      mapper.unmapAll();
    } finally {
      o.close();
      buf.free();
    }
  });

  it('device-side DMA logging where the device has none is the kernel\'s ENOTTY', () => {
    const o = open(mdev('mdpy-vga'));
    try {
      expect(() => o.device.dmaLoggingStart([{ iova: 0x10000, length: 0x1000 }])).toThrow(expect.objectContaining({ code: 'ENOTTY' }));
    } finally {
      o.close();
    }
  });

  it('the CLI saves, loads and migrates, with --json', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vfio-mig-cli-'));
    const a = mdev('mtty-2');
    const b = mdev('mtty-2');
    const c = mdev('mtty-2');
    const cli = (...args: string[]) => runVfio([...args, '--backend', backend]);
    try {
      const pre = openDevice(a, { backend });
      const fifos = setUart(pre, 2, 0x33);
      pre.close();
      const file = join(dir, 'state.bin');
      const save = await cli('migrate', 'save', a, '-o', file, '--json');
      expect(save.stderr).toBe('');
      expect(save.status).toBe(0);
      expect(JSON.parse(save.stdout)).toEqual({ device: a, backend, file, bytes: 96, dataSize: '96', state: 'RUNNING' });
      expect(readFileSync(file).length).toBe(96);
      const load = await cli('migrate', 'load', b, file, '--json');
      expect(load.status).toBe(0);
      expect(JSON.parse(load.stdout)).toEqual({ device: b, backend, file, bytes: 96, state: 'RUNNING' });
      const text = await cli('migrate', 'save', a, '-o', join(dir, 'again.bin'));
      expect(text.stdout).toMatch(/: 96 bytes of .*the device is RUNNING/);
      const mig = await cli('migrate', b, c, '--json');
      expect(mig.status).toBe(0);
      const j = JSON.parse(mig.stdout);
      expect(j).toMatchObject({ source: b, target: c, backend, bytes: 96, precopyBytes: 24, precopyRounds: 1, sourceState: 'STOP', targetState: 'RUNNING' });
      expect(typeof j.downtimeMs).toBe('number');
      console.log(`[migration] ${backend}: vfio migrate save --json → ${save.stdout.trim().replace(/\s+/g, ' ')}`);
      console.log(`[migration] ${backend}: vfio migrate load --json → ${load.stdout.trim().replace(/\s+/g, ' ')}`);
      console.log(`[migration] ${backend}: vfio migrate --json → ${mig.stdout.trim().replace(/\s+/g, ' ')}`);
      // The state went a → b → c: c's UART holds what was set on a.
      const post = openDevice(c, { backend });
      try {
        expect(readUart(post, 2, fifos.map((f) => f.length)).map((p) => p.fifo)).toEqual(fifos);
      } finally {
        post.close();
      }
      // Errors: a device without migration, a missing file, no -o.
      const none = await cli('migrate', 'save', mdev('mdpy-vga'), '-o', join(dir, 'x.bin'));
      expect(none.status).toBe(1);
      expect(none.stderr).toMatch(/EOPNOTSUPP: .* does not support migration/);
      expect((await cli('migrate', 'load', b, join(dir, 'missing.bin'))).status).toBe(1);
      const usage = await cli('migrate', 'save', a);
      expect(usage.status).toBe(2);
      expect(usage.stderr).toMatch(/--output FILE is needed/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 240_000);
});

describe.each(['group', 'cdev'] as const)('the kernel\'s request to release edu, on %s', (backend) => {
  const addr = eduAddress();
  const driverLink = `/sys/bus/pci/devices/${addr}/driver`;
  const rebind = (): void => {
    if (!existsSync(driverLink)) writeFileSync('/sys/bus/pci/drivers_probe', addr);
    if (!existsSync(driverLink)) throw new Error(`${addr} did not bind back to vfio-pci`);
  };
  beforeAll(rebind);
  afterAll(rebind);

  /** Starts `echo addr > unbind` in another process; resolves with its exit status and when it ended. */
  function unbindInChild(): { done: Promise<{ code: number | null; at: number }> } {
    const child = spawn('sh', ['-c', `echo ${addr} > /sys/bus/pci/drivers/vfio-pci/unbind`], { stdio: 'ignore' });
    return { done: new Promise((resolve) => child.on('exit', (code) => resolve({ code, at: Date.now() }))) };
  }

  it('with { onRequest: \'close\' }, the event arrives and the unbind completes within a second', async () => {
    const o = openDevice(addr, { backend, onRequest: 'close' });
    try {
      const events: unknown[] = [];
      o.device.on('request', (e) => events.push(e));
      const t0 = Date.now();
      const { done } = unbindInChild();
      const r = await done;
      expect(events).toEqual([{ event: 'request', device: addr, count: expect.any(Number) }]);
      expect(o.device.closed).toBe(true);
      expect((backend === 'group' ? o.container! : o.iommufd!).closed).toBe(true); // all of it
      expect(r.code).toBe(0);
      expect(r.at - t0).toBeLessThan(1000);
    } finally {
      o.close();
      rebind();
    }
  });

  it('closeOnRequest() does the same for one device, and calls back after the close', async () => {
    const o = openDevice(addr, { backend });
    try {
      const closed = new Promise<boolean>((resolve) => o.device.closeOnRequest(() => resolve(o.device.closed)));
      const t0 = Date.now();
      const { done } = unbindInChild();
      expect(await closed).toBe(true);
      const r = await done;
      expect(r.code).toBe(0);
      expect(r.at - t0).toBeLessThan(1000);
    } finally {
      o.close();
      rebind();
    }
  });

  it('{ onRequest: \'close\' } on a device that has no request IRQ (an mdev) is refused, with nothing left open', () => {
    const before = readdirSync('/proc/self/fd').length;
    const u = createMdev('mtty-1');
    try {
      expect(() => openDevice(u, { backend, onRequest: 'close' })).toThrow(expect.objectContaining({ code: 'ERR_VFIO_IRQ_NOT_OFFERED' }));
      expect(() => openDevice(u, { backend, onRequest: 'later' as never })).toThrow(TypeError);
      expect(readdirSync('/proc/self/fd').length).toBe(before);
    } finally {
      removeMdev(u);
    }
  });

  it('without it, the unbinding process stays blocked until the device is closed', async () => {
    const o = openDevice(addr, { backend });
    let requests = 0;
    try {
      o.device.on('request', () => requests++);
      const { done } = unbindInChild();
      let finished = false;
      void done.then(() => (finished = true));
      await new Promise((r) => setTimeout(r, 1500));
      expect(requests).toBeGreaterThanOrEqual(1);
      expect(finished).toBe(false);
      const t = Date.now();
      o.close();
      const r = await done;
      expect(r.code).toBe(0);
      expect(r.at - t).toBeLessThan(1000);
    } finally {
      o.close();
      rebind();
    }
  });

  it('error-irq is "not offered" on edu (conventional PCI), and listeners come and go', () => {
    const o = openDevice(addr, { backend });
    try {
      expect(() => o.device.on('error-irq', () => {})).toThrow(expect.objectContaining({ code: 'ERR_VFIO_IRQ_NOT_OFFERED', hint: expect.stringMatching(/PCIe/) }));
      const f = (): void => {};
      o.device.on('request', f);
      o.device.off('request', f);
      // With the listener gone the REQ index is free again: enabling it directly works.
      o.device.enableInterrupts(4).close();
      expect(() => o.device.on('bogus' as never, f)).toThrow(TypeError);
    } finally {
      o.close();
    }
  });
});
