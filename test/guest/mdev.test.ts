/**
 * The mdev API against the real sample drivers (mtty, mdpy, mbochs). Every
 * test removes what it created, and the file checks at the end that each pool
 * is exactly as it found it.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { version as uuidVersion } from 'uuid';
import { describe, expect, it } from 'vitest';
import { failure } from '../host/mdev-shared.js';
import { MdevBus, type Mdev } from '../../src/mdev/bus.js';
import { holdDevice } from '../../src/registry.js';
import { iommuGroups } from '../../src/mdev/sysfs.js';
import {
  ALL_TYPES,
  Created,
  guardPools,
  MBOCHS_MB,
  MDPY_TYPES,
  expectPoolsConsistent,
  expectedAvailability,
  holdOpen,
  mbochsMb,
  mdpyCount,
  rawAvailability,
  waitGone,
} from './mdev-helpers.js';

const bus = new MdevBus();
const created = new Created(bus);

const isCharDev = (p: string): boolean => existsSync(p) && statSync(p).isCharacterDevice();
const available = (type: string): number => bus.types().find((t) => t.id === type)!.availableInstances;

async function make(type: string, options: { uuid?: string; parent?: string } = {}): Promise<Mdev> {
  // Track the UUID before creating, so a half-finished create is cleaned up too.
  if (options.uuid) created.add(options.uuid);
  const dev = await bus.create(type, options);
  created.add(dev.uuid);
  return dev;
}

guardPools(created);

describe('the pools', () => {
  it('are sized as the guest loads the modules: 24 mtty ports, 4 mdpy instances, 256 MB for mbochs', () => {
    expect(mdpyCount()).toBe(4);
    expect(mbochsMb()).toBe(256);
    expectPoolsConsistent();
  });

  it('are reported by types() exactly as sysfs has them, with every attribute', () => {
    const types = bus.types();
    expect(types.map((t) => [t.parent, t.id]).sort()).toEqual([...ALL_TYPES].sort());
    const raw = rawAvailability();
    for (const t of types) expect(t.availableInstances).toBe(raw[t.id]);
    expect(types.find((t) => t.id === 'mtty-1')).toMatchObject({ name: 'Single port serial', description: null, deviceApi: 'vfio-pci' });
    expect(types.find((t) => t.id === 'mtty-2')).toMatchObject({ name: 'Dual port serial', description: null });
    expect(types.find((t) => t.id === 'mdpy-xga')).toMatchObject({ name: 'mdpy-xga', description: 'virtual display, 1024x768 framebuffer', deviceApi: 'vfio-pci' });
    expect(types.find((t) => t.id === 'mbochs-medium')).toMatchObject({ description: 'virtual display, 16 MB video memory' });
    expect(bus.parents().map((p) => [p.name, p.path])).toEqual([
      ['mbochs', '/sys/devices/virtual/mbochs/mbochs'],
      ['mdpy', '/sys/devices/virtual/mdpy/mdpy'],
      ['mtty', '/sys/devices/virtual/mtty/mtty'],
    ]);
  });
});

describe('create and remove', () => {
  it.each(ALL_TYPES)('%s/%s: appears with its group and cdev, moves the pools, and goes away', async (parent, type) => {
    const before = rawAvailability();
    const dev = await make(type);
    expect(uuidVersion(dev.uuid)).toBe(4);
    expect(dev).toMatchObject({ parent, type, driver: parent, path: `/sys/bus/mdev/devices/${dev.uuid}` });
    // Cross-check every field against raw sysfs.
    expect(dev.iommuGroup).toBe(Number(basename(readlinkSync(`/sys/bus/mdev/devices/${dev.uuid}/iommu_group`))));
    expect(dev.groupPath).toBe(`/dev/vfio/${dev.iommuGroup}`);
    expect(isCharDev(dev.groupPath!)).toBe(true);
    expect(dev.vfioDev).toBe(readdirSync(`/sys/bus/mdev/devices/${dev.uuid}/vfio-dev`)[0]);
    expect(dev.cdevPath).toBe(`/dev/vfio/devices/${dev.vfioDev}`);
    expect(isCharDev(dev.cdevPath!)).toBe(true);
    expect(bus.get(dev.uuid)).toEqual(dev);
    expect(bus.list()).toContainEqual(dev);
    expect(bus.types({ parent }).find((t) => t.id === type)!.devices).toContain(dev.uuid);
    const group = iommuGroups().find((g) => g.id === dev.iommuGroup)!;
    expect(group).toMatchObject({ name: 'vfio-noiommu', node: dev.groupPath });
    expect(group.devices).toEqual([expect.objectContaining({ name: dev.uuid, bus: 'mdev', driver: parent, mdevType: type, parent, cdevPath: dev.cdevPath })]);

    const after = rawAvailability();
    expect(after).toEqual(expectedAvailability());
    expect(after[type]).toBe(before[type]! - 1);

    await bus.remove(dev.uuid);
    expect(bus.find(dev.uuid)).toBeNull();
    expect(existsSync(`/sys/devices/virtual/${parent}/${parent}/${dev.uuid}`)).toBe(false);
    expect(existsSync(dev.groupPath!)).toBe(false);
    expect(existsSync(dev.cdevPath!)).toBe(false);
    expect(rawAvailability()).toEqual(before);
  });
});

/**
 * Creates devices of `order`'s types, each until its own count reaches 0,
 * checking every pool after each step; returns how many were created.
 */
async function fill(order: string[]): Promise<number> {
  let n = 0;
  for (const type of order) {
    while (available(type) > 0) {
      await make(type);
      n++;
      expect(rawAvailability()).toEqual(expectedAvailability());
    }
  }
  return n;
}

describe('instance accounting', () => {
  it('mtty-1 and mtty-2 share 24 ports; an exhausted pool gives ENOSPC', async () => {
    const start = rawAvailability();
    await make('mtty-2');
    expect(rawAvailability()).toMatchObject({ 'mtty-1': start['mtty-1']! - 2, 'mtty-2': Math.floor((start['mtty-1']! - 2) / 2) });
    await make('mtty-1');
    expect(rawAvailability()).toMatchObject({ 'mtty-1': start['mtty-1']! - 3, 'mtty-2': Math.floor((start['mtty-1']! - 3) / 2) });
    // mtty-2 until fewer than 2 ports are left, then mtty-1 takes the last one.
    await fill(['mtty-2', 'mtty-1']);
    expect(rawAvailability()).toMatchObject({ 'mtty-1': 0, 'mtty-2': 0 });
    const count = bus.list().length;
    for (const type of ['mtty-1', 'mtty-2']) {
      const err = await failure(() => make(type));
      expect(err).toMatchObject({ code: 'ENOSPC', errno: -28, operation: 'mdev create', path: `/sys/class/mdev_bus/mtty/mdev_supported_types/${type}/create` });
      expect(err.hint).toContain('24 ports');
    }
    expect(bus.list()).toHaveLength(count);
  });

  it('mdpy\'s three types share 4 instances; an exhausted pool gives EUSERS', async () => {
    const start = available('mdpy-vga');
    await make('mdpy-vga');
    expect(MDPY_TYPES.map(available)).toEqual([start - 1, start - 1, start - 1]);
    await make('mdpy-hd');
    expect(MDPY_TYPES.map(available)).toEqual([start - 2, start - 2, start - 2]);
    await fill(['mdpy-xga']);
    expect(MDPY_TYPES.map(available)).toEqual([0, 0, 0]);
    for (const type of MDPY_TYPES) {
      const err = await failure(() => make(type));
      expect(err).toMatchObject({ code: 'EUSERS', errno: -87, operation: 'mdev create', path: `/sys/class/mdev_bus/mdpy/mdev_supported_types/${type}/create` });
      expect(err.message).toMatch(/^EUSERS: too many users/);
      expect(err.hint).toContain('instance limit');
    }
  });

  it('mbochs\' types share 256 MB (4, 16 and 64 MB each); an exhausted pool gives ENOSPC', async () => {
    const freeMb = () => available('mbochs-small') * 4;
    const start = freeMb();
    await make('mbochs-large');
    expect(freeMb()).toBe(start - MBOCHS_MB['mbochs-large']!);
    await make('mbochs-medium');
    expect(freeMb()).toBe(start - 64 - 16);
    await make('mbochs-small');
    expect(freeMb()).toBe(start - 64 - 16 - 4);
    expect(rawAvailability()).toEqual(expectedAvailability());
    await fill(['mbochs-large', 'mbochs-medium', 'mbochs-small']);
    expect(['mbochs-small', 'mbochs-medium', 'mbochs-large'].map(available)).toEqual([0, 0, 0]);
    for (const type of ['mbochs-small', 'mbochs-medium', 'mbochs-large']) {
      const err = await failure(() => make(type));
      expect(err).toMatchObject({ code: 'ENOSPC', errno: -28, operation: 'mdev create' });
      expect(err.hint).toContain('video memory');
    }
  });
});

describe('UUIDs', () => {
  it('a UUID in use gives EEXIST, on the same type, another type and another parent, in any case', async () => {
    const dev = await make('mtty-1');
    const pools = rawAvailability();
    for (const [type, uuid] of [
      ['mtty-1', dev.uuid],
      ['mtty-2', dev.uuid],
      ['mdpy-vga', dev.uuid],
      ['mbochs-small', dev.uuid.toUpperCase()],
    ] as const) {
      const err = await failure(() => bus.create(type, { uuid }));
      expect(err).toMatchObject({ code: 'EEXIST', errno: -17, operation: 'mdev create' });
      expect(err.hint).toContain('already in use');
    }
    expect(rawAvailability()).toEqual(pools);
    expect(bus.list().filter((d) => d.uuid === dev.uuid)).toEqual([dev]);
  });

  it('an upper-case UUID is accepted and reported in lower case', async () => {
    const lower = randomUUID();
    const dev = await make('mdpy-xga', { uuid: lower.toUpperCase() });
    expect(dev.uuid).toBe(lower);
    expect(readdirSync('/sys/bus/mdev/devices')).toContain(lower);
    expect(readdirSync('/sys/bus/mdev/devices')).not.toContain(lower.toUpperCase());
    expect(bus.get(lower.toUpperCase())).toEqual(dev);
    await bus.remove(lower.toUpperCase());
    expect(bus.find(lower)).toBeNull();
  });

  it('a malformed UUID is rejected before anything is written, even one the kernel would take', async () => {
    // The kernel reads 36 characters and ignores a 37th (mdev_sysfs.c): prove it, then that we never write.
    const control = randomUUID();
    created.add(control);
    writeFileSync('/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-1/create', `${control}x`);
    expect(bus.find(control)).not.toBeNull();

    const pools = rawAvailability();
    const devices = readdirSync('/sys/bus/mdev/devices');
    const uuid = randomUUID();
    for (const bad of [`${uuid}x`, `${uuid}\n`, ` ${uuid}`, '', 'nope', uuid.replaceAll('-', ''), `${uuid.slice(0, 35)}g`]) {
      const err = await failure(() => bus.create('mtty-1', { uuid: bad }));
      expect(err).toMatchObject({ code: 'EINVAL', errno: -22, operation: 'mdev create' });
      expect(err.hint).toContain('8-4-4-4-12');
    }
    expect(readdirSync('/sys/bus/mdev/devices')).toEqual(devices);
    expect(rawAvailability()).toEqual(pools);
  });

  it('two processes creating the same UUID at once: exactly one succeeds, the other gets EEXIST', async () => {
    const uuid = created.add(randomUUID());
    const mdev = fileURLToPath(new URL('../../src/mdev/bus.ts', import.meta.url));
    // Each child loads the library, says "ready", and creates on "go": both writes race.
    const script = `
      const { MdevBus } = await import(${JSON.stringify(mdev)});
      const bus = new MdevBus();
      process.stdout.write('ready\\n');
      process.stdin.once('data', async () => {
        try { const d = await bus.create('mtty-2', { uuid: ${JSON.stringify(uuid)} }); console.log(JSON.stringify({ ok: d.uuid })); }
        catch (e) { console.log(JSON.stringify({ code: e.code, hint: e.hint })); }
        process.stdin.destroy();
      });`;
    const children = [0, 1].map(() => {
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
      let out = '';
      const ready = new Promise<void>((r) => child.stdout.on('data', (d) => ((out += d), out.includes('ready\n') && r())));
      const done = new Promise<Record<string, string>>((r, j) =>
        child.on('close', (code) => (code === 0 ? r(JSON.parse(out.split('\n')[1]!)) : j(new Error(`child exited ${code}: ${out}`)))),
      );
      return { child, ready, done };
    });
    await Promise.all(children.map((c) => c.ready));
    for (const c of children) c.child.stdin.write('go\n');
    const results = await Promise.all(children.map((c) => c.done));
    expect(results.filter((r) => r.ok === uuid)).toHaveLength(1);
    expect(results.filter((r) => r.code === 'EEXIST')).toHaveLength(1);
    expect(results.find((r) => r.code)!.hint).toContain('already in use');
    expect(bus.get(uuid)).toMatchObject({ type: 'mtty-2' });
    expect(rawAvailability()).toEqual(expectedAvailability());
  }, 180_000);
});

describe('bad input', () => {
  it('unknown types and parents give ENOENT; a parent may be named', async () => {
    const pools = rawAvailability();
    expect(await failure(() => bus.create('mtty-3'))).toMatchObject({ code: 'ENOENT', operation: 'mdev create' });
    expect(await failure(() => bus.create('mtty-1', { parent: 'mdpy' }))).toMatchObject({ code: 'ENOENT' });
    expect(await failure(() => bus.create('mtty-1', { parent: 'gpu0' }))).toMatchObject({ code: 'ENOENT', path: '/sys/class/mdev_bus/gpu0' });
    expect(await failure(() => bus.types({ parent: 'gpu0' }))).toMatchObject({ code: 'ENOENT' });
    expect(rawAvailability()).toEqual(pools);
    const dev = await make('mbochs-small', { parent: 'mbochs' });
    expect(dev.parent).toBe('mbochs');
  });

  it('an unknown UUID gives ENOENT, and so does removing twice', async () => {
    const ghost = randomUUID();
    expect(bus.find(ghost)).toBeNull();
    expect(await failure(() => bus.get(ghost))).toMatchObject({ code: 'ENOENT' });
    expect(await failure(() => bus.remove(ghost))).toMatchObject({ code: 'ENOENT', operation: 'mdev remove' });
    const dev = await make('mtty-1');
    await bus.remove(dev.uuid);
    const twice = await failure(() => bus.remove(dev.uuid));
    expect(twice).toMatchObject({ code: 'ENOENT', operation: 'mdev remove', path: `/sys/bus/mdev/devices/${dev.uuid}` });
    expect(twice.hint).toContain('removed already');
  });
});

describe('removing an open device', () => {
  it('refuses with EBUSY while this process holds it through the library', async () => {
    const dev = await make('mdpy-vga');
    const release = holdDevice(dev.uuid);
    try {
      expect(await failure(() => bus.remove(dev.uuid))).toMatchObject({ code: 'EBUSY', operation: 'mdev remove' });
      expect(bus.get(dev.uuid)).toEqual(dev);
    } finally {
      release();
    }
    await bus.remove(dev.uuid);
    expect(bus.find(dev.uuid)).toBeNull();
  });

  it('times out with ETIMEDOUT naming the process that holds the cdev, then completes once it closes', async () => {
    const dev = await make('mtty-2');
    const before = rawAvailability();
    const holder = await holdOpen(dev.cdevPath!);
    let closed = false;
    try {
      const started = Date.now();
      const err = await failure(() => bus.remove(dev.uuid, { timeoutMs: 3000 }));
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(err).toMatchObject({ code: 'ETIMEDOUT', errno: -110, operation: 'mdev remove', path: `/sys/bus/mdev/devices/${dev.uuid}/remove` });
      expect(err.hint).toContain(`pid ${holder.pid} (sh) holds`);
      expect(err.hint).toContain(dev.cdevPath);
      // The kernel is mid-removal: the device left the bus, the pool is not back yet.
      expect(existsSync(`/sys/bus/mdev/devices/${dev.uuid}`)).toBe(false);
      expect(existsSync(`/sys/devices/virtual/mtty/mtty/${dev.uuid}`)).toBe(true);
      expect(rawAvailability()).toEqual(before);

      await holder.close();
      closed = true;
      await waitGone(dev.uuid);
      expect(rawAvailability()).toEqual(expectedAvailability());
      expect(rawAvailability()['mtty-2']).toBe(before['mtty-2']! + 1);
    } finally {
      if (!closed) await holder.close();
    }
  });
});
