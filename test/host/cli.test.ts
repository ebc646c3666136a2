import { chmodSync, closeSync, constants as fsConstants, openSync, readFileSync } from 'node:fs';
import { beforeEach, describe, expect, it } from 'vitest';
import { CLI, REPO, U1, U2, cliIn, fakeSysPerTest, expectCliFailure as expectFailure, runVfio as spawnVfio } from './mdev-shared.js';

const fake = fakeSysPerTest();

/** Runs the CLI in this process against the fake tree. */
const vfio = (...argv: string[]): ReturnType<typeof cliIn> => cliIn(fake.root, argv);

/** Column start offsets of a header line. */
const columns = (header: string): number[] => [...header.matchAll(/(?:^|\s{2})(\S)/g)].map((m) => m.index! + m[0].length - 1);

describe('help and usage errors', () => {
  it('prints the command list with --help and exits 0', async () => {
    const r = await vfio('--help');
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    for (const c of ['ls', 'mdev types', 'mdev list', 'mdev create', 'mdev remove', 'mdev define', 'mdev undefine', 'mdev modify', 'mdev start', 'mdev stop', 'mdev autostart']) expect(r.stdout).toMatch(new RegExp(`^  ${c} +\\S`, 'm'));
    expect(r.stdout).toContain('--root DIR');
  });

  it('prints a command\'s synopsis and options with <command> --help', async () => {
    const r = await vfio('mdev', 'create', '--help');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('usage: vfio mdev create <type> [--parent P] [--uuid U] [--timeout S] [--json]');
  });

  it.each([
    [[], 'no command given'],
    [['frob'], "unknown command 'frob'"],
    [['mdev'], "'mdev' needs a subcommand"],
    [['mdev', 'frob'], "unknown command 'mdev frob'"],
    [['mdev', 'create'], 'missing <type>'],
    [['mdev', 'remove'], 'missing <uuid>'],
    [['mdev', 'remove', U1, U2], `unexpected argument '${U2}'`],
    [['mdev', 'types', '--bogus'], "Unknown option '--bogus'"],
    [['mdev', 'list', '--uuid', U1], "Unknown option '--uuid'"],
    [['ls', '--parent', 'mtty'], "Unknown option '--parent'"],
    [['mdev', 'create', 'mtty-1', '--parent'], "Option '--parent <value>' argument missing"],
    [['mdev', 'remove', U1, '--timeout', 'soon'], '--timeout takes a positive number of seconds, not "soon"'],
    [['mdev', 'remove', U1, '--timeout', '0'], '--timeout takes a positive number'],
  ])('exits 2 on %j', async (argv, message) => {
    const r = await vfio(...argv);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n')[0]).toMatch(/^vfio: /);
    expect(r.stderr.split('\n')[0]).toContain(message);
    expect(r.stderr).toMatch(/^(usage: vfio |commands: (\w[\w ]*, )*ls, mdev types)/m);
  });

  it('fails with ENOENT for a --root that does not exist', async () => {
    const r = await vfio('--root', `${fake.root}/nope`, 'ls');
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`vfio: ENOENT: --root ${fake.root}/nope does not exist\n`);
  });
});

describe('vfio mdev types', () => {
  it('--json prints the documented objects, description null where the type has none', async () => {
    fake.addMdev('mtty', 'mtty-2', U2);
    fake.addMdev('mtty', 'mtty-2', U1);
    fake.setAvailable('mtty', 'mtty-2', 10);
    fake.setAvailable('mtty', 'mtty-1', 20);
    const r = await vfio('mdev', 'types', '--json');
    expect(r.status).toBe(0);
    const types = JSON.parse(r.stdout) as Record<string, unknown>[];
    expect(types).toHaveLength(8);
    for (const t of types) expect(Object.keys(t)).toEqual(['parent', 'type', 'name', 'description', 'deviceApi', 'availableInstances', 'devices']);
    expect(types.map((t) => `${t.parent}/${t.type}`)).toEqual([
      'mbochs/mbochs-large',
      'mbochs/mbochs-medium',
      'mbochs/mbochs-small',
      'mdpy/mdpy-hd',
      'mdpy/mdpy-vga',
      'mdpy/mdpy-xga',
      'mtty/mtty-1',
      'mtty/mtty-2',
    ]);
    expect(types.find((t) => t.type === 'mtty-2')).toEqual({
      parent: 'mtty',
      type: 'mtty-2',
      name: 'Dual port serial',
      description: null,
      deviceApi: 'vfio-pci',
      availableInstances: 10,
      devices: [U1, U2],
    });
    expect(types.find((t) => t.type === 'mdpy-vga')).toMatchObject({ description: 'virtual display, 640x480 framebuffer', availableInstances: 4, devices: [] });
  });

  it('--parent limits the listing; an unknown parent fails with ENOENT', async () => {
    const r = await vfio('mdev', 'types', '--parent', 'mdpy', '--json');
    expect(JSON.parse(r.stdout).map((t: { type: string }) => t.type)).toEqual(['mdpy-hd', 'mdpy-vga', 'mdpy-xga']);
    const bad = await vfio('mdev', 'types', '--parent', 'gpu');
    expect(expectFailure(bad, 'ENOENT', /vfio mdev types/)).toContain('no mdev parent "gpu" (parents: mbochs, mdpy, mtty)');
  });

  it('prints an aligned table', async () => {
    fake.addMdev('mtty', 'mtty-1', U1);
    const r = await vfio('mdev', 'types');
    expect(r.status).toBe(0);
    const [header, ...rows] = r.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^PARENT +TYPE +NAME +AVAILABLE +DEVICES +DESCRIPTION$/);
    expect(rows).toHaveLength(8);
    const cols = columns(header!);
    for (const row of rows) for (const c of cols.slice(1)) expect(row[c - 1]).toBe(' ');
    expect(rows).toContain(rows.find((l) => /^mtty +mtty-1 +Single port serial +24 +1 +-$/.test(l)));
    expect(rows.find((l) => l.includes('mdpy-hd'))!.slice(cols[5]!)).toBe('virtual display, 1920x1080 framebuffer');
  });
});

describe('vfio mdev list', () => {
  it('--json prints uuid, parent, type, iommuGroup (a number) and vfioDev (or null)', async () => {
    const a = fake.addMdev('mtty', 'mtty-2', U2);
    const b = fake.addMdev('mdpy', 'mdpy-vga', U1, { vfio: false });
    const r = await vfio('mdev', 'list', '--json');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([
      { uuid: U1, parent: 'mdpy', type: 'mdpy-vga', iommuGroup: b.group, vfioDev: null },
      { uuid: U2, parent: 'mtty', type: 'mtty-2', iommuGroup: a.group, vfioDev: `vfio${a.vfio}` },
    ]);
  });

  it('prints an empty array, or just the header, when there are none', async () => {
    expect(JSON.parse((await vfio('mdev', 'list', '--json')).stdout)).toEqual([]);
    expect((await vfio('mdev', 'list')).stdout).toBe('UUID  PARENT  TYPE  GROUP  VFIO DEV\n');
  });

  it('prints an aligned table', async () => {
    const a = fake.addMdev('mbochs', 'mbochs-medium', U1);
    const r = await vfio('mdev', 'list');
    const [header, row] = r.stdout.split('\n');
    expect(header).toMatch(/^UUID +PARENT +TYPE +GROUP +VFIO DEV$/);
    expect(row).toMatch(new RegExp(`^${U1}  mbochs  mbochs-medium  ${a.group} +vfio${a.vfio}$`));
    expect(columns(header!)).toEqual([0, 38, 46, 61, 68]);
  });
});

describe('vfio mdev create', () => {
  it('prints the new UUID', async () => {
    fake.driver();
    const r = await vfio('mdev', 'create', 'mtty-2');
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    const uuid = r.stdout.trim();
    expect(r.stdout).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\n$/);
    expect(fake.exists(`/sys/bus/mdev/devices/${uuid}`)).toBe(true);
  });

  it('takes --uuid in any case and --parent, and prints the lower-case UUID or --json', async () => {
    fake.driver();
    const r = await vfio('mdev', 'create', 'mdpy-hd', '--parent', 'mdpy', '--uuid', U1.toUpperCase());
    expect(r.stdout).toBe(`${U1}\n`);
    const j = await vfio('mdev', 'create', 'mdpy-hd', '--uuid', U2, '--json');
    const dev = JSON.parse(j.stdout);
    expect(Object.keys(dev)).toEqual(['uuid', 'parent', 'type', 'iommuGroup', 'vfioDev']);
    expect(dev).toMatchObject({ uuid: U2, parent: 'mdpy', type: 'mdpy-hd', vfioDev: expect.stringMatching(/^vfio\d+$/) });
  });

  it.each([
    [['mtty-1', '--uuid', 'nope'], 'EINVAL', /8-4-4-4-12/],
    [['mtty-1', '--uuid', ''], 'EINVAL', /8-4-4-4-12/],
    [['mtty-9'], 'ENOENT', /vfio mdev types/],
    [['mtty-1', '--parent', 'mdpy'], 'ENOENT', /vfio mdev types/],
  ])('fails with one line for %j', async (argv, code, hint) => {
    const r = await vfio('mdev', 'create', ...argv);
    expectFailure(r, code, hint);
    expect(fake.read('/sys/devices/virtual/mtty/mtty/mdev_supported_types/mtty-1/create')).toBe('');
  });

  it('fails with ETIMEDOUT when the device node never appears, and the device stays listed', async () => {
    fake.driver((p, t, u) => void fake.addMdev(p, t, u, { groupNode: false }));
    const r = await vfio('mdev', 'create', 'mtty-1', '--uuid', U1, '--timeout', '0.2');
    expect(expectFailure(r, 'ETIMEDOUT', /vfio mdev remove/)).toContain(`mdev ${U1} was created`);
    expect(JSON.parse((await vfio('mdev', 'list', '--json')).stdout).map((d: { uuid: string }) => d.uuid)).toEqual([U1]);
  });
});

describe('vfio mdev remove', () => {
  it('removes quietly and exits 0', async () => {
    fake.addMdev('mtty', 'mtty-1', U1);
    const r = await vfio('mdev', 'remove', U1);
    expect(r).toEqual({ status: 0, stdout: '', stderr: '' });
    expect(fake.read(`/sys/devices/virtual/mtty/mtty/${U1}/remove`)).toBe('1');
  });

  it('fails with ENOENT for an unknown UUID and EINVAL for a malformed one', async () => {
    expectFailure(await vfio('mdev', 'remove', U2), 'ENOENT', /removed already/);
    expectFailure(await vfio('mdev', 'remove', 'x'), 'EINVAL', /8-4-4-4-12/);
  });
});

describe('vfio ls', () => {
  beforeEach(() => {
    fake.addGroup(3, {});
    fake.addPci('0000:00:03.0', { vendor: '0x1234', device: '0x11e8', group: 3, driver: 'vfio-pci', vfio: 0 });
    fake.addGroup(4, { node: false });
    fake.addPci('0000:00:1f.0', { vendor: '0x8086', device: '0x2918', group: 4, driver: 'lpc_ich' });
    fake.addPci('0000:00:1f.3', { vendor: '0x8086', device: '0x2930', group: 4 });
    fake.addGroup(9, {}); // a group without devices
  });

  it('--json prints every group with its devices', async () => {
    const m = fake.addMdev('mdpy', 'mdpy-vga', U1);
    const r = await vfio('ls', '--json');
    expect(r.status).toBe(0);
    const none = { mdevType: null, parent: null, vfioDev: null, cdev: null };
    expect(JSON.parse(r.stdout)).toEqual([
      {
        group: 3,
        name: null,
        type: 'DMA',
        node: '/dev/vfio/3',
        devices: [{ name: '0000:00:03.0', bus: 'pci', driver: 'vfio-pci', pciId: '1234:11e8', mdevType: null, parent: null, vfioDev: 'vfio0', cdev: '/dev/vfio/devices/vfio0' }],
      },
      {
        group: 4,
        name: null,
        type: 'DMA',
        node: null,
        devices: [
          { name: '0000:00:1f.0', bus: 'pci', driver: 'lpc_ich', pciId: '8086:2918', ...none },
          { name: '0000:00:1f.3', bus: 'pci', driver: null, pciId: '8086:2930', ...none },
        ],
      },
      { group: 9, name: null, type: 'DMA', node: '/dev/vfio/9', devices: [] },
      {
        group: m.group,
        name: 'vfio-noiommu',
        type: 'unknown',
        node: `/dev/vfio/${m.group}`,
        devices: [{ name: U1, bus: 'mdev', driver: 'mdpy', pciId: null, mdevType: 'mdpy-vga', parent: 'mdpy', vfioDev: `vfio${m.vfio}`, cdev: `/dev/vfio/devices/vfio${m.vfio}` }],
      },
    ]);
  });

  it('prints an aligned table, one row per device', async () => {
    const r = await vfio('ls');
    const [header, ...rows] = r.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^GROUP +DEVICE +BUS +DRIVER +ID\/TYPE +GROUP NODE +DEVICE NODE$/);
    expect(rows.map((l) => l.split(/ {2,}/))).toEqual([
      ['3', '0000:00:03.0', 'pci', 'vfio-pci', '1234:11e8', '/dev/vfio/3', '/dev/vfio/devices/vfio0'],
      ['4', '0000:00:1f.0', 'pci', 'lpc_ich', '8086:2918', '-', '-'],
      ['4', '0000:00:1f.3', 'pci', '-', '8086:2930', '-', '-'],
      ['9', '-', '-', '-', '-', '/dev/vfio/9', '-'],
    ]);
    const cols = columns(header!);
    for (const row of rows) for (const c of cols.slice(1)) expect(row[c - 1]).toBe(' ');
  });
});

describe('the vfio executable', () => {
  it('is the package\'s `vfio` bin, with a shebang', () => {
    const pkg = JSON.parse(readFileSync(`${REPO}package.json`, 'utf8'));
    expect(pkg.bin.vfio).toBe('./dist/src/cli/vfio.js');
    expect(readFileSync(CLI, 'utf8').split('\n')[0]).toBe('#!/usr/bin/env node');
  });

  it('exits 0 with JSON on stdout, 2 on usage errors, 1 with one stderr line on failures', async () => {
    const [ok, usage, failed] = await Promise.all([
      spawnVfio(['--root', fake.root, 'mdev', 'types', '--json']),
      spawnVfio(['--root', fake.root, 'mdev', 'types', 'extra']),
      spawnVfio(['mdev', 'remove', U1, '--root', fake.root]),
    ]);
    expect(ok.status).toBe(0);
    expect(JSON.parse(ok.stdout)).toHaveLength(8);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/^vfio: unexpected argument 'extra'\n/);
    expectFailure(failed, 'ENOENT', /vfio mdev list/);
  });

  it('exits 1 with ETIMEDOUT, naming the holder, while the device is open, without waiting for the blocked write', async () => {
    const { vfio: n } = fake.addMdev('mtty', 'mtty-2', U1);
    const remove = `/sys/devices/virtual/mtty/mtty/${U1}/remove`;
    fake.fifo(remove);
    fake.holdOpen(31337, 5, `/dev/vfio/devices/vfio${n}`, 'qemu-system-x86');
    try {
      const r = await spawnVfio(['--root', fake.root, 'mdev', 'remove', U1, '--timeout', '0.5']);
      expect(expectFailure(r, 'ETIMEDOUT', /pid 31337 \(qemu-system-x86\) holds/)).toContain('did not finish within 500 ms');
      expect(r.ms).toBeLessThan(15_000);
    } finally {
      closeSync(openSync(fake.p(remove), fsConstants.O_RDONLY | fsConstants.O_NONBLOCK));
    }
  });

  it('fails with EACCES and says root is needed when run as another user', async () => {
    const create = '/sys/devices/virtual/mtty/mtty/mdev_supported_types/mtty-1/create';
    chmodSync(fake.p(create), 0o200);
    const r = await spawnVfio(['--root', fake.root, 'mdev', 'create', 'mtty-1'], { uid: 65534, gid: 65534 });
    expect(expectFailure(r, 'EACCES', /needs root/)).toContain("open mdev create '/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-1/create'");
    expect(fake.read(create)).toBe('');
  });
});
