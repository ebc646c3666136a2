/**
 * The `vfio` CLI against the real drivers, run as the bin would run it (a
 * separate node process), checked against raw sysfs. Each CLI start costs
 * seconds under TCG, so independent commands run side by side.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { describe, expect, it } from 'vitest';
import { groupJson } from '../../src/cli/vfio.js';
import { MdevBus } from '../../src/mdev/bus.js';
import { type CliResult, expectCliFailure as failed, runVfio } from '../host/mdev-shared.js';
import { ALL_TYPES, Created, expectedAvailability, guardPools, holdOpen, rawAvailability, waitGone } from './mdev-helpers.js';

const NOBODY = { uid: 65534, gid: 65534 };
const SLOW = 240_000;

const bus = new MdevBus();
const created = new Created(bus);

const vfio = runVfio;

const ok = (r: CliResult): string => {
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return r.stdout;
};

const read = (p: string): string => readFileSync(p, 'utf8').trim();
const readOr = (p: string): string | null => (existsSync(p) ? read(p) : null);
const isCharDev = (p: string): boolean => existsSync(p) && statSync(p).isCharacterDevice();
const groupOf = (uuid: string): number => Number(basename(readlinkSync(`/sys/bus/mdev/devices/${uuid}/iommu_group`)));
const vfioDevOf = (uuid: string): string => readdirSync(`/sys/bus/mdev/devices/${uuid}/vfio-dev`)[0]!;

/** `vfio mdev types --json` as it must be, built from raw sysfs. */
function rawTypes(parent?: string) {
  return ALL_TYPES.filter(([p]) => parent === undefined || p === parent)
    .sort(([p1, t1], [p2, t2]) => p1.localeCompare(p2) || t1.localeCompare(t2))
    .map(([p, t]) => {
      const dir = `/sys/class/mdev_bus/${p}/mdev_supported_types/${t}`;
      return {
        parent: p,
        type: t,
        name: read(`${dir}/name`),
        description: readOr(`${dir}/description`),
        deviceApi: read(`${dir}/device_api`),
        availableInstances: Number(read(`${dir}/available_instances`)),
        devices: readdirSync(`${dir}/devices`).sort(),
      };
    });
}

/** `vfio mdev list --json` as it must be, from raw sysfs. */
function rawList() {
  return readdirSync('/sys/bus/mdev/devices')
    .sort()
    .map((uuid) => {
      const dir = realpathSync(`/sys/bus/mdev/devices/${uuid}`);
      const type = basename(readlinkSync(`${dir}/mdev_type`));
      return { uuid, parent: basename(dirname(dir)), type, iommuGroup: groupOf(uuid), vfioDev: vfioDevOf(uuid) };
    });
}

guardPools(created);

describe('listing', () => {
  it('mdev types, mdev list and ls print what sysfs says, as JSON and as tables', async () => {
    const [typesJson, typesTable, mdpyJson, list, lsJson, lsTable, help] = await Promise.all([
      vfio(['mdev', 'types', '--json']),
      vfio(['mdev', 'types']),
      vfio(['mdev', 'types', '--parent', 'mdpy', '--json']),
      vfio(['mdev', 'list', '--json']),
      vfio(['ls', '--json']),
      vfio(['ls']),
      vfio(['--help']),
    ]);
    const types = JSON.parse(ok(typesJson));
    expect(types).toEqual(rawTypes());
    expect(types.filter((t: { description: unknown }) => t.description === null).map((t: { type: string }) => t.type)).toEqual(['mtty-1', 'mtty-2']);
    expect(JSON.parse(ok(mdpyJson))).toEqual(rawTypes('mdpy'));
    expect(JSON.parse(ok(list))).toEqual(rawList());

    const [header, ...rows] = ok(typesTable).trimEnd().split('\n');
    expect(header).toMatch(/^PARENT +TYPE +NAME +AVAILABLE +DEVICES +DESCRIPTION$/);
    const avail = rawAvailability();
    expect(rows.map((r) => r.split(/ {2,}/))).toEqual(
      rawTypes().map((t) => [t.parent, t.type, t.name, String(avail[t.type]), String(t.devices.length), t.description ?? '-']),
    );

    const groups = JSON.parse(ok(lsJson)) as ReturnType<typeof groupJson>[];
    expect(groups.map((g) => g.group)).toEqual(readdirSync('/sys/kernel/iommu_groups').map(Number).sort((a, b) => a - b));
    for (const g of groups) {
      expect(g.devices.map((d) => d.name)).toEqual(readdirSync(`/sys/kernel/iommu_groups/${g.group}/devices`).sort());
      expect(g.node).toBe(isCharDev(`/dev/vfio/${g.group}`) ? `/dev/vfio/${g.group}` : null);
      for (const d of g.devices) {
        const sys = `/sys/kernel/iommu_groups/${g.group}/devices/${d.name}`;
        expect(d.driver).toBe(existsSync(`${sys}/driver`) ? basename(readlinkSync(`${sys}/driver`)) : null);
        expect(d.bus).toBe(basename(readlinkSync(`${sys}/subsystem`)));
      }
    }
    const edu = groups.flatMap((g) => g.devices.map((d) => ({ ...d, group: g.group, node: g.node }))).find((d) => d.pciId === '1234:11e8');
    expect(edu).toMatchObject({ bus: 'pci', driver: 'vfio-pci', mdevType: null, parent: null, node: `/dev/vfio/${edu!.group}` });
    expect(edu!.vfioDev).toMatch(/^vfio\d+$/);
    expect(isCharDev(edu!.cdev!)).toBe(true);
    expect(ok(lsTable)).toMatch(new RegExp(`^${edu!.group} +${edu!.name.replaceAll('.', '\\.')} +pci +vfio-pci +1234:11e8 +/dev/vfio/${edu!.group} +/dev/vfio/devices/vfio\\d+$`, 'm'));

    expect(ok(help)).toContain('mdev create');
  }, SLOW);
});

describe('the mdev lifecycle through the CLI', () => {
  it('create prints the UUID, list/types/ls show the devices, remove takes them away', async () => {
    const upper = randomUUID().toUpperCase();
    created.add(upper);
    const [plain, withJson] = await Promise.all([
      vfio(['mdev', 'create', 'mtty-2']),
      vfio(['mdev', 'create', 'mdpy-vga', '--parent', 'mdpy', '--uuid', upper, '--json']),
    ]);
    const uuid = ok(plain).trim();
    created.add(uuid);
    expect(plain.stdout).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\n$/);
    expect(existsSync(`/sys/bus/mdev/devices/${uuid}`)).toBe(true);
    const lower = upper.toLowerCase();
    expect(JSON.parse(ok(withJson))).toEqual({ uuid: lower, parent: 'mdpy', type: 'mdpy-vga', iommuGroup: groupOf(lower), vfioDev: vfioDevOf(lower) });
    expect(rawAvailability()).toEqual(expectedAvailability());

    const [listJson, listTable, mttyTypes, ls] = await Promise.all([
      vfio(['mdev', 'list', '--json']),
      vfio(['mdev', 'list']),
      vfio(['mdev', 'types', '--parent', 'mtty', '--json']),
      vfio(['ls', '--json']),
    ]);
    const list = JSON.parse(ok(listJson));
    expect(list).toEqual(rawList());
    for (const d of list) {
      expect(Object.keys(d)).toEqual(['uuid', 'parent', 'type', 'iommuGroup', 'vfioDev']);
      expect(typeof d.iommuGroup).toBe('number');
    }
    expect(list.find((d: { uuid: string }) => d.uuid === uuid)).toEqual({ uuid, parent: 'mtty', type: 'mtty-2', iommuGroup: groupOf(uuid), vfioDev: vfioDevOf(uuid) });
    expect(ok(listTable)).toMatch(new RegExp(`^${uuid}  mtty    mtty-2    ${groupOf(uuid)} +${vfioDevOf(uuid)}$`, 'm'));
    expect(JSON.parse(ok(mttyTypes)).find((t: { type: string }) => t.type === 'mtty-2')).toMatchObject({
      devices: expect.arrayContaining([uuid]),
      availableInstances: rawAvailability()['mtty-2'],
    });
    const group = JSON.parse(ok(ls)).find((g: { group: number }) => g.group === groupOf(uuid));
    expect(group).toEqual({
      group: groupOf(uuid),
      name: 'vfio-noiommu',
      type: read(`/sys/kernel/iommu_groups/${groupOf(uuid)}/type`),
      node: `/dev/vfio/${groupOf(uuid)}`,
      devices: [{ name: uuid, bus: 'mdev', driver: 'mtty', pciId: null, mdevType: 'mtty-2', parent: 'mtty', vfioDev: vfioDevOf(uuid), cdev: `/dev/vfio/devices/${vfioDevOf(uuid)}` }],
    });

    const before = rawAvailability();
    const removed = await Promise.all([vfio(['mdev', 'remove', uuid]), vfio(['mdev', 'remove', upper, '--timeout', '30'])]);
    for (const r of removed) expect(ok(r)).toBe('');
    expect(existsSync(`/sys/bus/mdev/devices/${uuid}`)).toBe(false);
    expect(existsSync(`/sys/bus/mdev/devices/${lower}`)).toBe(false);
    expect(rawAvailability()).toMatchObject({ 'mtty-2': before['mtty-2']! + 1, 'mdpy-vga': before['mdpy-vga']! + 1 });
  }, SLOW);
});

describe('failures exit 1 with one line naming the errno and the hint', () => {
  it('EEXIST, EUSERS, ENOSPC, ENOENT, EINVAL and EACCES', async () => {
    const taken = (await bus.create('mtty-1')).uuid;
    created.add(taken);
    // Exhaust mdpy (instances) and mbochs (memory) through the library.
    for (const [type, n] of [['mdpy-vga', rawAvailability()['mdpy-vga']!], ['mbochs-large', rawAvailability()['mbochs-large']!]] as const) {
      for (let i = 0; i < n; i++) created.add((await bus.create(type)).uuid);
    }
    expect(rawAvailability()).toMatchObject({ 'mdpy-hd': 0, 'mbochs-small': 0 });
    const pools = rawAvailability();
    const devices = readdirSync('/sys/bus/mdev/devices').sort();
    const ghost = randomUUID();

    const [eexist, eusers, enospc, noType, noParent, einval, noUuid, eaccesCreate, eaccesRemove, listAsNobody] = await Promise.all([
      vfio(['mdev', 'create', 'mtty-1', '--uuid', taken.toUpperCase()]),
      vfio(['mdev', 'create', 'mdpy-hd']),
      vfio(['mdev', 'create', 'mbochs-small']),
      vfio(['mdev', 'create', 'mtty-3']),
      vfio(['mdev', 'types', '--parent', 'gpu0']),
      vfio(['mdev', 'create', 'mtty-1', '--uuid', `${ghost}x`]),
      vfio(['mdev', 'remove', ghost]),
      vfio(['mdev', 'create', 'mtty-1'], NOBODY),
      vfio(['mdev', 'remove', taken], NOBODY),
      vfio(['mdev', 'list', '--json'], NOBODY),
    ]);
    expect(failed(eexist, 'EEXIST', 'already in use')).toContain("write mdev create '/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-1/create'");
    failed(eusers, 'EUSERS', 'instance limit');
    failed(enospc, 'ENOSPC', 'video memory');
    failed(noType, 'ENOENT', 'vfio mdev types');
    expect(failed(noParent, 'ENOENT', 'vfio mdev types')).toContain('no mdev parent "gpu0"');
    failed(einval, 'EINVAL', '8-4-4-4-12');
    failed(noUuid, 'ENOENT', 'vfio mdev list');
    failed(eaccesCreate, 'EACCES', 'needs root');
    expect(failed(eaccesRemove, 'EACCES', 'needs root')).toContain(`/sys/bus/mdev/devices/${taken}/remove`);
    expect(JSON.parse(ok(listAsNobody))).toEqual(rawList());

    expect(readdirSync('/sys/bus/mdev/devices').sort()).toEqual(devices);
    expect(rawAvailability()).toEqual(pools);
  }, SLOW);

  it('remove of a device another process holds open: ETIMEDOUT naming it, without hanging; the removal finishes after', async () => {
    const dev = await bus.create('mbochs-medium');
    created.add(dev.uuid);
    const holder = await holdOpen(dev.cdevPath!);
    let closed = false;
    try {
      const r = await vfio(['mdev', 'remove', dev.uuid, '--timeout', '2']);
      expect(failed(r, 'ETIMEDOUT', `pid ${holder.pid} (sh) holds`)).toContain('did not finish within 2000 ms');
      expect(r.ms).toBeLessThan(60_000);
      expect(existsSync(`/sys/devices/virtual/mbochs/mbochs/${dev.uuid}`)).toBe(true);
      await holder.close();
      closed = true;
      await waitGone(dev.uuid);
      expect(rawAvailability()).toEqual(expectedAvailability());
    } finally {
      if (!closed) await holder.close();
    }
  }, SLOW);
});

describe('usage errors exit 2', () => {
  it('for every malformed command line, with the message and a usage line, and nothing created', async () => {
    const cases: [string[], string][] = [
      [['mdev'], "'mdev' needs a subcommand"],
      [['mdev', 'create'], 'missing <type>'],
      [['mdev', 'remove'], 'missing <uuid>'],
      [['frob'], "unknown command 'frob'"],
      [['mdev', 'list', '--bogus'], "Unknown option '--bogus'"],
      [['mdev', 'create', 'mtty-1', '--timeout', 'never'], '--timeout takes a positive number of seconds'],
    ];
    const pools = rawAvailability();
    const results = await Promise.all(cases.map(([argv]) => vfio(argv)));
    results.forEach((r, i) => {
      expect(r.status).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr.split('\n')[0]).toMatch(/^vfio: /);
      expect(r.stderr.split('\n')[0]).toContain(cases[i]![1]);
      expect(r.stderr).toMatch(/^(usage: vfio |commands: )/m);
    });
    expect(rawAvailability()).toEqual(pools);
  }, SLOW);
});
