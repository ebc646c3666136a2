/**
 * Helpers shared by the host and guest tests of the mdev API and the CLI:
 * catching a VfioError, running the real `vfio` entry point in a child
 * process, and checking the one-line failure format.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, expect } from 'vitest';
import { main } from '../../src/cli/vfio.js';
import { VfioError } from '../../src/errors.js';
import { FakeSys } from './mdev-fake.js';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
export const CLI = `${REPO}src/cli/vfio.ts`;
/**
 * The compiled bin, as users run it. `npm test` rebuilds dist/ right before the
 * guest suite and sets VFIO_CLI_DIST=1, which also spares each run tsx's start-up
 * (seconds under TCG); elsewhere the source runs through tsx.
 */
export const CLI_ARGS = process.env.VFIO_CLI_DIST === '1' ? [`${REPO}dist/src/cli/vfio.js`] : ['--import', 'tsx', CLI];
export const U1 = '0b4d7c7e-4f6a-4c55-9a3e-6d1f2e3a4b5c';
export const U2 = 'f2c1d0a9-8b7e-4d6c-8b5a-493827161504';

/** Runs `fn`, which must throw (or reject with) a VfioError, and returns it. */
export async function failure(fn: () => unknown): Promise<VfioError> {
  try {
    await fn();
  } catch (err) {
    expect(err).toBeInstanceOf(VfioError);
    return err as VfioError;
  }
  throw new Error('expected a VfioError, got success');
}

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
  /** Wall time of the whole process. */
  ms: number;
}

/** Runs the `vfio` entry point (see CLI_ARGS) with `argv`, optionally as another user. */
export function runVfio(argv: string[], opts: { uid?: number; gid?: number } = {}): Promise<CliResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...CLI_ARGS, ...argv], { cwd: REPO, ...opts, env: { ...process.env, NODE_OPTIONS: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status: status ?? -1, stdout, stderr, ms: Date.now() - started }));
  });
}

/**
 * Exit status 1, nothing on stdout, and exactly one stderr line
 * `vfio: CODE: … (hint: …)` whose hint matches `hint`. Returns the line.
 */
export function expectCliFailure(r: { status: number; stdout: string; stderr: string }, code: string, hint: string | RegExp): string {
  expect(r.stdout).toBe('');
  expect(r.status).toBe(1);
  expect(r.stderr.endsWith('\n')).toBe(true);
  const lines = r.stderr.slice(0, -1).split('\n');
  expect(lines).toHaveLength(1);
  const m = /^vfio: (\S+): .*\(hint: (.+)\)$/.exec(lines[0]!);
  expect(m?.[1]).toBe(code);
  if (typeof hint === 'string') expect(m![2]).toContain(hint);
  else expect(m![2]).toMatch(hint);
  return lines[0]!;
}

/** Runs the CLI in this process with `--root root`, collecting what it prints. */
export async function cliIn(root: string, argv: string[]): Promise<Omit<CliResult, 'ms'>> {
  let stdout = '';
  let stderr = '';
  const status = await main(['--root', root, ...argv], {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
  });
  return { status, stdout, stderr };
}

/**
 * A fresh {@link FakeSys} with the sample parents for every test of the file
 * (its fake drivers stopped and its tree deleted after each): registers the
 * hooks and returns a stand-in that always forwards to the current tree.
 */
export function fakeSysPerTest(): FakeSys {
  let current: FakeSys | undefined;
  beforeEach(() => {
    current = new FakeSys();
    current.addSampleParents();
  });
  afterEach(() => {
    current?.cleanup();
    current = undefined;
  });
  return new Proxy({} as FakeSys, {
    get(_, prop) {
      if (!current) throw new Error('fakeSysPerTest(): no tree outside a test');
      const v = Reflect.get(current, prop, current) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(current) : v;
    },
  });
}
