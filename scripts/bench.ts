/**
 * `npm run bench [-- --quick] [-- --host-only] [-- --only NAME,…]`: two sections.
 *
 * 1. Host: compiles bench/c/host_bench.c and runs bench/host.ts on this machine
 *    (no /dev/vfio, the real CPU), which prints its table and writes
 *    bench-results/host.json and host.txt.
 * 2. Guest (skipped with --host-only): compiles the C baseline
 *    (bench/c/vfio_bench.c), boots the test-bed guest and runs bench/run.ts
 *    there, which writes bench-results/latest.json and latest.txt.
 *
 * Both C programs get the same fixed flags (C_FLAGS; the host one adds -pthread).
 * `--quick` and `--only` go to both sections (`--only` picks by case-name prefix).
 * Exit status: 0 when every case ran (a missed target is a result, not a
 * failure), 1 when a case failed in either section, 125 when the bed failed,
 * else the guest runner's.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
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

/**
 * Compiles bench/ and src/ with tsc into build/bench-js (tsconfig.bench.json):
 * the suite runs the JavaScript users run, not tsx's transform of the sources,
 * whose module interop puts an accessor call on every cross-module reference.
 * Returns the directory.
 */
export function compileBenchJs(root: string): string {
  const out = join(root, 'build', 'bench-js');
  rmSync(out, { recursive: true, force: true });
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.bench.json')], { stdio: 'inherit' });
  if (r.status !== 0) throw new VmError(`compiling the benchmark suite with tsc failed (exit ${r.status ?? r.signal})`, 1);
  return out;
}

/** Compiles the host section's C side (bench/c/host_bench.c) into `outDir`; returns the binary. */
export function compileHostBench(root: string, outDir = join(root, 'build', 'bench')): string {
  const cc = ['cc', 'gcc'].find((c) => onPath(c));
  if (!cc) throw new VmError('no C compiler (cc or gcc) on PATH: apt-get install gcc', 125);
  const out = join(outDir, 'host_bench');
  mkdirSync(outDir, { recursive: true });
  const r = spawnSync(cc, [...C_FLAGS, '-pthread', '-o', out, join(root, 'bench', 'c', 'host_bench.c')], { stdio: 'inherit' });
  if (r.status !== 0) throw new VmError(`compiling the host C baseline failed (${cc} exit ${r.status})`, 1);
  return out;
}

/** The host section, in a fresh node of its own (so the guest section's set-up does not share its heap or JIT). */
function runHost(root: string, args: string[]): number {
  const bin = compileHostBench(root);
  say(`host section: C baseline ${bin} (${[...C_FLAGS, '-pthread'].join(' ')})`);
  const r = spawnSync(process.execPath, [join(compileBenchJs(root), 'bench', 'host.js'), ...args], {
    stdio: 'inherit',
    env: { ...process.env, VFIO_HOST_BENCH_C: bin },
  });
  if (r.error) throw new VmError(`the host section did not start: ${r.error.message}`, 1);
  return r.status ?? 1;
}

async function run(argv: string[]): Promise<number> {
  const root = packageRoot();
  process.chdir(root);
  const hostOnly = argv.includes('--host-only');
  const args = argv.filter((a) => a !== '--host-only');
  const host = runHost(root, args);
  if (hostOnly) return host;
  say('guest section');
  ensureRequirements([...RUN_REQUIREMENTS, ...(process.env.VFIO_VM_KERNEL ? [] : buildRequirements(!process.env.VFIO_VM_KERNEL_SRC))]);
  say(`C baseline: ${compileBaseline(root)} (${C_FLAGS.join(' ')})`);
  // The host section compiled build/bench-js already (the guest sees it over 9p).
  if (!existsSync(join(root, 'build', 'bench-js', 'bench', 'run.js'))) compileBenchJs(root);
  const guest = await vmMain(['--', 'node', '--expose-gc', 'build/bench-js/bench/run.js', ...args]);
  // A failed host case fails the run even when the guest section passed.
  return guest === 0 && host !== 0 ? 1 : guest;
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
