/**
 * `npm run fuzz -- [--calls N] [--seed S] [--target edu|mtty-1|…] [--backend group|cdev]`
 *
 * A property-based fuzzer of the public API (test/fuzz/): sequences of calls
 * with valid and hostile arguments on every sample device and edu, on both
 * backends, each run in a forked child (some in a worker thread that is then
 * terminated). Every call must succeed or throw a TypeError, RangeError or a
 * VfioError with a stable code; a crash, a hang, a plain Error… is a finding,
 * reported with its seed and its shrunk call sequence. Exits 1 on a finding.
 *
 * On a machine without /dev/vfio (or not as root) it runs itself in the
 * test-bed guest, as `npm run demo` does.
 *
 * Options:
 *   --calls N            calls in total, shared by the (target, backend) pairs (default 2000)
 *   --seed S             the fast-check seed (default: random, printed)
 *   --target T           edu, mtty-1, mtty-2, mdpy-vga, mdpy-xga, mdpy-hd, mbochs-small,
 *                        mbochs-medium, mbochs-large (repeatable or comma-separated; default all)
 *   --backend B          group or cdev (default both)
 *   --max-commands N     commands per sequence, at most (default 40)
 *   --worker-every N     one sequence in N runs in a worker thread that is then terminated (default 16, 0 never)
 *   --stop-on-finding    stop each (target, backend) pair at its first finding
 *   --replay FILE        replay the shrunk sequences of a findings file (test-results/fuzz/findings.json)
 *   --out DIR            where findings.json and summary.json go (default test-results/fuzz)
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

// The repository root; the VM runner is loaded only where it is needed (the host side).
process.chdir(fileURLToPath(new URL('..', import.meta.url)));
const inGuest = existsSync('/dev/vfio/vfio') && process.getuid?.() === 0;

if (!inGuest) {
  const { say } = await import('../src/vm/common.js');
  const { VmError, runInVm } = await import('../src/vm/index.js');
  say('no /dev/vfio as root here: running the fuzzer in the test-bed guest (QEMU)');
  try {
    // A long campaign outlasts the bed's default guest timeout: allow 6 h unless VFIO_VM_TIMEOUT says otherwise.
    const timeoutS = Number(process.env.VFIO_VM_TIMEOUT) || 6 * 3600;
    const r = await runInVm(['node', '--import', 'tsx', 'scripts/fuzz.ts', ...process.argv.slice(2)], { stdout: 'inherit', stderr: 'inherit', timeoutS });
    process.exitCode = r.status;
  } catch (e) {
    say(e instanceof VmError ? e.message : String((e as Error).stack ?? e));
    process.exitCode = e instanceof VmError ? e.exitCode : 1;
  }
} else {
  process.exitCode = await fuzzHere();
}

async function fuzzHere(): Promise<number> {
  const { campaign, replay } = await import('../test/fuzz/harness.js');
  const { formatSummary } = await import('../test/fuzz/report.js');
  const { showFinding } = await import('../test/fuzz/findings.js');
  const { TARGET_NAMES, setUpTarget, tearDownTarget } = await import('../test/fuzz/targets.js');
  type TargetName = (typeof TARGET_NAMES)[number];

  const { values } = parseArgs({
    options: {
      calls: { type: 'string' },
      seed: { type: 'string' },
      target: { type: 'string', multiple: true },
      backend: { type: 'string' },
      'max-commands': { type: 'string' },
      'worker-every': { type: 'string' },
      'stop-on-finding': { type: 'boolean' },
      replay: { type: 'string' },
      out: { type: 'string' },
    },
    strict: true,
  });
  const int = (v: string | undefined, d: number, name: string): number => {
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got ${v}`);
    return n;
  };
  const out = resolve(values.out ?? 'test-results/fuzz');
  mkdirSync(out, { recursive: true });

  if (values.replay) {
    const findings = JSON.parse(readFileSync(values.replay, 'utf8')) as import('../test/fuzz/findings.js').ReportedFinding[];
    let failed = 0;
    for (const f of findings) {
      const t = setUpTarget(f.target as TargetName);
      try {
        const r = await replay(t, f.backend, [f.shrunk]);
        const what = r.failure ?? (r.findings.length ? r.findings.map((x) => `${x.kind} in ${x.op}: ${x.detail.slice(0, 120)}`).join('; ') : 'nothing');
        if (r.failure || r.findings.length) failed++;
        console.log(`${f.kind} in ${f.op} (${f.target} on ${f.backend}): replay → ${what}`);
      } finally {
        tearDownTarget(t);
      }
    }
    return failed ? 1 : 0;
  }

  const targets = (values.target ?? []).flatMap((t) => t.split(',')).filter(Boolean);
  for (const t of targets) if (!(TARGET_NAMES as readonly string[]).includes(t)) throw new Error(`unknown --target ${t}: one of ${TARGET_NAMES.join(', ')}`);
  if (values.backend && values.backend !== 'group' && values.backend !== 'cdev') throw new Error(`--backend must be group or cdev, got ${values.backend}`);
  const seed = int(values.seed, Math.floor(Math.random() * 2 ** 31), 'seed');
  const calls = int(values.calls, 2000, 'calls');
  const opts = {
    targets: (targets.length ? targets : TARGET_NAMES) as readonly TargetName[],
    backends: values.backend ? [values.backend as 'group' | 'cdev'] : (['group', 'cdev'] as const),
    calls,
    seed,
    maxCommands: int(values['max-commands'], 40, 'max-commands'),
    workerEvery: int(values['worker-every'], 16, 'worker-every'),
    stopOnFinding: values['stop-on-finding'] === true,
    log: (s: string) => console.log(s),
    onFinding: (f: import('../test/fuzz/findings.js').ReportedFinding, all: readonly unknown[]) => {
      writeFileSync(join(out, 'findings.json'), JSON.stringify(all, null, 2));
      console.log(showFinding(f).replace(/^/gm, '    '));
    },
  };
  console.log(`fuzz: ${calls} calls, seed ${seed}, targets ${opts.targets.join(' ')}, backends ${opts.backends.join(' ')}`);
  const r = await campaign(opts);
  writeFileSync(join(out, 'findings.json'), JSON.stringify(r.findings, null, 2));
  writeFileSync(join(out, 'summary.json'), JSON.stringify({ seed, calls: r.calls, ms: r.ms, tally: r.tally, seen: r.seen, pairs: r.pairs, ops: r.ops, findings: r.findings.length }, null, 2));
  console.log('');
  console.log(formatSummary(r, seed));
  for (const [i, f] of r.findings.entries()) console.log(`\n${i + 1}. ${showFinding(f)}`);
  if (r.findings.length) console.log(`\nreplay them: npm run fuzz -- --replay ${join(values.out ?? 'test-results/fuzz', 'findings.json')}`);
  return r.findings.length ? 1 : 0;
}
