/**
 * The parent side of the fuzzer: makes the targets exist, runs forked
 * children with a watchdog (a child that dies of a signal or stops making
 * progress is a finding, located by its progress file), replays a crashing or
 * hanging sequence in fresh children to confirm it and shrink it (greedy
 * delta debugging over the command list), removes what the children left
 * behind, and sums up the tally.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildConfig, ChildStats } from './child.js';
import type { Tally } from './executor.js';
import { signature, type ReportedFinding } from './findings.js';
import type { Sequence } from './ops/index.js';
import type { Progress } from './runner.js';
import { removeMdevNow, setUpTarget, tearDownTarget, withBackend, type TargetInfo, type TargetName } from './targets.js';

export type Backend = 'group' | 'cdev';

export interface CampaignOptions {
  targets: readonly TargetName[];
  backends: readonly Backend[];
  /** Calls in total, shared equally by the (target, backend) pairs. */
  calls: number;
  seed: number;
  /** Commands per generated sequence, at most (default 40). */
  maxCommands?: number;
  /** One sequence in this many runs in a worker that is then terminated (default 8; 0: never). */
  workerEvery?: number;
  /** Time fast-check may spend shrinking one finding in a child (default 45 s). */
  shrinkMs?: number;
  /** Time the parent may spend shrinking one crash or hang by replays (default 150 s). */
  crashShrinkMs?: number;
  /** An awaited call taking longer is a hang (default 15 s). */
  hangMs?: number;
  /** A child without progress for this long is killed as hung (default hangMs + 15 s). */
  watchdogMs?: number;
  /** Stop a pair after its first finding (the check against an old commit uses this to time the search). */
  stopOnFinding?: boolean;
  log?: (line: string) => void;
  /** Called with each new finding as soon as it is known (the script saves them as they come). */
  onFinding?: (f: ReportedFinding, all: readonly ReportedFinding[]) => void;
}

export interface PairResult {
  target: TargetName;
  backend: Backend;
  calls: number;
  ms: number;
  children: number;
}

export interface CampaignResult {
  calls: number;
  tally: Tally;
  findings: ReportedFinding[];
  /** Known findings seen again: signature → count. */
  seen: Record<string, number>;
  pairs: PairResult[];
  /** Calls per op. */
  ops: Tally;
  ms: number;
}

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const CHILD = fileURLToPath(new URL('./child.ts', import.meta.url));

interface ChildRun {
  status: number | null;
  signal: NodeJS.Signals | null;
  hung: boolean;
  stats: ChildStats | null;
  progress: Progress | null;
  /** The sequence that was running when the child stopped (from its 'start' record). */
  sequence: Sequence | null;
  stderr: string;
}

const readJson = <T>(p: string): T | null => {
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as T;
  } catch {
    return null;
  }
};

/** Runs one child to its end, or kills it when it stops making progress. */
async function runChild(cfg: Omit<ChildConfig, 'progressPath' | 'statsPath'>, dir: string, watchdogMs: number): Promise<ChildRun> {
  const progressPath = join(dir, 'progress.json');
  const statsPath = join(dir, 'stats.json');
  const cfgPath = join(dir, 'config.json');
  for (const p of [progressPath, statsPath, `${progressPath}.seq`]) rmSync(p, { force: true });
  writeFileSync(cfgPath, JSON.stringify({ ...cfg, progressPath, statsPath }));
  // A bounded heap: a runaway allocation aborts the child long before it could starve the 3 GiB guest.
  const child = spawn(process.execPath, ['--max-old-space-size=768', '--import', 'tsx', CHILD, cfgPath], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-6000)));
  child.stdout.on('data', () => {});
  let hung = false;
  const started = Date.now();
  const watchdog = setInterval(() => {
    let last = started;
    try {
      last = Math.max(started, statSync(progressPath).mtimeMs);
    } catch {
      /* not written yet: the child is starting (tsx compiles under TCG: allow for it) */
    }
    const limit = existsSync(progressPath) ? watchdogMs : watchdogMs + 120_000;
    if (Date.now() - last > limit) {
      hung = true;
      child.kill('SIGKILL');
    }
  }, 1000);
  const [status, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((r) => child.once('exit', (c, s) => r([c, s])));
  clearInterval(watchdog);
  return { status, signal: hung ? null : signal, hung, stats: readJson<ChildStats>(statsPath), progress: readJson<Progress>(progressPath), sequence: readJson<Sequence>(`${progressPath}.seq`), stderr };
}

/** How a child run failed, as a comparable string; null when it ended normally. */
function failureOf(r: ChildRun): string | null {
  if (r.hung) return 'hang';
  if (r.signal) return `signal ${r.signal}`;
  if (r.status !== 0) return `exit ${r.status}`;
  return null;
}

/** Where in the sequence the child stopped: the op, and the commands to keep when truncating. */
function locate(r: ChildRun): { op: string; cmdIndex: number; keep: number } {
  const p = r.progress;
  const seq = r.sequence;
  if (!p || !seq) return { op: '', cmdIndex: -1, keep: seq?.cmds.length ?? 0 };
  const n = seq.mode === 'worker' ? (seq.terminateAt ?? seq.cmds.length) : seq.cmds.length;
  switch (p.phase) {
    case 'cmd':
      return { op: seq.cmds[p.cmd]?.op ?? '', cmdIndex: p.cmd, keep: p.cmd + 1 };
    case 'cleanup':
      return { op: 'cleanup', cmdIndex: -1, keep: n };
    case 'idle':
    case 'terminate':
      return { op: 'worker.terminate', cmdIndex: -1, keep: n };
    case 'check':
      return { op: 'worker check', cmdIndex: -1, keep: n };
    default:
      return { op: 'start', cmdIndex: -1, keep: 0 };
  }
}

function truncate(seq: Sequence, keep: number): Sequence {
  const cmds = seq.cmds.slice(0, keep);
  return seq.mode === 'worker' ? { ...seq, cmds, terminateAt: Math.min(seq.terminateAt ?? cmds.length, cmds.length) } : { ...seq, cmds };
}

function withoutRange(seq: Sequence, from: number, to: number): Sequence {
  const cmds = [...seq.cmds.slice(0, from), ...seq.cmds.slice(to)];
  if (seq.mode !== 'worker') return { ...seq, cmds };
  const t = seq.terminateAt ?? seq.cmds.length;
  return { ...seq, cmds, terminateAt: t <= from ? t : Math.max(from, t - (to - from)) };
}

/** Removes mdevs a dead child left (its fds died with it). */
function removeLeftovers(created: readonly string[] | undefined, log: (s: string) => void): void {
  for (const u of created ?? []) {
    try {
      if (removeMdevNow(u)) log(`  removed mdev ${u} left by a child`);
    } catch (e) {
      log(`  could not remove mdev ${u}: ${(e as Error).message}`);
    }
  }
}

export interface ReplayResult {
  failure: string | null;
  findings: ReportedFinding[];
  run: ChildRun;
}

/** Replays sequences in a fresh child. */
export async function replay(target: TargetInfo, backend: Backend, sequences: Sequence[], o: { hangMs?: number; watchdogMs?: number; dir?: string } = {}): Promise<ReplayResult> {
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'vfio-fuzz-replay-'));
  const hangMs = o.hangMs ?? 15_000;
  const run = await runChild({ mode: 'replay', target: withBackend(target, backend), backend, hangMs, sequences }, dir, o.watchdogMs ?? hangMs + 15_000);
  removeLeftovers(run.progress?.created, () => {});
  return { failure: failureOf(run), findings: (run.stats?.replayed ?? []).flat(), run };
}

/**
 * Confirms a crash or hang by replaying its sequence, truncated after the
 * failing command, in a fresh child; then removes commands greedily (halves,
 * quarters, … single commands) while the same failure still happens.
 */
async function shrinkCrash(target: TargetInfo, backend: Backend, seq: Sequence, keep: number, failure: string, o: { budgetMs: number; hangMs: number; watchdogMs: number; log: (s: string) => void }): Promise<{ shrunk: Sequence; reproduced: boolean; trials: number }> {
  const deadline = Date.now() + o.budgetMs;
  let trials = 0;
  const fails = async (s: Sequence): Promise<boolean> => {
    trials++;
    // A replay of a hang needs no long wait: the original stopped making progress for good.
    const r = await replay(target, backend, [s], failure === 'hang' ? { ...o, watchdogMs: Math.min(o.watchdogMs, 20_000) } : o);
    return r.failure === failure;
  };
  let best = truncate(seq, keep);
  if (!(await fails(best))) {
    if (best.cmds.length === seq.cmds.length || !(await fails(seq))) return { shrunk: seq, reproduced: false, trials };
    best = seq;
  }
  // Often the last command alone, or with the first (the opening), is the whole story: try those first.
  const last = best.cmds.length - 1;
  for (const pick of [[last], [0, last]]) {
    if (last < 1 || Date.now() >= deadline) break;
    const cmds = [...new Set(pick)].map((i) => best.cmds[i]!);
    const candidate: Sequence = best.mode === 'worker' ? { ...best, cmds, terminateAt: cmds.length } : { ...best, cmds };
    if (await fails(candidate)) {
      best = candidate;
      break;
    }
  }
  for (let chunk = Math.max(1, best.cmds.length >> 1); chunk >= 1 && Date.now() < deadline; chunk = chunk === 1 ? 0 : Math.max(1, chunk >> 1)) {
    for (let from = best.cmds.length - chunk; from >= 0 && Date.now() < deadline; from -= chunk) {
      const candidate = withoutRange(best, from, from + chunk);
      if (candidate.cmds.length === 0) continue;
      if (await fails(candidate)) {
        best = candidate;
        o.log(`    shrunk to ${best.cmds.length} command(s)`);
      }
    }
  }
  return { shrunk: best, reproduced: true, trials };
}

function merge(into: Tally, from: Tally | undefined): void {
  for (const [k, n] of Object.entries(from ?? {})) into[k] = (into[k] ?? 0) + n;
}

/**
 * The seed a (target, backend) pair runs with: the campaign's, mixed with the
 * pair's name, so pairs do not replay each other's sequences, and a pair
 * picked alone with --target/--backend gets the same seed as in a full run.
 */
export function pairSeed(seed: number, target: string, backend: string): number {
  let h = 0x811c9dc5;
  for (const c of `${target}/${backend}`) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193);
  return ((seed ^ h) >>> 0) % 0x7fffffff;
}

/** Runs the whole campaign: every (target, backend) pair with its share of the calls. */
export async function campaign(o: CampaignOptions): Promise<CampaignResult> {
  const log = o.log ?? (() => {});
  const started = Date.now();
  const hangMs = o.hangMs ?? 15_000;
  const watchdogMs = o.watchdogMs ?? hangMs + 15_000;
  const result: CampaignResult = { calls: 0, tally: {}, findings: [], seen: {}, pairs: [], ops: {}, ms: 0 };
  const known = new Set<string>();
  const perPair = Math.max(1, Math.floor(o.calls / (o.targets.length * o.backends.length)));
  const dir = mkdtempSync(join(tmpdir(), 'vfio-fuzz-'));
  try {
    for (const name of o.targets) {
      const target = setUpTarget(name);
      try {
        for (const backend of o.backends) {
          const pairStart = Date.now();
          const pair: PairResult = { target: name, backend, calls: 0, ms: 0, children: 0 };
          let round = 0;
          log(`${name} on ${backend}: ${perPair} calls (${target.device}), pair seed ${pairSeed(o.seed, name, backend)}`);
          while (pair.calls < perPair) {
            pair.children++;
            const run = await runChild(
              {
                mode: 'fuzz',
                target: withBackend(target, backend),
                backend,
                hangMs,
                seed: pairSeed(o.seed, name, backend),
                firstRound: round,
                budgetCalls: perPair - pair.calls,
                maxCommands: o.maxCommands ?? 40,
                workerEvery: o.workerEvery ?? 16,
                shrinkMs: o.shrinkMs ?? 45_000,
                known: [...known],
                stopOnFinding: o.stopOnFinding ?? false,
              },
              dir,
              watchdogMs,
            );
            const s = run.stats;
            pair.calls += s?.calls ?? 0;
            merge(result.tally, s?.tally);
            merge(result.ops, s?.ops);
            for (const [k, n] of Object.entries(s?.seen ?? {})) result.seen[k] = (result.seen[k] ?? 0) + n;
            for (const f of s?.findings ?? []) {
              known.add(signature(f));
              result.findings.push(f);
              log(`  finding: ${f.kind} in ${f.op} (seed ${f.seed}, after ${f.callsBefore} calls): ${f.detail.slice(0, 160)}`);
              o.onFinding?.(f, result.findings);
            }
            removeLeftovers(run.progress?.created, log);
            const failure = failureOf(run);
            if (o.stopOnFinding && s?.findings.length) break;
            if (!failure) {
              if (!s?.done) log(`  the child ended without finishing (${run.stderr.trim().split('\n').at(-1) ?? ''})`);
              break;
            }
            // The child died or hung: locate, confirm and shrink by replays.
            const where = locate(run);
            const kind = failure === 'hang' ? 'hang' : 'crash';
            const detail = `${failure === 'hang' ? `no progress for ${watchdogMs / 1000} s` : failure.startsWith('signal') ? `the process was killed by ${failure.slice(7)}` : `the process exited with status ${failure.slice(5)}`} ${where.cmdIndex >= 0 ? `at command #${where.cmdIndex}` : `in ${where.op || 'its start'}`}${kind === 'crash' && run.stderr.trim() ? `; stderr: ${run.stderr.trim().split('\n').slice(-3).join(' | ').slice(0, 300)}` : ''}`;
            const sig = signature({ kind, op: where.op, cmdIndex: where.cmdIndex, detail: failure });
            round = (run.progress?.round ?? round) + 1;
            if (!run.sequence) {
              log(`  ${kind}: ${detail} (no sequence recorded)`);
              if (pair.children > 3 && pair.calls === 0) break;
              continue;
            }
            if (known.has(sig)) {
              result.seen[sig] = (result.seen[sig] ?? 0) + 1;
              log(`  ${kind} again: ${detail}`);
              continue;
            }
            known.add(sig);
            log(`  ${kind}: ${detail}; replaying to confirm and shrink`);
            const sh = await shrinkCrash(target, backend, run.sequence, where.keep, failure, { budgetMs: o.crashShrinkMs ?? 150_000, hangMs, watchdogMs, log });
            const seed = run.progress?.seed ?? o.seed;
            result.findings.push({
              kind,
              op: where.op,
              cmdIndex: where.cmdIndex,
              detail,
              target: name,
              backend,
              seed,
              round: run.progress?.round ?? 0,
              sequence: run.sequence,
              shrunk: sh.shrunk,
              callsBefore: pair.calls,
              ms: Date.now() - pairStart,
              reproduced: sh.reproduced,
            });
            log(`  ${kind} ${sh.reproduced ? `reproduced, shrunk to ${sh.shrunk.cmds.length} command(s) in ${sh.trials} replays` : 'did not reproduce'}`);
            o.onFinding?.(result.findings.at(-1)!, result.findings);
            if (o.stopOnFinding) break;
          }
          if (o.stopOnFinding && result.findings.some((f) => f.target === name && f.backend === backend)) log('  stopping this pair at its first finding');
          pair.ms = Date.now() - pairStart;
          result.pairs.push(pair);
          result.calls += pair.calls;
        }
      } finally {
        tearDownTarget(target);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  result.ms = Date.now() - started;
  return result;
}
