/**
 * Runs a command list against a fresh World: materialises the arguments,
 * applies the safety guards, makes each call, and records how it ended (the
 * tally, by outcome) and what was wrong (findings). At the end it closes
 * everything in order, waits for what is still pending, removes the mdevs
 * the run created and checks that nothing stayed held.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as Vfio from 'vfio';
import { classifyError, type Finding } from './classify.js';
import { OP_BY_NAME, type Cmd } from './ops/index.js';
import type { CliModule, OpCtx, OpResult } from './ops/types.js';
import type { TargetInfo, TargetSpec } from './targets.js';
import { Slot, materialize, type Kind } from './values.js';
import { World, resolverOf, type Entry, type Pending } from './world.js';

/** Outcome → number of calls. */
export type Tally = Record<string, number>;

export interface ExecEnv {
  V: typeof Vfio;
  cli: CliModule | null;
  target: TargetInfo;
  spec: TargetSpec;
  /** Called before command `i` runs (and with -1 before the cleanup): the harness records progress synchronously. */
  onProgress?: (i: number) => void;
  /** How long one awaited call may take before it counts as a hang. */
  hangMs?: number;
  /** Where calls are counted (shared across runs). */
  tally: Tally;
  /** Called with the run's world before the first command (the harness reads its created mdevs). */
  onStart?: (w: World) => void;
  /** Where calls are counted per op, if given. */
  opTally?: Tally;
}

export interface RunOutcome {
  findings: Finding[];
  /** Calls made (skipped commands do not count). */
  calls: number;
  world: World;
}

const HANG = Symbol('hang');

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | typeof HANG> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<typeof HANG>((r) => (timer = setTimeout(() => r(HANG), ms)))]).finally(() => clearTimeout(timer));
}

const isThenable = (v: unknown): v is Promise<unknown> => typeof (v as { then?: unknown })?.then === 'function';
const isOpResult = (v: unknown): v is { __op: OpResult } => typeof v === 'object' && v !== null && '__op' in v;

function count(t: Tally, key: string): void {
  t[key] = (t[key] ?? 0) + 1;
}

/**
 * Executes `cmds` from a fresh world. With `hold` set, stops after the
 * commands without cleaning up (worker mode: the worker is terminated
 * holding whatever it holds); otherwise cleans up and checks.
 */
export async function execute(cmds: readonly Cmd[], env: ExecEnv, opts: { hold?: boolean } = {}): Promise<RunOutcome> {
  const tmp = mkdtempSync(join(tmpdir(), 'vfio-fuzz-'));
  const w = new World(env.target, tmp);
  env.onStart?.(w);
  const r = resolverOf(w);
  const findings: Finding[] = [];
  const hangMs = env.hangMs ?? 15_000;
  let calls = 0;
  const found = (f: Finding): void => {
    findings.push(f);
  };

  for (let i = 0; i < cmds.length; i++) {
    w.closeTransientFds();
    const cmd = cmds[i]!;
    const def = OP_BY_NAME.get(cmd.op);
    if (!def) {
      count(env.tally, 'skipped (unknown op)');
      continue;
    }
    let self: Entry | undefined;
    if (def.on) {
      self = w.pick(def.on, cmd.on ?? 0);
      if (!self) {
        count(env.tally, 'skipped (no receiver)');
        continue;
      }
    }
    const x: OpCtx = { w, t: env.target, spec: env.spec, V: env.V, cli: env.cli, cmdIndex: i };
    let args: unknown[];
    try {
      args = cmd.args.map((v) => materialize(v, r));
      if (def.slots) {
        const list = def.slots(x, self);
        args = args.map((a) => (a instanceof Slot ? (list.length ? list[a.k % list.length]! : 0) : a));
      }
    } catch {
      count(env.tally, 'skipped (argument not made)');
      continue;
    }
    const unsafe = def.guard?.(x, self, args);
    if (unsafe) {
      count(env.tally, 'skipped (unsafe for the guest)');
      continue;
    }
    const wasClosed = self?.state === 'closed';
    env.onProgress?.(i);
    calls++;
    if (env.opTally) count(env.opTally, def.name);

    let value: unknown;
    let error: unknown;
    let threw = false;
    try {
      value = def.run(x, self, args);
      if (isThenable(value)) {
        if (def.background) {
          const p: Pending = { op: def.name, cmdIndex: i, promise: value, settled: false };
          w.pending.push(p);
          value.then(
            (v) => {
              p.settled = true;
              count(env.tally, isOpResult(v) ? (v.__op.key ?? 'ok') : 'ok');
            },
            (e) => {
              p.settled = true;
              const c = classifyError(e, def.signalled);
              count(env.tally, c.key);
              if (c.bad) found({ kind: c.bad.kind, op: def.name, cmdIndex: i, detail: c.bad.detail });
            },
          );
          continue;
        }
        value = await withTimeout(value, hangMs);
        if (value === HANG) {
          count(env.tally, 'hang');
          found({ kind: 'hang', op: def.name, cmdIndex: i, detail: `no answer within ${hangMs} ms` });
          continue;
        }
      }
    } catch (e) {
      threw = true;
      error = e;
    }

    let key = 'ok';
    if (threw) {
      const c = classifyError(error, def.signalled);
      key = c.key;
      if (c.bad) found({ kind: c.bad.kind, op: def.name, cmdIndex: i, detail: c.bad.detail });
      // The CLI's main() must answer with an exit status, never throw.
      if (def.name === 'cli' && !c.bad) found({ kind: 'cli', op: def.name, cmdIndex: i, detail: `main() threw ${key}: ${String((error as Error)?.message ?? error).slice(0, 200)}` });
    } else if (isOpResult(value)) {
      key = value.__op.key ?? 'ok';
      if (value.__op.bad) found({ kind: value.__op.bad.kind, op: def.name, cmdIndex: i, detail: value.__op.bad.detail });
    }
    count(env.tally, key);
    if (def.closedThrows && wasClosed && !threw) found({ kind: 'use-after-close', op: def.name, cmdIndex: i, detail: `${self!.kind} #${self!.id} was closed, and the call succeeded` });
    const o = def.oracle?.(x, self, args, error, threw);
    if (o) found({ ...o, op: def.name, cmdIndex: i });
  }

  w.closeTransientFds();
  if (!opts.hold) {
    env.onProgress?.(-1);
    await cleanUp(w, env, found);
    try {
      rmSync(tmp, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
  return { findings, calls, world: w };
}

/** The order in which the run's objects are closed: what depends on others first. */
const CLOSE_ORDER: Kind[] = ['edu', 'irqs', 'view', 'dmabuf', 'eventfd', 'opened', 'device', 'group', 'container', 'hwpt', 'ioas', 'iommufd'];

/** Closes everything, waits for pending calls, frees buffers, removes created mdevs, checks that nothing is held. */
export async function cleanUp(w: World, env: ExecEnv, found: (f: Finding) => void): Promise<void> {
  const attempt = (what: string, f: () => unknown): void => {
    try {
      f();
    } catch (e) {
      const c = classifyError(e);
      count(env.tally, `cleanup: ${c.key}`);
      if (c.bad) found({ kind: c.bad.kind, op: `cleanup ${what}`, cmdIndex: -1, detail: c.bad.detail });
    }
  };
  for (const kind of CLOSE_ORDER) {
    for (const e of [...w.all(kind)].reverse()) {
      if (kind === 'view') attempt('view.unmap', () => e.obj.unmap());
      else attempt(`${kind}.close`, () => e.obj.close());
      w.markClosed(e);
    }
  }
  // Every space is closed: no buffer may still be pinned.
  for (const e of w.all('buffer')) {
    let pins = -1;
    try {
      pins = e.obj.freed ? 0 : e.obj.pins;
    } catch {
      /* counted below */
    }
    if (pins > 0) found({ kind: 'leak', op: 'cleanup buffer.free', cmdIndex: -1, detail: `a DmaBuffer still has ${pins} pin(s) after every container and IOAS was closed` });
    attempt('buffer.free', () => e.obj.free());
  }
  // Everything the pending calls wait on is closed or aborted: they must all settle.
  const unsettled = w.pending.filter((p) => !p.settled);
  if (unsettled.length) {
    await withTimeout(Promise.allSettled(unsettled.map((p) => p.promise)), 5000);
    for (const p of unsettled) if (!p.settled) found({ kind: 'unsettled', op: p.op, cmdIndex: p.cmdIndex, detail: 'still pending 5 s after everything it waits on was closed' });
  }
  await removeCreated(w, env, found);
  w.closeOwnFds();
  const held = env.V.heldCount(env.target.device);
  if (held !== 0) found({ kind: 'leak', op: 'heldCount', cmdIndex: -1, detail: `heldCount(target) is ${held} after every device was closed` });
}

/** Removes the mdevs a run created, through the library (a timeout instead of a blocked process if one is still held). */
export async function removeCreated(w: World, env: ExecEnv, found: (f: Finding) => void): Promise<void> {
  for (const uuid of [...w.createdMdevs]) {
    try {
      await new env.V.MdevBus().remove(uuid, { timeoutMs: 5000 });
      w.createdMdevs.delete(uuid);
    } catch (e) {
      const code = (e as { code?: string })?.code;
      if (code === 'ENOENT') w.createdMdevs.delete(uuid);
      else found({ kind: 'leak', op: 'cleanup mdev remove', cmdIndex: -1, detail: `mdev ${uuid} created by the run could not be removed: ${String((e as Error)?.message ?? e).slice(0, 200)}` });
    }
  }
}
