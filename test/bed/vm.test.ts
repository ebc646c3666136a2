/**
 * The test bed, end to end on the host: each test boots a real guest through
 * `vfio-vm` and checks what comes back (exit status, bytes, failures).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/vm/common.js';

const root = packageRoot();
function vm(args: string[], env: Record<string, string> = {}, cwd = root) {
  const started = Date.now();
  // tsx by its path: the working directory may be a project of its own, without tsx.
  const r = spawnSync(process.execPath, ['--import', pathToFileURL(join(root, 'node_modules/tsx/dist/loader.mjs')).href, join(root, 'src/cli/vfio-vm.ts'), ...args], {
    cwd,
    env: { ...process.env, ...env },
    maxBuffer: 64 * 1024 * 1024,
  });
  const stderr = r.stderr.toString('utf8');
  // The bed's own messages ("[vfio-vm] waiting for another guest run …") are
  // documented stderr lines; `guestStderr` is the guest command's alone.
  const guestStderr = stderr.replace(/^\[vfio-vm\] waiting for [^\n]*\n/gm, '');
  return { status: r.status, stdout: r.stdout, stderr, guestStderr, ms: Date.now() - started };
}

describe('vfio-vm', () => {
  // One boot checks what every run relies on (each boot costs seconds under TCG).
  it('returns the exit status, keeps stdout and stderr apart byte for byte, and runs as root in the share with -e variables', () => {
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const bytes = `printf '${[...all].map((b) => '\\' + b.toString(8).padStart(3, '0')).join('')}'`;
    const dir = mkdtempSync(join(root, 'test-results', 'bed-'));
    try {
      const script = [
        bytes,
        'printf err >&2',
        'id -u >&2; pwd >&2; echo "$GREETING $VFIO_VM_GUEST" >&2',
        'echo written > "$0/from-guest"',
        // The host root is a copy-on-write snapshot: writable and deletable in the guest, untouched on the host.
        'touch /usr/vfio-bed-probe && test -e /usr/vfio-bed-probe && echo snapshot-writable >&2',
        'rm /etc/debian_version && test ! -e /etc/debian_version && echo snapshot-deletable >&2',
        'exit 7',
      ].join('; ');
      const r = vm(['-e', 'GREETING=hello world', 'sh', '-c', script, dir]);
      expect(r.status).toBe(7);
      expect(Buffer.compare(r.stdout, all)).toBe(0);
      expect(r.guestStderr.split('\n')).toEqual(['err0', root, 'hello world 1', 'snapshot-writable', 'snapshot-deletable', '']);
      expect(readFileSync(join(dir, 'from-guest'), 'utf8')).toBe('written\n');
      expect(existsSync('/usr/vfio-bed-probe')).toBe(false);
      expect(existsSync('/etc/debian_version')).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('exits 127 for a command the guest does not have, and says so', () => {
    const r = vm(['no-such-command-in-the-guest']);
    expect(r.status).toBe(127);
    expect(r.guestStderr).toContain('vfio-vm: no-such-command-in-the-guest: command not found in the guest');
  });

  it('shares a project whose path has spaces at its own path, from a subdirectory', () => {
    const project = mkdtempSync(join(tmpdir(), 'vfio bed project '));
    try {
      writeFileSync(join(project, 'package.json'), '{"name":"bed-project","private":true}\n');
      mkdirSync(join(project, 'sub dir'));
      const r = vm(['sh', '-c', 'pwd; echo from-guest > "../guest file"; ls ..'], {}, join(project, 'sub dir'));
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout.toString('utf8')).toBe(`${join(project, 'sub dir')}\nguest file\npackage.json\nsub dir\n`);
      expect(readFileSync(join(project, 'guest file'), 'utf8')).toBe('from-guest\n');
    } finally {
      rmSync(project, { recursive: true, force: true });
    }
  });

  it('ends a panicking guest with 125, the panic line, the console tail and the log path', () => {
    const r = vm(['sh', '-c', 'echo c > /proc/sysrq-trigger; sleep 60']);
    expect(r.status).toBe(125);
    expect(r.stderr).toMatch(/the guest kernel died \(kernel panic\): Kernel panic - not syncing: sysrq triggered crash/);
    expect(r.stderr).toContain('--- last console lines ---');
    const log = /full console log: (\S+)/.exec(r.stderr)?.[1];
    expect(log && existsSync(log)).toBe(true);
    expect(r.ms).toBeLessThan(60_000);
  });

  it('kills a guest that runs past the timeout and exits 124', () => {
    const r = vm(['-t', '8', 'sleep', '600']);
    expect(r.status).toBe(124);
    expect(r.stderr).toContain('did not finish within 8 s');
    expect(r.ms).toBeLessThan(60_000);
  });

  it('fails with 125 when the guest does not come up in time', () => {
    const r = vm(['true'], { VFIO_VM_BOOT_TIMEOUT: '0.5' });
    expect(r.status).toBe(125);
    expect(r.stderr).toContain('did not come up within');
  });
});
