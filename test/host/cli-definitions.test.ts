/**
 * The CLI's persistent definitions (issue 17): vfio mdev define, undefine,
 * modify, start, stop, autostart and list --defined, against fake trees;
 * `--json` compared byte for byte with the real mdevctl 1.2's `--dumpjson`
 * (fixtures/mdevctl-1.2).
 */
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { mdevctlListJson } from '../../src/cli/vfio.js';
import { MdevDefinitionStore, mdevctlJson } from '../../src/mdev/definitions.js';
import { U1, U2, cliIn, fakeSysPerTest, expectCliFailure as expectFailure } from './mdev-shared.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/mdevctl-1.2/', import.meta.url));
const A = '2b7e6f1c-5d0a-4c3e-9f21-7a8b9c0d1e2f';
const B = '5a1f0e9d-8c7b-4a69-8584-736251403f2e';
const fixture = (rel: string): string => readFileSync(join(FIXTURES, rel), 'utf8');

const fake = fakeSysPerTest();

/** Runs the CLI in this process against the fake tree. */
const vfio = (...argv: string[]): ReturnType<typeof cliIn> => cliIn(fake.root, argv);

const conf = (rel = ''): string => join(fake.p('/etc/mdevctl.d'), rel);

/** The fake driver, giving each new device the attribute files `attrs`. */
const driver = (attrs: string[] = ['assign_adapter', 'assign_domain']): (() => void) =>
  fake.driver((p, t, u) => {
    fake.addMdev(p, t, u);
    for (const a of attrs) fake.file(`/sys/bus/mdev/devices/${u}/${a}`);
  });

describe('vfio mdev list --defined', () => {
  it('--json prints what mdevctl list -d --dumpjson printed for the same tree, byte for byte', async () => {
    cpSync(join(FIXTURES, 'etc'), fake.p('/etc'), { recursive: true });
    fake.dir('/etc/mdevctl.d/scripts.d/callouts');
    const r = await vfio('mdev', 'list', '--defined', '--json');
    expect(r).toEqual({ status: 0, stdout: fixture('list-defined.json'), stderr: '' });
  });

  it('is in mdevctl\'s --dumpjson shapes for one parent (-p) and for one device (-u: the file\'s contents)', async () => {
    cpSync(join(FIXTURES, 'etc'), fake.p('/etc'), { recursive: true });
    const store = new MdevDefinitionStore(fake.p('/etc/mdevctl.d'));
    expect(`${JSON.stringify(mdevctlListJson(store.list({ parent: 'mtty' })), null, 2)}\n`).toBe(fixture('list-defined-parent.json'));
    expect(`${JSON.stringify(mdevctlJson(store.read('mtty', A)!), null, 2)}\n`).toBe(fixture('list-defined-uuid.json'));
  });

  it('--json prints [] when nothing is defined, as mdevctl does', async () => {
    expect((await vfio('mdev', 'list', '--defined', '--json')).stdout).toBe('[]\n');
  });

  it('prints a table saying which definitions are active; plain list is unchanged', async () => {
    cpSync(join(FIXTURES, 'etc'), fake.p('/etc'), { recursive: true });
    fake.addMdev('mtty', 'mtty-2', A);
    const r = await vfio('mdev', 'list', '--defined');
    expect(r.stdout.trimEnd().split('\n').map((l) => l.split(/ {2,}/))).toEqual([
      ['UUID', 'PARENT', 'TYPE', 'START', 'ACTIVE'],
      ['c0ffee00-1234-4abc-8def-0123456789ab', '0000:00:02.0', 'i915-GVTg_V4_4', 'auto', 'no'],
      ['0d9c8b7a-6f5e-4d3c-ab2a-19f8e7d6c5b4', 'matrix', 'vfio_ap-passthrough', 'manual', 'no'],
      [A, 'mtty', 'mtty-2', 'auto', 'yes'],
      [B, 'mtty', 'mtty-1', 'manual', 'no'],
    ]);
    expect(JSON.parse((await vfio('mdev', 'list', '--json')).stdout).map((d: { uuid: string }) => d.uuid)).toEqual([A]);
  });

  it('fails with one line naming the file and the field for a malformed definition', async () => {
    fake.file(`/etc/mdevctl.d/mtty/${U1}`, '{"mdev_type": "mtty-1", "start": "sometimes"}');
    const line = expectFailure(await vfio('mdev', 'list', '--defined'), 'EINVAL', /mdevctl's format/);
    expect(line).toContain(`${conf(`mtty/${U1}`)}: "start" must be "auto" or "manual", got "sometimes"`);
  });
});

describe('vfio mdev define and modify', () => {
  it('write the bytes mdevctl wrote for the same commands, and print the UUID', async () => {
    expect(await vfio('mdev', 'define', '--uuid', A.toUpperCase(), '--parent', 'mtty', '--type', 'mtty-2', '--auto')).toEqual({ status: 0, stdout: `${A}\n`, stderr: '' });
    for (const argv of [
      ['--addattr', 'assign_adapter', '--value', '5'],
      ['--addattr', 'assign_domain', '--value', '0xab'],
      ['--addattr', 'assign_adapter', '--value', '6', '--index', '1'],
    ]) {
      expect(await vfio('mdev', 'modify', A, ...argv)).toEqual({ status: 0, stdout: '', stderr: '' });
    }
    expect(fake.read(`/etc/mdevctl.d/mtty/${A}`)).toBe(fixture(`etc/mdevctl.d/mtty/${A}`));
    const gen = await vfio('mdev', 'define', '--parent', 'mtty', '--type', 'mtty-1');
    expect(gen.stdout).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\n$/);
    expect(fake.read(`/etc/mdevctl.d/mtty/${gen.stdout.trim()}`)).toBe(fixture(`etc/mdevctl.d/mtty/${B}`));
  });

  it('--json prints the device in mdevctl\'s --dumpjson shape', async () => {
    const r = await vfio('mdev', 'define', '--uuid', U1, '--parent', 'mdpy', '--type', 'mdpy-vga', '--json');
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`${JSON.stringify([{ mdpy: [{ [U1]: { mdev_type: 'mdpy-vga', start: 'manual', attrs: [] } }] }], null, 2)}\n`);
    const m = await vfio('mdev', 'modify', U1, '--auto', '--addattr', 'x', '--value', 'y', '--json');
    expect(JSON.parse(m.stdout)).toEqual([{ mdpy: [{ [U1]: { mdev_type: 'mdpy-vga', start: 'auto', attrs: [{ x: 'y' }] } }] }]);
  });

  it('define --jsonfile takes the type, start mode and attributes from an mdevctl file', async () => {
    const file = fake.p('/device.json');
    writeFileSync(file, fixture(`etc/mdevctl.d/mtty/${A}`));
    expect((await vfio('mdev', 'define', '--parent', 'mtty', '--uuid', A, '--jsonfile', file)).status).toBe(0);
    expect(fake.read(`/etc/mdevctl.d/mtty/${A}`)).toBe(fixture(`etc/mdevctl.d/mtty/${A}`));
    writeFileSync(file, '{"mdev_type": "mtty-1", "start": "manual", "attrs": [{"a": 1}]}');
    const line = expectFailure(await vfio('mdev', 'define', '--parent', 'mtty', '--jsonfile', file), 'EINVAL', /mdevctl's format/);
    expect(line).toContain(`${file}: "attrs"[0] ("a"): the value must be a string, got 1`);
  });

  it('define fails with EEXIST naming the file when the UUID is defined on the parent', async () => {
    await vfio('mdev', 'define', '--uuid', U1, '--parent', 'mtty', '--type', 'mtty-1');
    const line = expectFailure(await vfio('mdev', 'define', '--uuid', U1, '--parent', 'mtty', '--type', 'mtty-2'), 'EEXIST', /vfio mdev modify/);
    expect(line).toContain(`${conf(`mtty/${U1}`)}: mdev ${U1} is already defined on parent 'mtty'`);
  });

  it('modify says when the device is running: the change waits for its next start', async () => {
    await vfio('mdev', 'define', '--uuid', U1, '--parent', 'mtty', '--type', 'mtty-1');
    fake.addMdev('mtty', 'mtty-1', U1);
    expect(await vfio('mdev', 'modify', U1, '--manual')).toEqual({ status: 0, stdout: `${U1}: the device is running; the change applies at its next start\n`, stderr: '' });
  });

  it('modify fails with EINVAL for a bad index and ENOENT for an undefined UUID', async () => {
    await vfio('mdev', 'define', '--uuid', U1, '--parent', 'mtty', '--type', 'mtty-1');
    expect(expectFailure(await vfio('mdev', 'modify', U1, '--delattr', '--index', '0'), 'EINVAL', /count from 0/)).toContain('it has no attributes');
    expectFailure(await vfio('mdev', 'modify', U2, '--auto'), 'ENOENT', /vfio mdev list --defined/);
  });

  it.each([
    [['mdev', 'define'], 'define needs --parent and --type'],
    [['mdev', 'define', '--parent', 'mtty'], 'define needs --parent and --type'],
    [['mdev', 'define', '--parent', 'mtty', '--jsonfile', 'f', '--type', 't'], '--jsonfile gives the type'],
    [['mdev', 'define', '--jsonfile', 'f'], '--jsonfile needs --parent'],
    [['mdev', 'define', '--parent', 'mtty', '--type', 't', '--auto', '--manual'], '--auto and --manual exclude each other'],
    [['mdev', 'modify', U1, '--auto', '--manual'], '--auto and --manual exclude each other'],
    [['mdev', 'modify', U1, '--addattr', 'a'], '--addattr needs --value'],
    [['mdev', 'modify', U1, '--value', 'a'], '--value goes with --addattr'],
    [['mdev', 'modify', U1, '--addattr', 'a', '--value', 'b', '--delattr'], '--addattr and --delattr exclude each other'],
    [['mdev', 'modify', U1, '--delattr', '--index=-1'], '--index takes an attribute index'],
    [['mdev', 'modify', U1, '--delattr', '--index', 'one'], '--index takes an attribute index'],
    [['mdev', 'modify', U1, '--index', '1'], '--index goes with --addattr or --delattr'],
    [['mdev', 'modify', U1], 'nothing to change'],
    [['mdev', 'modify'], 'missing <uuid>'],
    [['mdev', 'undefine'], 'missing <uuid>'],
    [['mdev', 'start'], 'missing <uuid>'],
    [['mdev', 'stop', U1, '--parent', 'mtty'], "Unknown option '--parent'"],
    [['mdev', 'list', '--auto'], "Unknown option '--auto'"],
  ])('exits 2 on %j', async (argv, message) => {
    const r = await vfio(...argv);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n')[0]).toContain(message);
  });
});

describe('vfio mdev undefine', () => {
  it('deletes quietly, then fails with ENOENT', async () => {
    await vfio('mdev', 'define', '--uuid', U1, '--parent', 'mtty', '--type', 'mtty-1');
    expect(await vfio('mdev', 'undefine', U1)).toEqual({ status: 0, stdout: '', stderr: '' });
    expect(fake.exists(`/etc/mdevctl.d/mtty/${U1}`)).toBe(false);
    expectFailure(await vfio('mdev', 'undefine', U1), 'ENOENT', /vfio mdev list --defined/);
  });
});

describe('vfio mdev start and stop', () => {
  it('start creates the device and writes its attributes in order; --json prints it; stop removes it', async () => {
    driver();
    await vfio('mdev', 'define', '--uuid', U1, '--parent', 'mtty', '--type', 'mtty-2');
    await vfio('mdev', 'modify', U1, '--addattr', 'assign_adapter', '--value', '5');
    await vfio('mdev', 'modify', U1, '--addattr', 'assign_domain', '--value', '0xab');
    const r = await vfio('mdev', 'start', U1, '--json');
    expect(r.status).toBe(0);
    const dev = JSON.parse(r.stdout);
    expect(Object.keys(dev)).toEqual(['uuid', 'parent', 'type', 'iommuGroup', 'vfioDev']);
    expect(dev).toMatchObject({ uuid: U1, parent: 'mtty', type: 'mtty-2' });
    const dir = `/sys/devices/virtual/mtty/mtty/${U1}`;
    expect([fake.read(`${dir}/assign_adapter`), fake.read(`${dir}/assign_domain`)]).toEqual(['5', '0xab']);
    expectFailure(await vfio('mdev', 'start', U1), 'EEXIST', /vfio mdev stop/);
    expect(await vfio('mdev', 'stop', U1)).toEqual({ status: 0, stdout: '', stderr: '' });
    expect(fake.read(`${dir}/remove`)).toBe('1');
  });

  it('start fails with one line naming the attribute and its index, and removes the device again', async () => {
    driver(['assign_adapter']);
    await vfio('mdev', 'define', '--uuid', U1, '--parent', 'mdpy', '--type', 'mdpy-hd');
    await vfio('mdev', 'modify', U1, '--addattr', 'assign_adapter', '--value', '5');
    await vfio('mdev', 'modify', U1, '--addattr', 'assign_domain', '--value', '0xab');
    const line = expectFailure(await vfio('mdev', 'start', U1), 'ENOENT', /--delattr --index/);
    expect(line).toContain(`mdev ${U1} has no attribute 'assign_domain' (attrs[1] of ${conf(`mdpy/${U1}`)}); the device was removed again`);
    expect(fake.read(`/sys/devices/virtual/mdpy/mdpy/${U1}/remove`)).toBe('1');
  });

  it('start fails with ENOENT when the definition\'s parent is not present', async () => {
    await vfio('mdev', 'define', '--uuid', U1, '--parent', 'gpu0', '--type', 'nvidia-35');
    expect(expectFailure(await vfio('mdev', 'start', U1), 'ENOENT', /load its driver/)).toContain("the parent 'gpu0'");
  });

  it('stop fails like remove for an unknown UUID', async () => {
    expectFailure(await vfio('mdev', 'stop', U2), 'ENOENT', /vfio mdev list/);
  });
});

describe('vfio mdev autostart', () => {
  it('reports each auto definition; exit 0 when all run', async () => {
    driver();
    await vfio('mdev', 'define', '--uuid', U1, '--parent', 'mtty', '--type', 'mtty-1', '--auto');
    await vfio('mdev', 'define', '--uuid', U2, '--parent', 'mdpy', '--type', 'mdpy-vga');
    const r = await vfio('mdev', 'autostart');
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout.trimEnd().split('\n').map((l) => l.split(/ {2,}/))).toEqual([
      ['UUID', 'PARENT', 'TYPE', 'RESULT'],
      [U1, 'mtty', 'mtty-1', 'started'],
    ]);
    const again = await vfio('mdev', 'autostart', '--json');
    expect(JSON.parse(again.stdout)).toEqual([{ uuid: U1, parent: 'mtty', mdev_type: 'mtty-1', result: 'active', error: null }]);
  });

  it('exits 1 with one stderr line per failure, after reporting every definition', async () => {
    driver();
    await vfio('mdev', 'define', '--uuid', U1, '--parent', 'mtty', '--type', 'mtty-1', '--auto');
    await vfio('mdev', 'define', '--uuid', U2, '--parent', 'mtty', '--type', 'mtty-7', '--auto');
    fake.file('/etc/mdevctl.d/mdpy/a0000000-0000-4000-8000-000000000000', '{"mdev_type": "mdpy-vga", "start": "always"}');
    const r = await vfio('mdev', 'autostart', '--json');
    expect(r.status).toBe(1);
    const out = JSON.parse(r.stdout);
    expect(out.map((x: { uuid: string; result: string }) => `${x.uuid} ${x.result}`)).toEqual(['a0000000-0000-4000-8000-000000000000 failed', `${U1} started`, `${U2} failed`]);
    expect(out[2].error).toMatchObject({ code: 'ENOENT', message: expect.stringContaining("offers no mdev type 'mtty-7'"), hint: expect.stringContaining('--type') });
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^vfio: EINVAL: .*"start" must be "auto" or "manual", got "always" \(hint: /);
    expect(lines[1]).toMatch(/^vfio: ENOENT: the parent 'mtty' offers no mdev type 'mtty-7'.* \(hint: /);
    // Only one parent's.
    const mtty = await vfio('mdev', 'autostart', '--parent', 'mtty');
    expect(mtty.stdout).toContain(`${U1}  mtty    mtty-1  already active`);
    expect(mtty.stdout).toContain('failed: ENOENT');
    expect(mtty.stdout).not.toContain('a0000000');
  });
});
