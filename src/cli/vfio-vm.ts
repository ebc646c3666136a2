#!/usr/bin/env node
/**
 * The `vfio-vm` command: {@link runInVm} on the command line. Runs a command as
 * root in the vfio test-bed guest and exits with its status.
 *
 *   npx vfio-vm -- npx vitest run
 *   npx vfio-vm -e DEBUG=1 node my-driver.js
 */
import { VmError, say, setVerbose } from '../vm/common.js';
import { isEntryPoint } from './entry.js';
import { resolveKernel } from '../vm/kernel.js';
import { positive, runInVm } from '../vm/run.js';

export { guestEnv } from '../vm/run.js';

/** The `vfio-vm --help` text. @internal */
export const USAGE = `usage: vfio-vm [options] [--] <command> [args…]

Boots the vfio test-bed guest (QEMU; Linux 6.12 with VFIO, iommufd, vfio-pci,
the mtty/mdpy/mbochs mdev samples and QEMU's edu device behind an emulated
Intel IOMMU), runs <command> there as root in the current directory, and exits
with the command's status. The project around the current directory (the
nearest directory with a package.json) is shared read-write at its own path;
the rest of the host root is a copy-on-write snapshot: the guest may install
or delete anything there, and the host never sees it. The first run builds the
guest kernel from Debian's linux-source-6.12 (minutes) and caches it.

options:
  -e, --env NAME=VALUE   set a variable for the command (repeatable)
  -s, --share DIR        share DIR read-write instead of the project around the
                         current directory (it must contain the current directory)
  -t, --timeout SECONDS  kill the guest after this long (default $VFIO_VM_TIMEOUT or 1800)
  -v, --verbose          show the guest console and the test bed's steps on stderr
      --build-kernel     only build (or find in the cache) the guest kernel and print its path
  -h, --help             this text

environment:
  VFIO_VM_KERNEL        boot this bzImage instead of building one (modules from
                        VFIO_VM_MODULES or a modules/ directory beside it)
  VFIO_VM_MODULES       a directory holding lib/modules/<release>/ for VFIO_VM_KERNEL
  VFIO_VM_KERNEL_SRC    build from this kernel tree instead of Debian's linux-source-6.12
  VFIO_VM_ACCEL         kvm, tcg or auto (default: probe KVM once, fall back to TCG)
  VFIO_VM_MEMORY        guest memory in MiB (default 3072)
  VFIO_VM_SMP           guest CPUs (default 2)
  VFIO_VM_TIMEOUT       default for --timeout, in seconds
  VFIO_VM_BOOT_TIMEOUT  seconds until the guest must be up (default 120)
  VFIO_VM_CACHE         cache directory (default $XDG_CACHE_HOME/vfio-vm or ~/.cache/vfio-vm)
  VFIO_VM_PARALLEL      1 lets guests run side by side (default: one at a time per machine)
The command sees PATH, TERM, CI, NO_COLOR, FORCE_COLOR, NODE_OPTIONS, LANG,
LC_ALL, TZ and every VFIO_* variable but VFIO_VM_* from this environment, plus
HOME=/tmp/home, TMPDIR=/tmp and VFIO_VM_GUEST=1.

When QEMU, busybox or the kernel build's tools are missing, vfio-vm installs
them with apt-get when run as root, and otherwise prints the command to run.

exit status: the command's own (127 when the guest has no such command); 2 for
a usage error; 124 when the guest timed out; 125 when the test bed failed
(missing packages, bad kernel, kernel panic, guest hang at boot).`;

/** The parsed command line. @internal */
export interface ParsedArgs {
  argv: string[];
  env: Record<string, string>;
  share: string | null;
  timeoutS: number | null;
  verbose: boolean;
  buildKernel: boolean;
  help: boolean;
}

/** Parses options up to the first word or `--`; the rest is the command. @internal */
export function parseArgs(args: string[]): ParsedArgs {
  const out: ParsedArgs = { argv: [], env: {}, share: null, timeoutS: null, verbose: false, buildKernel: false, help: false };
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
    } else if (a === '-s' || a === '--share') {
      out.share = value(a);
    } else throw new VmError(`unknown option ${a}\n${USAGE}`, 2);
  }
  out.argv = args.slice(i);
  return out;
}

/** Runs the command line `args`; resolves to the exit status. @internal */
export async function main(args: string[]): Promise<number> {
  const opts = parseArgs(args);
  if (opts.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  setVerbose(opts.verbose);
  if (opts.buildKernel) {
    const k = await resolveKernel(process.env);
    process.stdout.write(`${k.bzImage}\n`);
    return 0;
  }
  if (opts.argv.length === 0) throw new VmError(`no command given\n${USAGE}`, 2);
  const r = await runInVm(opts.argv, {
    env: opts.env,
    verbose: opts.verbose,
    stdout: 'inherit',
    stderr: 'inherit',
    ...(opts.share !== null ? { share: opts.share } : {}),
    ...(opts.timeoutS !== null ? { timeoutS: opts.timeoutS } : {}),
  });
  return r.status;
}


if (isEntryPoint(import.meta.url)) {
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
