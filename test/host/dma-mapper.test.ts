/**
 * DmaMapper bookkeeping against a fake DmaSpace that behaves like the kernel's
 * type1 and IOAS tables (overlap EEXIST, entry limit ENOSPC, kernel-chosen
 * IOVAs), and the RLIMIT_MEMLOCK check against fake /proc files.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { allocDmaBuffer, type DmaBuffer, type DmaMapOptions, type DmaSpace, type IovaRange } from '../../src/dma.js';
import { DmaLimitError, DmaMapper, memlockStatus, type DmaMapping } from '../../src/dma-mapper.js';
import { VfioError } from '../../src/errors.js';
import { hintFor } from '../../src/hints.js';

const U64_MAX = 0xffff_ffff_ffff_ffffn;

function catchErr(f: () => unknown): VfioError | undefined {
  try {
    f();
  } catch (e) {
    return e as VfioError;
  }
  return undefined;
}

/** A kernel-like mapping table: whole-mapping unmaps, EEXIST on overlap, ENOSPC past `entryLimit`. */
class FakeSpace implements DmaSpace {
  readonly table = new Map<bigint, { size: bigint; buffer: DmaBuffer; offset: bigint }>();
  calls: string[] = [];
  entryLimit = Infinity;
  failNextUnmap: VfioError | null = null;
  nextKernelIova = 0x1000n;
  readonly #op: string;

  constructor(
    readonly backend: 'type1' | 'iommufd',
    readonly ranges: IovaRange[] = [{ start: 0n, last: U64_MAX }],
    readonly alignment = 4096n,
  ) {
    this.#op = backend === 'type1' ? 'VFIO_IOMMU_MAP_DMA' : 'IOMMU_IOAS_MAP';
  }

  #kerr(code: string, errno: number, operation = this.#op): VfioError {
    return new VfioError({ code, errno, syscall: 'ioctl', operation });
  }

  map(buffer: DmaBuffer, o: DmaMapOptions): bigint {
    this.calls.push(`map ${o.iova ?? 'auto'}`);
    const size = BigInt(o.size!);
    let iova: bigint;
    if (o.iova === undefined) {
      if (this.backend === 'type1') throw new TypeError('type1 needs an iova');
      iova = this.nextKernelIova;
      this.nextKernelIova += size;
    } else iova = BigInt(o.iova);
    for (const [s, m] of this.table) if (s < iova + size && iova < s + m.size) throw this.#kerr('EEXIST', 17);
    if (this.table.size >= this.entryLimit) throw this.#kerr('ENOSPC', 28);
    this.table.set(iova, { size, buffer, offset: BigInt(o.offset ?? 0) });
    return iova;
  }

  unmap(iova: bigint | number, size: bigint | number): bigint {
    this.calls.push(`unmap ${iova}`);
    if (this.failNextUnmap) {
      const e = this.failNextUnmap;
      this.failNextUnmap = null;
      throw e;
    }
    const m = this.table.get(BigInt(iova));
    if (!m || m.size !== BigInt(size)) {
      if (this.backend === 'iommufd') throw this.#kerr('ENOENT', 2, 'IOMMU_IOAS_UNMAP');
      return 0n;
    }
    this.table.delete(BigInt(iova));
    return m.size;
  }

  unmapAll(): bigint {
    this.calls.push('unmapAll');
    let n = 0n;
    for (const m of this.table.values()) n += m.size;
    this.table.clear();
    return n;
  }

  iovaRanges(): { ranges: IovaRange[]; alignment: bigint } {
    return { ranges: this.ranges, alignment: this.alignment };
  }
}

/** A type1 container's iommuInfo, with or without the IOVA_RANGE cap of a real IOMMU domain. */
class FakeContainer extends FakeSpace {
  constructor(readonly hasDomain: boolean) {
    super('type1');
  }
  iommuInfo(): { caps: { kind: string }[] } {
    return { caps: [{ kind: 'migration' }, ...(this.hasDomain ? [{ kind: 'iova-range' }] : [])] };
  }
}

const LIMITS = (soft: string, hard = soft): string =>
  `Limit                     Soft Limit           Hard Limit           Units     \nMax open files            1024                 4096                 files     \nMax locked memory         ${soft}              ${hard}              bytes     \n`;
const STATUS = (o: { vmlck?: number; vmpin?: number; capEff?: string }): string =>
  `Name:\tnode\nVmLck:\t     ${o.vmlck ?? 0} kB\nVmPin:\t     ${o.vmpin ?? 0} kB\nCapEff:\t${o.capEff ?? '0000000000000000'}\n`;
const proc =
  (limits: string, status: string | (() => string)) =>
  (path: string): string =>
    path === '/proc/self/limits' ? limits : path === '/proc/self/status' ? (typeof status === 'string' ? status : status()) : '';
/** Like the kernel, the fake charges what the space maps to the process: `base` KiB plus the table. */
const charged = (s: FakeSpace, base: number, field: 'vmlck' | 'vmpin') => (): string =>
  STATUS({ [field]: base + Number([...s.table.values()].reduce((n, m) => n + m.size, 0n) / 1024n) });

/** The mapper's table and the fake kernel's agree. */
function expectConsistent(m: DmaMapper, s: FakeSpace): void {
  expect(m.mappings().map((x) => [x.iova, x.size])).toEqual([...s.table].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([i, v]) => [i, v.size]));
  expect(m.allocator.allocations().map((a) => a.iova)).toEqual(m.mappings().filter((x) => x.iova >= 0x1000n).map((x) => x.iova));
}

const buffers: DmaBuffer[] = [];
function buf(size: number): DmaBuffer {
  const b = allocDmaBuffer(size);
  buffers.push(b);
  return b;
}
afterEach(() => {
  for (const b of buffers.splice(0)) b.free();
});

describe('DmaMapper on a type1-like space', () => {
  it('allocates IOVAs first-fit from 4096, records mappings, looks up vaddr→iova and reuses freed IOVAs', () => {
    const s = new FakeSpace('type1');
    const m = new DmaMapper(s, { pinning: false });
    const a = buf(0x4000);
    const b = buf(0x2000);
    const ma = m.map(a);
    expect(ma).toMatchObject({ iova: 0x1000n, size: 0x4000n, offset: 0n, read: true, write: true, placement: 'allocated', buffer: a });
    const mb = m.map(b, { offset: 0x1000, write: false });
    expect(mb).toMatchObject({ iova: 0x5000n, size: 0x1000n, offset: 0x1000n, write: false });
    expect(s.calls).toEqual(['map 4096', 'map 20480']);
    expect(m.lookup(a, 0x2345)).toBe(0x3345n);
    expect(m.lookup(b, 0x1010)).toBe(0x5010n);
    expect(m.lookup(b, 0)).toBeUndefined(); // that page is not mapped
    expect(m.lookup(new Uint8Array(a.buffer, 0x3ff0))).toBe(0x4ff0n);
    expect(m.lookup(new Uint8Array(new ArrayBuffer(16)))).toBeUndefined();
    expect(m.find(0x5fffn)).toMatchObject({ buffer: b, iova: 0x5000n });
    expect(m.find(0x6000n)).toBeUndefined();
    expectConsistent(m, s);
    expect(m.unmap(ma)).toBe(0x4000n);
    expect(m.unmap(0x5000n)).toBe(0x1000n);
    expect(m.mappings()).toEqual([]);
    expect(m.map(a, { size: 0x1000 }).iova).toBe(0x1000n);
    expectConsistent(m, s);
  });

  it('keeps IOVAs below the limit and maps at fixed IOVAs inside it', () => {
    const s = new FakeSpace('type1');
    const m = new DmaMapper(s, { limit: 0x10000000n, pinning: false });
    expect(m.ranges).toEqual([{ start: 0x1000n, last: 0xfffffffn }]);
    const a = buf(0x1000);
    expect(m.map(a, { iova: 0xffff000n })).toMatchObject({ iova: 0xffff000n, placement: 'fixed' });
    expect(catchErr(() => m.map(a, { iova: 0x10000000n }))).toMatchObject({ code: 'EINVAL', message: expect.stringMatching(/outside the usable ranges/) });
    const big = buf(0x100000);
    // Fill the space below the limit with 1 MiB mappings until the allocator says ENOSPC.
    let n = 0;
    let err: VfioError | undefined;
    while (!(err = catchErr(() => m.map(big)))) n++;
    expect(n).toBe(255);
    expect(err).toMatchObject({ code: 'ENOSPC', operation: 'IOVA alloc' });
    for (const x of m.mappings()) expect(x.iova + x.size).toBeLessThanOrEqual(0x10000000n);
    expectConsistent(m, s);
    expect(m.unmapAll()).toBe(0x1000n + 255n * 0x100000n);
    expect(m.mappings()).toEqual([]);
    expect(m.allocator.allocations()).toEqual([]);
  });

  it('gives the IOVA back when the kernel refuses (dma_entry_limit ENOSPC, with its hint), leaving nothing half-mapped', () => {
    const s = new FakeSpace('type1');
    s.entryLimit = 2;
    const m = new DmaMapper(s, { pinning: false });
    const a = buf(0x3000);
    m.map(a, { size: 0x1000 });
    m.map(a, { offset: 0x1000, size: 0x1000 });
    const err = catchErr(() => m.map(a, { offset: 0x2000, size: 0x1000 }));
    expect(err).toMatchObject({ code: 'ENOSPC', operation: 'VFIO_IOMMU_MAP_DMA' });
    expect(err!.hint).toMatch(/\/sys\/module\/vfio_iommu_type1\/parameters\/dma_entry_limit/);
    expect(m.allocator.allocations().length).toBe(2);
    expectConsistent(m, s);
    s.entryLimit = 3;
    expect(m.map(a, { offset: 0x2000, size: 0x1000 }).iova).toBe(0x3000n); // the same IOVA, reused
    // A fixed IOVA the kernel refuses (a mapping made behind the mapper's back) is released too.
    s.table.set(0x100000n, { size: 0x1000n, buffer: a, offset: 0n });
    s.entryLimit = Infinity;
    expect(catchErr(() => m.map(a, { iova: 0x100000n, size: 0x1000 }))).toMatchObject({ code: 'EEXIST', operation: 'VFIO_IOMMU_MAP_DMA' });
    expect(m.allocator.find(0x100000n)).toBeUndefined();
  });

  it('refuses bad input with typed errors before any syscall, and the table stays as it was', () => {
    const s = new FakeSpace('type1');
    const m = new DmaMapper(s, { pinning: false });
    const a = buf(0x4000);
    const kept = m.map(a, { iova: 0x10000n, size: 0x2000 });
    const before = s.calls.length;
    const cases: [() => unknown, object][] = [
      [() => m.map(a, { size: 0 }), { code: 'EINVAL', message: expect.stringMatching(/zero-length/) }],
      [() => m.map(a, { size: 0x800 }), { code: 'EINVAL', message: expect.stringMatching(/size 0x800 is not a multiple/) }],
      [() => m.map(a, { offset: 0x10 }), { code: 'EINVAL', message: expect.stringMatching(/offset 0x10 is not a multiple/) }],
      [() => m.map(a, { offset: 0x4000 }), { code: 'EINVAL', message: expect.stringMatching(/not inside/) }],
      [() => m.map(a, { offset: 0x2000, size: 0x4000 }), { code: 'EINVAL', message: expect.stringMatching(/run past the end/) }],
      [() => m.map(a, { read: false, write: false }), { code: 'EINVAL', message: expect.stringMatching(/read or write/) }],
      [() => m.map(a, { iova: 0x10800n }), { code: 'EINVAL', message: expect.stringMatching(/IOVA 0x10800 is not a multiple/) }],
      [() => m.map(a, { iova: 0x11000n }), { code: 'EEXIST', operation: 'DmaMapper map', message: expect.stringMatching(/overlaps the mapping at 0x10000\.\.0x11fff/) }],
      [() => m.map(a, { iova: 0xf000n }), { code: 'EEXIST' }],
      [() => m.map(a, { iova: 0n, size: 0x1000 }), { code: 'EINVAL', message: expect.stringMatching(/outside the usable ranges/) }],
      [() => m.map(a, { iova: U64_MAX - 0xfffn, size: 0x2000 }), { code: 'EINVAL' }],
      [() => m.unmap(0x11000n), { code: 'ENOENT', operation: 'DmaMapper unmap' }],
      [() => m.unmap(0x20000n), { code: 'ENOENT' }],
      [() => m.unmap({ ...kept, buffer: buf(0x1000) } as DmaMapping), { code: 'ENOENT' }],
    ];
    for (const [f, want] of cases) {
      const err = catchErr(f);
      expect(err).toBeInstanceOf(VfioError);
      expect(err).toMatchObject(want);
    }
    expect(() => m.map(a, { iova: -1 })).toThrow(RangeError);
    expect(() => m.map(a, { size: 'x' as unknown as number })).toThrow(TypeError);
    expect(s.calls.length).toBe(before);
    expect(m.mappings()).toEqual([kept]);
    expectConsistent(m, s);
    const freed = buf(0x1000);
    freed.free();
    expect(catchErr(() => m.map(freed))).toMatchObject({ code: 'ERR_VFIO_CLOSED' });
  });

  it('keeps an entry whose unmap failed, and drops one the kernel no longer holds', () => {
    const s = new FakeSpace('iommufd');
    const m = new DmaMapper(s, { pinning: false });
    const a = buf(0x2000);
    const x = m.map(a, { size: 0x1000 });
    const y = m.map(a, { offset: 0x1000 });
    s.failNextUnmap = new VfioError({ code: 'EBUSY', errno: 16, operation: 'IOMMU_IOAS_UNMAP' });
    expect(catchErr(() => m.unmap(x))).toMatchObject({ code: 'EBUSY' });
    expect(m.mappings().map((q) => q.iova)).toEqual([x.iova, y.iova]);
    s.table.delete(y.iova); // unmapped behind the mapper's back
    expect(catchErr(() => m.unmap(y))).toMatchObject({ code: 'ENOENT', operation: 'IOMMU_IOAS_UNMAP' });
    expect(m.mappings()).toEqual([x]);
    expectConsistent(m, s);
  });
});

describe('DmaMapper on an iommufd-like space', () => {
  it('lets the kernel choose IOVAs and keeps the allocator out of them', () => {
    const s = new FakeSpace('iommufd', [{ start: 0n, last: U64_MAX }], 1n);
    const m = new DmaMapper(s, { pinning: false });
    expect(m.alignment).toBe(4096n); // at least a page, even when the IOAS says 1
    const a = buf(0x2000);
    const k = m.map(a);
    expect(k).toMatchObject({ iova: 0x1000n, placement: 'kernel' });
    expect(s.calls).toEqual(['map auto']);
    expect(m.allocator.find(0x2fffn)).toEqual({ iova: 0x1000n, size: 0x2000n });
    expect(m.map(a, { iova: 0x3000n })).toMatchObject({ placement: 'fixed' });
    expect(catchErr(() => m.map(a, { iova: 0x2000n }))).toMatchObject({ code: 'EEXIST' });
    expect(m.unmap(k)).toBe(0x2000n);
    expect(m.allocator.find(0x1000n)).toBeUndefined();
    expectConsistent(m, s);
  });

  it('uses the allocator and fixed IOVAs when a limit is set', () => {
    const s = new FakeSpace('iommufd');
    s.nextKernelIova = 0x7000_0000_0000n; // the kernel could pick anything
    const m = new DmaMapper(s, { limit: 0x10000000n, pinning: false });
    const a = buf(0x1000);
    expect(m.map(a)).toMatchObject({ iova: 0x1000n, placement: 'allocated' });
    expect(s.calls).toEqual(['map 4096']);
  });
});

describe('RLIMIT_MEMLOCK before pinning', () => {
  it('parses /proc/self/limits and status', () => {
    expect(memlockStatus('type1', proc(LIMITS('65536', '131072'), STATUS({ vmlck: 16, vmpin: 8 })))).toEqual({
      limit: 65536n,
      hardLimit: 131072n,
      locked: 16384n,
      lockedField: 'VmLck',
      ipcLock: false,
    });
    expect(memlockStatus('iommufd', proc(LIMITS('unlimited'), STATUS({ vmlck: 16, vmpin: 8, capEff: '000001ffffffffff' })))).toEqual({
      limit: null,
      hardLimit: null,
      locked: 8192n,
      lockedField: 'VmPin',
      ipcLock: true,
    });
    expect(memlockStatus('type1', proc(LIMITS('1'), STATUS({ capEff: '0000000000004000' }))).ipcLock).toBe(true);
    expect(memlockStatus('type1', proc(LIMITS('1'), STATUS({ capEff: '0000000000003fff' }))).ipcLock).toBe(false);
    expect(() => memlockStatus('type1', proc('nothing', ''))).toThrow(/Max locked memory/);
  });

  it('refuses a map that would pass the limit, with the numbers and how to raise it, and maps nothing', () => {
    const s = new FakeSpace('type1');
    const m = new DmaMapper(s, { pinning: true, readProc: proc(LIMITS('65536', '65536'), charged(s, 16, 'vmlck')) });
    const a = buf(0x10000);
    expect(m.map(a, { size: 0xc000 }).size).toBe(0xc000n); // 16 KiB + 48 KiB = the limit: allowed
    const err = catchErr(() => m.map(a, { offset: 0xc000 }));
    expect(err).toBeInstanceOf(DmaLimitError);
    expect(err).toMatchObject({ code: 'ENOMEM', errno: -12, operation: 'DmaMapper map', requested: 0x4000n, locked: 65536n, limit: 65536n, hardLimit: 65536n });
    expect(err!.message).toBe(
      'ENOMEM: mapping 16384 bytes for DMA would pin memory past RLIMIT_MEMLOCK: the limit is 65536 bytes and this process has 65536 bytes locked already (VmLck)',
    );
    expect(err!.hint).toMatch(/ulimit -l 80/);
    expect(err!.hint).toMatch(/LimitMEMLOCK=80K/);
    expect(err!.hint).toMatch(/CAP_IPC_LOCK/);
    expect(err!.hint).toMatch(/hard limit is 65536 bytes/);
    expect(s.calls).toEqual(['map 4096']);
    expect(m.allocator.allocations().length).toBe(1);
    expectConsistent(m, s);
  });

  it('does not check when nothing is pinned, with CAP_IPC_LOCK, or without a limit', () => {
    const tight = proc(LIMITS('4096'), STATUS({ vmlck: 4 }));
    const a = buf(0x10000);
    expect(new DmaMapper(new FakeSpace('type1'), { pinning: false, readProc: tight }).map(a).size).toBe(0x10000n);
    expect(new DmaMapper(new FakeSpace('type1'), { pinning: true, readProc: proc(LIMITS('4096'), STATUS({ capEff: '0000000000004000' })) }).map(a).size).toBe(0x10000n);
    expect(new DmaMapper(new FakeSpace('type1'), { pinning: true, readProc: proc(LIMITS('unlimited'), STATUS({ vmlck: 1 << 20 })) }).map(a).size).toBe(0x10000n);
    // iommufd counts VmPin, not VmLck.
    const s = new FakeSpace('iommufd');
    const m = new DmaMapper(s, { pinning: true, readProc: proc(LIMITS('65536'), () => STATUS({ vmlck: 64, vmpin: 4 })) });
    expect(m.map(a, { size: 0xf000 }).size).toBe(0xf000n);
    expect(m.memlock()).toMatchObject({ locked: 4096n, lockedField: 'VmPin' });
    expect(catchErr(() => m.checkLimit(0xf001n))).toMatchObject({ code: 'ENOMEM', message: expect.stringMatching(/\(VmPin\)/) });
  });

  it("decides pinning from the devices or the type1 container's IOMMU domain", () => {
    expect(new DmaMapper(new FakeContainer(false)).pinning).toBe(false);
    expect(new DmaMapper(new FakeContainer(true)).pinning).toBe(true);
    expect(new DmaMapper(new FakeSpace('iommufd')).pinning).toBe(true);
    expect(new DmaMapper(new FakeSpace('iommufd'), { pinning: false }).pinning).toBe(false);
    expect(() => new DmaMapper(new FakeSpace('iommufd'), { pinning: 'yes' as unknown as boolean })).toThrow(TypeError);
  });
});

describe('dirty tracking and hints', () => {
  it('reports a space that is neither a Container nor an Ioas as unsupported, and refuses to start', () => {
    const m = new DmaMapper(new FakeSpace('iommufd'), { pinning: false });
    expect(m.dirty.probe()).toMatchObject({ supported: false, code: 'EOPNOTSUPP' });
    expect(catchErr(() => m.dirty.start())).toMatchObject({ code: 'EOPNOTSUPP' });
    expect(m.dirty.active).toBe(false);
    expect(catchErr(() => m.dirty.bitmap(0x1000n, 0x1000n))).toMatchObject({ code: 'EINVAL', message: expect.stringMatching(/not started/) });
  });

  it('name /proc/sys/vm/nr_hugepages for a failed hugetlb allocation and the entry limit for type1 ENOSPC', () => {
    expect(hintFor({ code: 'ENOMEM', syscall: 'mmap', operation: 'DmaBuffer alloc (hugetlb)' })).toMatch(/\/proc\/sys\/vm\/nr_hugepages/);
    expect(hintFor({ code: 'ENOMEM', syscall: 'mmap', operation: 'DmaBuffer alloc' })).toBeUndefined();
    expect(hintFor({ code: 'ENOSPC', syscall: 'ioctl', operation: 'VFIO_IOMMU_MAP_DMA' })).toMatch(/dma_entry_limit/);
  });
});
