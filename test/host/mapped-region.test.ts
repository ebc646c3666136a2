/**
 * MappedRegion's register accessors run in JavaScript (Atomics on typed
 * arrays over the mapping) with the native access as the fallback for
 * everything off the fast path. On the host they run over a regular file's
 * mapping: values, bounds, alignment, value ranges, bigint offsets, revoked
 * views after the JIT has optimized the caller, and read-only mappings.
 * (That each width reaches a device as one access is shown on edu in the guest.)
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { native } from '../../src/native.js';
import { MappedRegion } from '../../src/vfio/region.js';

const dir = mkdtempSync(join(tmpdir(), 'vfio-mapped-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function mapFile(size = 8192, writable = true): { view: MappedRegion; file: string } {
  const file = join(dir, `f${Math.random().toString(36).slice(2)}`);
  writeFileSync(file, Buffer.alloc(size));
  const fd = native().open(file, 'test', !writable);
  const m = native().mmap(fd, 0n, BigInt(size), writable);
  fd.close();
  return { view: new MappedRegion(0, 0n, BigInt(size), m, () => {}), file };
}
function fileBytes(file: string, at: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  const fd = openSync(file, 'r');
  readSync(fd, b, 0, n, at);
  closeSync(fd);
  return b;
}
const closed = expect.objectContaining({ code: 'ERR_VFIO_CLOSED' });

describe('MappedRegion register access', () => {
  it('stores and loads every width at the bytes it names (little-endian), with number and bigint offsets', () => {
    const { view, file } = mapFile();
    view.write8(1, 0xab);
    view.write16(2, 0xbeef);
    view.write32(4, 0xdeadbeef);
    view.write64(8, 0x0102030405060708n);
    view.write32(0x1000n, 0x11223344);
    expect(fileBytes(file, 0, 16).toString('hex')).toBe('00abefbeefbeadde0807060504030201');
    expect([view.read8(1), view.read16(2), view.read32(4), view.read64(8), view.read32(0x1000n)]).toEqual([0xab, 0xbeef, 0xdeadbeef, 0x0102030405060708n, 0x11223344]);
    expect([view.read8(1n), view.read16(2n), view.read32(4n), view.read64(8n)]).toEqual([0xab, 0xbeef, 0xdeadbeef, 0x0102030405060708n]);
    // The last element of each width.
    view.write64(8184, 0xffff_ffff_ffff_ffffn);
    expect([view.read64(8184), view.read32(8188), view.read16(8190), view.read8(8191)]).toEqual([0xffff_ffff_ffff_ffffn, 0xffffffff, 0xffff, 0xff]);
    view.unmap();
  });

  it('the typed-array getters view the same memory; Atomics.load and plain stores on them are the documented register access', () => {
    const { view } = mapFile();
    view.u32[1] = 0x12345678;
    expect(view.read32(4)).toBe(0x12345678);
    expect(Atomics.load(view.u16, 2)).toBe(0x5678);
    expect(Atomics.load(view.u8, 7)).toBe(0x12);
    view.write64(16, 42n);
    expect(Atomics.load(view.u64, 2)).toBe(42n);
    expect(view.u32.length).toBe(2048);
    view.unmap();
    for (const g of ['u8', 'u16', 'u32', 'u64'] as const) expect(() => view[g], g).toThrow(closed);
  });

  it('refuses misaligned, out-of-range and non-integer offsets, and values that do not fit, with RangeError or TypeError', () => {
    const { view } = mapFile();
    for (const [w, o] of [[16, 1], [32, 2], [64, 4], [32, 8192], [8, 8192], [64, 8192], [32, -4], [32, 4.5], [32, NaN], [32, Infinity], [32, 2 ** 32], [32, 2 ** 53]] as const) {
      const read = (view as unknown as Record<string, (o: number) => unknown>)[`read${w}`]!.bind(view);
      expect(() => read(o), `read${w}(${o})`).toThrow(RangeError);
    }
    for (const o of [-4n, 8192n, 2n ** 32n, 2n ** 64n, 6n]) expect(() => view.read32(o), String(o)).toThrow(RangeError);
    expect(() => view.read32('4' as unknown as number)).toThrow(TypeError);
    for (const v of [256, -1, 1.5, NaN]) expect(() => view.write8(0, v), String(v)).toThrow(RangeError);
    for (const v of [65536, -1]) expect(() => view.write16(0, v), String(v)).toThrow(RangeError);
    for (const v of [2 ** 32, -1, 0.5]) expect(() => view.write32(0, v), String(v)).toThrow(RangeError);
    for (const v of [2n ** 64n, -1n]) expect(() => view.write64(0, v), String(v)).toThrow(RangeError);
    expect(() => view.write64(0, 1 as unknown as bigint)).toThrow(TypeError);
    expect(() => view.write32(0, '1' as unknown as number)).toThrow(TypeError);
    // Nothing was written by a refused store.
    expect([view.read64(0), view.read64(8)]).toEqual([0n, 0n]);
    view.unmap();
  });

  it('throws ERR_VFIO_CLOSED once unmapped, also from a caller the JIT has optimized', () => {
    const { view } = mapFile();
    const hot = (v: MappedRegion, n: number): number => {
      let s = 0;
      for (let i = 0; i < n; i++) {
        v.write32((i & 15) * 4, i);
        s += v.read32((i & 15) * 4) + v.read8(i & 63) + v.read16((i & 7) * 2) + Number(v.read64((i & 7) * 8) & 1n);
      }
      return s;
    };
    for (let k = 0; k < 20; k++) hot(view, 20_000);
    const u32 = view.u32;
    view.unmap();
    expect(u32.length).toBe(0);
    expect(() => hot(view, 1)).toThrow(closed);
    for (const f of [() => view.read8(0), () => view.read16(0), () => view.read64(0), () => view.write8(0, 1), () => view.write16(0, 1), () => view.write64(0, 1n)]) expect(f).toThrow(closed);
    view.unmap(); // idempotent
  });

  it('on a read-only mapping, loads work (native path) and stores and the typed arrays are refused', () => {
    const { view } = mapFile(4096, false);
    expect(view.read32(0)).toBe(0);
    expect(() => view.write32(0, 1)).toThrow(TypeError);
    expect(() => view.u32).toThrow(TypeError);
    view.unmap();
    expect(() => view.read32(0)).toThrow(closed);
  });
});
