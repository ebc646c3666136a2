/**
 * The native addon under AddressSanitizer, LeakSanitizer and UBSan.
 *
 *   npm run build:asan            # build-asan/Release/vfio.node (cmake-js, same sources)
 *   npm run test:asan             # build, then the host native tests and the whole guest suite
 *   npm run test:asan -- --short  # the same without the slowest guest files (SHORT_GUEST_EXCLUDE)
 *
 * test options: --short, --host-only, --guest-only, --no-build, --addon PATH
 * (load that addon instead of building one; it must have been built with
 * the same sanitizers and lie where the guest sees it, i.e. not under /tmp),
 * and after `--`, arguments for the guest's vitest (files, -t PATTERN).
 *
 * Every test process gets the sanitizer runtime preloaded (LD_PRELOAD of gcc's
 * libasan; the addon pulls in libubsan itself) and writes its reports to
 * test-results/asan/, which this script prints. The run fails when a suite
 * fails or any process wrote a report. Leaks of Node's own memory at exit are
 * suppressed by native/lsan.supp, never by a frame of ours.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { VmError, packageRoot } from '../src/vm/common.js';
import { main as vmMain } from '../src/cli/vfio-vm.js';
import { judgeReport, type SuiteVerdict } from './test.js';

/** Compile flags; -O1 keeps stacks readable, and without -DNDEBUG asserts stay on. */
export const SANITIZE = ['-fsanitize=address,undefined', '-fno-sanitize-recover=undefined', '-fno-omit-frame-pointer', '-g'];

/**
 * What the short mode leaves out of the guest suite: the files that mostly
 * time CLI processes, pictures and scale (minutes under ASan) rather than
 * reach native paths the rest does not; what stays covers both backends'
 * DMA, mmap, IRQ eventfds, mdev, gfx and teardown with everything open.
 */
export const SHORT_GUEST_EXCLUDE = ['**/screenshot.test.ts', '**/cli.test.ts', '**/cli-info.test.ts', '**/demo.test.ts', '**/scale.test.ts'];

const root = packageRoot();
const say = (msg: string): void => void process.stderr.write(`[asan] ${msg}\n`);
const logDir = join(root, 'test-results', 'asan');

/** Builds native/ (or `nativeDir`) with the sanitizers into `outDir`; returns the addon's path. */
export function buildAsan(nativeDir = join(root, 'native'), outDir = join(root, 'build-asan')): string {
  say(`building the addon with ${SANITIZE.join(' ')} into ${relative(root, outDir) || outDir}`);
  const cmakeJs = join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js');
  // cmake-js sets CMAKE_CXX_FLAGS itself (overriding a --CDCMAKE_CXX_FLAGS), so
  // the flags go into the Release configuration's own variable.
  const r = spawnSync(
    process.execPath,
    [
      cmakeJs,
      'compile',
      '--directory',
      nativeDir,
      '--out',
      outDir,
      `--CDCMAKE_CXX_FLAGS_RELEASE=-O1 ${SANITIZE.join(' ')}`,
      '--CDCMAKE_SHARED_LINKER_FLAGS=-fsanitize=address,undefined',
    ],
    { cwd: root, stdio: 'inherit' },
  );
  if (r.status !== 0) throw new VmError(`the sanitizer build failed (cmake-js exit ${r.status ?? r.signal})`, 1);
  const addon = join(outDir, 'Release', 'vfio.node');
  if (!existsSync(addon)) throw new VmError(`the sanitizer build made no ${addon}`, 1);
  return addon;
}

/** gcc's shared ASan runtime, which must be the first library in the process. */
export function asanRuntime(): string {
  const r = spawnSync('gcc', ['-print-file-name=libasan.so'], { encoding: 'utf8' });
  const path = (r.stdout ?? '').trim();
  if (r.status !== 0 || !path.startsWith('/') || !existsSync(path)) {
    throw new VmError('no libasan.so from `gcc -print-file-name=libasan.so`: install gcc with its sanitizer runtimes (Debian: apt-get install g++)', 1);
  }
  return realpathSync(path);
}

/** The environment of every test process: `tag` names its report files. */
export function sanitizerEnv(addon: string, tag: string): Record<string, string> {
  const log = join(logDir, tag);
  const hook = join(root, 'scripts', 'asan-hook.cjs');
  return {
    VFIO_NATIVE_PATH: addon,
    // For tests whose bounds the sanitizer's own memory moves (RSS: ASan keeps freed memory in quarantine).
    VFIO_ASAN: '1',
    VFIO_ASAN_LOG_DIR: logDir,
    LD_PRELOAD: asanRuntime(),
    NODE_OPTIONS: [process.env.NODE_OPTIONS, `--require=${/\s/.test(hook) ? JSON.stringify(hook) : hook}`].filter(Boolean).join(' '),
    ASAN_OPTIONS: [
      'detect_leaks=1',
      'abort_on_error=1',
      'halt_on_error=1',
      // With gcc, a UBSan report goes to stderr whatever log_path says; its
      // abort() then becomes an ASan report (with the stack) in the log too.
      'handle_abort=1',
      'detect_stack_use_after_return=1',
      'check_initialization_order=1',
      'strict_init_order=1',
      `log_path=${log}`,
    ].join(':'),
    LSAN_OPTIONS: `suppressions=${join(root, 'native', 'lsan.supp')}:print_suppressions=1`,
    UBSAN_OPTIONS: `print_stacktrace=1:halt_on_error=1:abort_on_error=1:log_path=${log}`,
  };
}

interface Reports {
  findings: { file: string; text: string }[];
  /** Suppression lines ("count bytes template") summed over the processes that used them. */
  suppressed: Map<string, { count: number; bytes: number; processes: number }>;
  /** vitest forks that reached their exit (and so their leak check) after SIGTERM: see scripts/asan-hook.cjs. */
  forks: number;
}

/** Reads the sanitizer logs written so far: a log with anything but a list of used suppressions is a finding. */
export function readReports(dir = logDir): Reports {
  const out: Reports = { findings: [], suppressed: new Map(), forks: 0 };
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir).sort()) {
    const file = join(dir, name);
    if (name.startsWith('fork-exit.')) {
      out.forks++;
      continue;
    }
    const text = readFileSync(file, 'utf8');
    const lines = text.split('\n').filter((l) => l.trim() !== '');
    const supIdx = lines.findIndex((l) => l.includes('Suppressions used:'));
    const rest = supIdx < 0 ? lines : lines.slice(0, supIdx).filter((l) => !/^-+$/.test(l.trim()));
    if (supIdx >= 0) {
      for (const l of lines.slice(supIdx + 1)) {
        const m = /^\s*(\d+)\s+(\d+)\s+(\S+)\s*$/.exec(l);
        if (!m) continue;
        const s = out.suppressed.get(m[3]!) ?? { count: 0, bytes: 0, processes: 0 };
        s.count += Number(m[1]);
        s.bytes += Number(m[2]);
        s.processes++;
        out.suppressed.set(m[3]!, s);
      }
    }
    if (rest.length > 0) out.findings.push({ file, text });
  }
  return out;
}

function printReports(r: Reports): void {
  say(`vitest forks leak-checked at their exit: ${r.forks}`);
  for (const f of r.findings) process.stderr.write(`\n----- sanitizer report ${relative(root, f.file)} -----\n${f.text.trimEnd()}\n`);
  if (r.suppressed.size) {
    say('leaks at exit suppressed by native/lsan.supp (not ours):');
    for (const [pattern, s] of r.suppressed) say(`  ${pattern}: ${s.count} allocation(s), ${s.bytes} bytes, in ${s.processes} process(es)`);
  }
}

const seconds = (t0: number): string => `${((Date.now() - t0) / 1000).toFixed(0)}s`;

interface TestOptions {
  short: boolean;
  host: boolean;
  guest: boolean;
  build: boolean;
  addon: string | null;
  /** Extra arguments for the guest's vitest (after `--`): files, -t, … */
  vitestArgs: string[];
}

function parse(args: string[]): { cmd: 'build' | 'test'; opts: TestOptions } {
  const cmd = args[0];
  if (cmd !== 'build' && cmd !== 'test') throw new VmError('usage: tsx scripts/asan.ts build | test [--short] [--host-only|--guest-only] [--no-build] [--addon PATH] [-- guest vitest args]', 2);
  const opts: TestOptions = { short: false, host: true, guest: true, build: true, addon: null, vitestArgs: [] };
  for (let i = 1; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--short') opts.short = true;
    else if (a === '--host-only') opts.guest = false;
    else if (a === '--guest-only') opts.host = false;
    else if (a === '--no-build') opts.build = false;
    else if (a === '--addon' && args[i + 1]) opts.addon = resolve(args[++i]!);
    else if (a === '--') {
      opts.vitestArgs = args.slice(i + 1);
      break;
    }
    else throw new VmError(`unknown option ${a}`, 2);
  }
  return { cmd, opts };
}

async function test(opts: TestOptions): Promise<number> {
  process.chdir(root);
  const t0 = Date.now();
  let addon = opts.addon ?? join(root, 'build-asan', 'Release', 'vfio.node');
  if (!opts.addon && opts.build) addon = buildAsan();
  if (!existsSync(addon)) throw new VmError(`no ${addon}: run npm run build:asan first`, 1);
  if (opts.guest && addon.startsWith('/tmp/')) throw new VmError(`${addon} is under /tmp, which the guest does not see`, 2);
  say(`addon: ${addon} (build ${seconds(t0)})`);

  rmSync(logDir, { recursive: true, force: true });
  mkdirSync(logDir, { recursive: true });
  const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
  const reporters = (file: string): string[] => ['--reporter=default', '--reporter=json', `--outputFile.json=test-results/${file}`];
  const suites: SuiteVerdict[] = [];
  const times: string[] = [];

  if (opts.host) {
    const t = Date.now();
    say('host native tests, sanitized');
    rmSync(join(root, 'test-results', 'asan-host.json'), { force: true });
    const r = spawnSync(process.execPath, [vitest, 'run', '--project', 'host', 'test/host/native', ...reporters('asan-host.json')], {
      stdio: 'inherit',
      env: { ...process.env, ...sanitizerEnv(addon, 'host') },
    });
    const host = judgeReport(join(root, 'test-results', 'asan-host.json'), 'host native');
    // A worker that died (a sanitizer abort) is an "unhandled error": the JSON may still say success.
    if (r.status !== 0 && host.problems.length === 0) host.problems.push(`host native: vitest exited ${r.status ?? r.signal}`);
    suites.push(host);
    times.push(`host ${seconds(t)}`);
  }

  if (opts.guest) {
    const t = Date.now();
    say(`guest suite${opts.short ? ' (short)' : ''}, sanitized, in the test-bed VM`);
    rmSync(join(root, 'test-results', 'asan-guest.json'), { force: true });
    let guest: SuiteVerdict;
    // The guest CLI tests run the compiled bin, as npm test has them (the short mode has none).
    const tsc = opts.short ? null : spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
    if (tsc && tsc.status !== 0) {
      guest = { name: 'guest', passed: 0, failed: 1, problems: [`guest: tsc -p tsconfig.build.json failed (exit ${tsc.status})`] };
    } else {
      const env = { ...(opts.short ? {} : { VFIO_CLI_DIST: '1' }), ...sanitizerEnv(addon, 'guest') };
      const files = opts.short ? SHORT_GUEST_EXCLUDE.flatMap((g) => ['--exclude', g]) : [];
      try {
        const status = await vmMain([
          ...Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]),
          '--',
          'node',
          vitest,
          'run',
          '--project',
          'guest',
          ...files,
          ...opts.vitestArgs,
          ...reporters('asan-guest.json'),
        ]);
        guest = judgeReport(join(root, 'test-results', 'asan-guest.json'), 'guest');
        if (status !== 0 && guest.problems.length === 0) guest.problems.push(`guest: vitest exited ${status}`);
      } catch (e) {
        const msg = e instanceof VmError ? e.message : String((e as Error).stack ?? e);
        guest = { name: 'guest', passed: 0, failed: 0, problems: [`guest: the test bed failed: ${msg}`] };
      }
    }
    suites.push(guest);
    times.push(`guest ${seconds(t)}`);
  }

  const reports = readReports();
  printReports(reports);
  for (const v of suites) if (v.problems.length && v.failed === 0) v.failed = 1;
  const problems = suites.flatMap((v) => v.problems);
  if (reports.findings.length) problems.push(`${reports.findings.length} sanitizer report(s), printed above (files in ${relative(root, logDir)}/)`);
  process.stdout.write('\n' + suites.map((v) => `asan ${v.name}: ${v.passed} passed, ${v.failed} failed\n`).join(''));
  process.stdout.write(`asan sanitizer reports: ${reports.findings.length}\n`);
  for (const p of problems) say(`FAIL ${p}`);
  say(`time: ${[...times, `total ${seconds(t0)}`].join(', ')}`);
  return problems.length ? 1 : 0;
}

async function run(args: string[]): Promise<number> {
  const { cmd, opts } = parse(args);
  if (cmd === 'build') {
    process.stdout.write(`${buildAsan()}\n`);
    return 0;
  }
  return test(opts);
}

if (process.argv[1] && /(^|\/)asan\.(ts|js)$/.test(process.argv[1])) {
  run(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (e: unknown) => {
      say(e instanceof VmError ? e.message : String((e as Error).stack ?? e));
      process.exitCode = e instanceof VmError ? e.exitCode : 1;
    },
  );
}
