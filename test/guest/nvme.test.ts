/**
 * The userspace NVMe driver on QEMU's emulated controller (a PCIe function
 * behind a root port, on vfio-pci from boot), and cross-checks with the
 * kernel's own nvme driver on the same controller and the same data.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, existsSync, openSync, readSync, readdirSync, writeSync, constants as fsConstants } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { NvmeController, findNvme, type NvmePciErrorEvent } from '../../src/drivers/nvme/driver.js';
import { NVME_ADMIN_OPCODE, NVME_REG, NvmeError, decodeCsts } from '../../src/drivers/nvme/spec.js';
import { bindPciDriver } from '../../src/pci/bind.js';
import { VFIO_PCI_ERR_IRQ_INDEX } from '../../src/uapi/constants.js';
import { NVME_SERIAL } from '../../src/vm/qemu.js';
import { boundDriver } from '../../src/vfio/quirks.js';
import { runVfio } from '../host/mdev-shared.js';

const addr = (): string => findNvme();

/** Moves the controller to `to` ('nvme' or 'vfio-pci'); waits for the block device when it is nvme. */
function rebind(a: string, to: 'nvme' | 'vfio-pci'): void {
  bindPciDriver(a, to);
  expect(boundDriver(a)).toBe(to);
  if (to === 'nvme') {
    const deadline = Date.now() + 30_000;
    while (!existsSync('/dev/nvme0n1')) {
      if (Date.now() > deadline) throw new Error('no /dev/nvme0n1 after binding nvme');
      spawnSync('sleep', ['0.2']);
    }
  }
}

/**
 * Blocks whose content is a function of their own LBA (embedded) and a seed, so
 * a misplaced block is caught, and overlapping writes of one seed agree.
 */
function pattern(lba: bigint, blocks: number, bs: number, seed: number): Buffer {
  const b = Buffer.alloc(blocks * bs);
  for (let i = 0; i < blocks; i++) {
    const o = i * bs;
    const at = lba + BigInt(i);
    b.writeBigUInt64LE(at, o);
    b.writeUInt32LE(seed, o + 8);
    const k = Number(at & 0xffffn);
    for (let j = 12; j < bs; j++) b[o + j] = (j * 31 + k * 7 + seed) & 0xff;
  }
  return b;
}

describe.each(['group', 'cdev'] as const)('NVMe on %s', (backend) => {
  afterAll(() => rebind(addr(), 'vfio-pci'));

  it('comes up, identifies the controller and namespace 1, and reports MSI-X', async () => {
    const c = await NvmeController.open({ backend, mode: 'irq', ioQueues: 2 });
    try {
      expect(c.identity.sn).toBe(NVME_SERIAL);
      expect(c.identity.vid).toBe(0x1b36);
      expect(c.maxTransferBytes).toBeGreaterThanOrEqual(128 * 1024);
      expect(await c.namespaceIds()).toEqual([1]);
      const ns = await c.namespace(1);
      expect(ns.blockSize).toBe(512);
      expect(ns.blocks).toBe(BigInt((64 * 1024 * 1024) / 512));
      expect(c.msix.count).toBeGreaterThanOrEqual(3);
      expect(['dynamic', 'reenable']).toContain(c.msix.how);
      console.log(`[nvme] ${backend}: ${c.identity.mn.trim()} sn ${c.identity.sn}, MDTS ${c.maxTransferBytes} B, MSI-X ${c.msix.count} vectors, NORESIZE ${c.msix.noresize}, vectors added ${c.msix.how}`);
    } finally {
      await c.close();
    }
  });

  it.each(['poll', 'irq'] as const)('writes and reads back patterns at random LBAs and sizes (%s mode), many in flight', async (mode) => {
    const c = await NvmeController.open({ backend, mode, queueDepth: 16 });
    try {
      const ns = await c.namespace(1);
      let seed = 0x1234 + (mode === 'irq' ? 1 : 0);
      const rnd = (n: number): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n);
      const ios = Array.from({ length: 48 }, (_, k) => ({ lba: BigInt(k * 600 + rnd(300)), blocks: 1 + rnd(k % 4 === 0 ? 600 : 40) }));
      await Promise.all(ios.map((io) => ns.write(io.lba, pattern(io.lba, io.blocks, ns.blockSize, 7))));
      // Completions are matched by command id, whatever their order: the data check below is what proves it.
      const order: number[] = [];
      const back = await Promise.all(ios.map((io, k) => ns.read(io.lba, io.blocks).then((b) => (order.push(k), b))));
      const overtaken = order.filter((k, i) => i > 0 && k < order[i - 1]!).length;
      console.log(`[nvme] ${backend} ${mode}: ${ios.length} reads in flight, ${overtaken} completed before one submitted earlier`);
      expect(order.slice().sort((x, y) => x - y)).toEqual(ios.map((_, k) => k));
      back.forEach((b, k) => {
        const want = pattern(ios[k]!.lba, ios[k]!.blocks, ns.blockSize, 7);
        const got = Buffer.from(b);
        let bad = -1;
        for (let i = 0; i < ios[k]!.blocks && bad < 0; i++) if (!got.subarray(i * 512, (i + 1) * 512).equals(want.subarray(i * 512, (i + 1) * 512))) bad = i;
        const detail = bad < 0 ? '' : `io ${k} (lba ${ios[k]!.lba}, ${ios[k]!.blocks} blocks, ${got.length} bytes): block ${bad} holds LBA ${got.readBigUInt64LE(bad * 512)} seed ${got.readUInt32LE(bad * 512 + 8)}`;
        expect(detail, `io ${k}`).toBe('');
      });
      await ns.flush();
      expect(c.inFlight).toBe(0);
    } finally {
      await c.close();
    }
  });

  it('the fallback for kernels without dynamic MSI-X (disable, then enable with every vector) serves three I/O queues', async () => {
    const c = await NvmeController.open({ backend, mode: 'irq', ioQueues: 3, queueDepth: 8, msix: 'reenable' });
    try {
      expect(c.msix).toMatchObject({ how: 'reenable', noresize: false });
      const ns = await c.namespace(1);
      // Round robin over the queues: 30 commands, 10 per queue, each completion through its queue's vector.
      const lbas = Array.from({ length: 30 }, (_, i) => BigInt(50000 + i * 3));
      await Promise.all(lbas.map((l) => ns.write(l, pattern(l, 2, 512, 21))));
      const back = await Promise.all(lbas.map((l) => ns.read(l, 2)));
      back.forEach((b, i) => expect(Buffer.from(b).equals(pattern(lbas[i]!, 2, 512, 21)), `lba ${lbas[i]}`).toBe(true));
      await c.reset(); // the vectors stay enabled across a reset
      expect(Buffer.from(await ns.read(lbas[0]!, 2)).equals(pattern(lbas[0]!, 2, 512, 21))).toBe(true);
    } finally {
      await c.close();
    }
    await expect(NvmeController.open({ backend, mode: 'irq', msix: 'sometimes' as 'auto' })).rejects.toThrow(TypeError);
  });

  it('decodes NVMe status into NvmeError, checks its arguments, and settles everything on reset and close', { timeout: 120_000 }, async () => {
    const c = await NvmeController.open({ backend, mode: 'poll', queueDepth: 4 });
    try {
      const ns = await c.namespace(1);
      const e = await ns.read(ns.blocks, 1).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(NvmeError);
      expect(e).toMatchObject({ code: 'ERR_NVME_STATUS', sct: 0, sc: 0x80, scName: 'LBA Out of Range' });
      await expect(ns.read(0n, 0)).rejects.toThrow(RangeError);
      await expect(ns.write(0n, Buffer.alloc(100))).rejects.toThrow(RangeError);
      await expect(c.namespace(9)).rejects.toBeInstanceOf(Error);
      // Queue-full back-pressure: 3 slots on a 4-entry queue, 12 reads in flight.
      const many = await Promise.all(Array.from({ length: 12 }, (_, i) => ns.read(BigInt(i), 1)));
      expect(many).toHaveLength(12);
      // A reset with commands in flight: each settles (rejected, never left hanging).
      const inflight = Array.from({ length: 8 }, (_, i) => ns.read(BigInt(i * 8), 8).then(() => 'ok', (x: { code?: string }) => x.code ?? 'error'));
      await c.reset();
      const outcomes = await Promise.all(inflight);
      for (const o of outcomes) expect(['ok', 'ERR_NVME_RESET']).toContain(o);
      expect((await ns.read(0n, 1)).length).toBe(512);
      // Close with I/O in flight: everything settles, nothing is leaked.
      const last = Array.from({ length: 8 }, (_, i) => ns.read(BigInt(i), 1).then(() => 'ok', (x: { code?: string }) => x.code ?? 'error'));
      await c.close();
      for (const o of await Promise.all(last)) expect(['ok', 'ERR_VFIO_CLOSED']).toContain(o);
    } finally {
      await c.close();
    }
  });

  it('a command that does not complete times out (ERR_NVME_TIMEOUT), the controller resets itself, and works after; a reset while idle', { timeout: 60_000 }, async () => {
    const c = await NvmeController.open({ backend, mode: 'poll', timeoutMs: 2000 });
    try {
      const ns = await c.namespace(1);
      await ns.write(100n, pattern(100n, 2, 512, 3));
      // An Asynchronous Event Request completes only when the controller has an event: none comes.
      await expect(c.admin({ opcode: NVME_ADMIN_OPCODE.ASYNC_EVENT, nsid: 0 }, { timeoutMs: 0 })).rejects.toThrow(RangeError);
      const t0 = Date.now();
      const e = await c.admin({ opcode: NVME_ADMIN_OPCODE.ASYNC_EVENT, nsid: 0 }, { timeoutMs: 300 }).catch((x: unknown) => x);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
      expect(e).toMatchObject({ code: 'ERR_NVME_TIMEOUT', operation: 'nvme command', hint: expect.stringMatching(/resets the controller/) });
      expect(c.timeouts).toBe(1);
      // I/O submitted while the reset runs waits for it, then goes through.
      expect(Buffer.from(await ns.read(100n, 2)).equals(pattern(100n, 2, 512, 3))).toBe(true);
      // Into the caller's buffer: through a bounce slot, and past the slot size through a buffer of the command's own.
      const into = Buffer.alloc(1024 + 7, 0xee);
      expect(await ns.read(100n, 2, into)).toBe(into);
      expect(into.subarray(0, 1024).equals(pattern(100n, 2, 512, 3))).toBe(true);
      expect(into.subarray(1024).every((x) => x === 0xee)).toBe(true);
      const big = Buffer.alloc(300 * 512);
      expect(await ns.read(0n, 300, big)).toBe(big);
      expect(big.equals(Buffer.from(await ns.read(0n, 300)))).toBe(true);
      await expect(ns.read(100n, 2, Buffer.alloc(1023))).rejects.toThrow(RangeError);
      await expect(ns.read(100n, 2, [] as unknown as Uint8Array)).rejects.toThrow(TypeError);
      // Reset while idle: the data stays, the queues are made afresh, and the command ids all come back.
      await c.reset();
      await c.reset();
      expect(decodeCsts(c.regs.read32(NVME_REG.CSTS)).rdy).toBe(true);
      const many = await Promise.all(Array.from({ length: 100 }, (_, i) => ns.read(100n + BigInt(i % 2), 1)));
      expect(many.every((b, i) => Buffer.from(b).equals(pattern(100n + BigInt(i % 2), 1, 512, 3)))).toBe(true);
      expect(c.inFlight).toBe(0);
    } finally {
      await c.close();
    }
  });

  it('the ERR IRQ (PCIe) is wired to \'pci-error\': the default policy resets with I/O in flight, which all settles; \'report\' only reports', { timeout: 60_000 }, async () => {
    const c = await NvmeController.open({ backend, mode: 'irq' });
    try {
      expect(c.errorIrq).toBe(true);
      const ns = await c.namespace(1);
      const inflight = Array.from({ length: 16 }, (_, i) => ns.read(BigInt(i * 8), 8).then(() => 'ok', (x: { code?: string }) => x.code ?? String(x)));
      const got = once(c, 'pci-error') as Promise<[NvmePciErrorEvent]>;
      // VFIO's loopback: SET_IRQS with no data on the ERR index signals its eventfd, as AER would.
      c.opened.device.setIrqs({ index: VFIO_PCI_ERR_IRQ_INDEX, action: 'trigger', start: 0, count: 1 });
      const [ev] = await got;
      expect(ev.count).toBeGreaterThanOrEqual(1);
      expect(ev.csts & 1).toBe(1);
      expect(ev.recovery).toBeInstanceOf(Promise);
      await ev.recovery;
      for (const o of await Promise.all(inflight)) expect(['ok', 'ERR_NVME_RESET']).toContain(o);
      expect((await ns.read(0n, 1)).length).toBe(512);
    } finally {
      await c.close();
    }
    const r = await NvmeController.open({ backend, mode: 'poll', onPciError: 'report' });
    try {
      const got = once(r, 'pci-error') as Promise<[NvmePciErrorEvent]>;
      r.opened.device.setIrqs({ index: VFIO_PCI_ERR_IRQ_INDEX, action: 'trigger', start: 0, count: 1 });
      const [ev] = await got;
      expect(ev.recovery).toBeNull();
      expect((await (await r.namespace(1)).read(0n, 1)).length).toBe(512);
    } finally {
      await r.close();
    }
    await expect(NvmeController.open({ backend, onPciError: 'ignore' as 'report' })).rejects.toThrow(TypeError);
  });

  it('data written by our driver reads back through the kernel\'s nvme driver (O_DIRECT), and the other way round', async () => {
    const a = addr();
    const bs = 512;
    const ours = Array.from({ length: 6 }, (_, k) => ({ lba: BigInt(20000 + k * 97), blocks: 1 + ((k * 13) % 17) }));
    let c = await NvmeController.open({ backend, mode: 'poll' });
    const ns = await c.namespace(1);
    for (const io of ours) await ns.write(io.lba, pattern(io.lba, io.blocks, bs, 99));
    await ns.flush();
    await c.close();
    rebind(a, 'nvme');
    const theirs = { lba: 40000n, blocks: 8 };
    try {
      const fd = openSync('/dev/nvme0n1', fsConstants.O_RDWR | fsConstants.O_DIRECT);
      try {
        // O_DIRECT wants an aligned buffer: a page-aligned slice of a bigger one.
        const raw = Buffer.alloc(64 * 1024 + 4096);
        const off = (4096 - (Number(BigInt(raw.byteOffset) % 4096n) || 4096)) % 4096;
        for (const io of ours) {
          const b = raw.subarray(off, off + io.blocks * bs);
          expect(readSync(fd, b, 0, b.length, Number(io.lba) * bs)).toBe(b.length);
          expect(b.equals(pattern(io.lba, io.blocks, bs, 99))).toBe(true);
        }
        const w = raw.subarray(off, off + theirs.blocks * bs);
        pattern(theirs.lba, theirs.blocks, bs, 55).copy(w);
        expect(writeSync(fd, w, 0, w.length, Number(theirs.lba) * bs)).toBe(w.length);
      } finally {
        closeSync(fd);
      }
    } finally {
      rebind(a, 'vfio-pci');
    }
    c = await NvmeController.open({ backend, mode: 'poll' });
    try {
      const n2 = await c.namespace(1);
      expect(Buffer.from(await n2.read(theirs.lba, theirs.blocks)).equals(pattern(theirs.lba, theirs.blocks, bs, 55))).toBe(true);
    } finally {
      await c.close();
    }
  });

  it('`vfio nvme identify` prints the controller and its namespaces, as JSON and as text', { timeout: 120_000 }, async () => {
    const a = addr();
    const j = await runVfio(['nvme', 'identify', a, '--json', '--backend', backend]);
    expect(j.stderr).toBe('');
    expect(j.status).toBe(0);
    const out = JSON.parse(j.stdout);
    expect(out).toMatchObject({ device: a, backend, controller: { sn: NVME_SERIAL, vid: 0x1b36 }, namespaces: [{ nsid: 1, nsze: '131072', blockSize: 512 }] });
    expect(out.maxTransferBytes).toBeGreaterThan(0);
    const t = await runVfio(['nvme', 'identify', a, '--backend', backend]);
    expect(t.status).toBe(0);
    expect(t.stdout).toMatch(new RegExp(`^${a} \\(${backend}\\): QEMU NVMe Ctrl +\\(sn ${NVME_SERIAL}`));
    expect(t.stdout).toMatch(/1\s+131072\s+512\s+64 MiB/);
    const none = await runVfio(['nvme', 'identify', '0000:7f:00.0', '--backend', backend]);
    expect(none.status).toBe(1);
    expect(none.stderr).toMatch(/^vfio: ENOENT/);
  });

  it('Identify matches what nvme-cli reports through the kernel driver', async () => {
    const a = addr();
    const c = await NvmeController.open({ backend, mode: 'poll' });
    const id = c.identity;
    await c.close();
    rebind(a, 'nvme');
    try {
      const j = JSON.parse(execFileSync('nvme', ['id-ctrl', '/dev/nvme0', '-o', 'json'], { encoding: 'utf8' })) as Record<string, unknown>;
      for (const k of ['vid', 'ssvid', 'cntlid', 'ver', 'mdts', 'oacs', 'acl', 'aerl', 'frmw', 'lpa', 'elpe', 'npss', 'sqes', 'cqes', 'maxcmd', 'nn', 'oncs', 'fuses', 'fna', 'vwc', 'awun', 'awupf', 'sgls', 'ieee', 'cmic', 'rab'] as const) {
        expect((id as unknown as Record<string, unknown>)[k], k).toBe(j[k]);
      }
      for (const k of ['sn', 'mn', 'fr'] as const) expect(id[k].trim(), k).toBe(String(j[k]).trim());
      expect(id.subnqn).toBe(j.subnqn);
    } finally {
      rebind(a, 'vfio-pci');
    }
    expect(readdirSync('/dev').filter((d) => d.startsWith('nvme'))).toEqual([]);
  });
});

describe('examples/nvme.ts', () => {
  it('identifies the controller, reads back its pattern, and prints IOPS for both modes at QD1 and QD32', { timeout: 120_000 }, () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'examples/nvme.ts', findNvme()], { encoding: 'utf8', timeout: 110_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(new RegExp(`^${findNvme()}: QEMU NVMe Ctrl +\\(sn ${NVME_SERIAL}, fw \\S+\\), MDTS 524288 bytes$`));
    expect(lines[1]).toBe('namespace 1: 131072 blocks of 512 bytes');
    expect(lines[2]).toBe('wrote and read back 4096 bytes at LBA 100: identical');
    const rates = lines.slice(3).map((l) => /^4 KiB random reads, (poll|irq), QD(1|32): (\d+) IOPS$/.exec(l));
    expect(rates.map((m) => m && `${m[1]} QD${m[2]}`)).toEqual(['poll QD1', 'poll QD32', 'irq QD1', 'irq QD32']);
    for (const m of rates) expect(Number(m![3])).toBeGreaterThan(0);
  });
});
