/**
 * Migration and DMA-logging policy on the host: which states a device's flags
 * allow, the logging range checks, and the native seam's refusals and data-fd
 * I/O (on pipes and /dev/null, no VFIO needed).
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkLoggingRanges, loggedPages, MAX_LOGGING_RANGES } from '../../src/dma/logging.js';
import { native } from '../../src/native.js';
import { encodeDeviceFeature } from '../../src/uapi/vfio.js';
import { allowedStates, refusal } from '../../src/vfio/migration.js';

const n = native();
const fds = (): number => readdirSync('/proc/self/fd').length;

describe('migration states', () => {
  it('follow the flags as the uapi says', () => {
    expect([...allowedStates(0n)]).toEqual([]);
    expect([...allowedStates(1n)].sort()).toEqual(['RESUMING', 'RUNNING', 'STOP', 'STOP_COPY']);
    expect(allowedStates(3n).has('RUNNING_P2P')).toBe(true);
    expect(allowedStates(5n).has('PRE_COPY')).toBe(true);
    expect(allowedStates(5n).has('PRE_COPY_P2P')).toBe(false);
    expect(allowedStates(7n).has('PRE_COPY_P2P')).toBe(true);
    // PRE_COPY without STOP_COPY is no migration at all.
    expect([...allowedStates(4n)]).toEqual([]);
  });

  it('refuse with the reason, naming the flag that is missing', () => {
    expect(refusal('RUNNING', 7n)).toBeNull();
    expect(refusal('ERROR', 7n)).toMatch(/never set/);
    expect(refusal('PRE_COPY', 1n)).toMatch(/PRE_COPY needs the device's PRE_COPY migration flag; this device has STOP_COPY/);
    expect(refusal('RUNNING_P2P', 1n)).toMatch(/P2P/);
    expect(refusal('STOP', 0n)).toMatch(/STOP_COPY migration flag; this device has none/);
    expect(refusal('nope', 7n)).toMatch(/unknown migration state "nope"/);
  });
});

describe('DMA logging ranges', () => {
  it('are encoded sorted, as the kernel\'s { u64 iova, u64 length } array', () => {
    const { bytes, pageSize } = checkLoggingRanges([{ iova: 0x20000, length: 0x1000 }, { iova: 0x10000n, length: 0x2000n }], 4096);
    expect(pageSize).toBe(4096n);
    expect(bytes.toString('hex')).toBe('0000010000000000' + '0020000000000000' + '0000020000000000' + '0010000000000000');
  });

  it('are refused before the syscall: empty, too many, unaligned, wrapping, overlapping, bad page size', () => {
    const r = (iova: bigint | number, length: bigint | number) => ({ iova, length });
    expect(() => checkLoggingRanges([], 4096)).toThrow(/at least one/);
    expect(() => checkLoggingRanges(Array.from({ length: MAX_LOGGING_RANGES + 1 }, (_, i) => r(i * 0x2000, 0x1000)), 4096)).toThrow(/at most 256/);
    expect(() => checkLoggingRanges(Array.from({ length: MAX_LOGGING_RANGES }, (_, i) => r(i * 0x2000, 0x1000)), 4096)).not.toThrow();
    expect(() => checkLoggingRanges([r(0x1000, 0)], 4096)).toThrow(/empty/);
    expect(() => checkLoggingRanges([r(0x1800, 0x1000)], 4096)).toThrow(/aligned/);
    expect(() => checkLoggingRanges([r(0x1000, 0x1800)], 4096)).toThrow(/aligned/);
    expect(() => checkLoggingRanges([r((1n << 64n) - 0x1000n, 0x2000)], 4096)).toThrow(/wraps/);
    expect(() => checkLoggingRanges([r(0x1000, 0x3000), r(0x3000, 0x1000)], 4096)).toThrow(/ranges 0 and 1 overlap/);
    expect(() => checkLoggingRanges([r(0x1000, 0x1000), r(0x2000, 0x1000)], 4096)).not.toThrow(); // adjacent is fine
    for (const ps of [0, 2048, 6144, -4096]) expect(() => checkLoggingRanges([r(0, 0x10000)], ps)).toThrow(RangeError);
    expect(() => checkLoggingRanges([null as never], 4096)).toThrow(TypeError);
    expect(() => checkLoggingRanges('x' as never, 4096)).toThrow(TypeError);
  });

  it('report bitmaps decode to page IOVAs', () => {
    expect(loggedPages(Buffer.from([0b101, 0x80]), 0x10000n, 0x10000n, 0x1000n)).toEqual([0x10000n, 0x12000n, 0x1f000n]);
  });
});

describe('the native seam', () => {
  it('refuses the generic VFIO_DEVICE_FEATURE for features whose data is an fd or a pointer, before any ioctl', () => {
    const h = n.open('/dev/null', 'test');
    try {
      const SET = 1 << 17, GET = 1 << 16, PROBE = 1 << 18;
      for (const [flags, len] of [[SET | 2, 8], [SET | 6, 24], [GET | 8, 32]] as const) {
        expect(() => n.deviceFeature(h, encodeDeviceFeature(flags, Buffer.alloc(len)))).toThrow(TypeError);
      }
      // A PROBE carries no data, and other features go through (here to /dev/null's ENOTTY).
      expect(() => n.deviceFeature(h, encodeDeviceFeature(PROBE | SET | 6))).toThrow(expect.objectContaining({ code: 'ENOTTY' }));
      expect(() => n.deviceFeature(h, encodeDeviceFeature(GET | 2, Buffer.alloc(8)))).toThrow(expect.objectContaining({ code: 'ENOTTY' }));
      // The dedicated calls check their sizes and fail cleanly, leaking no fd.
      const before = fds();
      expect(() => n.deviceMigState(h, 2)).toThrow(expect.objectContaining({ code: 'ENOTTY', operation: 'VFIO_DEVICE_FEATURE MIG_DEVICE_STATE' }));
      expect(() => n.migPrecopyInfo(h)).toThrow(expect.objectContaining({ code: 'ENOTTY' }));
      expect(() => n.deviceDmaLoggingStart(h, 4096n, new Uint8Array(0))).toThrow(RangeError);
      expect(() => n.deviceDmaLoggingStart(h, 4096n, new Uint8Array(17))).toThrow(RangeError);
      expect(() => n.deviceDmaLoggingStart(h, 4096n, new Uint8Array(16 * 257))).toThrow(RangeError);
      expect(() => n.deviceDmaLoggingStart(h, 4096n, new Uint8Array(16))).toThrow(expect.objectContaining({ code: 'ENOTTY' }));
      expect(() => n.deviceDmaLoggingReport(h, 0n, 0x1000n, 2048n)).toThrow(RangeError);
      expect(() => n.deviceDmaLoggingReport(h, 0n, 0x1800n, 4096n)).toThrow(RangeError);
      // 2^40 pages of bitmap would be 128 GiB: refused, never allocated.
      expect(() => n.deviceDmaLoggingReport(h, 0n, 1n << 52n, 4096n)).toThrow(/exceed/);
      expect(() => n.deviceDmaLoggingReport(h, 0n, 0x10000n, 4096n)).toThrow(expect.objectContaining({ code: 'ENOTTY' }));
      expect(fds()).toBe(before);
    } finally {
      h.close();
    }
  });

  it('reads and writes a data fd off the event loop, on its own dup: closing the handle meanwhile is safe', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vfio-fdio-'));
    try {
      const path = join(dir, 'f');
      writeFileSync(path, Buffer.from('0123456789'));
      const before = fds();
      const h = n.open(path, 'test');
      const first = n.fdReadAsync(h.key, 4);
      h.close(); // the read holds its own dup
      expect((await first).toString()).toBe('0123');
      expect(() => n.fdReadAsync(h, 4)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
      const w = n.open(path, 'test');
      expect(await n.fdWriteAsync(w, Buffer.from('abc'))).toBe(3);
      expect((await n.fdReadAsync(w, 100)).toString()).toBe('3456789'); // the dup shares the offset: the write moved it
      expect((await n.fdReadAsync(w, 100)).length).toBe(0); // end of file
      for (const bad of [0, -1, 2 ** 31]) expect(() => n.fdReadAsync(w, bad)).toThrow(RangeError);
      expect(() => n.fdWriteAsync(w, 'x' as never)).toThrow(TypeError);
      w.close();
      const ro = n.open(path, 'test', true);
      await expect(n.fdWriteAsync(ro, Buffer.from('x'))).rejects.toMatchObject({ code: 'EBADF', syscall: 'write', operation: 'migration data write', bytesWritten: 0 });
      ro.close();
      expect(fds()).toBe(before);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Migration argument checks', () => {
  it('refuse bad arguments with TypeError or RangeError before any syscall', async () => {
    const { Migration, migrate } = await import('../../src/vfio/migration.js');
    // A device stand-in that fails any syscall-backed call loudly: nothing may reach it.
    const calls: string[] = [];
    const dev = new Proxy({ name: 'fake', driver: 'fake' } as Record<string, unknown>, {
      get: (t, k) => (k in t ? t[k as string] : typeof k === 'string' ? (...a: unknown[]) => (calls.push(k), a.length, undefined) : undefined),
    });
    const m = new Migration(dev as never, 7n);
    expect(() => m.save(null as never)).toThrow(TypeError);
    expect(() => m.save({ then: 'PAUSED' as never })).toThrow(TypeError);
    expect(() => m.save({ chunkSize: 0 })).toThrow(RangeError);
    await expect(m.saveToBuffer({ chunkSize: -1 })).rejects.toThrow(RangeError);
    await expect(m.load(42 as never)).rejects.toThrow(TypeError);
    await expect(m.load(null as never)).rejects.toThrow(TypeError);
    await expect(m.load(new Uint8Array(4), null as never)).rejects.toThrow(TypeError);
    expect(() => m.setState('PAUSED' as never)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_MIGRATION_STATE' }));
    const pre = new Migration(dev as never, 1n);
    expect(() => pre.save({ precopy: true })).toThrow(expect.objectContaining({ code: 'ERR_VFIO_MIGRATION_STATE', message: expect.stringMatching(/PRE_COPY/) }));
    const withMig = { ...dev, migration: m, name: 'a' };
    await expect(migrate(withMig as never, withMig as never, { maxPrecopyRounds: -1 })).rejects.toThrow(RangeError);
    await expect(migrate(withMig as never, withMig as never, { source: 'GONE' as never })).rejects.toThrow(TypeError);
    await expect(migrate({ name: 'x', driver: null, migration: null } as never, withMig as never)).rejects.toMatchObject({ code: 'ERR_VFIO_MIGRATION_STATE' });
    expect(calls).toEqual([]);
  });
});
