/**
 * The benchmark's results: per-side statistics, the ratio to C, the verdict
 * against each case's target, bench-results/latest.json and the readable table.
 * Pure: no I/O, tested on the host (test/host/bench-report.test.ts).
 */

/** Summary of one side's samples. */
export interface Stats {
  median: number;
  min: number;
  max: number;
  /** Samples (rounds); each sample is itself an average over a batch of repetitions. */
  n: number;
  /** Repetitions per sample. */
  reps: number;
}

/** One case in bench-results/latest.json. */
export interface CaseResult {
  name: string;
  /** Unit of ours/c medians: e.g. 'µs/op', 'MiB/s', 'irq/s', 'x', 'B/mapping'. */
  unit: string;
  ours: Stats | null;
  c: Stats | null;
  /** ours.median / c.median, or null when either side has no result. */
  ratio: number | null;
  /** The target, or null where the issue asks only for a report. */
  target: number | null;
  /** 'lower': ours should be at most the target; 'higher': at least. */
  better: 'lower' | 'higher';
  /** What the target bounds: the ratio to C (usual), or our own figure (growth, heap). */
  targetOn: 'ratio' | 'ours';
  /** true/false against the target; null when the case has no target and ran; false when it could not run. */
  met: boolean | null;
  /**
   * Why the case has no result (never a silent zero): "refused: …" when a
   * prerequisite is absent, "failed: …" when a side failed while measuring.
   */
  error?: string;
  /** What the case measures, for the table's readers. */
  note?: string;
}

export interface BenchReport {
  cases: CaseResult[];
  /** Where and how it ran. */
  env: Record<string, string | number>;
  date: string;
}

export function stats(samples: readonly number[], reps: number): Stats {
  if (samples.length === 0) throw new RangeError('no samples');
  for (const s of samples) if (!Number.isFinite(s) || s < 0) throw new RangeError(`a sample is not a finite non-negative number: ${s}`);
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, n: sorted.length, reps };
}

export interface CaseSpec {
  name: string;
  unit: string;
  target: number | null;
  better: 'lower' | 'higher';
  targetOn?: 'ratio' | 'ours';
  note?: string;
}

/**
 * Builds a case from both sides' stats. A side that failed (null) makes the case
 * failed with its error: a C baseline that fails is never "infinitely fast".
 */
export function makeCase(spec: CaseSpec, ours: Stats | null, c: Stats | null, error?: string): CaseResult {
  const targetOn = spec.targetOn ?? 'ratio';
  const ratio = ours && c && c.median > 0 ? ours.median / c.median : null;
  let met: boolean | null;
  let err = error;
  if (!ours) {
    met = false;
    err ??= 'our side produced no result';
  } else if (targetOn === 'ratio' && !c) {
    met = false;
    err ??= 'the C baseline produced no result';
  } else if (spec.target === null) {
    met = null;
  } else {
    const v = targetOn === 'ratio' ? ratio : ours.median;
    met = v !== null && (spec.better === 'lower' ? v <= spec.target : v >= spec.target);
  }
  const r: CaseResult = { name: spec.name, unit: spec.unit, ours, c, ratio, target: spec.target, better: spec.better, targetOn, met };
  if (err !== undefined) r.error = err;
  if (spec.note !== undefined) r.note = spec.note;
  return r;
}

/** A case that could not run at all (a prerequisite is absent, or set-up failed). */
export function refusedCase(spec: CaseSpec, reason: string): CaseResult {
  return makeCase(spec, null, null, `refused: ${reason}`);
}

function num(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6) return v.toExponential(2);
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  return v.toPrecision(3);
}

function side(s: Stats | null): string {
  return s ? num(s.median) : '—';
}

function spread(s: Stats | null): string {
  return s ? `${num(s.min)}–${num(s.max)}` : '—';
}

/** The readable table: one row a case, then the failures' reasons. */
export function renderTable(report: BenchReport): string {
  const head = ['case', 'unit', 'ours', 'C', 'ratio', 'target', 'met', 'ours min–max', 'C min–max', 'n×reps'];
  const rows = report.cases.map((c) => [
    c.name,
    c.unit,
    side(c.ours),
    side(c.c),
    c.ratio === null ? '—' : c.ratio.toFixed(3),
    c.target === null ? 'report' : `${c.better === 'lower' ? '≤' : '≥'} ${c.target}${c.targetOn === 'ours' ? ' (ours)' : ''}`,
    c.met === null ? '—' : c.met ? 'yes' : 'NO',
    spread(c.ours),
    spread(c.c),
    c.ours ? `${c.ours.n}×${c.ours.reps}` : '—',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((v, i) => (i < 2 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ').trimEnd();
  const out = [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)];
  const notes = report.cases.filter((c) => c.error).map((c) => `${c.name}: ${c.error}`);
  if (notes.length) out.push('', 'not measured / failed:', ...notes.map((n) => `  ${n}`));
  const targets = report.cases.filter((c) => c.target !== null);
  out.push('', `targets met: ${targets.filter((c) => c.met).length} of ${targets.length}`);
  return out.join('\n');
}
