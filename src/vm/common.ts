import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * A test-bed failure that is not the guest command's own: a missing package,
 * a bad VFIO_VM_KERNEL, a kernel that panicked or hung. `exitCode` follows the
 * convention of `timeout(1)` and `docker run`: 124 timed out, 125 the VM itself failed.
 */
export class VmError extends Error {
  /** The exit status `vfio-vm` gives for it: 2 usage, 124 timed out, 125 the bed failed. */
  readonly exitCode: number;
  constructor(message: string, exitCode = 125) {
    super(message);
    this.name = 'VmError';
    this.exitCode = exitCode;
  }
}

/** The root of this package (where package.json names "vfio"), from source or from dist/. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        if ((JSON.parse(readFileSync(pj, 'utf8')) as { name?: string }).name === 'vfio') return dir;
      } catch {
        /* keep looking */
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new VmError('cannot find the vfio package root above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

/** Where the test bed keeps kernels and probes: $VFIO_VM_CACHE, else $XDG_CACHE_HOME/vfio-vm, else ~/.cache/vfio-vm. */
export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.VFIO_VM_CACHE) return resolve(env.VFIO_VM_CACHE);
  const base = env.XDG_CACHE_HOME ? resolve(env.XDG_CACHE_HOME) : join(homedir(), '.cache');
  return join(base, 'vfio-vm');
}

export function assetPath(name: string): string {
  return join(packageRoot(), 'src', 'vm', name);
}

let verbose = false;
export function setVerbose(v: boolean): void {
  verbose = v;
}
export function isVerbose(): boolean {
  return verbose;
}

/** Test-bed messages go to stderr, so the guest command's stdout stays its own. */
export function say(msg: string): void {
  process.stderr.write(`[vfio-vm] ${msg}\n`);
}
export function debug(msg: string): void {
  if (verbose) say(msg);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A directory lock between processes (a dead holder's lock is taken over). */
export async function withLock<T>(lockDir: string, fn: () => Promise<T>, what = 'another kernel build'): Promise<T> {
  mkdirSync(dirname(lockDir), { recursive: true });
  let told = false;
  for (;;) {
    try {
      mkdirSync(lockDir);
      writeFileSync(join(lockDir, 'pid'), String(process.pid));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let pid = NaN;
      try {
        pid = Number(readFileSync(join(lockDir, 'pid'), 'utf8'));
      } catch {
        /* being written */
      }
      if (Number.isInteger(pid) && !isAlive(pid)) {
        rmSync(lockDir, { recursive: true, force: true });
        continue;
      }
      if (!told) say(`waiting for ${what} (pid ${pid}) holding ${lockDir}`);
      told = true;
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}

