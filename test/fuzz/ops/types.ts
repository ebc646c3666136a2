/**
 * The shape of one entry of the operation table: which object kind it runs
 * on, how its arguments are generated, how it runs, and which calls the
 * guest-safety rules forbid.
 */
import type fc from 'fast-check';
import type * as Vfio from 'vfio';
import type { Entry, World } from '../world.js';
import type { TargetInfo, TargetSpec } from '../targets.js';
import type { Kind, Val } from '../values.js';

/** The `vfio` CLI module (src/cli/vfio.ts): only main() is used. */
export interface CliModule {
  main(argv: string[], io: { stdout: { write(s: string): unknown }; stderr: { write(s: string): unknown } }): Promise<number>;
}

/** What an operation gets besides its receiver and arguments. */
export interface OpCtx {
  w: World;
  t: TargetInfo;
  spec: TargetSpec;
  /** The package, imported as users do ('vfio'). */
  V: typeof Vfio;
  cli: CliModule | null;
  cmdIndex: number;
}

/** Marks for the outcome an operation produced (see executor.ts). */
export interface OpResult {
  /** An outcome key that replaces 'ok' (the CLI reports its exit status this way). */
  key?: string;
  /** A contract broken without an exception (the CLI's stderr, a quirk not refused…). */
  bad?: { kind: import('../classify.js').FindingKind; detail: string };
}

export interface OpDef {
  /** 'device.mmap', 'ioas.map', 'cli', … */
  name: string;
  /** The receiver's kind; none for constructors and free functions. */
  on?: Kind;
  /** Relative frequency (default 1). */
  weight?: number;
  /** The argument descriptors, given what is interesting on the target. */
  args: (spec: TargetSpec) => fc.Arbitrary<Val[]>;
  /**
   * Runs the call. Registers what it makes in `x.w`. A returned promise is
   * awaited (with a hang timeout) unless `background` is set. Returning an
   * OpResult (tagged with `__op`) changes how the outcome is counted.
   */
  run: (x: OpCtx, self: Entry | undefined, a: any[]) => unknown;
  /** Why this call must not be made (guest safety), or null. */
  guard?: (x: OpCtx, self: Entry | undefined, a: any[]) => string | null;
  /** The call must throw when its receiver is closed (use-after-close oracle). */
  closedThrows?: boolean;
  /** Checks a successful or failed call further: returns what is wrong, or null. */
  oracle?: (x: OpCtx, self: Entry | undefined, a: any[], error: unknown, threw: boolean) => { kind: import('../classify.js').FindingKind; detail: string } | null;
  /** The call returns a promise that is left running (settled later, or at the end of the run). */
  background?: boolean;
  /** The call takes an AbortSignal, whose reason may be how it fails. */
  signalled?: boolean;
  /** The interesting offsets on this receiver: `slot` arguments pick among them. */
  slots?: (x: OpCtx, self: Entry | undefined) => readonly number[];
}

/** Wraps an OpResult so the executor can tell it from an API return value. */
export const result = (r: OpResult): { __op: OpResult } => ({ __op: r });
