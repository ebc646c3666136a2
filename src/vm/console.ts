/**
 * Watches the guest's kernel console for the signs of a dead or dying kernel.
 * The guest boots with `panic=-1 oops=panic`, so every oops becomes a panic and
 * the VM resets (QEMU runs with -no-reboot and exits); this scanner names why.
 */

const FATAL: { kind: string; re: RegExp }[] = [
  { kind: 'kernel panic', re: /Kernel panic - not syncing[^\r\n]*/ },
  { kind: 'kernel oops', re: /\bOops: [^\r\n]*/ },
  { kind: 'kernel BUG', re: /\bBUG: [^\r\n]*/ },
  { kind: 'general protection fault', re: /general protection fault[^\r\n]*/ },
];

export interface ConsoleVerdict {
  kind: string;
  line: string;
}

export class ConsoleScanner {
  #tail = '';
  #verdict: ConsoleVerdict | null = null;
  /** The verdict's pattern while its line has not ended yet. */
  #pending: RegExp | null = null;
  readonly #keep: number;
  #warnings = 0;

  constructor(keepBytes = 64 * 1024) {
    this.#keep = keepBytes;
  }

  /** Feeds console bytes; returns the first fatal sign seen so far, if any. */
  push(chunk: string): ConsoleVerdict | null {
    // Scan the new text together with the unfinished last line of the old.
    const lastNl = this.#tail.lastIndexOf('\n');
    const window = this.#tail.slice(lastNl + 1) + chunk;
    if (!this.#verdict) {
      for (const f of FATAL) {
        const m = f.re.exec(window);
        if (m) {
          this.#verdict = { kind: f.kind, line: m[0].trim() };
          this.#pending = m.index + m[0].length < window.length ? null : f.re;
          break;
        }
      }
    } else if (this.#pending) {
      // The fatal line arrived in pieces: it is reported at once and completed as the rest comes.
      const m = this.#pending.exec(window);
      if (m) {
        this.#verdict = { ...this.#verdict, line: m[0].trim() };
        if (m.index + m[0].length < window.length) this.#pending = null;
      }
    }
    this.#warnings += (chunk.match(/WARNING: CPU: \d+ PID: /g) ?? []).length;
    this.#tail = (this.#tail + chunk).slice(-this.#keep);
    return this.#verdict;
  }

  get verdict(): ConsoleVerdict | null {
    return this.#verdict;
  }

  /** Kernel WARN() splats seen (not fatal, but worth reporting). */
  get warnings(): number {
    return this.#warnings;
  }

  /** The last `lines` lines of console output. */
  tail(lines = 40): string {
    return this.#tail.replace(/\r/g, '').split('\n').slice(-lines).join('\n');
  }
}
