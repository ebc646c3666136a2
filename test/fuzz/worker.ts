/**
 * A worker thread of the fuzzer: runs its commands, keeps everything they
 * made open, reports, and then idles until the main thread terminates it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { execute, type Tally } from './executor.js';
import type { Cmd } from './ops/index.js';
import type { World } from './world.js';
import { loadCli, makeEnv, writeProgress, type RunConfig, type WorkerReport } from './runner.js';

const { cfg, cmds, seq, busy } = workerData as { cfg: RunConfig; cmds: Cmd[]; seq?: number; busy?: boolean };
const tally: Tally = {};
const cli = await loadCli();
let world: World | null = null;
const created = (): string[] => [...(world?.createdMdevs ?? [])];
const env = makeEnv(cfg, cli, tally, (i) => {
  writeProgress(cfg.progressPath, { phase: 'cmd', seq: seq ?? 0, cmd: i, created: created(), worker: true });
  // A busy run is terminated by the main thread as soon as it hears of the command it waits for.
  if (busy && i >= 0) parentPort!.postMessage({ progress: i });
});
env.onStart = (w) => (world = w);
const out = await execute(cmds, env, { hold: true });
writeProgress(cfg.progressPath, { phase: 'idle', seq: seq ?? 0, cmd: cmds.length, created: created(), worker: true });
const report: WorkerReport = { tally, findings: out.findings, calls: out.calls, created: created() };
parentPort!.postMessage(report);
// Hold everything (the world stays referenced) with the loop alive, until terminate().
setInterval(() => void out.world, 1000);
