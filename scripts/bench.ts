/**
 * `npm run bench [-- --quick] [-- --only NAME,…]`: compiles the C baseline
 * (bench/c/vfio_bench.c) with fixed flags, boots the test-bed guest and runs
 * bench/run.ts there, which writes bench-results/latest.json and latest.txt.
 * Exit status: the runner's (0 when every case ran; a missed target is a
 * result, not a failure), 1 when a case failed, 125 when the bed failed.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { VmError, packageRoot, say } from '../src/vm/common.js';
import { RUN_REQUIREMENTS, buildRequirements, ensureRequirements, onPath } from '../src/vm/deps.js';
import { main as vmMain } from '../src/cli/vfio-vm.js';

/** The C baseline's compiler flags: fixed, so runs compare. */
export const C_FLAGS = ['-O2', '-std=gnu11', '-Wall', '-Wextra', '-Werror'];

export function compileBaseline(root: string): string {
  const cc = ['cc', 'gcc'].find((c) => onPath(c));
  if (!cc) throw new VmError('no C compiler (cc or gcc) on PATH: apt-get install gcc', 125);
  const out = join(root, 'build', 'bench', 'vfio_bench');
  mkdirSync(join(root, 'build', 'bench'), { recursive: true });
  const r = spawnSync(cc, [...C_FLAGS, '-o', out, join(root, 'bench', 'c', 'vfio_bench.c')], { stdio: 'inherit' });
  if (r.status !== 0) throw new VmError(`compiling the C baseline failed (${cc} exit ${r.status})`, 1);
  return out;
}

async function run(args: string[]): Promise<number> {
  const root = packageRoot();
  process.chdir(root);
  ensureRequirements([...RUN_REQUIREMENTS, ...(process.env.VFIO_VM_KERNEL ? [] : buildRequirements(!process.env.VFIO_VM_KERNEL_SRC))]);
  say(`C baseline: ${compileBaseline(root)} (${C_FLAGS.join(' ')})`);
  return vmMain(['--', 'node', '--expose-gc', '--import', 'tsx', 'bench/run.ts', ...args]);
}

if (process.argv[1] && /(^|\/)bench\.(ts|js)$/.test(process.argv[1])) {
  run(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (e: unknown) => {
      say(e instanceof VmError ? e.message : String((e as Error).stack ?? e));
      process.exitCode = e instanceof VmError ? e.exitCode : 1;
    },
  );
}
