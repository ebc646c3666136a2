/**
 * The end-of-run summary: calls by outcome (ok, each error class with its
 * code), what was skipped and why, time per (target, backend) pair.
 */
import type { CampaignResult } from './harness.js';

const pad = (s: string, n: number): string => (s.length >= n ? s : s + ' '.repeat(n - s.length));

export function formatSummary(r: CampaignResult, seed: number): string {
  const entries = Object.entries(r.tally).sort((a, b) => b[1] - a[1]);
  const calls = entries.filter(([k]) => !k.startsWith('skipped') && !k.startsWith('cleanup') && !k.startsWith('worker check'));
  const other = entries.filter(([k]) => k.startsWith('skipped') || k.startsWith('cleanup') || k.startsWith('worker check'));
  const total = calls.reduce((s, [, n]) => s + n, 0);
  const lines = [`fuzz summary (seed ${seed}): ${r.calls} calls in ${(r.ms / 1000).toFixed(0)} s, ${r.findings.length} finding(s)`, '', 'calls by outcome:'];
  for (const [k, n] of calls) lines.push(`  ${pad(k, 44)} ${String(n).padStart(7)}`);
  lines.push(`  ${pad('total', 44)} ${String(total).padStart(7)}`);
  if (other.length) {
    lines.push('', 'not counted as calls:');
    for (const [k, n] of other) lines.push(`  ${pad(k, 44)} ${String(n).padStart(7)}`);
  }
  if (Object.keys(r.seen).length) {
    lines.push('', 'known findings seen again:');
    for (const [k, n] of Object.entries(r.seen)) lines.push(`  ${n}× ${k}`);
  }
  const ops = Object.keys(r.ops).length;
  if (ops) lines.push('', `operations exercised: ${ops} distinct (calls per op in summary.json)`);
  lines.push('', 'pairs:');
  for (const p of r.pairs) lines.push(`  ${pad(`${p.target} on ${p.backend}`, 26)} ${String(p.calls).padStart(6)} calls ${(p.ms / 1000).toFixed(1).padStart(7)} s  (${p.children} child process${p.children === 1 ? '' : 'es'})`);
  return lines.join('\n');
}
