import { lstatSync, readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { VmError, assetPath } from './common.js';
import { buildCpio, type CpioEntry } from './cpio.js';
import type { Kernel } from './kernel.js';
import { shExports, shJoin } from './shell.js';

export const BUSYBOX = '/bin/busybox';

function walk(root: string, dir: string, into: CpioEntry[]): void {
  for (const name of readdirSync(dir).sort()) {
    const full = join(dir, name);
    const rel = relative(root, full);
    // lstat: lib/modules/<rel>/build and source are links into the kernel trees.
    const st = lstatSync(full);
    if (st.isDirectory()) {
      into.push({ type: 'dir', name: rel });
      walk(root, full, into);
    } else if (st.isFile()) {
      into.push({ type: 'file', name: rel, data: readFileSync(full), mode: st.mode & 0o777 });
    }
  }
}

/** The fixed part: /init, busybox, /dev/console and the kernel's modules. */
export function baseInitramfs(kernel: Kernel, busybox = BUSYBOX): Buffer {
  let bb: Buffer;
  try {
    bb = readFileSync(busybox);
  } catch {
    throw new VmError(`cannot read ${busybox} (install busybox-static)`);
  }
  const entries: CpioEntry[] = [
    ...['bin', 'dev', 'proc', 'sys', 'vm', 'host', 'tmp', 'lib'].map((name): CpioEntry => ({ type: 'dir', name })),
    { type: 'chardev', name: 'dev/console', major: 5, minor: 1 },
    { type: 'file', name: 'init', data: readFileSync(assetPath('init.sh')), mode: 0o755 },
    { type: 'file', name: 'bin/busybox', data: bb, mode: 0o755 },
  ];
  if (kernel.modulesRoot) {
    const libModules = join(kernel.modulesRoot, 'lib', 'modules');
    entries.push({ type: 'dir', name: 'lib/modules' });
    walk(kernel.modulesRoot, libModules, entries);
  }
  return buildCpio(entries);
}

export interface GuestCommand {
  argv: string[];
  /** Absolute host path shared read-write at the same path in the guest. */
  share: string;
  /** Working directory in the guest (defaults to the share). */
  cwd: string;
  env: Record<string, string>;
  /** Modules the guest loads before the command. */
  modules: string[];
  shareCache: string;
}

export function commandScript(cmd: GuestCommand): string {
  if (cmd.argv.length === 0) throw new VmError('no command given');
  const name = shJoin([cmd.argv[0]!]);
  return (
    `${shExports(cmd.env)}cd ${shJoin([cmd.cwd])} || exit 126\n` +
    `command -v ${name} >/dev/null 2>&1 || { echo "vfio-vm: "${name}": command not found in the guest (PATH=$PATH)" >&2; exit 127; }\n` +
    `exec ${shJoin(cmd.argv)}\n`
  );
}

/** The per-run part, appended after the base archive: /vm/env and /vm/cmd.sh. */
export function runInitramfs(cmd: GuestCommand): Buffer {
  const env = shExports({
    VFIO_VM_SHARE: cmd.share,
    VFIO_VM_SHARE_CACHE: cmd.shareCache,
    VFIO_VM_MODULES: cmd.modules.join(' '),
  });
  return buildCpio([
    { type: 'file', name: 'vm/env', data: env },
    { type: 'file', name: 'vm/cmd.sh', data: commandScript(cmd), mode: 0o755 },
  ]);
}
