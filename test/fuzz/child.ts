/**
 * The forked child of the fuzzer: `node --import tsx test/fuzz/child.ts CONFIG.json`.
 *
 * fuzz mode: fast-check generates sequences (fc.asyncProperty over
 * sequenceArb) round after round (seed, seed+1, …) until the call budget is
 * spent; a sequence with a new finding fails the property and fast-check
 * shrinks it in this process, within a time limit. replay mode: runs the given
 * sequences as they are. Either way the progress file says, before every
 * call, where the run is — if this process dies (a signal) or stops answering
 * (a hang), the parent reads it, and shrinks by replaying in fresh children.
 */
import fc from 'fast-check';
import { readFileSync, writeFileSync } from 'node:fs';
import { signature, type ReportedFinding } from './findings.js';
import type { Tally } from './executor.js';
import { sequenceArb, type Sequence } from './ops/index.js';
import { loadCli, makeEnv, runSequence, writeProgress, type Progress, type RunConfig } from './runner.js';
import { SPECS } from './targets.js';
import type { World } from './world.js';

export interface ChildConfig extends RunConfig {
  mode: 'fuzz' | 'replay';
  /** Where the child keeps its ChildStats (rewritten after every sequence). */
  statsPath: string;
  seed?: number;
  /** The first fast-check round (a restarted child goes on after the round that crashed). */
  firstRound?: number;
  budgetCalls?: number;
  maxCommands?: number;
  /** One sequence in this many runs in a worker thread that is then terminated (0: never). */
  workerEvery?: number;
  /** How long fast-check may shrink one finding in this process. */
  shrinkMs?: number;
  /** Findings already reported (signatures): counted, not shrunk again. */
  known?: string[];
  /** Stop after the first round with a new finding. */
  stopOnFinding?: boolean;
  sequences?: Sequence[];
}

export interface ChildStats {
  calls: number;
  tally: Tally;
  findings: ReportedFinding[];
  /** How often each known signature was seen again. */
  seen: Record<string, number>;
  round: number;
  done: boolean;
  /** replay mode: the findings of each sequence, in order. */
  replayed?: ReportedFinding[][];
  /** Calls per op. */
  ops: Tally;
}

const cfg = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as ChildConfig;
const started = Date.now();
const stats: ChildStats = { calls: 0, tally: {}, findings: [], seen: {}, round: cfg.firstRound ?? 0, done: false, ops: {} };
const known = new Set(cfg.known ?? []);
const save = (): void => writeFileSync(cfg.statsPath, JSON.stringify(stats));
const cli = await loadCli();

let seqIndex = 0;
let current: Sequence | undefined;
let world: World | null = null;
const base = (): Omit<Progress, 'at' | 'phase' | 'cmd'> => ({ seq: seqIndex, round: stats.round, seed: (cfg.seed ?? 0) + stats.round, created: [...(world?.createdMdevs ?? [])] });
const env = makeEnv(cfg, cli, stats.tally, (i) => writeProgress(cfg.progressPath, { ...base(), phase: i < 0 ? 'cleanup' : 'cmd', cmd: i }));
env.onStart = (w) => (world = w);
env.opTally = stats.ops;
const mark = (phase: Progress['phase'], created?: string[]): void => writeProgress(cfg.progressPath, { ...base(), ...(created ? { created } : {}), phase, cmd: -1 });

async function run(seq: Sequence): Promise<ReturnType<typeof runSequence>> {
  seqIndex++;
  current = seq;
  world = null;
  writeProgress(cfg.progressPath, { ...base(), phase: 'start', cmd: -1, sequence: seq });
  const out = await runSequence(seq, seqIndex, cfg, env, mark);
  stats.calls += out.calls;
  return out;
}

function report(f: Awaited<ReturnType<typeof runSequence>>['findings'][number], seq: Sequence, shrunk: Sequence, seed: number): ReportedFinding {
  return { ...f, seed, round: stats.round, target: cfg.target.name, backend: cfg.backend, sequence: seq, shrunk, callsBefore: stats.calls, ms: Date.now() - started, reproduced: true };
}

if (cfg.mode === 'replay') {
  stats.replayed = [];
  for (const seq of cfg.sequences ?? []) {
    const out = await run(seq);
    stats.replayed.push(out.findings.map((f) => report(f, seq, seq, cfg.seed ?? 0)));
    save();
  }
} else {
  const budget = cfg.budgetCalls ?? 1000;
  const maxCommands = cfg.maxCommands ?? 40;
  const spec = SPECS[cfg.target.driver];
  const every = cfg.workerEvery ?? 0;
  const arb =
    every > 0
      ? fc.oneof({ weight: every - 1, arbitrary: sequenceArb(spec, maxCommands, false) }, { weight: 1, arbitrary: sequenceArb(spec, Math.max(4, maxCommands >> 1), true) })
      : sequenceArb(spec, maxCommands, false);
  while (stats.calls < budget) {
    const seed = (cfg.seed ?? 0) + stats.round;
    let failing: { sig: string; seq: Sequence; findings: ReportedFinding[]; shrunk: Sequence } | null = null;
    let shrinkUntil = 0;
    const numRuns = Math.max(3, Math.ceil((budget - stats.calls) / Math.max(1, maxCommands >> 1)));
    const details = await fc.check(
      fc.asyncProperty(arb, async (seq) => {
        if (failing ? Date.now() > shrinkUntil : stats.calls >= budget) return true;
        const out = await run(seq);
        const fresh = out.findings.filter((f) => {
          const s = signature(f);
          if (!known.has(s)) return true;
          stats.seen[s] = (stats.seen[s] ?? 0) + 1;
          return false;
        });
        save();
        if (!fresh.length) return true;
        if (!failing) {
          failing = { sig: signature(fresh[0]!), seq, findings: fresh.map((f) => report(f, seq, seq, seed)), shrunk: seq };
          shrinkUntil = Date.now() + (cfg.shrinkMs ?? 60_000);
          return false;
        }
        if (fresh.some((f) => signature(f) === failing!.sig)) {
          if (seq.cmds.length <= failing.shrunk.cmds.length) failing.shrunk = seq;
          return false;
        }
        return true;
      }),
      { seed, numRuns },
    );
    const f = failing as { sig: string; seq: Sequence; findings: ReportedFinding[]; shrunk: Sequence } | null;
    if (f) {
      const shrunk = (details.counterexample?.[0] as Sequence | undefined) ?? f.shrunk;
      for (const x of f.findings) {
        const s = signature(x);
        if (known.has(s)) continue;
        known.add(s);
        stats.findings.push({ ...x, shrunk: s === f.sig ? shrunk : x.sequence });
      }
    }
    stats.round++;
    save();
    if (f && cfg.stopOnFinding) break;
  }
}
stats.done = true;
save();
void current;
process.exit(0);
