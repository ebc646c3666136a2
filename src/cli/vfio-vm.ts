#!/usr/bin/env node
/**
 * vfio-vm: run a command as root in the vfio test-bed guest (Linux 6.12 with
 * VFIO, iommufd, vfio-pci, the mtty/mdpy/mbochs samples and QEMU's edu device
 * behind an emulated Intel IOMMU) and return its output and exit status.
 *
 *   npm run vm -- ls /sys/class/mdev_bus
 *   npx vfio-vm -e DEBUG=1 node my-driver.js
 */
import { mkdtempSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { VmError, cacheRoot, debug, say, setVerbose, withLock } from '../vm/common.js';
import { RUN_REQUIREMENTS, ensureRequirements } from '../vm/deps.js';
import { baseInitramfs, runInitramfs } from '../vm/initramfs.js';
import { resolveKernel, type Kernel } from '../vm/kernel.js';
import { chooseAccel, runVm, type MachineSpec } from '../vm/qemu.js';

const USAGE = `usage: vfio-vm [options] [--] <command> [args…]

Boots the test-bed guest, runs <command> as root in the current directory
(shared read-write at the same path; the host root is visible read-only) and
exits with the command's status.

options:
  -e, --env NAME=VALUE   set a variable for the command (repeatable)
  -t, --timeout SECONDS  kill the guest after this long (default $VFIO_VM_TIMEOUT or 1800)
  -v, --verbose          show the guest console and the test bed's steps on stderr
      --build-kernel     only build (or find in the cache) the guest kernel and print its path
  -h, --help             this text

environment:
  VFIO_VM_KERNEL        boot this bzImage instead of building one (modules from
                        VFIO_VM_MODULES or a modules/ directory beside it)
  VFIO_VM_KERNEL_SRC    build from this kernel tree instead of Debian's linux-source-6.12
  VFIO_VM_ACCEL         kvm, tcg or auto (default: probe KVM once, fall back to TCG)
  VFIO_VM_MEMORY        guest memory in MiB (default 3072)
  VFIO_VM_SMP           guest CPUs (default 2)
  VFIO_VM_BOOT_TIMEOUT  seconds until the guest must be up (default 120)
  VFIO_VM_CACHE         cache directory (default ~/.cache/vfio-vm)
  VFIO_VM_PARALLEL      1 lets guests run side by side (default: one at a time per machine)

exit status: the command's own; 124 when the guest timed out; 125 when the
test bed failed (missing packages, bad kernel, kernel panic, guest hang at boot).`;

/** Variables passed from the host to the guest command as they are. */
const FORWARDED = ['PATH', 'TERM', 'CI', 'NO_COLOR', 'FORCE_COLOR', 'NODE_OPTIONS', 'LANG', 'LC_ALL', 'TZ'];

export interface ParsedArgs {
  argv: string[];
  env: Record<string, string>;
  timeoutS: number | null;
  verbose: boolean;
  buildKernel: boolean;
  help: boolean;
}

export function parseArgs(args: string[]): ParsedArgs {
  const out: ParsedArgs = { argv: [], env: {}, timeoutS: null, verbose: false, buildKernel: false, help: false };
  let i = 0;
  const value = (opt: string): string => {
    const v = args[++i];
    if (v === undefined) throw new VmError(`${opt} needs a value\n${USAGE}`, 2);
    return v;
  };
  for (; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      i++;
      break;
    }
    if (!a.startsWith('-') || a === '-') break;
    if (a === '-h' || a === '--help') out.help = true;
    else if (a === '-v' || a === '--verbose') out.verbose = true;
    else if (a === '--build-kernel') out.buildKernel = true;
    else if (a === '-e' || a === '--env') {
      const kv = value(a);
      const eq = kv.indexOf('=');
      if (eq <= 0 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(kv.slice(0, eq))) throw new VmError(`${a} expects NAME=VALUE, got "${kv}"`, 2);
      out.env[kv.slice(0, eq)] = kv.slice(eq + 1);
    } else if (a === '-t' || a === '--timeout') {
      out.timeoutS = positive(value(a), a);
    } else throw new VmError(`unknown option ${a}\n${USAGE}`, 2);
  }
  out.argv = args.slice(i);
  return out;
}

function positive(v: string, what: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new VmError(`${what}: expected a positive number, got "${v}"`, 2);
  return n;
}

/** The guest command's environment: a fixed base, forwarded host variables, VFIO_* (not VFIO_VM_*), then -e. */
export function guestEnv(host: NodeJS.ProcessEnv, extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {
    HOME: '/tmp/home',
    TMPDIR: '/tmp',
    USER: 'root',
    VFIO_VM_GUEST: '1',
    npm_config_cache: '/tmp/npm-cache',
    npm_config_update_notifier: 'false',
  };
  for (const k of FORWARDED) if (host[k] !== undefined) env[k] = host[k]!;
  for (const [k, v] of Object.entries(host)) if (k.startsWith('VFIO_') && !k.startsWith('VFIO_VM_') && v !== undefined) env[k] = v;
  env.PATH ??= '/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin';
  return { ...env, ...extra };
}

function keepRecentLogs(dir: string, keep: number): void {
  const files = readdirSync(dir).filter((f) => f.endsWith('.log')).sort();
  for (const f of files.slice(0, Math.max(0, files.length - keep))) rmSync(join(dir, f), { force: true });
}

export async function main(args: string[]): Promise<number> {
  const opts = parseArgs(args);
  if (opts.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  setVerbose(opts.verbose);
  const env = process.env;
  if (opts.buildKernel) {
    const k = await resolveKernel(env);
    process.stdout.write(`${k.bzImage}\n`);
    return 0;
  }
  if (opts.argv.length === 0) throw new VmError(`no command given\n${USAGE}`, 2);
  const share = resolve(process.cwd());
  if (share === '/') throw new VmError('refusing to share / read-write with the guest; run from a project directory', 2);
  const timeoutS = opts.timeoutS ?? (env.VFIO_VM_TIMEOUT ? positive(env.VFIO_VM_TIMEOUT, 'VFIO_VM_TIMEOUT') : 1800);
  const bootTimeoutS = env.VFIO_VM_BOOT_TIMEOUT ? positive(env.VFIO_VM_BOOT_TIMEOUT, 'VFIO_VM_BOOT_TIMEOUT') : 120;
  const memoryMiB = env.VFIO_VM_MEMORY ? Math.round(positive(env.VFIO_VM_MEMORY, 'VFIO_VM_MEMORY')) : 3072;
  const smp = env.VFIO_VM_SMP ? Math.round(positive(env.VFIO_VM_SMP, 'VFIO_VM_SMP')) : 2;

  const kernel = await resolveKernel(env);
  ensureRequirements(RUN_REQUIREMENTS);
  debug(`kernel ${kernel.release ?? '?'} (${kernel.origin}): ${kernel.bzImage}`);
  const logDir = join(cacheRoot(env), 'logs');
  mkdirSync(logDir, { recursive: true });
  keepRecentLogs(logDir, 30);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  // One guest at a time per machine: two TCG guests on 2 cores both crawl.
  // VFIO_VM_PARALLEL=1 opts out.
  const locked = <T>(fn: () => Promise<T>): Promise<T> =>
    env.VFIO_VM_PARALLEL === '1' ? fn() : withLock(join(cacheRoot(env), 'run.lock'), fn, 'another guest run');
  return locked(() => boot(opts, env, kernel, { logDir, stamp, timeoutS, bootTimeoutS, memoryMiB, smp, share }));
}

interface BootParams {
  logDir: string;
  stamp: string;
  timeoutS: number;
  bootTimeoutS: number;
  memoryMiB: number;
  smp: number;
  share: string;
}

async function boot(opts: ParsedArgs, env: NodeJS.ProcessEnv, kernel: Kernel, p: BootParams): Promise<number> {
  const { logDir, stamp, timeoutS, bootTimeoutS, memoryMiB, smp, share } = p;
  const work = mkdtempSync(join(tmpdir(), 'vfio-vm-'));
  try {
    const base = baseInitramfs(kernel);
    const spec = (accel: 'kvm' | 'tcg', initrd: string, shareDir: string | null, append: string[] = []): MachineSpec => ({
      accel,
      bzImage: kernel.bzImage,
      initrd,
      memoryMiB,
      smp,
      share: shareDir,
      sockDir: work,
      append,
    });
    const { accel, reason } = await chooseAccel(env, async () => {
      const initrd = join(work, 'probe.cpio');
      writeFileSync(initrd, base);
      debug('probing KVM with a short guest');
      await runVm({
        spec: spec('kvm', initrd, null, ['vfio_vm.probe=1']),
        verbose: opts.verbose,
        timeoutMs: 60_000,
        bootTimeoutMs: 60_000,
        logPath: join(logDir, `${stamp}-kvm-probe.log`),
        stdout: process.stderr,
        stderr: process.stderr,
      });
    });
    debug(`accelerator ${accel} (${reason})`);
    const initrd = join(work, 'initrd.cpio');
    writeFileSync(
      initrd,
      Buffer.concat([
        base,
        runInitramfs({
          argv: opts.argv,
          share,
          cwd: share,
          env: guestEnv(env, opts.env),
          modules: ['mtty', 'mdpy', 'mbochs'],
          shareCache: 'loose',
        }),
      ]),
    );
    const r = await runVm({
      spec: spec(accel, initrd, share),
      verbose: opts.verbose,
      timeoutMs: timeoutS * 1000,
      bootTimeoutMs: bootTimeoutS * 1000,
      logPath: join(logDir, `${stamp}-console.log`),
      stdout: process.stdout,
      stderr: process.stderr,
    });
    debug(`guest ready after ${r.bootMs === null ? '?' : (r.bootMs / 1000).toFixed(1)} s, finished after ${(r.totalMs / 1000).toFixed(1)} s, status ${r.status} (${accel})`);
    if (r.warnings) say(`the guest kernel printed ${r.warnings} WARNING splat(s); see ${join(logDir, `${stamp}-console.log`)}`);
    return r.status;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const isMain = process.argv[1] && /(^|\/)vfio-vm\.(ts|js)$/.test(process.argv[1]);
if (isMain) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      if (err instanceof VmError) {
        say(err.message);
        process.exitCode = err.exitCode;
      } else {
        say(`internal error: ${(err as Error).stack ?? String(err)}`);
        process.exitCode = 125;
      }
    },
  );
}
