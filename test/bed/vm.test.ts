/**
 * The test bed, end to end on the host: each test boots a real guest through
 * `vfio-vm` and checks what comes back (exit status, bytes, failures).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../../scripts/vm/common.js';

const root = packageRoot();
function vm(args: string[], env: Record<string, string> = {}) {
  const started = Date.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'scripts/vm.ts'), ...args], {
    cwd: root,
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
  it('returns the command exit status and keeps stdout and stderr apart', () => {
    const r = vm(['sh', '-c', 'printf out; printf err >&2; exit 7']);
    expect(r.status).toBe(7);
    expect(r.stdout.toString()).toBe('out');
    expect(r.guestStderr).toBe('err');
  });

  it('passes every byte value through unchanged', () => {
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const script = `printf '${[...all].map((b) => '\\' + b.toString(8).padStart(3, '0')).join('')}'`;
    const r = vm(['sh', '-c', `${script}; ${script} >&2`]);
    expect(r.status).toBe(0);
    expect(Buffer.compare(r.stdout, all)).toBe(0);
  });

  it('runs as root in the shared directory, with -e variables, a writable share and a read-only host root', () => {
    const dir = mkdtempSync(join(root, 'test-results', 'bed-'));
    try {
      const r = vm(['-e', 'GREETING=hello world', 'sh', '-c', 'id -u; pwd; echo "$GREETING $VFIO_VM_GUEST"; echo written > "$0/from-guest"; touch /usr/vfio-bed-probe 2>/dev/null && echo host-root-writable || echo host-root-read-only', dir]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout.toString().split('\n')).toEqual(['0', root, 'hello world 1', 'host-root-read-only', '']);
      expect(readFileSync(join(dir, 'from-guest'), 'utf8')).toBe('written\n');
      expect(existsSync('/usr/vfio-bed-probe')).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('exits 127 for a command the guest does not have', () => {
    const r = vm(['no-such-command-in-the-guest']);
    expect(r.status).toBe(127);
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
    const r = vm(['-t', '15', 'sleep', '600']);
    expect(r.status).toBe(124);
    expect(r.stderr).toContain('did not finish within 15 s');
    expect(r.ms).toBeLessThan(60_000);
  });

  it('fails with 125 when the guest does not come up in time', () => {
    const r = vm(['true'], { VFIO_VM_BOOT_TIMEOUT: '0.5' });
    expect(r.status).toBe(125);
    expect(r.stderr).toContain('did not come up within');
  });
});
