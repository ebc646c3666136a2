/**
 * Interoperability with the real mdevctl 1.2 (issue 17): definitions written
 * by one are read, modified, started and stopped by the other, against the
 * sample parents. The guest's root is a copy-on-write snapshot of the host's,
 * so /etc/mdevctl.d here is the guest's own; every test deletes what it
 * defined, and the pools must end as the file found them.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { MdevBus } from '../../src/mdev/bus.js';
import { openDevice } from '../../src/vfio/open.js';
import { serializeDefinition } from '../../src/mdev/definitions.js';
import { failure, runVfio } from '../host/mdev-shared.js';
import { Created, guardPools, waitGone } from './mdev-helpers.js';

const CONF = '/etc/mdevctl.d';
const bus = new MdevBus();
const created = new Created(bus);
const defined = new Set<string>();

/** Runs mdevctl; resolves to its exit status and output. */
async function mdevctl(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  try {
    const r = await promisify(execFile)('mdevctl', args, { env: { ...process.env, RUST_BACKTRACE: '0' } });
    return { status: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { status: typeof err.code === 'number' ? err.code : -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

/** A fresh UUID, tracked: its definitions are deleted and its device removed after the test. */
function uuid(): string {
  const u = randomUUID();
  defined.add(u);
  created.add(u);
  return u;
}

guardPools(created);
afterEach(() => {
  for (const u of defined) {
    for (const p of existsSync(CONF) ? readdirSync(CONF) : []) {
      const f = `${CONF}/${p}/${u}`;
      if (existsSync(f)) bus.definitions.remove({ path: f });
    }
  }
  defined.clear();
});

describe('definitions written by this package', () => {
  it('are listed by mdevctl list -d --dumpjson exactly as vfio mdev list --defined --json prints them', async () => {
    const a = uuid();
    const b = uuid();
    bus.define({ uuid: a, parent: 'mtty', type: 'mtty-2', start: 'auto', attrs: [{ x: '1' }, { y: '2' }] });
    bus.define({ uuid: b, parent: 'mdpy', type: 'mdpy-vga' });
    const theirs = await mdevctl('list', '-d', '--dumpjson');
    expect(theirs.status).toBe(0);
    const ours = await runVfio(['mdev', 'list', '--defined', '--json']);
    expect(ours.status).toBe(0);
    expect(ours.stdout).toBe(theirs.stdout);
    const single = await mdevctl('list', '-d', '-u', a, '--dumpjson');
    expect(single.stdout).toBe(`${readFileSync(`${CONF}/mtty/${a}`, 'utf8')}\n`);
  });

  it('are started and stopped by mdevctl', async () => {
    const a = uuid();
    bus.define({ uuid: a, parent: 'mtty', type: 'mtty-1' });
    expect((await mdevctl('start', '-u', a)).status).toBe(0);
    expect(bus.find(a)).toMatchObject({ parent: 'mtty', type: 'mtty-1' });
    expect((await mdevctl('list')).stdout).toContain(`${a} mtty mtty-1 manual (defined)`);
    expect((await mdevctl('stop', '-u', a)).status).toBe(0);
    await waitGone(a);
  });

  it('are modified by mdevctl, which this package then reads', async () => {
    const a = uuid();
    bus.define({ uuid: a, parent: 'mtty', type: 'mtty-1' });
    expect((await mdevctl('modify', '-u', a, '--auto', '--addattr=foo', '--value=bar')).status).toBe(0);
    expect(bus.definitions.read('mtty', a)).toMatchObject({ start: 'auto', attrs: [{ name: 'foo', value: 'bar' }] });
  });
});

describe('definitions written by mdevctl', () => {
  it('are read, byte for byte as this package would write them', async () => {
    const a = uuid();
    expect((await mdevctl('define', '-u', a, '-p', 'mdpy', '-t', 'mdpy-xga', '--auto')).status).toBe(0);
    expect((await mdevctl('modify', '-u', a, '--addattr=k', '--value=v')).status).toBe(0);
    const def = bus.definitions.read('mdpy', a)!;
    expect(def).toMatchObject({ uuid: a, parent: 'mdpy', type: 'mdpy-xga', start: 'auto', attrs: [{ name: 'k', value: 'v' }] });
    expect(readFileSync(`${CONF}/mdpy/${a}`, 'utf8')).toBe(serializeDefinition(def));
  });

  it('are started by this package, and stopped by mdevctl', async () => {
    const a = uuid();
    expect((await mdevctl('define', '-u', a, '-p', 'mbochs', '-t', 'mbochs-small')).status).toBe(0);
    const dev = await bus.start(a);
    expect(dev).toMatchObject({ uuid: a, parent: 'mbochs', type: 'mbochs-small', groupPath: expect.stringMatching(/^\/dev\/vfio\/\d+$/) });
    expect((await mdevctl('list')).stdout).toContain(`${a} mbochs mbochs-small manual (defined)`);
    expect((await mdevctl('stop', '-u', a)).status).toBe(0);
    await waitGone(a);
  });

  it('keep the keys mdevctl does not know when this package modifies them (mdevctl itself drops them)', async () => {
    const a = uuid();
    expect((await mdevctl('define', '-u', a, '-p', 'mtty', '-t', 'mtty-2')).status).toBe(0);
    const file = `${CONF}/mtty/${a}`;
    const json = JSON.parse(readFileSync(file, 'utf8'));
    writeFileSync(file, JSON.stringify({ note: 'by hand', ...json }, null, 2));
    expect((await mdevctl('list', '-d', '-u', a)).status).toBe(0); // mdevctl reads it
    bus.modify(a, { start: 'auto' });
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ note: 'by hand', mdev_type: 'mtty-2', start: 'auto', attrs: [] });
  });
});

describe('start with attributes', () => {
  it('fails and removes the device again for an attribute the device lacks, as mdevctl does', async () => {
    const a = uuid();
    bus.define({ uuid: a, parent: 'mtty', type: 'mtty-1', attrs: [{ no_such_attribute: '1' }] });
    const err = await failure(() => bus.start(a));
    expect(err).toMatchObject({ code: 'ENOENT', operation: 'mdev start', path: `/sys/bus/mdev/devices/${a}/no_such_attribute` });
    await waitGone(a);
    const theirs = await mdevctl('start', '-u', a);
    expect(theirs.status).not.toBe(0);
    expect(theirs.stderr).toContain("Invalid attribute 'no_such_attribute'");
    await waitGone(a);
  });
});

describe('autostart', () => {
  it('starts the auto definitions of present parents, like mdevctl start-parent-mdevs', async () => {
    const auto = uuid();
    const manual = uuid();
    bus.define({ uuid: auto, parent: 'mtty', type: 'mtty-1', start: 'auto' });
    bus.define({ uuid: manual, parent: 'mtty', type: 'mtty-1' });
    const results = await bus.autostart('mtty');
    expect(results.filter((r) => r.uuid === auto || r.uuid === manual).map((r) => `${r.uuid} ${r.status}`)).toEqual([`${auto} started`]);
    expect(bus.find(manual)).toBeNull();
    await bus.stop(auto);
    await waitGone(auto);
    expect((await mdevctl('start-parent-mdevs', 'mtty')).status).toBe(0);
    expect(bus.find(auto)).not.toBeNull();
    expect(bus.find(manual)).toBeNull();
  });
});

describe('the parent going and coming back', () => {
  it('after the mtty module is reloaded, autostart starts the auto definitions and leaves the manual ones; mdevctl agrees', async () => {
    const auto = uuid();
    const manual = uuid();
    bus.define({ uuid: auto, parent: 'mtty', type: 'mtty-2', start: 'auto' });
    bus.define({ uuid: manual, parent: 'mtty', type: 'mtty-1' });
    await bus.start(auto);
    // Unloading the parent removes its mdevs (mdev_unregister_parent); the definitions stay.
    execFileSync('rmmod', ['mtty']);
    expect(bus.parentNames()).not.toContain('mtty');
    expect(bus.find(auto)).toBeNull();
    expect((await bus.autostart()).filter((r) => r.uuid === auto || r.uuid === manual)).toEqual([]);
    expect(bus.list({ defined: true }).filter((r) => r.uuid === auto || r.uuid === manual).map((r) => [r.uuid, r.defined, r.active])).toEqual(
      [
        [auto, true, false],
        [manual, true, false],
      ].sort((x, y) => String(x[0]).localeCompare(String(y[0]))),
    );
    execFileSync('modprobe', ['mtty']);
    expect(bus.parentNames()).toContain('mtty');
    const results = (await bus.autostart()).filter((r) => r.uuid === auto || r.uuid === manual);
    expect(results.map((r) => [r.uuid, r.status, r.ok])).toEqual([[auto, 'started', true]]);
    expect(bus.find(auto)).toMatchObject({ parent: 'mtty', type: 'mtty-2' });
    expect(bus.find(manual)).toBeNull();
    const listed = (await mdevctl('list')).stdout;
    expect(listed).toContain(`${auto} mtty mtty-2 auto (defined)`);
    expect(listed).not.toContain(manual);
    // A second autostart finds it running and does nothing.
    expect((await bus.autostart('mtty')).filter((r) => r.uuid === auto).map((r) => r.status)).toEqual(['active']);
    await bus.stop(auto);
    await waitGone(auto);
  }, 120_000);

  it('stop refuses a device this process holds open, as remove does, and stops it once closed', async () => {
    const a = uuid();
    bus.define({ uuid: a, parent: 'mtty', type: 'mtty-1' });
    await bus.start(a);
    const dev = openDevice(a);
    try {
      const err = await failure(() => bus.stop(a));
      expect(err).toMatchObject({ code: 'EBUSY', operation: 'mdev stop' });
      expect(bus.find(a)).not.toBeNull();
    } finally {
      dev.close();
    }
    await bus.stop(a);
    await waitGone(a);
    expect(bus.definitions.read('mtty', a)).not.toBeNull();
  });
});

describe('racing', () => {
  it('two processes defining one UUID: one wins, the other gets EEXIST, and the file is whole', async () => {
    const a = uuid();
    const [r1, r2] = await Promise.all(['mtty-1', 'mtty-2'].map((t) => runVfio(['mdev', 'define', '--uuid', a, '--parent', 'mtty', '--type', t])));
    expect([r1!.status, r2!.status].sort()).toEqual([0, 1]);
    const loser = r1!.status === 1 ? r1! : r2!;
    expect(loser.stderr).toMatch(/^vfio: EEXIST: /);
    const def = bus.definitions.read('mtty', a)!;
    expect(['mtty-1', 'mtty-2']).toContain(def.type);
    expect((await mdevctl('list', '-d', '-u', a, '--dumpjson')).stdout).toBe(`${serializeDefinition(def)}\n`);
  }, 120_000);
});
