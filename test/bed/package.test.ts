/**
 * The package as a user gets it: `npm pack`, installed offline from the
 * tarball alone into a fresh project outside the repository, then used there:
 * ESM and CommonJS, the prebuilt addon, both bins, and `vfio-vm` running the
 * installed package against edu in the guest. Then the fallbacks: a corrupt
 * prebuild is compiled over from the shipped sources, and with no prebuild and
 * no g++ both the install and the loader say what they tried and how to fix it.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/vm/common.js';

const repo = packageRoot();
const work = mkdtempSync(join(tmpdir(), 'vfio-pack-'));
const project = join(work, 'project');
const installed = join(project, 'node_modules', 'vfio');
let files: string[] = [];
let tarball = '';

const run = (cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): SpawnSyncReturns<string> =>
  spawnSync(cmd, args, { cwd: opts.cwd ?? project, env: opts.env ?? { ...process.env, npm_config_update_notifier: 'false' }, encoding: 'utf8', maxBuffer: 64 << 20 });
const node = (script: string, env?: NodeJS.ProcessEnv): SpawnSyncReturns<string> => run(process.execPath, ['-e', script], env ? { env } : {});
const ok = (r: SpawnSyncReturns<string>): string => {
  expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
  return r.stdout;
};

beforeAll(() => {
  // prepack builds the prebuild (prebuildify), prepare the JavaScript (tsc).
  const pack = run('npm', ['pack', '--json', '--pack-destination', work], { cwd: repo });
  expect(pack.status, pack.stderr).toBe(0);
  const json = JSON.parse(pack.stdout.slice(pack.stdout.indexOf('[\n'))) as { filename: string; files: { path: string }[] }[];
  files = json[0]!.files.map((f) => f.path);
  tarball = join(work, json[0]!.filename);
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), '{ "name": "a-user-project", "private": true }\n');
  ok(run('npm', ['install', '--offline', '--no-audit', '--no-fund', tarball]));
}, 600_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the installed package', () => {
  it('ships the prebuilt addon, the native sources, the VM assets and the license, and nothing of the repository', () => {
    for (const f of [
      'package.json',
      'LICENSE',
      'README.md',
      'binding.gyp',
      'native/CMakeLists.txt',
      'native/install.cjs',
      'native/addon.cc',
      'native/uapi.h',
      `prebuilds/linux-${process.arch}/vfio.glibc.node`,
      'src/vm/init.sh',
      'src/vm/kernel.config',
      'dist/src/index.js',
      'dist/src/index.d.ts',
      'dist/src/vm/index.js',
      'dist/src/vm/index.d.ts',
      'dist/src/cli/vfio.js',
      'dist/src/cli/vfio-vm.js',
    ]) {
      expect(files, f).toContain(f);
    }
    const stray = files.filter((f) => /^(test|scripts|bench|examples|bench-results|test-results|build|build-cmake|dist\/(scripts|test))\//.test(f) || (f.startsWith('src/') && !/^src\/vm\/(init\.sh|kernel\.config)$/.test(f)));
    expect(stray).toEqual([]);
    // Installed from the tarball alone: its dependencies came inside it.
    expect(existsSync(join(installed, 'node_modules', 'node-gyp-build'))).toBe(true);
    expect(existsSync(join(installed, 'node_modules', 'node-addon-api'))).toBe(true);
  });

  it('loads from ESM and from CommonJS, with the prebuilt addon (nothing was compiled)', () => {
    expect(existsSync(join(installed, 'build'))).toBe(false);
    const esm = "import('vfio').then((v) => { const b = v.allocDmaBuffer(4096); console.log(String(b.size), b.buffer.byteLength, typeof v.openDevice); b.free(); return import('vfio/vm'); }).then((vm) => console.log(typeof vm.runInVm))";
    expect(ok(node(esm))).toBe('4096 4096 function\nfunction\n');
    const cjs = "const v = require('vfio'); const b = v.allocDmaBuffer(4096); console.log(String(b.size), typeof v.VfioError, typeof require('vfio/vm').runInVm); b.free();";
    expect(ok(node(cjs))).toBe('4096 function function\n');
  });

  it('runs both bins: vfio --help and vfio-vm --help exit 0', () => {
    expect(ok(run('npx', ['--offline', 'vfio', '--help']))).toContain('usage: vfio');
    expect(ok(run('npx', ['--offline', 'vfio-vm', '--help']))).toContain('usage: vfio-vm');
  });

  it("runs the user's project in the guest through the installed vfio-vm: edu's ID register reads 0x010000ed", () => {
    const script = "import('vfio').then(({ findEdu, openDevice }) => { const d = openDevice(findEdu()); console.log('0x' + d.device.region(0).read32(0).toString(16).padStart(8, '0')); d.close(); })";
    const r = run('npx', ['--offline', 'vfio-vm', '--', 'node', '-e', script]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe('0x010000ed\n');
  });

  it('compiles from the shipped sources when the prebuild is corrupt (npm rebuild), and then loads that build', () => {
    const prebuild = join(installed, 'prebuilds', `linux-${process.arch}`, 'vfio.glibc.node');
    writeFileSync(prebuild, Buffer.alloc(64 * 1024, 0xa5));
    const r = run('npm', ['rebuild', 'vfio', '--offline', '--foreground-scripts']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr + r.stdout).toMatch(/vfio: prebuilds\/linux-x64\/vfio\.glibc\.node does not load here \(.*\); compiling from native\//);
    expect(existsSync(join(installed, 'build', 'Release', 'vfio.node'))).toBe(true);
    expect(ok(node("const b = require('vfio').allocDmaBuffer(4096); console.log(String(b.size)); b.free();"))).toBe('4096\n');
  }, 300_000);

  it('without a prebuild and without g++, the install says what it tried, what is missing and the fix; the loader lists every place it looked', () => {
    rmSync(join(installed, 'prebuilds'), { recursive: true, force: true });
    rmSync(join(installed, 'build'), { recursive: true, force: true });
    // A PATH with everything /usr/bin has but the C++ compilers.
    const bin = join(work, 'bin-without-gxx');
    mkdirSync(bin);
    for (const name of readdirSync('/usr/bin')) if (!/(^|-)(g|c)\+\+(-\d+)?$/.test(name)) symlinkSync(join('/usr/bin', name), join(bin, name));
    const env = { ...process.env, PATH: bin };
    const install = run(process.execPath, [join(installed, 'native', 'install.cjs')], { cwd: installed, env });
    expect(install.status).toBe(1);
    expect(install.stderr).toContain('vfio: cannot install the native addon.');
    expect(install.stderr).toContain(`no prebuilt addon for linux-${process.arch} in prebuilds/`);
    expect(install.stderr).toMatch(/compiling native\/ with node-gyp failed/);
    expect(install.stderr).toContain('missing on PATH: g++');
    expect(install.stderr).toContain('fix: install a C++ toolchain');
    const load = node("try { require('vfio').allocDmaBuffer(4096); console.log('loaded'); } catch (e) { console.log(e.code); console.log(e.message); console.log(e.hint); }");
    expect(load.status).toBe(0);
    const [code, ...rest] = load.stdout.split('\n');
    expect(code).toBe('ERR_VFIO_NO_ADDON');
    expect(rest.join('\n')).toContain(`${join(installed, 'build', 'Release', 'vfio.node')}: not found`);
    expect(rest.join('\n')).toContain('npm rebuild vfio');
  }, 300_000);
});
