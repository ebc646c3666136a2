import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { release as hostRelease } from 'node:os';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { ConsoleScanner } from './console.js';
import { VmError, cacheRoot, debug } from './common.js';

export type Accel = 'kvm' | 'tcg';

export interface MachineSpec {
  accel: Accel;
  bzImage: string;
  initrd: string;
  memoryMiB: number;
  smp: number;
  /** Host directory shared read-write (9p tag "share"), or null (probe runs). */
  share: string | null;
  sockDir: string;
  /** Extra kernel command-line words. */
  append: string[];
  /** A raw image backing QEMU's emulated NVMe controller (on a PCIe root port), or null for none (probe runs). */
  nvmeImage: string | null;
}

/** The size of the NVMe test image the bed creates (sparse): 64 MiB. */
export const NVME_IMAGE_BYTES = 64 * 1024 * 1024;
/** The NVMe controller's serial number in the bed (what Identify Controller reports as `sn`). */
export const NVME_SERIAL = 'vfio-bed-nvme0';

export const CHANNELS = ['console', 'stdout', 'stderr', 'status'] as const;
export type Channel = (typeof CHANNELS)[number];

/** The kernel command line: console on ttyS0, VT-d on, and every oops a panic that stops the VM. */
export function kernelCmdline(extra: string[], verbose: boolean): string {
  return [
    'console=ttyS0',
    'intel_iommu=on',
    'panic=-1',
    'oops=panic',
    'rdinit=/init',
    ...(verbose ? [] : ['quiet']),
    ...extra,
  ].join(' ');
}

/** The qemu-system-x86_64 argument vector for one guest. */
export function qemuArgs(m: MachineSpec, verbose = false): string[] {
  const sock = (c: Channel): string => join(m.sockDir, `${c}.sock`);
  const args = [
    '-machine',
    m.accel === 'kvm' ? 'q35,kernel-irqchip=split' : 'q35',
    '-accel',
    m.accel === 'kvm' ? 'kvm' : 'tcg,thread=multi',
    '-cpu',
    m.accel === 'kvm' ? 'host' : 'max',
    '-smp',
    String(m.smp),
    '-m',
    `${m.memoryMiB}M`,
    '-nodefaults',
    '-no-user-config',
    '-nographic',
    '-no-reboot',
    // The vIOMMU must exist before the PCI devices it translates for.
    '-device',
    'intel-iommu,intremap=on,caching-mode=on',
    '-device',
    'edu',
    ...(m.nvmeImage === null
      ? []
      : [
          // QEMU's NVMe controller as a PCIe function (MSI-X, and vfio-pci's ERR IRQ) behind a root port.
          '-device',
          'pcie-root-port,id=rp0,chassis=1,slot=1',
          '-drive',
          `file=${m.nvmeImage},if=none,id=nvm0,format=raw`,
          '-device',
          `nvme,serial=${NVME_SERIAL},drive=nvm0,bus=rp0`,
        ]),
    '-kernel',
    m.bzImage,
    '-initrd',
    m.initrd,
    '-append',
    kernelCmdline(m.append, verbose),
    '-chardev',
    `socket,id=console,path=${sock('console')}`,
    '-serial',
    'chardev:console',
    '-device',
    'virtio-serial-pci,id=vser0',
  ];
  for (const c of ['stdout', 'stderr', 'status'] as const) {
    args.push('-chardev', `socket,id=${c},path=${sock(c)}`, '-device', `virtserialport,bus=vser0.0,chardev=${c},name=vfio.${c}`);
  }
  const fsdev = (id: string, path: string, ro: boolean): void => {
    if (path.includes(',')) throw new VmError(`cannot share a path containing a comma over 9p: ${path}`);
    args.push(
      '-fsdev',
      `local,id=${id},path=${path},security_model=none,multidevs=remap${ro ? ',readonly=on' : ''}`,
      '-device',
      `virtio-9p-pci,fsdev=${id},mount_tag=${id}`,
    );
  };
  fsdev('hostroot', '/', true);
  if (m.share) fsdev('share', m.share, false);
  return args;
}

export interface RunResult {
  /** The guest command's exit status, or 0 for a successful probe. */
  status: number;
  /** ms from QEMU start to the guest's "ready" line (just before the command starts). */
  bootMs: number | null;
  totalMs: number;
  warnings: number;
}

export interface RunOptions {
  spec: MachineSpec;
  verbose: boolean;
  timeoutMs: number;
  bootTimeoutMs: number;
  logPath: string;
  stdout: Writable;
  stderr: Writable;
}

interface Listener {
  server: Server;
  connected: boolean;
  done: Promise<void>;
}

function listen(path: string, onSocket: (s: Socket) => void): Promise<Listener> {
  return new Promise((resolve, reject) => {
    let markDone!: () => void;
    const l: Listener = { server: createServer(), connected: false, done: new Promise<void>((r) => (markDone = r)) };
    l.server.once('connection', (s) => {
      l.connected = true;
      l.server.close();
      s.on('close', () => markDone());
      onSocket(s);
    });
    l.server.once('error', reject);
    l.server.listen(path, () => resolve(l));
  });
}

/** Boots one guest, streams its channels, and returns the command's status or throws VmError. */
export async function runVm(o: RunOptions): Promise<RunResult> {
  const started = Date.now();
  const scanner = new ConsoleScanner();
  const log = createWriteStream(o.logPath);
  let status = '';
  let bootMs: number | null = null;
  let readyLine = '';
  const listeners = await Promise.all([
    listen(join(o.spec.sockDir, 'console.sock'), (s) =>
      s.on('data', (b: Buffer) => {
        log.write(b);
        const text = b.toString('utf8');
        if (o.verbose) process.stderr.write(text);
        scanner.push(text);
        if (bootMs === null) {
          readyLine = (readyLine + text).slice(-64);
          if (readyLine.includes('vfio-vm: ready')) {
            bootMs = Date.now() - started;
            clearTimeout(bootTimer);
          }
        }
        if (scanner.verdict) kill(5000);
      }),
    ),
    listen(join(o.spec.sockDir, 'stdout.sock'), (s) => s.pipe(o.stdout, { end: false })),
    listen(join(o.spec.sockDir, 'stderr.sock'), (s) => s.pipe(o.stderr, { end: false })),
    listen(join(o.spec.sockDir, 'status.sock'), (s) => s.on('data', (b: Buffer) => (status += b.toString('utf8')))),
  ]);

  const args = qemuArgs(o.spec, o.verbose);
  debug(`qemu-system-x86_64 ${args.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(' ')}`);
  const qemu = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let qemuOut = '';
  const keepQemu = (b: Buffer): void => {
    qemuOut = (qemuOut + b.toString('utf8')).slice(-4096);
    log.write(b);
  };
  qemu.stdout.on('data', keepQemu);
  qemu.stderr.on('data', keepQemu);

  let timedOut = false;
  let bootTimedOut = false;
  let killTimer: NodeJS.Timeout | null = null;
  function kill(graceMs: number): void {
    if (killTimer) return;
    killTimer = setTimeout(() => qemu.kill('SIGKILL'), graceMs);
  }
  const timer = setTimeout(() => {
    timedOut = true;
    qemu.kill('SIGKILL');
  }, o.timeoutMs);
  const bootTimer = setTimeout(() => {
    if (bootMs === null && !status) {
      bootTimedOut = true;
      qemu.kill('SIGKILL');
    }
  }, o.bootTimeoutMs);
  // Ctrl-C on the host stops the guest too.
  const onSignal = (): void => {
    qemu.kill('SIGKILL');
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
    qemu.once('error', (error) => resolve({ code: null, signal: null, error }));
    qemu.once('close', (code, signal) => resolve({ code, signal }));
  });
  clearTimeout(timer);
  clearTimeout(bootTimer);
  if (killTimer) clearTimeout(killTimer);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  // Whatever the guest wrote before it stopped is still in the sockets: drain it.
  // (unref: a won race must not hold the process open for the rest of the grace period)
  await Promise.race([Promise.all(listeners.filter((l) => l.connected).map((l) => l.done)), new Promise((r) => setTimeout(r, 5000).unref())]);
  for (const l of listeners) if (!l.connected) l.server.close();
  await new Promise<void>((r) => log.end(() => r()));

  const totalMs = Date.now() - started;
  const secs = (ms: number): string => `${(ms / 1000).toFixed(0)} s`;
  const context = (): string => `\n--- last console lines ---\n${scanner.tail(40)}\n--- full console log: ${o.logPath}`;
  if (exit.error) throw new VmError(`cannot start qemu-system-x86_64: ${exit.error.message}`);
  if (scanner.verdict) throw new VmError(`the guest kernel died (${scanner.verdict.kind}): ${scanner.verdict.line}${context()}`);
  if (timedOut) throw new VmError(`the guest did not finish within ${secs(o.timeoutMs)} (VFIO_VM_TIMEOUT); it was killed${context()}`, 124);
  if (bootTimedOut) throw new VmError(`the guest did not come up within ${secs(o.bootTimeoutMs)} (VFIO_VM_BOOT_TIMEOUT)${context()}`);
  const bed = /bed-error=(.*)/.exec(status);
  if (bed) throw new VmError(`test-bed setup failed in the guest: ${bed[1]!.trim()}${context()}`);
  const m = /exit=(\d+)/.exec(status);
  if (m) return { status: Number(m[1]), bootMs, totalMs, warnings: scanner.warnings };
  if (/probe=ok/.test(status)) return { status: 0, bootMs, totalMs, warnings: scanner.warnings };
  const how = exit.signal ? `signal ${exit.signal}` : `exit ${exit.code}`;
  throw new VmError(`the guest stopped without reporting a status (qemu ${how})${qemuOut.trim() ? `\n--- qemu said ---\n${qemuOut.trim()}` : ''}${context()}`);
}

export function qemuVersion(): string {
  const r = spawnSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split('\n')[0]!.trim() : 'unknown';
}

export function kvmUsable(): boolean {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

interface AccelVerdict {
  key: string;
  accel: Accel;
  reason: string;
}

/**
 * KVM when it really works, else TCG. /dev/kvm can exist and still fail
 * ("KVM internal error"), so the first run on a machine boots a probe guest
 * under KVM and remembers the verdict, keyed by the QEMU version and the host kernel.
 */
export async function chooseAccel(env: NodeJS.ProcessEnv, probe: () => Promise<void>): Promise<{ accel: Accel; reason: string }> {
  const forced = env.VFIO_VM_ACCEL;
  if (forced && forced !== 'auto') {
    if (forced !== 'kvm' && forced !== 'tcg') throw new VmError(`VFIO_VM_ACCEL=${forced}: expected kvm, tcg or auto`);
    return { accel: forced, reason: 'VFIO_VM_ACCEL' };
  }
  if (!kvmUsable()) return { accel: 'tcg', reason: existsSync('/dev/kvm') ? '/dev/kvm is not accessible' : 'no /dev/kvm' };
  const key = `${qemuVersion()} on ${hostRelease()}`;
  const file = join(cacheRoot(env), 'accel.json');
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as AccelVerdict;
    if (v.key === key) return { accel: v.accel, reason: `cached probe: ${v.reason}` };
  } catch {
    /* no verdict yet */
  }
  let verdict: AccelVerdict;
  try {
    await probe();
    verdict = { key, accel: 'kvm', reason: 'a KVM guest booted' };
  } catch (e) {
    const first = ((e as Error).message.match(/KVM[^\n]*/) ?? [(e as Error).message.split('\n')[0]])[0]!;
    verdict = { key, accel: 'tcg', reason: `KVM probe failed: ${first}` };
  }
  mkdirSync(cacheRoot(env), { recursive: true });
  writeFileSync(file, JSON.stringify(verdict, null, 2) + '\n');
  return { accel: verdict.accel, reason: verdict.reason };
}
