/**
 * The C side of both benchmark sections (bench/c/vfio_bench.c in the guest,
 * bench/c/host_bench.c on the host), run as a coprocess handed the very fds
 * the JavaScript side uses.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';

/** The C coprocess: one command a line, one answer a line ("ok <ns> …" or "err <errno> <what>"). */
export class CBaseline {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #lines: Interface;
  readonly #waiting: ((line: string) => void)[] = [];
  #dead: string | null = null;

  /** `fds` become the child's fds 3, 4, … in order (inherited: dup2 clears their close-on-exec). */
  constructor(bin: string, fds: number[]) {
    this.#child = spawn(bin, [], { stdio: ['pipe', 'pipe', 'inherit', ...fds] }) as unknown as ChildProcessWithoutNullStreams;
    this.#lines = createInterface({ input: this.#child.stdout });
    this.#lines.on('line', (l) => this.#waiting.shift()?.(l));
    this.#child.on('error', (e) => this.#die(`the C baseline failed to start: ${e.message}`));
    this.#child.on('exit', (code, sig) => this.#die(`the C baseline exited (${sig ?? code})`));
  }

  #die(why: string): void {
    this.#dead ??= why;
    for (const w of this.#waiting.splice(0)) w(`err 0 ${this.#dead}`);
  }

  /** Child fd number of the i-th fd handed in. */
  static fd(i: number): number {
    return 3 + i;
  }

  /** Runs one command; returns the numbers after "ok" (the first is the timed ns). */
  run(cmd: string): Promise<number[]> {
    if (this.#dead) return Promise.reject(new Error(this.#dead));
    return new Promise((resolve, reject) => {
      this.#waiting.push((line) => {
        const [status, ...rest] = line.trim().split(' ');
        if (status === 'ok') resolve(rest.map(Number));
        else reject(new Error(`C baseline: ${cmd.split(' ')[0]}: ${rest.slice(1).join(' ') || line} (errno ${rest[0]})`));
      });
      this.#child.stdin.write(`${cmd}\n`);
    });
  }

  close(): void {
    this.#child.stdin.end();
    this.#lines.close();
  }
}
