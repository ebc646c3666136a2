import { describe, expect, it } from 'vitest';
import { VfioError } from '../../src/errors.js';
import {
  CAP_ALIGN,
  MAX_CAPS,
  decodeDeviceCaps,
  decodeRegionCaps,
  decodeRegionInfo,
  decodeType1Caps,
  decodeType1Info,
  walkCaps,
} from '../../src/uapi/index.js';

/**
 * A region-info image: the 32-byte struct (argsz = total length, flags
 * R|W|MMAP|CAPS, index 0, cap_offset, size 1 MiB, offset 0) followed by
 * capability bytes. Each cap is [offset, id, version, next, ...u32 body].
 */
function regionWithCaps(capOffset: number, total: number, caps: [number, number, number, number, ...number[]][]): Buffer {
  const b = Buffer.alloc(total);
  b.writeUInt32LE(total, 0);
  b.writeUInt32LE(0xf, 4);
  b.writeUInt32LE(capOffset, 12);
  b.writeBigUInt64LE(0x100000n, 16);
  for (const [off, id, version, next, ...body] of caps) {
    b.writeUInt16LE(id, off);
    b.writeUInt16LE(version, off + 2);
    b.writeUInt32LE(next, off + 4);
    body.forEach((word, i) => b.writeUInt32LE(word, off + 8 + 4 * i));
  }
  return b;
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(VfioError);
    expect((e as VfioError).message).toMatch(/^ERR_VFIO_/);
    return (e as VfioError).code;
  }
  throw new Error('expected a VfioError');
}

describe('region capabilities', () => {
  it('decodes a sparse-mmap cap with 2 areas', () => {
    // @32 SPARSE_MMAP v1 next 0 | nr_areas 2 | reserved | {0, 0x1000} {0x3000, 0xfd000}
    const b = regionWithCaps(32, 80, [[32, 1, 1, 0, 2, 0, 0, 0, 0x1000, 0, 0x3000, 0, 0xfd000, 0]]);
    const r = decodeRegionInfo(b);
    expect(r.caps).toEqual([
      {
        id: 1,
        version: 1,
        kind: 'sparse-mmap',
        areas: [
          { offset: 0n, size: 0x1000n },
          { offset: 0x3000n, size: 0xfd000n },
        ],
      },
    ]);
    expect(r.flagNames).toEqual(['READ', 'WRITE', 'MMAP', 'CAPS']);
  });

  it('walks a three-cap chain and keeps the unknown cap raw', () => {
    // @32 MSIX_MAPPABLE (header only) → @40 TYPE GFX/EDID → @56 id 0x99 v3 with 8 bytes of payload
    const b = regionWithCaps(32, 72, [
      [32, 3, 1, 40],
      [40, 2, 1, 56, 1, 1],
      [56, 0x99, 3, 0, 0xdeadbeef, 0x01020304],
    ]);
    const caps = decodeRegionInfo(b).caps;
    expect(caps).toHaveLength(3);
    expect(caps[0]).toEqual({ id: 3, version: 1, kind: 'msix-mappable' });
    expect(caps[1]).toEqual({ id: 2, version: 1, kind: 'type', type: 1, subtype: 1 });
    expect(caps[2]).toMatchObject({ id: 0x99, version: 3, kind: 'unknown' });
    const raw = (caps[2] as { raw: Buffer }).raw;
    expect(raw.toString('hex')).toBe('99000300' + '00000000' + 'efbeadde' + '04030201');
    // the raw bytes are a copy, not a view of the kernel buffer
    b.fill(0);
    expect(raw.readUInt32LE(8)).toBe(0xdeadbeef);
  });

  it('walkCaps returns ids, offsets, next and byte ranges', () => {
    const b = regionWithCaps(32, 72, [
      [32, 3, 1, 40],
      [40, 2, 1, 56, 1, 1],
      [56, 7, 2, 0],
    ]);
    const raws = walkCaps(b, 32, { minOffset: 32 });
    expect(raws.map((c) => [c.id, c.version, c.offset, c.next, c.bytes.length])).toEqual([
      [3, 1, 32, 40, 8],
      [2, 1, 40, 56, 16],
      [7, 2, 56, 0, 16],
    ]);
    expect(walkCaps(b, 0)).toEqual([]);
  });

  it('a cap id means different things per namespace', () => {
    // id 1 with a u32 2 at +8: region SPARSE_MMAP (needs areas), type1 IOVA_RANGE (needs ranges), device zPCI (raw)
    const b = Buffer.alloc(56);
    b.writeUInt16LE(1, 24);
    b.writeUInt16LE(1, 26);
    b.writeUInt32LE(1, 32); // nr_areas / nr_iovas = 1
    b.writeBigUInt64LE(0x1000n, 40);
    b.writeBigUInt64LE(0x1fffn, 48);
    expect(decodeType1Caps(b, 24, { minOffset: 24 })).toEqual([
      { id: 1, version: 1, kind: 'iova-range', ranges: [{ start: 0x1000n, end: 0x1fffn }] },
    ]);
    expect(decodeRegionCaps(b, 24, { minOffset: 24 })).toEqual([
      { id: 1, version: 1, kind: 'sparse-mmap', areas: [{ offset: 0x1000n, size: 0x1fffn }] },
    ]);
    const dev = decodeDeviceCaps(b, 24, { minOffset: 24 });
    expect(dev).toMatchObject([{ id: 1, version: 1, kind: 'unknown' }]);
    expect((dev[0] as { raw: Buffer }).raw.length).toBe(32);
  });
});

describe('malformed chains throw VfioError and never hang', () => {
  it('a cap whose next points to itself (cycle)', () => {
    const b = regionWithCaps(32, 48, [[32, 2, 1, 32, 1, 1]]);
    expect(codeOf(() => decodeRegionInfo(b))).toBe('ERR_VFIO_BAD_CAP_CHAIN');
  });

  it('a two-cap cycle (next goes backwards)', () => {
    const b = regionWithCaps(32, 56, [
      [32, 3, 1, 40],
      [40, 3, 1, 32],
    ]);
    expect(codeOf(() => decodeRegionInfo(b))).toBe('ERR_VFIO_BAD_CAP_CHAIN');
  });

  it('next pointing into the previous header (overlap)', () => {
    const b = regionWithCaps(32, 56, [[32, 3, 1, 36]]);
    expect(codeOf(() => walkCaps(b, 32, { minOffset: 32 }))).toBe('ERR_VFIO_BAD_CAP_CHAIN');
  });

  it('next out of bounds', () => {
    const b = regionWithCaps(32, 48, [[32, 2, 1, 200, 1, 1]]);
    expect(codeOf(() => decodeRegionInfo(b))).toBe('ERR_VFIO_BAD_CAP_CHAIN');
    const huge = regionWithCaps(32, 48, [[32, 2, 1, 0xfffffff8, 1, 1]]);
    expect(codeOf(() => decodeRegionInfo(huge))).toBe('ERR_VFIO_BAD_CAP_CHAIN');
  });

  it('misaligned offsets (cap_offset and next)', () => {
    expect(CAP_ALIGN).toBe(4);
    const first = regionWithCaps(34, 56, [[34, 3, 1, 0]]);
    expect(codeOf(() => decodeRegionInfo(first))).toBe('ERR_VFIO_BAD_CAP_CHAIN');
    const next = regionWithCaps(32, 64, [
      [32, 3, 1, 42],
      [42, 3, 1, 0],
    ]);
    expect(codeOf(() => decodeRegionInfo(next))).toBe('ERR_VFIO_BAD_CAP_CHAIN');
  });

  it('a header crossing the end of the returned bytes', () => {
    const b = regionWithCaps(32, 36, []);
    b.writeUInt16LE(3, 32);
    expect(codeOf(() => decodeRegionInfo(b))).toBe('ERR_VFIO_BAD_CAP_CHAIN');
  });

  it('the chain is cut at argsz: a cap past argsz is out of bounds even if the buffer is larger', () => {
    const b = regionWithCaps(32, 64, [
      [32, 3, 1, 48],
      [48, 3, 1, 0],
    ]);
    b.writeUInt32LE(52, 0); // argsz 52: the second header (48..56) crosses it
    expect(codeOf(() => decodeRegionInfo(b))).toBe('ERR_VFIO_BAD_CAP_CHAIN');
  });

  it('cap_offset inside the fixed struct', () => {
    const b = regionWithCaps(8, 48, []);
    expect(codeOf(() => decodeRegionInfo(b))).toBe('ERR_VFIO_BAD_CAP_CHAIN');
  });

  it('more than MAX_CAPS caps', () => {
    const n = MAX_CAPS + 1;
    const total = 32 + 8 * n;
    const caps = Array.from({ length: n }, (_, i): [number, number, number, number] => [32 + 8 * i, 3, 1, i === n - 1 ? 0 : 40 + 8 * i]);
    expect(codeOf(() => decodeRegionInfo(regionWithCaps(32, total, caps)))).toBe('ERR_VFIO_BAD_CAP_CHAIN');
    expect(decodeRegionInfo(regionWithCaps(32, total - 8, caps.slice(0, MAX_CAPS).map((c, i) => (i === MAX_CAPS - 1 ? [c[0], 3, 1, 0] : c)))).caps).toHaveLength(
      MAX_CAPS,
    );
  });

  it('huge nr_areas is bounded by the cap bytes', () => {
    const b = regionWithCaps(32, 80, [[32, 1, 1, 0, 0xffffffff, 0]]);
    expect(codeOf(() => decodeRegionInfo(b))).toBe('ERR_VFIO_BAD_CAP');
    const three = regionWithCaps(32, 80, [[32, 1, 1, 0, 3, 0]]); // room for 2 areas only
    expect(codeOf(() => decodeRegionInfo(three))).toBe('ERR_VFIO_BAD_CAP');
  });

  it('huge nr_iovas is bounded by the cap bytes', () => {
    const b = Buffer.alloc(56);
    b.writeUInt32LE(56, 0);
    b.writeUInt32LE(2, 4); // CAPS
    b.writeUInt32LE(24, 16);
    b.writeUInt16LE(1, 24);
    b.writeUInt32LE(0x10000000, 32);
    expect(codeOf(() => decodeType1Info(b))).toBe('ERR_VFIO_BAD_CAP');
  });

  it('a known cap shorter than its struct', () => {
    // TYPE cap given only its 8-byte header before the next cap
    const b = regionWithCaps(32, 56, [
      [32, 2, 1, 40],
      [40, 3, 1, 0],
    ]);
    expect(codeOf(() => decodeRegionInfo(b))).toBe('ERR_VFIO_BAD_CAP');
    // DMA_AVAIL (12 bytes) as the last cap with only 8 bytes left
    const t = Buffer.alloc(32);
    t.writeUInt32LE(32, 0);
    t.writeUInt32LE(2, 4);
    t.writeUInt32LE(24, 16);
    t.writeUInt16LE(3, 24);
    expect(codeOf(() => decodeType1Info(t))).toBe('ERR_VFIO_BAD_CAP');
  });

  it('walkCaps on a hostile buffer of random bytes either decodes or throws VfioError', () => {
    let seed = 12345;
    const rand = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    for (let round = 0; round < 500; round++) {
      const b = Buffer.from(Array.from({ length: 32 + (rand() % 64) }, rand));
      // steer many chains into the buffer
      b.writeUInt32LE(32 + 8 * (rand() % 4), 12);
      b.writeUInt32LE(0x8 | rand(), 4);
      b.writeUInt32LE(b.length, 0);
      try {
        decodeRegionInfo(b);
      } catch (e) {
        expect(e).toBeInstanceOf(VfioError);
      }
    }
  });
});
