/**
 * Findings as reported: with the seed and round that found them, the
 * sequence, its shrunk form, and how they print (a readable call list, and
 * the JSON that `npm run fuzz -- --replay FILE` takes).
 */
import type { Finding } from './classify.js';
import type { Cmd, Sequence } from './ops/index.js';
import { show } from './values.js';

export interface ReportedFinding extends Finding {
  target: string;
  backend: 'group' | 'cdev';
  /** The fast-check seed of the round that found it (base seed + round). */
  seed: number;
  round: number;
  sequence: Sequence;
  shrunk: Sequence;
  /** Calls made on this (target, backend) before the failing sequence, and the time since the child started. */
  callsBefore: number;
  ms: number;
  /** Whether replaying the shrunk sequence in a fresh process showed it again (crashes and hangs only). */
  reproduced: boolean;
}

/**
 * What makes two findings the same: kind, op, and the detail up to its first
 * colon (the error class, or what happened), numbers stripped.
 */
export function signature(f: Finding): string {
  const gist = f.detail.split(':')[0]!.replace(/0x[0-9a-f]+|\d+/gi, 'N').slice(0, 80);
  return `${f.kind} ${f.op}: ${gist}`;
}

/** One command as a line: `#3 device.mmap on device#0 (0, { length: 4096 })`. */
export function showCmd(c: Cmd, i: number): string {
  return `#${i} ${c.op}${c.on === undefined ? '' : ` [receiver ${c.on}]`}(${c.args.map(show).join(', ')})`;
}

export function showSequence(s: Sequence): string {
  const head = s.mode === 'worker' ? `in a worker, terminated ${s.busy ? `while running, as it started command #${s.terminateAt}` : `after ${s.terminateAt} command(s), idle`}:\n` : '';
  return head + s.cmds.map((c, i) => `    ${showCmd(c, i)}`).join('\n');
}

export function showFinding(f: ReportedFinding): string {
  return [
    `${f.kind.toUpperCase()} in ${f.op || 'the run'} — ${f.target} on ${f.backend}, seed ${f.seed} (round ${f.round}), after ${f.callsBefore} calls, ${(f.ms / 1000).toFixed(1)} s${f.reproduced ? '' : ' (did not reproduce in a fresh process)'}`,
    `  ${f.detail}`,
    `  shrunk to ${f.shrunk.cmds.length} of ${f.sequence.cmds.length} command(s):`,
    showSequence(f.shrunk),
  ].join('\n');
}
