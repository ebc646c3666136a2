import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { expectCliFailure, runVfio } from './mdev-shared.js';

const root = mkdtempSync(join(tmpdir(), 'vfio-info-'));
mkdirSync(join(root, 'sys/bus/mdev/devices'), { recursive: true });
mkdirSync(join(root, 'sys/bus/pci/devices'), { recursive: true });
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('vfio info (host)', () => {
  it('is a usage error without a device or with a bad --backend', async () => {
    const none = await runVfio(['info']);
    expect(none.status).toBe(2);
    expect(none.stderr).toMatch(/missing <device>/);
    const bad = await runVfio(['--root', root, 'info', '0000:00:03.0', '--backend', 'type1']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--backend takes group or cdev/);
  });

  it('names an unknown device with ENOENT and a hint, exit 1', async () => {
    const r = await runVfio(['--root', root, 'info', '0000:00:03.0', '--json']);
    expectCliFailure(r, 'ENOENT', /vfio ls/);
    expect(r.stderr).toMatch(/no PCI device named 0000:00:03\.0/);
  });

  it('lists info among the commands', async () => {
    const r = await runVfio(['--help']);
    expect(r.stdout).toMatch(/^\s+info\s+a device's info/m);
  });
});
