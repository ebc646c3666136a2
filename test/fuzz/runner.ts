/**
 * What a child process (or a worker thread in it) needs to run sequences: the
 * package and CLI loaded as users load them, the executor's environment, the
 * progress file that lets the parent see where a crash or hang happened, and
 * worker-mode runs (a sequence run in a worker thread that is then terminated).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import * as V from 'vfio';
import type { Finding } from './classify.js';
import { execute, removeCreated, type ExecEnv, type Tally } from './executor.js';
import type { Sequence } from './ops/index.js';
import type { CliModule } from './ops/types.js';
import { SPECS, type TargetInfo } from './targets.js';
import { World } from './world.js';

/** Everything a child or worker is told (JSON). */
export interface RunConfig {
  target: TargetInfo;
  backend: 'group' | 'cdev';
  /** Rewritten before every command: where the run is (see Progress). */
  progressPath: string;
  hangMs: number;
}

/** The progress record: which sequence and command run now, and in which phase. */
export interface Progress {
  phase: 'start' | 'cmd' | 'cleanup' | 'terminate' | 'check' | 'idle';
  seq: number;
  cmd: number;
  /** The fast-check round and its seed (fuzz mode). */
  round?: number;
  seed?: number;
  /** The sequence running now (written with phase 'start'). */
  sequence?: Sequence;
  /** mdevs created and not yet removed (the parent removes them after a crash). */
  created?: string[];
  /** Written by a worker thread. */
  worker?: boolean;
  at: number;
}

/** Loads the CLI module: src/cli/vfio.ts (older trees: src/cli.ts). */
export async function loadCli(): Promise<CliModule | null> {
  for (const rel of ['../../src/cli/vfio.ts', '../../src/cli.ts']) {
    try {
      const m = (await import(new URL(rel, import.meta.url).href)) as Partial<CliModule>;
      if (typeof m.main === 'function') return m as CliModule;
    } catch {
      /* try the next */
    }
  }
  return null;
}

/** Writes the progress record synchronously (it must be on disk before a call that may kill the process). */
export function writeProgress(path: string, p: Omit<Progress, 'at'>): void {
  const { sequence, ...rest } = p;
  // The sequence goes to a file of its own, once per sequence; the record itself stays small.
  if (sequence) writeFileSync(`${path}.seq`, JSON.stringify(sequence));
  writeFileSync(path, JSON.stringify({ ...rest, at: Date.now() }));
}

export function makeEnv(cfg: RunConfig, cli: CliModule | null, tally: Tally, onProgress: (i: number) => void): ExecEnv {
  return { V, cli, target: cfg.target, spec: SPECS[cfg.target.driver], tally, hangMs: cfg.hangMs, onProgress };
}

export interface SequenceOutcome {
  findings: Finding[];
  calls: number;
}

const WORKER_URL = new URL('./worker.ts', import.meta.url).href;
/** Workers do not inherit tsx's loader: register it first, then load the worker module. */
const WORKER_BOOT = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(WORKER_URL)}); })`;

/** What the worker posts once it has run its commands (it then waits to be terminated). */
export interface WorkerReport {
  tally: Tally;
  findings: Finding[];
  calls: number;
  created: string[];
}

/**
 * Runs a worker-mode sequence: the worker runs the first `terminateAt`
 * commands and keeps everything open; then it is terminated. The process must
 * survive that, and everything the worker held must be released: the target
 * can be opened again, and the mdevs it created can be removed.
 */
export async function runInWorker(seq: Sequence, seqIndex: number, cfg: RunConfig, env: ExecEnv, mark: Mark): Promise<SequenceOutcome> {
  const findings: Finding[] = [];
  const stopAt = seq.terminateAt ?? seq.cmds.length;
  // Idle: the worker runs exactly the commands before the point, reports, and waits.
  // Busy: it runs them all, and is terminated as soon as it starts command `stopAt`.
  const cmds = seq.busy ? seq.cmds : seq.cmds.slice(0, stopAt);
  const worker = new Worker(WORKER_BOOT, { eval: true, workerData: { cfg, seq: seqIndex, cmds, busy: seq.busy === true }, resourceLimits: { maxOldGenerationSizeMb: 256 } });
  const exited = new Promise<number>((r) => worker.once('exit', r));
  let reached = -1;
  const report = await new Promise<WorkerReport | { error: unknown } | { busy: number } | null>((resolve) => {
    const timer = setTimeout(() => resolve(null), cfg.hangMs * 2 + 30_000);
    worker.on('message', (m: WorkerReport | { progress: number }) => {
      if ('progress' in m) {
        reached = m.progress;
        if (m.progress < stopAt) return;
        clearTimeout(timer);
        resolve({ busy: m.progress });
        return;
      }
      clearTimeout(timer);
      resolve(m);
    });
    worker.once('error', (error) => {
      clearTimeout(timer);
      resolve({ error });
    });
    void exited.then(() => resolve(null));
  });
  if (report && 'busy' in report) {
    env.tally['worker terminated while running'] = (env.tally['worker terminated while running'] ?? 0) + 1;
    mark('terminate');
    await worker.terminate();
    await exited;
    mark('check');
    await checkReopen(cfg, env, findings);
    // The mdevs it made are on record in its last progress record.
    const last = JSON.parse(readFileSync(cfg.progressPath, 'utf8')) as Progress;
    if (last.created?.length) {
      const w = new World(cfg.target, '/tmp');
      for (const u of last.created) w.createdMdevs.add(u);
      await removeCreated(w, env, (f) => findings.push({ ...f, op: `worker ${f.op}` }));
    }
    return { findings, calls: reached + 1 };
  }
  if (report === null) findings.push({ kind: 'hang', op: 'worker', cmdIndex: -1, detail: 'the worker neither reported nor failed in time' });
  else if ('error' in report) findings.push({ kind: 'crash', op: 'worker', cmdIndex: -1, detail: `the worker failed: ${String((report.error as Error)?.stack ?? report.error).slice(0, 400)}` });
  else {
    for (const [k, n] of Object.entries(report.tally)) env.tally[k] = (env.tally[k] ?? 0) + n;
    findings.push(...report.findings);
  }
  // The worker's mdevs stay on record while it is terminated (the parent removes them if this process dies).
  const created = report && !('error' in report) ? report.created : [];
  mark('terminate', created);
  await worker.terminate();
  await exited;

  mark('check', created);
  await checkReopen(cfg, env, findings);
  if (report && !('error' in report) && report.created.length) {
    const w = new World(cfg.target, '/tmp');
    for (const u of report.created) w.createdMdevs.add(u);
    await removeCreated(w, env, (f) => findings.push({ ...f, op: `worker ${f.op}` }));
  }
  return { findings, calls: report && !('error' in report) ? report.calls : 0 };
}

/** What the worker held is released by its environment's cleanup: the target opens again. */
async function checkReopen(cfg: RunConfig, env: ExecEnv, findings: Finding[]): Promise<void> {
  try {
    const o = V.openDevice(cfg.target.device, { backend: cfg.backend });
    o.close();
    env.tally['worker check: reopened'] = (env.tally['worker check: reopened'] ?? 0) + 1;
  } catch (e) {
    const code = (e as { code?: string })?.code;
    env.tally[`worker check: ${code ?? 'failed'}`] = (env.tally[`worker check: ${code ?? 'failed'}`] ?? 0) + 1;
    // EBUSY: something of the worker's still holds the device (a group or a bound cdev).
    if (code === 'EBUSY') findings.push({ kind: 'leak', op: 'worker terminate', cmdIndex: -1, detail: `after terminate() the target cannot be opened again: ${String((e as Error)?.message ?? e).slice(0, 300)}` });
  }
}

/** Runs one sequence in this thread (main mode) or in a terminated worker. */
/** Records a phase of the run in the progress file (with mdevs to remove should the process die). */
export type Mark = (phase: Progress['phase'], created?: string[]) => void;

export async function runSequence(seq: Sequence, seqIndex: number, cfg: RunConfig, env: ExecEnv, mark: Mark): Promise<SequenceOutcome> {
  if (seq.mode === 'worker') return runInWorker(seq, seqIndex, cfg, env, mark);
  const out = await execute(seq.cmds, env);
  return { findings: out.findings, calls: out.calls };
}

export const THIS_DIR = fileURLToPath(new URL('.', import.meta.url));
