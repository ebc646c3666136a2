/**
 * `npm run demo`: examples/demo.ts where the devices are. On a host with
 * /dev/vfio, run as root, it runs right here; anywhere else it runs in the
 * test-bed guest (building or reusing the guest kernel first, with progress).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { packageRoot, say } from '../src/vm/common.js';
import { VmError, runInVm } from '../src/vm/index.js';

const args = ['--import', 'tsx', 'examples/demo.ts', ...process.argv.slice(2)];
process.chdir(packageRoot());
if (existsSync('/dev/vfio/vfio') && process.getuid?.() === 0) {
  say('running the demo on this machine (/dev/vfio is here)');
  const r = spawnSync(process.execPath, args, { stdio: 'inherit' });
  process.exitCode = r.status ?? 1;
} else {
  say(`no ${existsSync('/dev/vfio/vfio') ? 'root' : '/dev/vfio'} here: running the demo in the test-bed guest (QEMU)`);
  try {
    const r = await runInVm(['node', ...args], { stdout: 'inherit', stderr: 'inherit' });
    process.exitCode = r.status;
  } catch (e) {
    say(e instanceof VmError ? e.message : String((e as Error).stack ?? e));
    process.exitCode = e instanceof VmError ? e.exitCode : 1;
  }
}
