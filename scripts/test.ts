/**
 * `npm test`: the host unit tests, the test bed's own end-to-end tests (host
 * side, booting guests), then the guest suite inside the test-bed VM.
 * Fails if either fails, if the guest cannot be started, or if the guest suite
 * ran no test or skipped any (a skipped guest test is not a passing one).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { VmError, packageRoot, say } from '../src/vm/common.js';
import { RUN_REQUIREMENTS, buildRequirements, ensureRequirements } from '../src/vm/deps.js';
import { main as vmMain } from '../src/cli/vfio-vm.js';

interface VitestJson {
  success: boolean;
  numTotalTests: number;
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTodoTests: number;
  testResults?: { name: string; assertionResults: { fullName: string; status: string }[] }[];
}

export interface SuiteVerdict {
  name: string;
  passed: number;
  failed: number;
  problems: string[];
}

/** Judges a vitest JSON report: it must exist, have run tests, and have none failed, skipped or todo. */
export function judgeReport(path: string, suite: string): SuiteVerdict {
  if (!existsSync(path)) return { name: suite, passed: 0, failed: 0, problems: [`${suite}: no report at ${path} (the suite did not run)`] };
  const r = JSON.parse(readFileSync(path, 'utf8')) as VitestJson;
  const problems: string[] = [];
  if (r.numTotalTests === 0) problems.push(`${suite}: ran no test`);
  if (r.numFailedTests > 0) problems.push(`${suite}: ${r.numFailedTests} failed`);
  const skipped = r.numPendingTests + r.numTodoTests;
  if (skipped > 0) {
    const names = (r.testResults ?? []).flatMap((f) => f.assertionResults.filter((a) => a.status !== 'passed' && a.status !== 'failed').map((a) => a.fullName));
    problems.push(`${suite}: ${skipped} skipped or todo (${names.slice(0, 10).join('; ')})`);
  }
  if (!r.success && problems.length === 0) problems.push(`${suite}: vitest reported failure`);
  return { name: suite, passed: r.numPassedTests, failed: r.numFailedTests, problems };
}

async function run(): Promise<number> {
  const root = packageRoot();
  process.chdir(root);
  const results = join(root, 'test-results');
  mkdirSync(results, { recursive: true });
  const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
  const reporters = (file: string): string[] => ['--reporter=default', '--reporter=json', `--outputFile.json=test-results/${file}`];

  // Install what the guest needs first, so a fresh machine fails early and clearly.
  ensureRequirements([...RUN_REQUIREMENTS, ...(process.env.VFIO_VM_KERNEL ? [] : buildRequirements(!process.env.VFIO_VM_KERNEL_SRC))]);

  const suites: SuiteVerdict[] = [];
  const vitestSuite = (project: string): SuiteVerdict => {
    say(`${project} tests`);
    rmSync(join(results, `${project}.json`), { force: true });
    const r = spawnSync(process.execPath, [vitest, 'run', '--project', project, ...reporters(`${project}.json`)], { stdio: 'inherit' });
    const verdict = judgeReport(join(results, `${project}.json`), project);
    // A worker that died while loading a file can leave a report that says success.
    if (r.status !== 0 && verdict.problems.length === 0) verdict.problems.push(`${project}: vitest exited ${r.status ?? r.signal}`);
    return verdict;
  };
  suites.push(vitestSuite('host'));

  // The kernel first, on its own: a cold build shows its progress here rather
  // than inside a test's captured output.
  let kernelError: string | null = null;
  try {
    await vmMain(['--build-kernel']);
  } catch (e) {
    kernelError = e instanceof VmError ? e.message : String((e as Error).stack ?? e);
  }
  if (kernelError === null) suites.push(vitestSuite('bed'));
  else suites.push({ name: 'bed', passed: 0, failed: 0, problems: [`bed: no guest kernel: ${kernelError}`] });

  say('guest suite (in the test-bed VM)');
  rmSync(join(results, 'guest.json'), { force: true });
  // The guest CLI tests run the compiled bin, as users do: build it from this tree first.
  const build = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
  if (build.status !== 0) kernelError ??= `tsc -p tsconfig.build.json failed (exit ${build.status})`;
  let guest: SuiteVerdict;
  if (kernelError !== null) {
    guest = { name: 'guest', passed: 0, failed: 0, problems: [`guest: no guest kernel: ${kernelError}`] };
  } else {
    try {
      const status = await vmMain(['-e', 'VFIO_CLI_DIST=1', '--', 'node', vitest, 'run', '--project', 'guest', ...reporters('guest.json')]);
      guest = judgeReport(join(results, 'guest.json'), 'guest');
      if (status !== 0 && guest.problems.length === 0) guest.problems.push(`guest: vitest exited ${status}`);
    } catch (e) {
      const msg = e instanceof VmError ? e.message : String((e as Error).stack ?? e);
      guest = { name: 'guest', passed: 0, failed: 0, problems: [`guest: the test bed failed: ${msg}`] };
    }
  }
  suites.push(guest);

  // A suite that could not run, or skipped tests, counts as one failure of its own.
  for (const v of suites) if (v.problems.length && v.failed === 0) v.failed = 1;
  const problems = suites.flatMap((v) => v.problems);
  process.stdout.write('\n' + suites.map((v) => `${v.name}: ${v.passed} passed, ${v.failed} failed\n`).join(''));
  for (const p of problems) say(`FAIL ${p}`);
  const sum = (k: 'passed' | 'failed'): number => suites.reduce((n, v) => n + v[k], 0);
  process.stdout.write(`total: ${sum('passed')} passed, ${sum('failed')} failed\n`);
  return problems.length ? 1 : 0;
}

if (process.argv[1] && /(^|\/)test\.(ts|js)$/.test(process.argv[1])) {
  run().then(
    (code) => (process.exitCode = code),
    (e: unknown) => {
      say(e instanceof VmError ? e.message : String((e as Error).stack ?? e));
      process.exitCode = e instanceof VmError ? e.exitCode : 1;
    },
  );
}
