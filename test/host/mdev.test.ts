import { closeSync, constants as fsConstants, mkdirSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import { version as uuidVersion } from 'uuid';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VfioError } from '../../src/errors.js';
import { MdevBus, parseUuid } from '../../src/mdev/bus.js';
import { holdDevice } from '../../src/registry.js';
import { sysfsWriter } from '../../src/mdev/writer.js';
import { SysRoot, iommuGroups, processesHolding } from '../../src/mdev/sysfs.js';
import { FakeSys } from './mdev-fake.js';
import { resolveDevice } from '../../src/vfio/open.js';
import { findEdu } from '../../src/drivers/edu.js';
import { U1, U2, failure } from './mdev-shared.js';

const E = constants.errno;
const UPPER = 'A1B2C3D4-E5F6-4A7B-8C9D-0E1F2A3B4C5D';

let fake: FakeSys;
let stopDriver: (() => void) | undefined;

beforeEach(() => {
  fake = new FakeSys();
});
afterEach(() => {
  stopDriver?.();
  stopDriver = undefined;
  fake.cleanup();
});

/** A root that counts attribute reads, and can act on writes as the kernel does (synchronously). */
class CountingRoot extends SysRoot {
  reads: string[] = [];
  constructor(
    root: string,
    readonly onWrite?: (abs: string, data: string) => void,
  ) {
    super(root);
  }
  override read(abs: string): string {
    this.reads.push(abs);
    return super.read(abs);
  }
  override write(abs: string, data: string): void {
    super.write(abs, data);
    this.onWrite?.(abs, data);
  }
}

const createFiles = () =>
  Object.entries({ mtty: ['mtty-1', 'mtty-2'], mdpy: ['mdpy-vga', 'mdpy-xga', 'mdpy-hd'], mbochs: ['mbochs-small', 'mbochs-medium', 'mbochs-large'] }).flatMap(
    ([p, ts]) => ts.map((t) => fake.read(`/sys/devices/virtual/${p}/${p}/mdev_supported_types/${t}/create`)),
  );

describe('SysRoot', () => {
  it('maps absolute system paths under its root', () => {
    expect(new SysRoot(`${fake.root}/`).path('/sys/bus')).toBe(`${fake.root}/sys/bus`);
    expect(new SysRoot().path('/sys/bus')).toBe('/sys/bus');
  });

  it('refuses a root that is not a directory with a VfioError, not a raw fs error later (found by the fuzzer)', () => {
    fake.file('/a-file');
    for (const [root, code] of [['type1', 'ENOENT'], ['/nonexistent/root', 'ENOENT'], [`${fake.root}/a-file`, 'ENOTDIR']] as const) {
      const err = (() => {
        try {
          new MdevBus({ root }).types();
        } catch (e) {
          return e;
        }
      })();
      expect(err, root).toBeInstanceOf(VfioError);
      expect(err).toMatchObject({ code, path: root });
      expect((err as VfioError).hint).toMatch(/\/sys, \/dev and \/proc/);
    }
    expect(() => new SysRoot(42 as unknown as string)).toThrow(TypeError);
    expect(() => resolveDevice('0000:00:03.0', 'type1')).toThrow(expect.objectContaining({ code: 'ENOENT', path: 'type1' }));
    expect(() => findEdu('type1')).toThrow(expect.objectContaining({ code: 'ENOENT', path: 'type1' }));
    expect(() => findEdu(fake.root)).toThrow(expect.objectContaining({ code: 'ENOENT', operation: 'find edu' }));
  });

  it('reads attributes without the newline, lists sorted, and treats missing files as absent', () => {
    fake.file('/sys/a/attr', 'value\n');
    fake.file('/sys/a/b');
    const sys = new SysRoot(fake.root);
    expect(sys.read('/sys/a/attr')).toBe('value');
    expect(sys.readOptional('/sys/a/none')).toBeNull();
    expect(sys.list('/sys/a')).toEqual(['attr', 'b']);
    expect(sys.list('/sys/none')).toEqual([]);
    expect(sys.readlink('/sys/none')).toBeNull();
    expect(sys.real('/sys/none')).toBeNull();
    expect(() => sys.read('/sys/none')).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });

  it('resolves relative symlinks inside the root, through linked directories', () => {
    fake.addSampleParents();
    const sys = new SysRoot(fake.root);
    expect(sys.readlink('/sys/class/mdev_bus/mtty')).toBe('../../devices/virtual/mtty/mtty');
    expect(sys.real('/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-2')).toBe('/sys/devices/virtual/mtty/mtty/mdev_supported_types/mtty-2');
    expect(sys.linkName('/sys/class/mdev_bus/mdpy')).toBe('mdpy');
  });
});

describe('parseUuid', () => {
  it('accepts any case and returns lower case', () => {
    expect(parseUuid(U1)).toBe(U1);
    expect(parseUuid(UPPER)).toBe(UPPER.toLowerCase());
  });

  it.each([
    ['empty', ''],
    ['short', U1.slice(0, 35)],
    ['trailing newline', `${U1}\n`],
    ['37 characters', `${U1}0`],
    ['not hex', U1.replace('0b', 'gb')],
    ['dashes misplaced', `${U1.slice(0, 7)}-${U1.slice(7, 8)}${U1.slice(9)}`],
    ['no dashes', U1.replaceAll('-', '')],
    ['braces', `{${U1}}`],
  ])('rejects %s with EINVAL and a hint', (_, bad) => {
    let err: unknown;
    try {
      parseUuid(bad, 'mdev create');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(VfioError);
    expect(err).toMatchObject({ code: 'EINVAL', errno: -E.EINVAL, operation: 'mdev create' });
    expect((err as VfioError).message).toContain('malformed UUID');
    expect((err as VfioError).hint).toMatch(/8-4-4-4-12/);
  });
});

describe('parents and types', () => {
  it('lists the three sample parents with their 8 types and every attribute', () => {
    fake.addSampleParents();
    const bus = new MdevBus({ root: fake.root });
    expect(bus.parentNames()).toEqual(['mbochs', 'mdpy', 'mtty']);
    const parents = bus.parents();
    expect(parents.map((p) => [p.name, p.path, p.types.map((t) => t.id)])).toEqual([
      ['mbochs', '/sys/devices/virtual/mbochs/mbochs', ['mbochs-large', 'mbochs-medium', 'mbochs-small']],
      ['mdpy', '/sys/devices/virtual/mdpy/mdpy', ['mdpy-hd', 'mdpy-vga', 'mdpy-xga']],
      ['mtty', '/sys/devices/virtual/mtty/mtty', ['mtty-1', 'mtty-2']],
    ]);
    const types = bus.types();
    expect(types).toHaveLength(8);
    expect(types.find((t) => t.id === 'mtty-2')).toEqual({
      id: 'mtty-2',
      parent: 'mtty',
      name: 'Dual port serial',
      description: null,
      deviceApi: 'vfio-pci',
      availableInstances: 12,
      devices: [],
      path: '/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-2',
    });
    expect(types.find((t) => t.id === 'mbochs-small')).toMatchObject({ description: 'virtual display, 4 MB video memory', availableInstances: 64 });
  });

  it('lists the devices of each type and follows available_instances', () => {
    fake.addSampleParents();
    fake.addMdev('mtty', 'mtty-2', U2);
    fake.addMdev('mtty', 'mtty-2', U1);
    fake.setAvailable('mtty', 'mtty-2', 10);
    const t = new MdevBus({ root: fake.root }).type('mtty-2');
    expect(t.devices).toEqual([U1, U2]);
    expect(t.availableInstances).toBe(10);
  });

  it('filters by parent, and refuses an unknown parent with ENOENT', async () => {
    fake.addSampleParents();
    const bus = new MdevBus({ root: fake.root });
    expect(bus.types({ parent: 'mdpy' }).map((t) => t.id)).toEqual(['mdpy-hd', 'mdpy-vga', 'mdpy-xga']);
    for (const parent of ['gpu0', '../mdpy', '']) {
      const err = await failure(() => bus.types({ parent }));
      expect(err).toMatchObject({ code: 'ENOENT', errno: -E.ENOENT, operation: 'mdev types' });
      expect(err.message).toContain('parents: mbochs, mdpy, mtty');
      expect(err.hint).toContain('vfio mdev types');
    }
  });

  it('is empty, not an error, without any parent', () => {
    const bus = new MdevBus({ root: fake.root });
    expect(bus.parents()).toEqual([]);
    expect(bus.types()).toEqual([]);
    expect(bus.list()).toEqual([]);
  });
});

describe('looking up mdevs', () => {
  beforeEach(() => fake.addSampleParents());

  it('reports parent, type, IOMMU group, group node and vfio cdev', () => {
    const { group, vfio } = fake.addMdev('mdpy', 'mdpy-xga', U1);
    const bus = new MdevBus({ root: fake.root });
    const expected = {
      uuid: U1,
      parent: 'mdpy',
      type: 'mdpy-xga',
      driver: 'mdpy',
      path: `/sys/bus/mdev/devices/${U1}`,
      iommuGroup: group,
      groupPath: `/dev/vfio/${group}`,
      vfioDev: `vfio${vfio}`,
      cdevPath: `/dev/vfio/devices/vfio${vfio}`,
    };
    expect(bus.get(U1)).toEqual(expected);
    expect(bus.get(U1.toUpperCase())).toEqual(expected);
    expect(bus.find(U1)).toEqual(expected);
    expect(bus.list()).toEqual([expected]);
  });

  it('reports absent nodes as null', () => {
    const { vfio } = fake.addMdev('mtty', 'mtty-1', U1, { groupNode: false });
    rmSync(fake.p(`/dev/vfio/devices/vfio${vfio}`));
    const dev = new MdevBus({ root: fake.root }).get(U1);
    expect(dev.iommuGroup).toBeTypeOf('number');
    expect(dev).toMatchObject({ groupPath: null, vfioDev: `vfio${vfio}`, cdevPath: null });
  });

  it('gives ENOENT for an unknown UUID and EINVAL for a malformed one', async () => {
    const bus = new MdevBus({ root: fake.root });
    expect(bus.find(U2)).toBeNull();
    const missing = await failure(() => bus.get(U2));
    expect(missing).toMatchObject({ code: 'ENOENT', path: `/sys/bus/mdev/devices/${U2}`, operation: 'mdev lookup' });
    expect(missing.hint).toContain('vfio mdev list');
    expect(await failure(() => bus.get('nope'))).toMatchObject({ code: 'EINVAL' });
  });
});

describe('create', () => {
  beforeEach(() => fake.addSampleParents());

  it('writes a fresh v4 UUID to the type and waits for the device and its group node', async () => {
    const seen: string[] = [];
    // The fake driver answers a few polls later, as a slow kernel might.
    stopDriver = fake.driver((p, t, u) => {
      seen.push(`${p}/${t}/${u}`);
      fake.addMdev(p, t, u);
    }, 30);
    const bus = new MdevBus({ root: fake.root });
    const dev = await bus.create('mtty-2');
    expect(uuidVersion(dev.uuid)).toBe(4);
    expect(seen).toEqual([`mtty/mtty-2/${dev.uuid}`]);
    expect(dev).toMatchObject({ parent: 'mtty', type: 'mtty-2', groupPath: `/dev/vfio/${dev.iommuGroup}` });
    expect(fake.exists(dev.groupPath!)).toBe(true);
    const again = await bus.create('mtty-2');
    expect(again.uuid).not.toBe(dev.uuid);
  });

  it('accepts an upper-case UUID and writes and reports it in lower case', async () => {
    const seen: string[] = [];
    stopDriver = fake.driver((p, t, u) => {
      seen.push(u);
      fake.addMdev(p, t, u);
    });
    const dev = await new MdevBus({ root: fake.root }).create('mbochs-medium', { uuid: UPPER });
    expect(dev.uuid).toBe(UPPER.toLowerCase());
    expect(seen).toEqual([UPPER.toLowerCase()]);
  });

  it.each([
    ['a malformed UUID', 'mtty-1', { uuid: 'not-a-uuid' }, 'EINVAL'],
    ['an empty UUID', 'mtty-1', { uuid: '' }, 'EINVAL'],
    ['a UUID with a trailing newline', 'mtty-1', { uuid: `${U1}\n` }, 'EINVAL'],
    ['an unknown type', 'mtty-3', {}, 'ENOENT'],
    ['an unknown parent', 'mtty-1', { parent: 'nvidia' }, 'ENOENT'],
    ['a type of another parent', 'mtty-1', { parent: 'mdpy' }, 'ENOENT'],
  ])('rejects %s before writing anything', async (_, type, options, code) => {
    const err = await failure(() => new MdevBus({ root: fake.root }).create(type, options));
    expect(err).toMatchObject({ code, operation: 'mdev create' });
    expect(err.hint).toBeTruthy();
    expect(createFiles().every((c) => c === '')).toBe(true);
  });

  it('needs the parent when two parents offer the same type id', async () => {
    fake.addParent('0000:00:02.0', [{ id: 'mtty-1', name: 'Single port serial', available: 24 }], '/sys/devices/pci0000:00/0000:00:02.0');
    const bus = new MdevBus({ root: fake.root });
    const err = await failure(() => bus.create('mtty-1', { uuid: U1 }));
    expect(err).toMatchObject({ code: 'EINVAL', errno: -E.EINVAL });
    expect(err.message).toContain('0000:00:02.0, mtty');
    expect(err.hint).toContain('--parent');
    expect(createFiles().every((c) => c === '')).toBe(true);
    expect(fake.read('/sys/devices/pci0000:00/0000:00:02.0/mdev_supported_types/mtty-1/create')).toBe('');

    stopDriver = fake.driver();
    const dev = await bus.create('mtty-1', { uuid: U1, parent: '0000:00:02.0' });
    expect(dev).toMatchObject({ uuid: U1, parent: '0000:00:02.0', type: 'mtty-1' });
  });

  it('says so, and leaves the device listed, when its /dev/vfio node never appears', async () => {
    stopDriver = fake.driver((p, t, u) => void fake.addMdev(p, t, u, { groupNode: false }));
    const bus = new MdevBus({ root: fake.root });
    const started = Date.now();
    const err = await failure(() => bus.create('mdpy-vga', { uuid: U1, timeoutMs: 200 }));
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(err).toMatchObject({ code: 'ETIMEDOUT', errno: -E.ETIMEDOUT, operation: 'mdev create' });
    expect(err.path).toMatch(/^\/dev\/vfio\/\d+$/);
    expect(err.message).toContain(`mdev ${U1} was created`);
    expect(err.message).toContain('left in place');
    expect(err.hint).toContain('vfio mdev remove');
    expect(bus.list().map((d) => d.uuid)).toEqual([U1]);
  });

  it('names the missing sysfs device when the kernel never makes it', async () => {
    const err = await failure(() => new MdevBus({ root: fake.root }).create('mdpy-vga', { uuid: U1, timeoutMs: 50 }));
    expect(err).toMatchObject({ code: 'ETIMEDOUT', path: `/sys/bus/mdev/devices/${U1}` });
    expect(fake.read('/sys/devices/virtual/mdpy/mdpy/mdev_supported_types/mdpy-vga/create')).toBe(U1);
  });

  it('looks for the device right after the write, without reading any attribute, when the kernel made it synchronously', async () => {
    const sys = new CountingRoot(fake.root, (abs, data) => {
      const m = /^\/sys\/class\/mdev_bus\/([^/]+)\/mdev_supported_types\/([^/]+)\/create$/.exec(abs);
      if (m) fake.addMdev(m[1]!, m[2]!, data);
    });
    const bus = new MdevBus({ root: sys });
    let dev: unknown;
    const created = bus.create('mbochs-small', { uuid: U1 }).then((d) => (dev = d));
    // Resolved before any timer could fire: no poll was needed.
    await new Promise((r) => setImmediate(r));
    expect(dev).toMatchObject({ uuid: U1, parent: 'mbochs', type: 'mbochs-small', groupPath: expect.stringMatching(/^\/dev\/vfio\/\d+$/) });
    await created;
    expect(sys.reads).toEqual([]);
    expect(dev).toEqual(bus.get(U1));
    // Still the same errors for a type that is not there, or ambiguous.
    expect(await failure(() => bus.create('mbochs-tiny', { uuid: U2 }))).toMatchObject({ code: 'ENOENT', operation: 'mdev create' });
    expect(await failure(() => bus.create('..', { uuid: U2 }))).toMatchObject({ code: 'ENOENT', operation: 'mdev create' });
  });

  /** A root whose writes fail like the kernel's create attribute does. */
  class RefusingRoot extends SysRoot {
    constructor(
      root: string,
      readonly code: string,
      readonly errno: number,
      readonly syscall = 'write',
    ) {
      super(root);
    }
    override write(abs: string): void {
      throw Object.assign(new Error(`${this.code}: refused, ${this.syscall} '${this.path(abs)}'`), {
        code: this.code,
        errno: -this.errno,
        syscall: this.syscall,
        path: this.path(abs),
      });
    }
  }

  it.each([
    ['ENOSPC', E.ENOSPC, 'write', /24 ports/],
    ['EEXIST', E.EEXIST, 'write', /already in use/],
    ['EINVAL', E.EINVAL, 'write', /8-4-4-4-12/],
    ['EACCES', E.EACCES, 'open', /needs root/],
    ['EPERM', E.EPERM, 'open', /needs root/],
    ['ENODEV', E.ENODEV, 'write', /unregistered/],
  ])('maps a kernel %s to a VfioError with errno, path, operation and hint', async (code, errno, syscall, hint) => {
    const bus = new MdevBus({ root: new RefusingRoot(fake.root, code, errno, syscall) });
    const err = await failure(() => bus.create('mtty-2', { uuid: U1 }));
    expect(err).toMatchObject({
      code,
      errno: -errno,
      syscall,
      operation: 'mdev create',
      path: '/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-2/create',
    });
    expect(err.hint).toMatch(hint);
    expect(err.message).toMatch(new RegExp(`^${code}: `));
  });

  it('names mdpy\'s EUSERS, which Node reports as an unknown system error', async () => {
    // What Node 20 throws for errno 87, as seen from a real mdpy create.
    const bus = new MdevBus({ root: new RefusingRoot(fake.root, 'Unknown system error -87', 87) });
    const err = await failure(() => bus.create('mdpy-hd', { uuid: U1 }));
    expect(err).toMatchObject({ code: 'EUSERS', errno: -87, syscall: 'write', operation: 'mdev create' });
    expect(err.message).toBe("EUSERS: too many users, write mdev create '/sys/class/mdev_bus/mdpy/mdev_supported_types/mdpy-hd/create'");
    expect(err.hint).toMatch(/instance limit/);
  });
});

describe('remove', () => {
  beforeEach(() => fake.addSampleParents());

  it('writes 1 to the device\'s remove attribute from a child process', async () => {
    fake.addMdev('mtty', 'mtty-1', U1);
    await new MdevBus({ root: fake.root }).remove(U1.toUpperCase());
    expect(fake.read(`/sys/devices/virtual/mtty/mtty/${U1}/remove`)).toBe('1');
  });

  it('removes through one long-lived writer child, reading no attribute', async () => {
    fake.addMdev('mtty', 'mtty-1', U1);
    fake.addMdev('mtty', 'mtty-2', U2);
    const sys = new CountingRoot(fake.root);
    const bus = new MdevBus({ root: sys });
    await bus.remove(U1);
    const pid = sysfsWriter.pid;
    expect(pid).toBeTypeOf('number');
    await bus.remove(U2);
    expect(sysfsWriter.pid).toBe(pid);
    expect(fake.read(`/sys/devices/virtual/mtty/mtty/${U2}/remove`)).toBe('1');
    expect(sys.reads).toEqual([]);
  });

  it('does not let a device held open elsewhere block the removal of another', async () => {
    fake.addMdev('mtty', 'mtty-2', U1);
    fake.addMdev('mdpy', 'mdpy-vga', U2);
    const blocked = `/sys/devices/virtual/mtty/mtty/${U1}/remove`;
    fake.fifo(blocked);
    const bus = new MdevBus({ root: fake.root });
    let first: unknown = 'pending';
    const removing = bus.remove(U1, { timeoutMs: 20_000 }).then(
      () => (first = 'done'),
      (e: unknown) => (first = e),
    );
    await bus.remove(U2);
    expect(fake.read(`/sys/devices/virtual/mdpy/mdpy/${U2}/remove`)).toBe('1');
    expect(first).toBe('pending');
    // The holder closes the device: the first removal completes too.
    const fd = openSync(fake.p(blocked), fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    try {
      await removing;
      expect(first).toBe('done');
    } finally {
      closeSync(fd);
    }
  });

  it('gives ENOENT for an unknown UUID and EINVAL for a malformed one', async () => {
    const bus = new MdevBus({ root: fake.root });
    const err = await failure(() => bus.remove(U2));
    expect(err).toMatchObject({ code: 'ENOENT', operation: 'mdev remove', path: `/sys/bus/mdev/devices/${U2}` });
    expect(err.hint).toContain('removed already');
    expect(await failure(() => bus.remove(`${U2}x`))).toMatchObject({ code: 'EINVAL', operation: 'mdev remove' });
  });

  it('refuses with EBUSY while this process holds the device through the library', async () => {
    fake.addMdev('mdpy', 'mdpy-vga', U1);
    const bus = new MdevBus({ root: fake.root });
    const release = holdDevice(U1.toUpperCase());
    try {
      const err = await failure(() => bus.remove(U1));
      expect(err).toMatchObject({ code: 'EBUSY', errno: -E.EBUSY, operation: 'mdev remove', path: `/sys/bus/mdev/devices/${U1}` });
      expect(err.message).toContain('(1 handle)');
      expect(err.hint).toContain('close');
      expect(fake.read(`/sys/devices/virtual/mdpy/mdpy/${U1}/remove`)).toBe('');
    } finally {
      release();
    }
    await bus.remove(U1);
    expect(fake.read(`/sys/devices/virtual/mdpy/mdpy/${U1}/remove`)).toBe('1');
  });

  it('times out with ETIMEDOUT naming the processes that hold the device open', async () => {
    const { group, vfio } = fake.addMdev('mtty', 'mtty-2', U1);
    const remove = `/sys/devices/virtual/mtty/mtty/${U1}/remove`;
    fake.fifo(remove); // the writer blocks, as the kernel's does while the device is open
    fake.holdOpen(4242, 7, `/dev/vfio/devices/vfio${vfio} (deleted)`, 'qemu');
    fake.holdOpen(4343, 3, `/dev/vfio/${group}`, 'other');
    fake.holdOpen(4444, 3, '/dev/null', 'bystander');
    const started = Date.now();
    const err = await failure(() => new MdevBus({ root: fake.root }).remove(U1, { timeoutMs: 300 }));
    expect(Date.now() - started).toBeLessThan(3000);
    expect(err).toMatchObject({ code: 'ETIMEDOUT', errno: -E.ETIMEDOUT, operation: 'mdev remove', path: `/sys/bus/mdev/devices/${U1}/remove` });
    expect(err.message).toContain('300 ms');
    expect(err.hint).toContain('pid 4242 (qemu), pid 4343 (other) hold');
    expect(err.hint).toContain(`/dev/vfio/${group} or /dev/vfio/devices/vfio${vfio}`);
    expect(err.hint).not.toContain('4444');
    // Let the orphaned writer finish.
    closeSync(openSync(fake.p(remove), fsConstants.O_RDONLY | fsConstants.O_NONBLOCK));
  });

  it('says when it cannot find the holders', async () => {
    fake.addMdev('mtty', 'mtty-2', U1);
    fake.fifo(`/sys/devices/virtual/mtty/mtty/${U1}/remove`);
    const err = await failure(() => new MdevBus({ root: fake.root }).remove(U1, { timeoutMs: 100 }));
    expect(err.hint).toContain('none found in /proc');
    closeSync(openSync(fake.p(`/sys/devices/virtual/mtty/mtty/${U1}/remove`), fsConstants.O_RDONLY | fsConstants.O_NONBLOCK));
  });

  it('relays the errno of a failed write from the child', async () => {
    fake.addMdev('mbochs', 'mbochs-small', U1);
    const remove = `/sys/devices/virtual/mbochs/mbochs/${U1}/remove`;
    rmSync(fake.p(remove));
    mkdirSync(fake.p(remove));
    const err = await failure(() => new MdevBus({ root: fake.root }).remove(U1));
    expect(err).toMatchObject({ code: 'EISDIR', errno: -E.EISDIR, operation: 'mdev remove', path: `/sys/bus/mdev/devices/${U1}/remove` });
  });
});

describe('processesHolding', () => {
  it('finds pids whose fds point at the nodes, ignoring other entries', () => {
    fake.holdOpen(10, 3, '/dev/vfio/5');
    fake.holdOpen(10, 4, '/dev/vfio/5');
    fake.holdOpen(9, 0, '/dev/vfio/devices/vfio2 (deleted)', 'x');
    fake.holdOpen(11, 0, '/dev/vfio/50');
    fake.file('/proc/self/fd/0');
    writeFileSync(fake.p('/proc/meminfo'), '');
    expect(processesHolding(new SysRoot(fake.root), ['/dev/vfio/5', '/dev/vfio/devices/vfio2'])).toEqual([
      { pid: 9, command: 'x' },
      { pid: 10, command: 'holder' },
    ]);
  });
});

describe('iommuGroups', () => {
  it('lists groups by number with PCI and mdev devices, drivers and nodes', () => {
    fake.addSampleParents();
    fake.addGroup(2, { node: false });
    fake.addPci('0000:00:02.0', { vendor: '0x1234', device: '0x1111', group: 2 });
    fake.addGroup(10, {});
    fake.addPci('0000:00:03.0', { vendor: '0x1234', device: '0x11e8', group: 10, driver: 'vfio-pci', vfio: 40 });
    const { group, vfio } = fake.addMdev('mtty', 'mtty-2', U1);
    const groups = iommuGroups(new SysRoot(fake.root));
    expect(groups.map((g) => g.id)).toEqual([2, 10, group]);
    expect(groups[0]).toMatchObject({ name: null, type: 'DMA', node: null });
    expect(groups[0]!.devices).toEqual([
      expect.objectContaining({ name: '0000:00:02.0', bus: 'pci', driver: null, pciId: '1234:1111', mdevType: null, parent: null, vfioDev: null, cdevPath: null }),
    ]);
    expect(groups[1]!.devices[0]).toMatchObject({ driver: 'vfio-pci', pciId: '1234:11e8', vfioDev: 'vfio40', cdevPath: '/dev/vfio/devices/vfio40', groupPath: '/dev/vfio/10' });
    expect(groups[2]).toMatchObject({ name: 'vfio-noiommu', type: 'unknown', node: `/dev/vfio/${group}` });
    expect(groups[2]!.devices).toEqual([
      {
        name: U1,
        bus: 'mdev',
        driver: 'mtty',
        pciId: null,
        mdevType: 'mtty-2',
        parent: 'mtty',
        path: `/sys/devices/virtual/mtty/mtty/${U1}`,
        iommuGroup: group,
        groupPath: `/dev/vfio/${group}`,
        vfioDev: `vfio${vfio}`,
        cdevPath: `/dev/vfio/devices/vfio${vfio}`,
      },
    ]);
  });
});
