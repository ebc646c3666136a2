/**
 * The DMA layer against the kernel's limits: type1's dma_entry_limit on an
 * mdev-only container (ENOSPC, with the hint, the table and the allocator left
 * consistent), and RLIMIT_MEMLOCK on edu behind VT-d, checked by the library
 * before anything is pinned, in a process that lacks CAP_IPC_LOCK.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DmaMapper } from '../../src/dma/mapper.js';
import { allocDmaBuffer } from '../../src/dma/buffer.js';
import { VfioError } from '../../src/errors.js';
import { createMdev, openOnGroup, removeMdev } from './fixtures.js';

const ENTRY_LIMIT = '/sys/module/vfio_iommu_type1/parameters/dma_entry_limit';

describe('type1 dma_entry_limit on an mdev-only container', () => {
  let uuid = '';
  beforeAll(() => {
    uuid = createMdev('mtty-1');
  });
  afterAll(() => {
    if (uuid) removeMdev(uuid);
  });

  it('gives ENOSPC with the hint past a lowered limit, and the mapper stays consistent', () => {
    const old = readFileSync(ENTRY_LIMIT, 'utf8').trim();
    // The container takes the limit when its IOMMU is set, so lower it first.
    writeFileSync(ENTRY_LIMIT, '3');
    const o = openOnGroup(uuid);
    const buf = allocDmaBuffer(16 * 4096);
    try {
      const m = new DmaMapper(o.container, { devices: [o.device] });
      expect(m.pinning).toBe(false);
      const maps = [0, 1, 2].map((i) => m.map(buf, { offset: i * 4096, size: 4096 }));
      let err: VfioError | undefined;
      try {
        m.map(buf, { offset: 3 * 4096, size: 4096 });
      } catch (e) {
        err = e as VfioError;
      }
      expect(err).toBeInstanceOf(VfioError);
      expect(err).toMatchObject({ code: 'ENOSPC', syscall: 'ioctl', operation: 'VFIO_IOMMU_MAP_DMA' });
      expect(err!.hint).toContain('dma_entry_limit');
      // Nothing half-mapped: the table holds the three, and the refused IOVA is free again.
      expect(m.mappings().map((x) => x.iova)).toEqual(maps.map((x) => x.iova));
      m.unmap(maps[1]!);
      const again = m.map(buf, { offset: 3 * 4096, size: 4096 });
      expect(again.iova).toBe(maps[1]!.iova);
      expect(m.unmapAll()).toBe(3n * 4096n);
      expect(m.mappings()).toEqual([]);
    } finally {
      o.close();
      buf.free();
      writeFileSync(ENTRY_LIMIT, old);
    }
  });
});

describe('RLIMIT_MEMLOCK on edu behind VT-d (type1, pinning)', () => {
  it('refuses a map past the limit before pinning, leaves the table and the locked memory as they were, and frees only unmapped buffers', () => {
    const r = spawnSync(
      'setpriv',
      ['--bounding-set=-ipc_lock', '--inh-caps=-ipc_lock', 'prlimit', `--memlock=${1024 * 1024}:${1024 * 1024}`, process.execPath, '--import', 'tsx', 'test/guest/children/memlock-child.ts'],
      { encoding: 'utf8', timeout: 120_000 },
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.status).toEqual({ pinning: true, limit: String(1024 * 1024), ipcLock: false });
    expect(out.lockedAfterFirst).toBe(512 * 1024);
    expect(out.second).toMatchObject({ isLimitError: true, code: 'ENOMEM', requested: String(768 * 1024), locked: String(512 * 1024), limit: String(1024 * 1024) });
    expect(out.second.hint).toMatch(/RLIMIT_MEMLOCK to at least 1280 KiB/);
    expect(out.tableAfterRefusal).toHaveLength(1);
    expect(out.tableAfterRefusal[0].size).toBe(String(512 * 1024));
    expect(out.lockedAfterRefusal).toBe(512 * 1024);
    expect(out.freeMapped).toBe('EBUSY');
    expect(out.lockedAfterUnmap).toBe(0);
    expect(out.third).toEqual({ size: String(768 * 1024), locked: 768 * 1024, table: 1 });
    expect(out.freedAfterUnmap).toBe(true);
  }, 180_000);
});
