/**
 * Running one command in the test-bed guest: the project shared read-write at
 * its own path, the rest of the host root as a copy-on-write snapshot, the
 * kernel built or taken from the cache, and the command's exit status and
 * output handed back as they were.
 */
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { VmError, cacheRoot, debug, say, setVerbose, withLock } from './common.js';
import { RUN_REQUIREMENTS, ensureRequirements } from './deps.js';
import { baseInitramfs, runInitramfs } from './initramfs.js';
import { resolveKernel, type Kernel } from './kernel.js';
import { NVME_IMAGE_BYTES, chooseAccel, runVm, type Accel, type MachineSpec } from './qemu.js';

/** Where a guest stream goes: captured into the result (`'pipe'`), this process's own stream (`'inherit'`), or any Writable. */
export type VmOutput = 'pipe' | 'inherit' | Writable;

/** Options of {@link runInVm}. */
export interface RunInVmOptions {
  /**
   * The working directory of the command in the guest, a host path (default:
   * `process.cwd()`). It must lie inside `share`.
   */
  cwd?: string;
  /**
   * The host directory shared read-write with the guest, at the same path
   * (default: the project around `cwd`, i.e. the nearest directory above it
   * that has a package.json, else `cwd` itself). Everything else of the host
   * root is a copy-on-write snapshot: the guest may change it, the host never sees it.
   */
  share?: string;
  /**
   * Variables for the command, on top of the base the guest always gets
   * (HOME=/tmp/home, TMPDIR=/tmp, VFIO_VM_GUEST=1), the forwarded host
   * variables (PATH, TERM, CI, NO_COLOR, FORCE_COLOR, NODE_OPTIONS, LANG,
   * LC_ALL, TZ) and every `VFIO_*` but `VFIO_VM_*`.
   */
  env?: Record<string, string>;
  /** Kill the guest after this many seconds (default `$VFIO_VM_TIMEOUT` or 1800); the run then fails with a VmError of exit code 124. */
  timeoutS?: number;
  /** Show the guest console and the bed's steps on stderr. */
  verbose?: boolean;
  /** Where the command's stdout goes (default `'pipe'`: returned as `stdout`). */
  stdout?: VmOutput;
  /** Where the command's stderr goes (default `'pipe'`: returned as `stderr`). */
  stderr?: VmOutput;
  /** The configuration variables (`VFIO_VM_*`) and the variables forwarded to the guest (default `process.env`). */
  hostEnv?: NodeJS.ProcessEnv;
}

/** What {@link runInVm} returns once the command has exited in the guest. */
export interface VmRunResult {
  /** The command's exit status (128+N when a signal N ended it; 127 when the guest has no such command). */
  status: number;
  /** Its stdout, byte for byte, when `stdout` was `'pipe'`; else empty. */
  stdout: Buffer;
  /** Its stderr, byte for byte, when `stderr` was `'pipe'`; else empty. */
  stderr: Buffer;
  /** Milliseconds from QEMU's start to the moment the command started, or null if unknown. */
  bootMs: number | null;
  /** Milliseconds from QEMU's start to its exit. */
  totalMs: number;
  /** The accelerator the guest ran on: 'kvm' or 'tcg' (QEMU's emulator, when KVM is absent or fails). */
  accel: 'kvm' | 'tcg';
  /** The guest kernel that ran the command. */
  kernel: {
    /** Its release ('6.12.118'), or null when unknown. */
    release: string | null;
    /** Where it came from: 'cache <key>' or 'VFIO_VM_KERNEL'. */
    origin: string;
  };
}

/** Variables passed from the host to the guest command as they are. */
const FORWARDED = ['PATH', 'TERM', 'CI', 'NO_COLOR', 'FORCE_COLOR', 'NODE_OPTIONS', 'LANG', 'LC_ALL', 'TZ'];

/**
 * The guest command's environment: a fixed base (HOME=/tmp/home, TMPDIR=/tmp,
 * VFIO_VM_GUEST=1, npm's cache in /tmp), the forwarded host variables (PATH,
 * TERM, CI, NO_COLOR, FORCE_COLOR, NODE_OPTIONS, LANG, LC_ALL, TZ), every
 * `VFIO_*` but `VFIO_VM_*`, then `extra`.
 */
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

/** The project around `dir`: the nearest directory at or above it that holds a package.json, else `dir`. */
export function projectRoot(dir: string): string {
  for (let d = resolve(dir); ; d = dirname(d)) {
    if (existsSync(join(d, 'package.json'))) return d;
    if (dirname(d) === d) return resolve(dir);
  }
}

/** A positive number from a variable or option, or a usage error (exit 2) naming it. */
export function positive(v: string, what: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new VmError(`${what}: expected a positive number, got "${v}"`, 2);
  return n;
}

function directory(path: string, what: string): string {
  const abs = resolve(path);
  let ok = false;
  try {
    ok = statSync(abs).isDirectory();
  } catch {
    /* reported below */
  }
  if (!ok) throw new VmError(`${what} ${abs}: no such directory`, 2);
  return abs;
}

function keepRecentLogs(dir: string, keep: number): void {
  const files = readdirSync(dir).filter((f) => f.endsWith('.log')).sort();
  for (const f of files.slice(0, Math.max(0, files.length - keep))) rmSync(join(dir, f), { force: true });
}

function sink(o: VmOutput | undefined, own: NodeJS.WriteStream, chunks: Buffer[]): Writable {
  if (o === 'inherit') return own;
  if (o === undefined || o === 'pipe') {
    return new Writable({
      write(chunk: Buffer, _encoding, done) {
        chunks.push(chunk);
        done();
      },
    });
  }
  return o;
}

/**
 * Boots the test-bed guest (Linux 6.12 with VFIO, iommufd, vfio-pci, the
 * mtty/mdpy/mbochs samples and QEMU's edu device behind an emulated Intel
 * IOMMU), runs `argv` there as root, and returns its exit status and output.
 *
 * The kernel is built from Debian's linux-source-6.12 on first use (minutes,
 * with progress on stderr) and cached under `$VFIO_VM_CACHE`
 * (default ~/.cache/vfio-vm); QEMU and busybox are installed with apt-get when
 * running as root, or named with the command to install them otherwise. One
 * guest runs at a time per machine (others wait), unless VFIO_VM_PARALLEL=1.
 *
 * @example
 * ```ts
 * import { runInVm } from 'vfio/vm';
 * const r = await runInVm(['node', '-e', 'console.log(process.getuid())']);
 * console.log(r.status, r.stdout.toString()); // 0 '0\n'
 * ```
 * @throws VmError when the bed itself fails: exit code 2 for bad options, 125
 *   for a missing package, a bad kernel, a panic or a guest that did not come
 *   up, 124 when the command ran past the timeout. The command's own failure
 *   is not an error: it is the returned `status`.
 */
export async function runInVm(argv: readonly string[], options: RunInVmOptions = {}): Promise<VmRunResult> {
  const env = options.hostEnv ?? process.env;
  if (!Array.isArray(argv) || argv.length === 0 || argv[0] === '') throw new VmError('no command given: runInVm needs the command and its arguments', 2);
  for (const a of argv) if (typeof a !== 'string') throw new VmError(`every argument must be a string, got ${typeof a}`, 2);
  if (options.verbose !== undefined) setVerbose(options.verbose);
  const cwd = directory(options.cwd ?? process.cwd(), 'working directory');
  const share = options.share !== undefined ? directory(options.share, 'share') : projectRoot(cwd);
  if (share === '/') throw new VmError('refusing to share / read-write with the guest; run from a project directory or pass a share', 2);
  if (cwd !== share && !cwd.startsWith(share + '/')) throw new VmError(`the working directory ${cwd} is outside the share ${share}`, 2);
  const timeoutS = options.timeoutS ?? (env.VFIO_VM_TIMEOUT ? positive(env.VFIO_VM_TIMEOUT, 'VFIO_VM_TIMEOUT') : 1800);
  if (!(timeoutS > 0)) throw new VmError(`timeoutS: expected a positive number, got ${timeoutS}`, 2);
  const bootTimeoutS = env.VFIO_VM_BOOT_TIMEOUT ? positive(env.VFIO_VM_BOOT_TIMEOUT, 'VFIO_VM_BOOT_TIMEOUT') : 120;
  const memoryMiB = env.VFIO_VM_MEMORY ? Math.round(positive(env.VFIO_VM_MEMORY, 'VFIO_VM_MEMORY')) : 3072;
  const smp = env.VFIO_VM_SMP ? Math.round(positive(env.VFIO_VM_SMP, 'VFIO_VM_SMP')) : 2;
  const extra = options.env ?? {};
  for (const k of Object.keys(extra)) if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new VmError(`not a valid environment variable name: ${k}`, 2);

  ensureRequirements(RUN_REQUIREMENTS);
  const kernel = await resolveKernel(env);
  debug(`kernel ${kernel.release ?? '?'} (${kernel.origin}): ${kernel.bzImage}`);
  const logDir = join(cacheRoot(env), 'logs');
  mkdirSync(logDir, { recursive: true });
  keepRecentLogs(logDir, 30);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const run: GuestRun = {
    argv: [...argv],
    env: guestEnv(env, extra),
    verbose: options.verbose ?? false,
    stdout: sink(options.stdout, process.stdout, out),
    stderr: sink(options.stderr, process.stderr, err),
  };
  const params: BootParams = { logDir, stamp, timeoutS, bootTimeoutS, memoryMiB, smp, share, cwd };
  // One guest at a time per machine: two TCG guests on 2 cores both crawl.
  const r =
    env.VFIO_VM_PARALLEL === '1'
      ? await boot(run, env, kernel, params)
      : await withLock(join(cacheRoot(env), 'run.lock'), () => boot(run, env, kernel, params), 'another guest run');
  return { ...r, stdout: Buffer.concat(out), stderr: Buffer.concat(err), kernel: { release: kernel.release, origin: kernel.origin } };
}

interface GuestRun {
  argv: string[];
  env: Record<string, string>;
  verbose: boolean;
  stdout: Writable;
  stderr: Writable;
}

interface BootParams {
  logDir: string;
  stamp: string;
  timeoutS: number;
  bootTimeoutS: number;
  memoryMiB: number;
  smp: number;
  share: string;
  cwd: string;
}

async function boot(run: GuestRun, env: NodeJS.ProcessEnv, kernel: Kernel, p: BootParams): Promise<Omit<VmRunResult, 'stdout' | 'stderr' | 'kernel'>> {
  const { logDir, stamp, timeoutS, bootTimeoutS, memoryMiB, smp, share, cwd } = p;
  const work = mkdtempSync(join(tmpdir(), 'vfio-vm-'));
  try {
    // A fresh, sparse, all-zero image behind the NVMe controller for every run.
    const nvmeImage = join(work, 'nvme.img');
    closeSync(openSync(nvmeImage, 'w'));
    truncateSync(nvmeImage, NVME_IMAGE_BYTES);
    const base = baseInitramfs(kernel);
    const spec = (accel: Accel, initrd: string, shareDir: string | null, append: string[] = []): MachineSpec => ({
      accel,
      bzImage: kernel.bzImage,
      initrd,
      memoryMiB,
      smp,
      share: shareDir,
      sockDir: work,
      append,
      nvmeImage: shareDir === null ? null : nvmeImage,
    });
    const { accel, reason } = await chooseAccel(env, async () => {
      const initrd = join(work, 'probe.cpio');
      writeFileSync(initrd, base);
      debug('probing KVM with a short guest');
      await runVm({
        spec: spec('kvm', initrd, null, ['vfio_vm.probe=1']),
        verbose: run.verbose,
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
      Buffer.concat([base, runInitramfs({ argv: run.argv, share, cwd, env: run.env, modules: ['mtty', 'mdpy', 'mbochs'], shareCache: 'loose' })]),
    );
    const r = await runVm({
      spec: spec(accel, initrd, share),
      verbose: run.verbose,
      timeoutMs: timeoutS * 1000,
      bootTimeoutMs: bootTimeoutS * 1000,
      logPath: join(logDir, `${stamp}-console.log`),
      stdout: run.stdout,
      stderr: run.stderr,
    });
    debug(`guest ready after ${r.bootMs === null ? '?' : (r.bootMs / 1000).toFixed(1)} s, finished after ${(r.totalMs / 1000).toFixed(1)} s, status ${r.status} (${accel})`);
    if (r.warnings) say(`the guest kernel printed ${r.warnings} WARNING splat(s); see ${join(logDir, `${stamp}-console.log`)}`);
    return { status: r.status, bootMs: r.bootMs, totalMs: r.totalMs, accel };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
