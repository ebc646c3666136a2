/**
 * What counts as a correct failure: a TypeError or RangeError (bad arguments),
 * or a VfioError whose `code` is a stable string — an errno name ('EINVAL', 'E2BIG') or
 * an 'ERR_VFIO_…' code. An AbortSignal's reason is fine where a signal was
 * passed. Anything else (a plain Error, a raw Node fs error, a VfioError with
 * the catch-all 'ERR_VFIO' code, a thrown non-Error) is a finding.
 */
import * as V from 'vfio';

/** Kinds of finding, most serious first. */
export type FindingKind =
  | 'crash' // the child died of a signal (SIGSEGV, SIGBUS, SIGABRT…) or exited on its own
  | 'hang' // a call did not return, or the child stopped making progress
  | 'unsettled' // a promise never settled although everything it waits on was closed or aborted
  | 'plain-error' // something other than TypeError/RangeError/VfioError was thrown
  | 'unstable-code' // a VfioError without a stable code
  | 'use-after-close' // a call on a closed object succeeded
  | 'quirk-bypassed' // a sample-driver access the library must refuse was not refused
  | 'leak' // something stayed held after everything was closed (or a worker ended)
  | 'cli'; // the CLI broke its exit-status/stderr contract

export interface Finding {
  kind: FindingKind;
  /** The operation ('device.mmap', 'cli', …), or '' for the run as a whole. */
  op: string;
  /** The command's index in the sequence (-1: after the sequence, in cleanup or a check). */
  cmdIndex: number;
  /** What happened: the error's name, code and message, or the signal. */
  detail: string;
}

/** A stable code: an errno name or an ERR_VFIO_… code (not the bare catch-all 'ERR_VFIO'). */
export const STABLE_CODE = /^(E[A-Z0-9]+|ERR_VFIO_[A-Z0-9_]+)$/;

/** How one call ended: an outcome key for the tally, and what was wrong with it, if anything. */
export interface Classified {
  key: string;
  bad?: { kind: FindingKind; detail: string };
}

const brief = (e: unknown): string => {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    const where = e.stack?.split('\n').slice(1, 3).map((l) => l.trim()).join(' | ') ?? '';
    return `${e.name}${code === undefined ? '' : ` [${String(code)}]`}: ${e.message.slice(0, 300)}${where ? ` (${where})` : ''}`;
  }
  return `non-Error thrown: ${typeof e} ${String(e).slice(0, 200)}`;
};

/** Classifies a thrown value. `signalled`: the call was given an AbortSignal (its reason may come back). */
export function classifyError(e: unknown, signalled = false): Classified {
  if (e instanceof V.VfioError) {
    const name = e.constructor === V.VfioError ? 'VfioError' : `VfioError(${e.constructor.name})`;
    if (typeof e.code === 'string' && STABLE_CODE.test(e.code)) return { key: `${name} ${e.code}` };
    return { key: `${name} ${String(e.code)}`, bad: { kind: 'unstable-code', detail: brief(e) } };
  }
  if (e instanceof TypeError) return { key: 'TypeError' };
  if (e instanceof RangeError) return { key: 'RangeError' };
  if (signalled && e instanceof DOMException && (e.name === 'AbortError' || e.name === 'TimeoutError')) return { key: e.name };
  const name = e instanceof Error ? e.constructor.name || e.name : typeof e;
  return { key: `${name} (unexpected)`, bad: { kind: 'plain-error', detail: brief(e) } };
}

/**
 * The CLI's contract (README, CLI): exit 0; exit 1 with exactly one stderr line
 * `vfio: <CODE>: …` where CODE is stable; exit 2 for usage errors.
 */
export function classifyCli(status: unknown, stderr: string): Classified {
  if (status === 0) return { key: 'cli exit 0' };
  if (status === 2) return { key: 'cli exit 2 (usage)' };
  if (status === 1) {
    const lines = stderr.split('\n').filter((l) => l !== '');
    const m = /^vfio: ([A-Za-z0-9_]+): /.exec(lines[0] ?? '');
    if (lines.length !== 1 || !m) return { key: 'cli exit 1 (malformed)', bad: { kind: 'cli', detail: `exit 1 with stderr ${JSON.stringify(stderr.slice(0, 300))}` } };
    if (!STABLE_CODE.test(m[1]!)) return { key: `cli exit 1 ${m[1]}`, bad: { kind: 'unstable-code', detail: `cli: ${lines[0]!.slice(0, 300)}` } };
    return { key: `cli exit 1 ${m[1]}` };
  }
  return { key: `cli exit ${String(status)}`, bad: { kind: 'cli', detail: `exit status ${String(status)}, stderr ${JSON.stringify(stderr.slice(0, 300))}` } };
}
