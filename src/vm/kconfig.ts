/**
 * Kconfig fragment handling for the guest kernel: parse a fragment and a
 * generated .config, and report every symbol the fragment asks for that did
 * not survive `make olddefconfig` (a missing dependency silently drops it).
 */

/** `y`, `m`, `n` (from `# CONFIG_X is not set`), or a literal value (numbers, strings). */
export type KconfigValue = string;

const SET_RE = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/;
const UNSET_RE = /^# (CONFIG_[A-Za-z0-9_]+) is not set$/;

/** Parses `.config`-style text into symbol → value. Later lines win, as in Kconfig. */
export function parseKconfig(text: string): Map<string, KconfigValue> {
  const out = new Map<string, KconfigValue>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    let m = SET_RE.exec(line);
    if (m) {
      out.set(m[1]!, m[2]!);
      continue;
    }
    m = UNSET_RE.exec(line);
    if (m) out.set(m[1]!, 'n');
  }
  return out;
}

export interface KconfigMismatch {
  symbol: string;
  wanted: KconfigValue;
  /** What the final .config has; `n` when absent or not set. */
  got: KconfigValue;
}

/** Every symbol of `fragment` whose value in `final` differs (absent counts as `n`). */
export function verifyKconfig(fragment: Map<string, KconfigValue>, final: Map<string, KconfigValue>): KconfigMismatch[] {
  const bad: KconfigMismatch[] = [];
  for (const [symbol, wanted] of fragment) {
    const got = final.get(symbol) ?? 'n';
    if (got !== wanted) bad.push({ symbol, wanted, got });
  }
  return bad;
}

export function formatMismatches(bad: KconfigMismatch[]): string {
  return bad.map((b) => `  ${b.symbol}: wanted ${b.wanted}, got ${b.got}`).join('\n');
}
