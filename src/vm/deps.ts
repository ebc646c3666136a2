import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { VmError, say } from './common.js';

/** One host requirement: satisfied when `probe` holds, installed from Debian package `pkg`. */
export interface Requirement {
  what: string;
  pkg: string;
  probe: () => boolean;
}

export function onPath(cmd: string, path = process.env.PATH ?? ''): boolean {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, cmd), constants.X_OK);
      return true;
    } catch {
      /* next */
    }
  }
  // apt installs some tools (depmod) under /sbin, which a non-root PATH may lack.
  return ['/usr/sbin', '/sbin'].some((d) => existsSync(join(d, cmd)));
}

const cmd = (name: string, pkg: string): Requirement => ({ what: name, pkg, probe: () => onPath(name) });
const file = (path: string, pkg: string): Requirement => ({ what: path, pkg, probe: () => existsSync(path) });

/** Needed to boot any guest. */
export const RUN_REQUIREMENTS: Requirement[] = [
  cmd('qemu-system-x86_64', 'qemu-system-x86'),
  file('/bin/busybox', 'busybox-static'),
  // The guest runs the host's root: the NVMe cross-checks use nvme-cli, the NVMe bench fio,
  // the mdev definition interop tests mdevctl.
  cmd('nvme', 'nvme-cli'),
  cmd('fio', 'fio'),
  cmd('mdevctl', 'mdevctl'),
];

export const DEBIAN_SOURCE_TARBALL = '/usr/src/linux-source-6.12.tar.xz';

/** Needed to build the guest kernel (not when VFIO_VM_KERNEL names a ready one). */
export function buildRequirements(debianSource: boolean): Requirement[] {
  const reqs = [
    cmd('make', 'make'),
    cmd('gcc', 'gcc'),
    cmd('flex', 'flex'),
    cmd('bison', 'bison'),
    cmd('bc', 'bc'),
    cmd('perl', 'perl'),
    cmd('depmod', 'kmod'),
    cmd('xz', 'xz-utils'),
    cmd('cpio', 'cpio'),
    file('/usr/include/libelf.h', 'libelf-dev'),
    file('/usr/include/openssl/ssl.h', 'libssl-dev'),
  ];
  if (debianSource) reqs.push(file(DEBIAN_SOURCE_TARBALL, 'linux-source-6.12'));
  return reqs;
}

/**
 * Installs what is missing with apt-get when running as root (as CI does);
 * otherwise prints the exact command and fails.
 */
export function ensureRequirements(reqs: Requirement[], uid = process.getuid?.()): void {
  const missing = reqs.filter((r) => !r.probe());
  if (missing.length === 0) return;
  const pkgs = [...new Set(missing.map((r) => r.pkg))].sort();
  const command = `apt-get update && apt-get install -y --no-install-recommends ${pkgs.join(' ')}`;
  const names = missing.map((r) => r.what).join(', ');
  if (uid !== 0) {
    throw new VmError(`missing ${names}. Install them as root with:\n  sudo sh -c '${command}'`);
  }
  say(`installing ${pkgs.join(' ')} (missing: ${names})`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update'], ['install', '-y', '--no-install-recommends', ...pkgs]]) {
    const r = spawnSync('apt-get', args, { stdio: ['ignore', 'inherit', 'inherit'], env });
    if (r.status !== 0) throw new VmError(`apt-get ${args[0]} failed (exit ${r.status ?? r.signal}); run: ${command}`);
  }
  const still = reqs.filter((r) => !r.probe());
  if (still.length) throw new VmError(`still missing after apt-get: ${still.map((r) => r.what).join(', ')}`);
}
