/**
 * Persistent mdev definitions (issue 17) against fake trees: the store
 * compared byte for byte with what the real mdevctl 1.2 wrote
 * (fixtures/mdevctl-1.2), strict reading, unknown keys kept, exclusive and
 * atomic writes raced by two processes, and MdevBus' define, modify, start
 * (attributes in order, rollback), stop, list and autostart.
 */
import { spawn } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  MdevDefinitionStore,
  parseDefinition,
  serializeDefinition,
  type MdevDefinition,
} from '../../src/mdev/definitions.js';
import { MdevBus } from '../../src/mdev/bus.js';
import { SysRoot } from '../../src/mdev/sysfs.js';
import { holdDevice } from '../../src/registry.js';
import { FakeSys } from './mdev-fake.js';
import { REPO, U1, U2, failure } from './mdev-shared.js';

const E = constants.errno;
const FIXTURES = fileURLToPath(new URL('./fixtures/mdevctl-1.2/', import.meta.url));
const RACE_CHILD = fileURLToPath(new URL('./children/definitions-race.ts', import.meta.url));
/** The fixtures' UUIDs (fixtures/mdevctl-1.2/README.md). */
const A = '2b7e6f1c-5d0a-4c3e-9f21-7a8b9c0d1e2f';
const B = '5a1f0e9d-8c7b-4a69-8584-736251403f2e';
const C = 'c0ffee00-1234-4abc-8def-0123456789ab';
const D = '0d9c8b7a-6f5e-4d3c-ab2a-19f8e7d6c5b4';
const U3 = '3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f';

const fixture = (rel: string): string => readFileSync(join(FIXTURES, rel), 'utf8');

let fake: FakeSys;
let conf: string;

beforeEach(() => {
  fake = new FakeSys();
  conf = fake.p('/etc/mdevctl.d');
});
afterEach(() => fake.cleanup());

/** Copies mdevctl's configuration tree (with the scripts.d it keeps there) into the fake root. */
function installFixtures(): void {
  cpSync(join(FIXTURES, 'etc'), fake.p('/etc'), { recursive: true });
  for (const d of ['callouts', 'notifiers']) fake.dir(`/etc/mdevctl.d/scripts.d/${d}`);
  fake.file('/etc/mdevctl.d/scripts.d/callouts/a-script', '#!/bin/sh\n');
}

/**
 * A root that acts on writes as the kernel does, synchronously: a UUID
 * written to a type's `create` makes the device at once, with the attribute
 * files `attrs`; every write is logged, in order.
 */
class KernelRoot extends SysRoot {
  writes: [path: string, data: string][] = [];
  constructor(readonly attrs: string[] = ['assign_adapter', 'assign_domain', 'assign_control_domain']) {
    super(fake.root);
  }
  override write(abs: string, data: string): void {
    this.writes.push([abs, data]);
    super.write(abs, data);
    const m = /^\/sys\/class\/mdev_bus\/([^/]+)\/mdev_supported_types\/([^/]+)\/create$/.exec(abs);
    if (m) {
      fake.addMdev(m[1]!, m[2]!, data);
      for (const a of this.attrs) fake.file(`/sys/bus/mdev/devices/${data}/${a}`);
    }
  }
  /** The attribute writes (not `create`), as [name, value]. */
  attrWrites(uuid: string): [string, string][] {
    const prefix = `/sys/bus/mdev/devices/${uuid}/`;
    return this.writes.filter(([p]) => p.startsWith(prefix)).map(([p, v]) => [p.slice(prefix.length), v]);
  }
}

const removeFile = (parent: string, uuid: string): string => fake.read(`/sys/devices/virtual/${parent}/${parent}/${uuid}/remove`);

describe('the format, against files the real mdevctl 1.2 wrote', () => {
  const files: [parent: string, uuid: string][] = [
    ['mtty', A],
    ['mtty', B],
    ['0000:00:02.0', C],
    ['matrix', D],
  ];

  it('reads every field of mdevctl\'s files', () => {
    installFixtures();
    const store = new MdevDefinitionStore(conf);
    expect(store.read('mtty', A)).toEqual({
      uuid: A,
      parent: 'mtty',
      type: 'mtty-2',
      start: 'auto',
      attrs: [
        { name: 'assign_adapter', value: '5' },
        { name: 'assign_adapter', value: '6' },
        { name: 'assign_domain', value: '0xab' },
      ],
      path: join(conf, 'mtty', A),
      json: JSON.parse(fixture(`etc/mdevctl.d/mtty/${A}`)),
    });
    expect(store.read('mtty', B)).toMatchObject({ type: 'mtty-1', start: 'manual', attrs: [] });
    expect(store.read('0000:00:02.0', C)).toMatchObject({ type: 'i915-GVTg_V4_4', start: 'auto' });
    expect(store.read('matrix', D)!.attrs).toEqual([{ name: 'we"ird/é', value: 'tab\there\nnl\\ bs \u0001 ctl \u007f del ü 😀' }]);
    expect(store.read('mtty', U1)).toBeNull();
  });

  it.each(files)('serializes %s/%s back to the same bytes', (parent, uuid) => {
    const path = join(FIXTURES, 'etc/mdevctl.d', parent, uuid);
    const text = readFileSync(path, 'utf8');
    expect(text.endsWith('}')).toBe(true); // mdevctl writes no final newline
    expect(serializeDefinition(parseDefinition(text, { path, parent, uuid }))).toBe(text);
  });

  it('writes, through define and modify, the very bytes mdevctl wrote for the same commands', () => {
    const bus = new MdevBus({ root: fake.root });
    // The README's commands, through this package.
    bus.define({ uuid: A, parent: 'mtty', type: 'mtty-2', start: 'auto' });
    bus.modify(A, { addAttr: { name: 'assign_adapter', value: '5' } });
    bus.modify(A, { addAttr: { name: 'assign_domain', value: '0xab' } });
    bus.modify(A, { addAttr: { name: 'assign_adapter', value: '6', index: 1 } });
    bus.define({ uuid: B, parent: 'mtty', type: 'mtty-1' });
    bus.define({ uuid: C, parent: '0000:00:02.0', type: 'i915-GVTg_V4_4', start: 'auto' });
    bus.define({ uuid: D, parent: 'matrix', type: 'vfio_ap-passthrough', attrs: [{ 'we"ird/é': 'tab\there\nnl\\ bs \u0001 ctl \u007f del ü 😀' }] });
    for (const [parent, uuid] of files) expect(fake.read(`/etc/mdevctl.d/${parent}/${uuid}`), `${parent}/${uuid}`).toBe(fixture(`etc/mdevctl.d/${parent}/${uuid}`));
    // mdevctl's modes: 0644 files in 0755 directories (under the usual umask 022).
    const umask = process.umask();
    expect(statSync(join(conf, 'mtty', A)).mode & 0o777).toBe(0o644 & ~umask);
    expect(statSync(join(conf, 'mtty')).mode & 0o777).toBe(0o755 & ~umask);
    // No temporary file is left behind.
    expect(readdirSync(join(conf, 'mtty')).sort()).toEqual([A, B].sort());
  });

  it('lists in mdevctl\'s order, parents then UUIDs, ignoring scripts.d, other names and non-files', () => {
    installFixtures();
    fake.file('/etc/mdevctl.d/mtty/not-a-uuid', '{');
    fake.file(`/etc/mdevctl.d/mtty/.${U1}.123.abc.tmp`, '{');
    fake.dir(`/etc/mdevctl.d/mtty/${U2}`);
    fake.file('/etc/mdevctl.d/a-file', '{');
    const store = new MdevDefinitionStore(conf);
    expect(store.list().map((d) => `${d.parent}/${d.uuid}`)).toEqual([`0000:00:02.0/${C}`, `matrix/${D}`, `mtty/${A}`, `mtty/${B}`]);
    expect(store.list({ parent: 'mtty' }).map((d) => d.uuid)).toEqual([A, B]);
    expect(store.list({ uuid: C.toUpperCase() }).map((d) => d.parent)).toEqual(['0000:00:02.0']);
    expect(store.list({ parent: 'nope' })).toEqual([]);
    expect(new MdevDefinitionStore(fake.p('/nonexistent')).list()).toEqual([]);
  });
});

describe('reading strictly: errors name the file and the field', () => {
  const file = (): string => join(conf, 'mtty', U1);
  it.each([
    ['not JSON', '{"mdev_type": "mtty-1",', /: not JSON \(/],
    ['an array', '[]', /: must hold a JSON object .*, got \[\]/],
    ['no mdev_type', '{"start": "auto"}', /: "mdev_type" is missing$/],
    ['a numeric mdev_type', '{"mdev_type": 5, "start": "auto"}', /: "mdev_type" must be a non-empty string, got 5$/],
    ['no start', '{"mdev_type": "mtty-1"}', /: "start" is missing: it must be "auto" or "manual"$/],
    ['start "sometimes"', '{"mdev_type": "mtty-1", "start": "sometimes"}', /: "start" must be "auto" or "manual", got "sometimes"$/],
    ['attrs an object', '{"mdev_type": "mtty-1", "start": "auto", "attrs": {"a": "1"}}', /: "attrs" must be an array of .*, got \{"a":"1"\}$/],
    ['an attribute with two names', '{"mdev_type": "mtty-1", "start": "auto", "attrs": [{"a": "1"}, {"a": "1", "b": "2"}]}', /: "attrs"\[1\] must be an object with exactly one attribute/],
    ['an empty attribute', '{"mdev_type": "mtty-1", "start": "auto", "attrs": [{}]}', /: "attrs"\[0\] must be an object with exactly one attribute, .*got \{\}$/],
    ['a numeric value', '{"mdev_type": "mtty-1", "start": "auto", "attrs": [{"a": 1}]}', /: "attrs"\[0\] \("a"\): the value must be a string, got 1$/],
    ['a name leaving the device', '{"mdev_type": "mtty-1", "start": "auto", "attrs": [{"../../remove": "1"}]}', /: "attrs"\[0\]: "\.\.\/\.\.\/remove" is not an attribute name/],
  ])('refuses %s with EINVAL', (_, text, message) => {
    fake.file(`/etc/mdevctl.d/mtty/${U1}`, text);
    const store = new MdevDefinitionStore(conf);
    let err: unknown;
    try {
      store.read('mtty', U1);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'EINVAL', errno: -E.EINVAL, operation: 'mdev definition', path: file() });
    const msg = (err as Error).message;
    expect(msg.startsWith(`EINVAL: ${file()}: `)).toBe(true);
    expect(msg).toMatch(message);
    expect((err as { hint: string }).hint).toContain('"start": "auto" or "manual"');
  });

  it('accepts what mdevctl accepts: no attrs, or null attrs, as an empty list', () => {
    fake.file(`/etc/mdevctl.d/mtty/${U1}`, '{"mdev_type": "mtty-1", "start": "manual"}');
    fake.file(`/etc/mdevctl.d/mtty/${U2}`, '{"mdev_type": "mtty-1", "start": "auto", "attrs": null}');
    const store = new MdevDefinitionStore(conf);
    expect(store.read('mtty', U1)).toMatchObject({ start: 'manual', attrs: [] });
    expect(store.read('mtty', U2)).toMatchObject({ start: 'auto', attrs: [] });
  });

  it('list() throws the first bad file; scan() reports each and goes on', () => {
    installFixtures();
    fake.file(`/etc/mdevctl.d/mtty/${U1}`, '{"mdev_type": "mtty-1", "start": "sometimes"}');
    const store = new MdevDefinitionStore(conf);
    expect(() => store.list()).toThrow(`${join(conf, 'mtty', U1)}: "start" must be "auto" or "manual", got "sometimes"`);
    const { definitions, errors } = store.scan();
    expect(definitions.map((d) => d.uuid)).toEqual([C, D, A, B]);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ uuid: U1, parent: 'mtty', path: join(conf, 'mtty', U1), error: { code: 'EINVAL' } });
  });
});

describe('unknown keys', () => {
  it('are kept, in their places, when a definition is modified', () => {
    const text = JSON.stringify({ comment: 'made by hand', mdev_type: 'mtty-1', vendor: { x: [1, 2] }, start: 'manual', attrs: [{ a: '1' }], 'x-late': true }, null, 2);
    fake.file(`/etc/mdevctl.d/mtty/${U1}`, text);
    const bus = new MdevBus({ root: fake.root });
    const def = bus.modify(U1, { start: 'auto', addAttr: { name: 'b', value: '2' } });
    const after = fake.read(`/etc/mdevctl.d/mtty/${U1}`);
    expect(Object.keys(JSON.parse(after))).toEqual(['comment', 'mdev_type', 'vendor', 'start', 'attrs', 'x-late']);
    expect(after).toBe(
      JSON.stringify({ comment: 'made by hand', mdev_type: 'mtty-1', vendor: { x: [1, 2] }, start: 'auto', attrs: [{ a: '1' }, { b: '2' }], 'x-late': true }, null, 2),
    );
    expect(def.json).toEqual(JSON.parse(after));
    // And again: they survive every modification.
    bus.modify(U1, { type: 'mtty-2', delAttr: { index: 0 } });
    expect(JSON.parse(fake.read(`/etc/mdevctl.d/mtty/${U1}`))).toEqual({ comment: 'made by hand', mdev_type: 'mtty-2', vendor: { x: [1, 2] }, start: 'auto', attrs: [{ b: '2' }], 'x-late': true });
  });

  it('a key named __proto__ stays a key', () => {
    fake.file(`/etc/mdevctl.d/mtty/${U1}`, '{"__proto__": {"polluted": "yes"}, "mdev_type": "mtty-1", "start": "manual", "attrs": [{"__proto__": "v"}]}');
    new MdevBus({ root: fake.root }).modify(U1, { start: 'auto' });
    const text = fake.read(`/etc/mdevctl.d/mtty/${U1}`);
    expect(text).toContain('"__proto__": {\n    "polluted": "yes"\n  }');
    expect(text).toContain('"__proto__": "v"');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('keeps the file\'s mode when it is replaced', () => {
    const bus = new MdevBus({ root: fake.root });
    bus.define({ uuid: U1, parent: 'mtty', type: 'mtty-1' });
    chmodSync(join(conf, 'mtty', U1), 0o600);
    bus.modify(U1, { start: 'auto' });
    expect(statSync(join(conf, 'mtty', U1)).mode & 0o777).toBe(0o600);
  });
});

describe('define', () => {
  it('generates a v4 UUID by default, stores it in lower case, and defaults to manual', () => {
    const bus = new MdevBus({ root: fake.root });
    const def = bus.define({ parent: 'mtty', type: 'mtty-2' });
    expect(def.uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(def).toMatchObject({ parent: 'mtty', type: 'mtty-2', start: 'manual', attrs: [], path: join(conf, 'mtty', def.uuid) });
    const upper = bus.define({ uuid: U1.toUpperCase(), parent: 'mtty', type: 'mtty-1', attrs: [{ name: 'n', value: 'v' }, { m: 'w' }] });
    expect(upper.uuid).toBe(U1);
    expect(existsSync(join(conf, 'mtty', U1))).toBe(true);
    expect(upper.attrs).toEqual([{ name: 'n', value: 'v' }, { name: 'm', value: 'w' }]);
  });

  it('allows a parent and a type that do not exist (now), as mdevctl 1.2 does', () => {
    fake.addSampleParents();
    const bus = new MdevBus({ root: fake.root });
    expect(bus.define({ uuid: U1, parent: 'nvidia0', type: 'nvidia-35' })).toMatchObject({ parent: 'nvidia0', type: 'nvidia-35' });
    expect(bus.define({ uuid: U2, parent: 'mtty', type: 'mtty-9' })).toMatchObject({ parent: 'mtty', type: 'mtty-9' });
  });

  it('refuses a UUID already defined on the parent with EEXIST naming the file, and allows it on another parent', async () => {
    const bus = new MdevBus({ root: fake.root });
    bus.define({ uuid: U1, parent: 'mtty', type: 'mtty-1' });
    const before = fake.read(`/etc/mdevctl.d/mtty/${U1}`);
    const err = await failure(() => bus.define({ uuid: U1, parent: 'mtty', type: 'mtty-2', start: 'auto' }));
    expect(err).toMatchObject({ code: 'EEXIST', errno: -E.EEXIST, operation: 'mdev define', path: join(conf, 'mtty', U1) });
    expect(err.message).toBe(`EEXIST: ${join(conf, 'mtty', U1)}: mdev ${U1} is already defined on parent 'mtty'`);
    expect(err.hint).toContain('vfio mdev modify');
    expect(fake.read(`/etc/mdevctl.d/mtty/${U1}`)).toBe(before);
    // A hand-made file under an upper-case name is the same UUID.
    fake.file(`/etc/mdevctl.d/mdpy/${U2.toUpperCase()}`, '{"mdev_type": "mdpy-vga", "start": "manual"}');
    expect(await failure(() => bus.define({ uuid: U2, parent: 'mdpy', type: 'mdpy-vga' }))).toMatchObject({ code: 'EEXIST', path: join(conf, 'mdpy', U2.toUpperCase()) });
    // Another parent: allowed (only one of them can run at a time).
    expect(bus.define({ uuid: U1, parent: 'mdpy', type: 'mdpy-vga' }).path).toBe(join(conf, 'mdpy', U1));
  });

  it.each([
    ['a malformed UUID', { uuid: 'nope', parent: 'mtty', type: 'mtty-1' }, /malformed UUID/],
    ['parent ".."', { parent: '..', type: 'mtty-1' }, /cannot be a parent/],
    ['parent "scripts.d"', { parent: 'scripts.d', type: 'mtty-1' }, /cannot be a parent/],
    ['a parent with a slash', { parent: 'a/b', type: 'mtty-1' }, /cannot be a parent/],
    ['an empty type', { parent: 'mtty', type: '' }, /cannot be an mdev type/],
    ['start "sometimes"', { parent: 'mtty', type: 'mtty-1', start: 'sometimes' }, /"auto" or "manual", got "sometimes"/],
    ['an attribute name leaving the device', { parent: 'mtty', type: 'mtty-1', attrs: [{ name: '../remove', value: '1' }] }, /attrs\[0\]: "\.\.\/remove" is not an attribute name/],
    ['an attribute with a number', { parent: 'mtty', type: 'mtty-1', attrs: [{ a: 1 }] }, /attrs\[0\] \("a"\): the value must be a string/],
    ['an attribute with two names', { parent: 'mtty', type: 'mtty-1', attrs: [{ a: '1', b: '2' }] }, /attrs\[0\] must be/],
    ['no parent', { uuid: U1, type: 'mtty-1' }, /needs a parent and a type \(no parent given/],
    ['no type', { parent: 'mtty' }, /needs a parent and a type \(no type given/],
  ])('refuses %s with EINVAL before writing anything', async (_, spec, message) => {
    const err = await failure(() => new MdevBus({ root: fake.root }).define(spec as never));
    expect(err).toMatchObject({ code: 'EINVAL', operation: 'mdev define' });
    expect(err.message).toMatch(message);
    expect(err.hint).toBeTruthy();
    expect(existsSync(conf)).toBe(false);
  });

  it('defines a running device from its UUID alone, taking its parent and type (mdevctl define -u)', () => {
    fake.addSampleParents();
    fake.addMdev('mdpy', 'mdpy-xga', U1);
    const bus = new MdevBus({ root: fake.root });
    expect(bus.define({ uuid: U1 })).toMatchObject({ parent: 'mdpy', type: 'mdpy-xga', start: 'manual' });
    bus.undefine(U1);
    expect(bus.define({ uuid: U1, parent: 'mdpy', start: 'auto' })).toMatchObject({ parent: 'mdpy', type: 'mdpy-xga', start: 'auto' });
    // Another parent, or a type without the parent, takes nothing from the running device (mdevctl: "No parent specified").
    expect(() => bus.define({ uuid: U2, parent: 'mbochs' })).toThrow(/no type given, and no active mdev/);
    expect(() => bus.define({ uuid: U1, type: 'mdpy-hd' })).toThrow(/no parent given/);
    expect(() => bus.define({ uuid: U1.replace('0b', '0c'), parent: 'mdpy' })).toThrow(/no type given/);
  });

  it('needs root to write /etc/mdevctl.d: EACCES with a hint', async () => {
    mkdirSync(conf, { recursive: true });
    chmodSync(conf, 0o555);
    const r = await new Promise<{ status: number; stderr: string }>((resolve) => {
      const code = `import('${REPO}src/mdev/bus.ts').then(({ MdevBus }) => { try { new MdevBus({ root: ${JSON.stringify(fake.root)} }).define({ uuid: '${U1}', parent: 'mtty', type: 'mtty-1' }); } catch (e) { process.stderr.write(JSON.stringify({ code: e.code, hint: e.hint, path: e.path })); process.exit(1); } })`;
      const child = spawn(process.execPath, ['--import', 'tsx', '-e', code], { cwd: REPO, uid: 65534, gid: 65534, env: { ...process.env, NODE_OPTIONS: '' } });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      child.on('close', (status) => resolve({ status: status ?? -1, stderr }));
    });
    expect(r.status).toBe(1);
    const e = JSON.parse(r.stderr.slice(r.stderr.indexOf('{')));
    expect(e).toMatchObject({ code: 'EACCES', path: join(conf, 'mtty') });
    expect(e.hint).toContain('writable by root only');
  });
});

/** Starts the race child: `ready` resolves once it waits for the go file, `done` to its parsed stdout. */
function raceChild(args: string[]): { ready: Promise<void>; done: Promise<unknown> } {
  let ready!: () => void;
  const isReady = new Promise<void>((r) => (ready = r));
  const done = new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', RACE_CHILD, ...args], { cwd: REPO, env: { ...process.env, NODE_OPTIONS: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => {
      stderr += d;
      if (stderr.includes('ready\n')) ready();
    });
    child.on('close', (status) => (status === 0 ? resolve(JSON.parse(stdout)) : reject(new Error(`race child exited ${status}: ${stderr}`))));
  });
  done.catch(() => ready()); // a child that dies before it is ready fails `done`
  return { ready: isReady, done };
}

describe('concurrency', () => {
  const raceUuid = (i: number): string => `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;

  it('two processes defining the same UUIDs: exactly one wins each, EEXIST for the other, and every file is the winner\'s, whole', async () => {
    const n = 150;
    const go = fake.p('/go');
    const children = [raceChild(['define', conf, 'left', go, String(n)]), raceChild(['define', conf, 'right', go, String(n)])];
    await Promise.all(children.map((c) => c.ready)); // both wait for the go file
    writeFileSync(go, '');
    const [left, right] = (await Promise.all(children.map((c) => c.done))) as [string[], string[]];
    let leftWins = 0;
    for (let i = 0; i < n; i++) {
      expect([left[i], right[i]].sort(), `round ${i}`).toEqual(['EEXIST', 'won']);
      const winner = left[i] === 'won' ? 'left' : 'right';
      if (winner === 'left') leftWins++;
      expect(readFileSync(join(conf, 'mtty', raceUuid(i)), 'utf8')).toBe(serializeDefinition({ type: `type-${winner}`, start: 'manual', attrs: [{ name: 'who', value: winner }] }));
    }
    // They did race: each won some (the loser of a round fails fast and catches up).
    expect(leftWins, `left won ${leftWins} of ${n}`).toBeGreaterThan(0);
    expect(leftWins, `left won ${leftWins} of ${n}`).toBeLessThan(n);
    expect(readdirSync(join(conf, 'mtty'))).toHaveLength(n); // no temporary file left
  }, 60_000);

  it('a reader never sees a torn file while another process replaces it over and over', async () => {
    const bus = new MdevBus({ root: fake.root });
    bus.define({ uuid: U1, parent: 'mtty', type: 'mtty-1' });
    const go = fake.p('/go');
    const { ready, done: finished } = raceChild(['modify', conf, U1, go, '400']);
    await ready;
    writeFileSync(go, '');
    let done = false;
    finished.then(() => (done = true), () => (done = true));
    const seen = new Set<number>();
    let reads = 0;
    while (!done) {
      // Synchronous reads in a row, then let the child's exit be noticed.
      for (let i = 0; i < 50; i++, reads++) seen.add(new MdevDefinitionStore(conf).read('mtty', U1)!.attrs.length);
      await new Promise((r) => setImmediate(r));
    }
    expect(await finished).toBe(400);
    expect(reads).toBeGreaterThan(0);
    expect([...seen].every((len) => [0, 1, 200].includes(len))).toBe(true);
    expect(readdirSync(join(conf, 'mtty'))).toEqual([U1]);
  }, 60_000);

  it('two defines of the same UUID in one process: the second gets EEXIST', async () => {
    const store = new MdevDefinitionStore(conf);
    const results = await Promise.allSettled([1, 2].map(async (k) => store.create({ uuid: U1, parent: 'mtty', type: `mtty-${k}`, start: 'manual', attrs: [] })));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected']);
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ code: 'EEXIST' });
    expect(new MdevDefinitionStore(conf).read('mtty', U1)!.type).toBe('mtty-1');
  });
});

describe('modify', () => {
  let bus: MdevBus;
  beforeEach(() => {
    bus = new MdevBus({ root: fake.root });
    bus.define({ uuid: U1, parent: 'mtty', type: 'mtty-2', attrs: [{ a: '0' }, { b: '1' }, { c: '2' }] });
  });
  const attrs = (): string[] => bus.definitions.read('mtty', U1)!.attrs.map((a) => `${a.name}=${a.value}`);

  it('inserts at an index or appends, deletes at an index or the last, as mdevctl --addattr/--delattr [--index]', () => {
    bus.modify(U1, { addAttr: { name: 'x', value: 'X', index: 0 } });
    expect(attrs()).toEqual(['x=X', 'a=0', 'b=1', 'c=2']);
    bus.modify(U1, { addAttr: { name: 'y', value: 'Y', index: 4 } });
    bus.modify(U1, { addAttr: { name: 'z', value: 'Z' } });
    expect(attrs()).toEqual(['x=X', 'a=0', 'b=1', 'c=2', 'y=Y', 'z=Z']);
    bus.modify(U1, { delAttr: { index: 2 } });
    bus.modify(U1, { delAttr: {} });
    expect(attrs()).toEqual(['x=X', 'a=0', 'c=2', 'y=Y']);
    bus.modify(U1, { attrs: [] });
    bus.modify(U1, { delAttr: {} }); // nothing to delete: no error, as mdevctl
    expect(attrs()).toEqual([]);
  });

  it('changes type and start mode', () => {
    expect(bus.modify(U1.toUpperCase(), { type: 'mtty-1', start: 'auto' })).toMatchObject({ uuid: U1, type: 'mtty-1', start: 'auto' });
    expect(bus.definitions.read('mtty', U1)).toMatchObject({ type: 'mtty-1', start: 'auto' });
  });

  it.each([
    [{ delAttr: { index: 3 } }, 'EINVAL', /attribute index 3 is invalid .*its attributes are 0: a="0", 1: b="1", 2: c="2" \(valid: 0…2\)/],
    [{ addAttr: { name: 'x', value: 'X', index: 4 } }, 'EINVAL', /attribute index 4 is invalid .*\(valid: 0…3\)/],
    [{ addAttr: { name: 'x', value: 'X', index: -1 } }, 'EINVAL', /attribute index -1 is invalid/],
    [{ addAttr: { name: '/abs', value: 'X' } }, 'EINVAL', /is not an attribute name/],
    [{ start: 'always' }, 'EINVAL', /"auto" or "manual"/],
    [{ type: 'a/b' }, 'EINVAL', /cannot be an mdev type/],
  ])('refuses %j, leaving the file as it was', async (changes, code, message) => {
    const before = fake.read(`/etc/mdevctl.d/mtty/${U1}`);
    const err = await failure(() => bus.modify(U1, changes as never));
    expect(err).toMatchObject({ code, operation: 'mdev modify' });
    expect(err.message).toMatch(message);
    expect(fake.read(`/etc/mdevctl.d/mtty/${U1}`)).toBe(before);
  });

  it('ENOENT for an undefined UUID; EINVAL naming the parents when it is defined on several, until one is named', async () => {
    const none = await failure(() => bus.modify(U2, { start: 'auto' }));
    expect(none).toMatchObject({ code: 'ENOENT', operation: 'mdev modify' });
    expect(none.message).toContain(`mdev ${U2} is not defined`);
    expect(none.hint).toContain('vfio mdev list --defined');
    bus.define({ uuid: U1, parent: 'mdpy', type: 'mdpy-vga' });
    const both = await failure(() => bus.modify(U1, { start: 'auto' }));
    expect(both).toMatchObject({ code: 'EINVAL' });
    expect(both.message).toContain('defined on several parents (mdpy, mtty)');
    expect(both.hint).toContain('--parent');
    expect(bus.modify(U1, { start: 'auto' }, { parent: 'mdpy' })).toMatchObject({ parent: 'mdpy', start: 'auto' });
    expect(bus.definitions.read('mtty', U1)!.start).toBe('manual');
  });

  it('is staged for a running device: the device is untouched, the change applies at its next start', async () => {
    fake.addSampleParents();
    const sys = new KernelRoot(['a', 'b', 'c', 'd']);
    bus = new MdevBus({ root: sys });
    await bus.start(U1);
    const writes = sys.writes.length;
    bus.modify(U1, { type: 'mtty-1', attrs: [{ d: 'new' }] });
    expect(sys.writes).toHaveLength(writes); // nothing written to the device
    expect(bus.get(U1).type).toBe('mtty-2');
    const [rec] = bus.list({ defined: true });
    expect(rec).toMatchObject({ uuid: U1, type: 'mtty-1', defined: true, active: true, device: { type: 'mtty-2' } });
    // Next start: stop, then start with the new definition.
    await bus.stop(U1);
    expect(removeFile('mtty', U1)).toBe('1');
    rmDevice('mtty', U1);
    const dev = await bus.start(U1);
    expect(dev.type).toBe('mtty-1');
    expect(sys.attrWrites(U1).slice(-1)).toEqual([['d', 'new']]);
  });
});

/** What the kernel does once `remove` is written: the fake device goes. */
function rmDevice(parent: string, uuid: string): void {
  const pdir = `/sys/devices/virtual/${parent}/${parent}`;
  for (const p of [`/sys/bus/mdev/devices/${uuid}`, `${pdir}/${uuid}`]) fake.rm(p);
  for (const t of readdirSync(fake.p(`${pdir}/mdev_supported_types`))) fake.rm(`${pdir}/mdev_supported_types/${t}/devices/${uuid}`);
}

describe('undefine', () => {
  it('deletes the file, every parent\'s without a parent, and leaves a running device', async () => {
    fake.addSampleParents();
    fake.addMdev('mtty', 'mtty-1', U1);
    const bus = new MdevBus({ root: fake.root });
    bus.define({ uuid: U1, parent: 'mtty', type: 'mtty-1' });
    bus.define({ uuid: U1, parent: 'mdpy', type: 'mdpy-vga' });
    bus.define({ uuid: U2, parent: 'mdpy', type: 'mdpy-vga' });
    expect(bus.undefine(U1, { parent: 'mdpy' }).map((d) => d.parent)).toEqual(['mdpy']);
    expect(bus.definitions.list().map((d) => `${d.parent}/${d.uuid}`)).toEqual([`mdpy/${U2}`, `mtty/${U1}`]);
    bus.define({ uuid: U1, parent: 'mdpy', type: 'mdpy-vga' });
    expect(bus.undefine(U1).map((d) => d.parent)).toEqual(['mdpy', 'mtty']);
    expect(bus.definitions.list().map((d) => d.uuid)).toEqual([U2]);
    expect(bus.find(U1)).not.toBeNull();
    expect(existsSync(join(conf, 'mtty'))).toBe(true); // the directory stays, as mdevctl leaves it
    const err = await failure(() => bus.undefine(U1));
    expect(err).toMatchObject({ code: 'ENOENT', operation: 'mdev undefine' });
  });
});

describe('start', () => {
  beforeEach(() => fake.addSampleParents());

  it('creates the device and writes the attributes in order, each to its own file', async () => {
    const sys = new KernelRoot();
    const bus = new MdevBus({ root: sys });
    bus.define({
      uuid: U1,
      parent: 'mtty',
      type: 'mtty-2',
      attrs: [{ assign_adapter: '5' }, { assign_domain: '0xab' }, { assign_adapter: '6' }, { assign_control_domain: '0x4' }],
    });
    const dev = await bus.start(U1);
    expect(dev).toMatchObject({ uuid: U1, parent: 'mtty', type: 'mtty-2' });
    expect(sys.writes[0]).toEqual(['/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-2/create', U1]);
    expect(sys.attrWrites(U1)).toEqual([
      ['assign_adapter', '5'],
      ['assign_domain', '0xab'],
      ['assign_adapter', '6'],
      ['assign_control_domain', '0x4'],
    ]);
    // The files the writes landed in: the last write of a name wins, no newline added.
    const dir = `/sys/devices/virtual/mtty/mtty/${U1}`;
    expect([fake.read(`${dir}/assign_adapter`), fake.read(`${dir}/assign_domain`), fake.read(`${dir}/assign_control_domain`)]).toEqual(['6', '0xab', '0x4']);
    expect(bus.definitions.read('mtty', U1)!.start).toBe('manual'); // a start changes nothing stored
  });

  it('rolls back when an attribute is missing: removes the device and names the attribute and its index', async () => {
    const sys = new KernelRoot(['assign_adapter']);
    const bus = new MdevBus({ root: sys });
    bus.define({ uuid: U1, parent: 'mtty', type: 'mtty-2', attrs: [{ assign_adapter: '5' }, { assign_domian: '0xab' }, { assign_adapter: '6' }] });
    const err = await failure(() => bus.start(U1));
    expect(err).toMatchObject({ code: 'ENOENT', errno: -E.ENOENT, operation: 'mdev start', path: `/sys/bus/mdev/devices/${U1}/assign_domian` });
    expect(err.message).toBe(`ENOENT: mdev ${U1} has no attribute 'assign_domian' (attrs[1] of ${join(conf, 'mtty', U1)}); the device was removed again`);
    expect(err.hint).toContain('--delattr --index');
    expect(sys.attrWrites(U1)).toEqual([['assign_adapter', '5']]); // nothing after the failure
    expect(removeFile('mtty', U1)).toBe('1');
  });

  it('rolls back when the device refuses a value, keeping the errno', async () => {
    const sys = new KernelRoot(['assign_adapter', 'assign_domain']);
    const bus = new MdevBus({ root: sys });
    bus.define({ uuid: U1, parent: 'mtty', type: 'mtty-1', attrs: [{ assign_adapter: '5' }, { assign_domain: '0xab' }] });
    // The kernel refuses the write: a directory stands in for the attribute (EISDIR).
    const orig = sys.write.bind(sys);
    sys.write = (abs: string, data: string): void => {
      orig(abs, data);
      if (abs.endsWith('/create')) {
        fake.rm(`/sys/bus/mdev/devices/${data}/assign_domain`);
        fake.dir(`/sys/bus/mdev/devices/${data}/assign_domain`);
      }
    };
    const err = await failure(() => bus.start(U1));
    expect(err).toMatchObject({ code: 'EISDIR', errno: -E.EISDIR, operation: 'mdev start', path: `/sys/bus/mdev/devices/${U1}/assign_domain` });
    expect(err.message).toMatch(new RegExp(`^EISDIR: writing "0xab" to attribute 'assign_domain' \\(attrs\\[1\\] of .*\\) of mdev ${U1} failed: .*; the device was removed again$`));
    expect(err.hint).toContain('rejected the value');
    expect(removeFile('mtty', U1)).toBe('1');
  });

  it('starts a definition given in full without storing it (a transient device)', async () => {
    const sys = new KernelRoot();
    const bus = new MdevBus({ root: sys });
    const dev = await bus.start({ uuid: U2, parent: 'mdpy', type: 'mdpy-vga', attrs: [{ name: 'assign_domain', value: '1' }] });
    expect(dev).toMatchObject({ uuid: U2, parent: 'mdpy', type: 'mdpy-vga' });
    expect(sys.attrWrites(U2)).toEqual([['assign_domain', '1']]);
    expect(existsSync(conf)).toBe(false);
  });

  it('refuses a running UUID (EEXIST), an absent parent or type (ENOENT, naming the file), an undefined UUID (ENOENT), before writing anything', async () => {
    const sys = new KernelRoot();
    const bus = new MdevBus({ root: sys });
    fake.addMdev('mdpy', 'mdpy-hd', U1);
    bus.define({ uuid: U1, parent: 'mtty', type: 'mtty-1' });
    const running = await failure(() => bus.start(U1));
    expect(running).toMatchObject({ code: 'EEXIST', operation: 'mdev start' });
    expect(running.message).toContain(`mdev ${U1} is active already on another parent ('mdpy')`);
    bus.define({ uuid: U2, parent: 'gpu0', type: 'nvidia-35' });
    const parent = await failure(() => bus.start(U2));
    expect(parent).toMatchObject({ code: 'ENOENT', path: '/sys/class/mdev_bus/gpu0' });
    expect(parent.message).toBe(`ENOENT: the parent 'gpu0' of mdev ${U2} (${join(conf, 'gpu0', U2)}) is not present (parents: mbochs, mdpy, mtty)`);
    expect(parent.hint).toContain('load its driver');
    bus.define({ uuid: U3, parent: 'mtty', type: 'mtty-9' });
    const type = await failure(() => bus.start(U3));
    expect(type).toMatchObject({ code: 'ENOENT', path: '/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-9' });
    expect(type.message).toContain("offers no mdev type 'mtty-9' for mdev");
    expect(type.message).toContain('(types: mtty-1, mtty-2)');
    expect(type.hint).toContain('--type');
    const undefined_ = await failure(() => bus.start('11111111-2222-4333-8444-555555555555'));
    expect(undefined_).toMatchObject({ code: 'ENOENT', operation: 'mdev start' });
    expect(undefined_.hint).toContain('vfio mdev list --defined');
    expect(sys.writes).toEqual([]);
  });
});

describe('stop', () => {
  beforeEach(() => fake.addSampleParents());

  it('removes the device and keeps its definition', async () => {
    const bus = new MdevBus({ root: fake.root });
    fake.addMdev('mtty', 'mtty-1', U1);
    bus.define({ uuid: U1 });
    await bus.stop(U1);
    expect(removeFile('mtty', U1)).toBe('1');
    expect(bus.definitions.read('mtty', U1)).not.toBeNull();
  });

  it('refuses a device held open by this process with EBUSY and remove\'s hint', async () => {
    const bus = new MdevBus({ root: fake.root });
    fake.addMdev('mtty', 'mtty-1', U1);
    const release = holdDevice(U1);
    try {
      const stop = await failure(() => bus.stop(U1));
      const remove = await failure(() => bus.remove(U1));
      expect(stop).toMatchObject({ code: 'EBUSY', errno: -E.EBUSY, operation: 'mdev stop', path: `/sys/bus/mdev/devices/${U1}` });
      expect(stop.message).toBe(remove.message);
      expect(stop.hint).toBe(remove.hint);
      expect(stop.hint).toContain('close');
      expect(removeFile('mtty', U1)).toBe('');
    } finally {
      release();
    }
    const gone = await failure(() => bus.stop(U2));
    expect(gone).toMatchObject({ code: 'ENOENT', operation: 'mdev stop' });
    expect(gone.hint).toContain('vfio mdev list');
  });
});

describe('list({ defined, active })', () => {
  it('merges definitions and active devices by UUID and parent, in mdevctl\'s order', () => {
    fake.addSampleParents();
    const bus = new MdevBus({ root: fake.root });
    bus.define({ uuid: U2, parent: 'mtty', type: 'mtty-2', start: 'auto', attrs: [{ a: '1' }] }); // defined and active
    bus.define({ uuid: U1, parent: 'mtty', type: 'mtty-1' }); // defined only
    bus.define({ uuid: U3, parent: 'mbochs', type: 'mbochs-small' }); // defined here, active on mdpy
    fake.addMdev('mtty', 'mtty-2', U2);
    fake.addMdev('mdpy', 'mdpy-vga', U3);
    const row = (r: { uuid: string; parent: string; type: string | null; start: string; defined: boolean; active: boolean }): string =>
      `${r.parent}/${r.uuid} ${r.type} ${r.start} ${r.defined ? 'D' : '-'}${r.active ? 'A' : '-'}`;
    expect(bus.list({}).map(row)).toEqual([
      `mbochs/${U3} mbochs-small manual D-`,
      `mdpy/${U3} mdpy-vga manual -A`,
      `mtty/${U1} mtty-1 manual D-`,
      `mtty/${U2} mtty-2 auto DA`,
    ]);
    expect(bus.list({ defined: true, active: true }).map(row)).toEqual(bus.list({}).map(row));
    expect(bus.list({ defined: true }).map(row)).toEqual([`mbochs/${U3} mbochs-small manual D-`, `mtty/${U1} mtty-1 manual D-`, `mtty/${U2} mtty-2 auto DA`]);
    expect(bus.list({ active: true }).map(row)).toEqual([`mdpy/${U3} mdpy-vga manual -A`, `mtty/${U2} mtty-2 auto DA`]);
    const both = bus.list({}).find((r) => r.uuid === U2)!;
    expect(both.attrs).toEqual([{ name: 'a', value: '1' }]);
    expect(both.definition!.path).toBe(join(conf, 'mtty', U2));
    expect(both.device).toEqual(bus.get(U2));
    // list() without an argument is unchanged: the active devices.
    expect(bus.list().map((d) => d.uuid)).toEqual([U2, U3].sort());
  });

  it('throws naming the file when a definition is malformed', async () => {
    fake.file(`/etc/mdevctl.d/mtty/${U1}`, '{"mdev_type": "mtty-1"}');
    const bus = new MdevBus({ root: fake.root });
    const err = await failure(() => bus.list({ defined: true }));
    expect(err.message).toBe(`EINVAL: ${join(conf, 'mtty', U1)}: "start" is missing: it must be "auto" or "manual"`);
    await failure(() => bus.list({}));
    // Listing the active devices only does not read it as a definition of theirs.
    fake.addSampleParents();
    fake.addMdev('mtty', 'mtty-1', U2);
    expect(bus.list({ active: true }).map((r) => [r.uuid, r.defined])).toEqual([[U2, false]]);
  });
});

describe('autostart', () => {
  it('starts every auto definition whose parent is present, reports each, and never throws for one', async () => {
    fake.addSampleParents();
    const sys = new KernelRoot(['x']);
    const bus = new MdevBus({ root: sys });
    const ok1 = '10000000-0000-4000-8000-000000000001';
    const ok2 = '10000000-0000-4000-8000-000000000002';
    const manual = '10000000-0000-4000-8000-000000000003';
    const badType = '10000000-0000-4000-8000-000000000004';
    const badAttr = '10000000-0000-4000-8000-000000000005';
    const absent = '10000000-0000-4000-8000-000000000006';
    const running = '10000000-0000-4000-8000-000000000007';
    bus.define({ uuid: ok1, parent: 'mtty', type: 'mtty-2', start: 'auto', attrs: [{ x: '1' }] });
    bus.define({ uuid: ok2, parent: 'mdpy', type: 'mdpy-vga', start: 'auto' });
    bus.define({ uuid: manual, parent: 'mtty', type: 'mtty-1', start: 'manual' });
    bus.define({ uuid: badType, parent: 'mtty', type: 'mtty-9', start: 'auto' });
    bus.define({ uuid: badAttr, parent: 'mbochs', type: 'mbochs-small', start: 'auto', attrs: [{ nope: '1' }] });
    bus.define({ uuid: absent, parent: 'gpu0', type: 'nvidia-35', start: 'auto' });
    bus.define({ uuid: running, parent: 'mtty', type: 'mtty-1', start: 'auto' });
    fake.addMdev('mtty', 'mtty-1', running);
    fake.file(`/etc/mdevctl.d/mdpy/${U1}`, '{"mdev_type": "mdpy-hd", "start": "sometimes"}');

    const results = await bus.autostart();
    const summary = results.map((r) => `${r.parent}/${r.uuid} ${r.status}${r.error ? ` ${r.error.code}` : ''}`);
    expect(summary).toEqual([
      `mbochs/${badAttr} failed ENOENT`,
      `mdpy/${U1} failed EINVAL`,
      `mdpy/${ok2} started`,
      `mtty/${ok1} started`,
      `mtty/${badType} failed ENOENT`,
      `mtty/${running} active`,
    ]);
    expect(results.find((r) => r.uuid === ok1)).toMatchObject({ ok: true, type: 'mtty-2', device: { uuid: ok1, parent: 'mtty' }, error: null });
    expect(results.find((r) => r.uuid === running)).toMatchObject({ ok: true, device: { uuid: running } });
    expect(results.find((r) => r.uuid === U1)!.error!.message).toContain(`${join(conf, 'mdpy', U1)}: "start" must be "auto" or "manual"`);
    expect(results.find((r) => r.uuid === badAttr)).toMatchObject({ ok: false, device: null });
    expect(removeFile('mbochs', badAttr)).toBe('1'); // rolled back
    expect(sys.attrWrites(ok1)).toEqual([['x', '1']]);
    expect(bus.find(manual)).toBeNull();
    expect(bus.find(absent)).toBeNull();

    // Only one parent's; and running it again starts nothing new.
    const again = await bus.autostart('mtty');
    expect(again.map((r) => `${r.uuid} ${r.status}`)).toEqual([`${ok1} active`, `${badType} failed`, `${running} active`]);
    expect(await bus.autostart('gpu0')).toEqual([]);
  });
});
