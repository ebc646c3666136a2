/**
 * `vfio info <device> [--json] [--backend group|cdev]` on the real drivers: the
 * JSON contract, identical on both backends but for `backend`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runVfio } from '../host/mdev-shared.js';
import { resolveDevice } from '../../src/vfio/open.js';
import { createMdev, eduAddress, removeMdev } from './fixtures.js';

const created: Record<string, string> = {};
beforeAll(() => {
  for (const t of ['mtty-2', 'mdpy-vga', 'mbochs-small']) created[t] = createMdev(t);
});
afterAll(() => Object.values(created).forEach(removeMdev));

const info = async (...argv: string[]) => {
  const r = await runVfio(['info', ...argv, '--json']);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return JSON.parse(r.stdout);
};

describe('vfio info --json', () => {
  it('describes mtty-2: top level, regions as decimal strings, irqs with EINVAL entries', async () => {
    const uuid = created['mtty-2']!;
    const j = await info(uuid);
    expect(Object.keys(j)).toEqual(['device', 'backend', 'flags', 'flagNames', 'numRegions', 'numIrqs', 'regions', 'irqs', 'migration']);
    expect(j.migration).toEqual({ flags: ['STOP_COPY', 'P2P', 'PRE_COPY'], state: 'RUNNING' });
    expect(j).toMatchObject({ device: uuid, backend: 'group', flags: 2, flagNames: ['PCI'], numRegions: 9, numIrqs: 5 });
    expect(j.regions[0]).toEqual({ index: 0, name: 'BAR0', flags: 3, flagNames: ['READ', 'WRITE'], size: '8', offset: '0', caps: [] });
    expect(j.regions[7]).toMatchObject({ name: 'CONFIG', size: '255', offset: String(7n << 40n) });
    expect(j.irqs).toEqual([
      { index: 0, name: 'INTx', count: 1, flags: 7, flagNames: ['EVENTFD', 'MASKABLE', 'AUTOMASKED'] },
      { index: 1, name: 'MSI', count: 1, flags: 9, flagNames: ['EVENTFD', 'NORESIZE'] },
      { index: 2, error: 'EINVAL' },
      { index: 3, error: 'EINVAL' },
      { index: 4, error: 'EINVAL' },
    ]);
  });

  it('is identical on both backends but for `backend`, also given a cdev path', async () => {
    const uuid = created['mbochs-small']!;
    // One at a time: a device allows one cdev open, and no cdev bind while its group is open.
    const g = await info(uuid, '--backend', 'group');
    const c = await info(uuid, '--backend', 'cdev');
    const byPath = await info(resolveDevice(uuid).cdevPath!);
    expect(c.backend).toBe('cdev');
    expect(byPath.backend).toBe('cdev');
    expect({ ...c, backend: 'group' }).toEqual(g);
    expect(byPath).toEqual(c);
    expect(g.regions[9]).toMatchObject({ name: 'GFX/EDID', flags: 11, size: '4096', offset: '8192', caps: [{ id: 2, version: 1, kind: 'type', type: 1, subtype: 1 }] });
  });

  it('describes mdpy and edu (a PCI address)', async () => {
    const m = await info(created['mdpy-vga']!);
    expect(m.regions[0]).toMatchObject({ name: 'BAR0', size: String(0x200000), offset: '4096', flagNames: ['READ', 'WRITE', 'MMAP'] });
    const e = await info(eduAddress());
    expect(e).toMatchObject({ device: eduAddress(), backend: 'group', numRegions: 9, numIrqs: 5 });
    expect(e.regions[0]).toMatchObject({ size: String(0x100000) });
    expect(e.irqs[3]).toEqual({ index: 3, error: 'EINVAL' });
  });

  it('prints tables without --json, and fails cleanly for unknown devices and bad backends', async () => {
    const t = await runVfio(['info', created['mtty-2']!]);
    expect(t.status).toBe(0);
    expect(t.stdout).toMatch(/^REGION\s+NAME\s+SIZE/m);
    expect(t.stdout).toMatch(/^2\s+-\s+-\s+EINVAL$/m);
    const unknown = await runVfio(['info', '00000000-0000-4000-8000-000000000000']);
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toMatch(/^vfio: ENOENT: no mdev named/);
    const usage = await runVfio(['info', created['mtty-2']!, '--backend', 'nope']);
    expect(usage.status).toBe(2);
    expect((await runVfio(['info'])).status).toBe(2);
  });
});
