/**
 * Writes to sysfs attributes that the kernel may block on, from a long-lived
 * child process, so that no thread of this process ever blocks.
 *
 * Writing `remove` of an mdev blocks in the kernel (vfio_unregister_group_dev)
 * for as long as any process holds the device open, and after the first signal
 * the wait is uninterruptible: a blocked thread of ours (a sync write, or the
 * libuv threadpool) could never be cancelled and would hang the process and
 * its exit. A child can simply be left to finish.
 *
 * Spawning a child per write is correct but costs tens of milliseconds under
 * emulation, so one child is spawned on first use and kept: it reads requests
 * on stdin, one line each, `<id> <hex path> <hex data>` (hex so that any byte
 * is safe, and because perl-base has no JSON parser), performs them one at a
 * time, and answers one JSON line each on stdout: `{"id":N,"ok":true}` or
 * `{"id":N,"errno":-13,"syscall":"open"}` (the node fallback adds `code`).
 *
 * - A child serves one request at a time. If a request arrives while the
 *   current child's write has not answered (it may be blocked in the kernel),
 *   that child is retired: its stdin is closed, it finishes on its own (its
 *   request keeps its own timeout) and exits at EOF, and a fresh child takes
 *   the new request. A device held open elsewhere never delays other writes.
 * - The children never keep the event loop alive when idle: the process handle
 *   and the pipes are unref'd, and ref'd only while a caller awaits an answer.
 *   When this process exits, an idle child sees EOF on stdin and exits; our
 *   ends of the pipes are close-on-exec (libuv), so no other child inherits
 *   them. The children run in their own session (`detached`), so a Ctrl-C
 *   meant for the terminal's foreground job does not hit a blocked write.
 * - A child that dies fails its pending requests with ERR_VFIO_CHILD; the next
 *   request spawns a new one.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { VfioError } from '../errors.js';

const { errno: E } = constants;

/** Perl (Debian's perl-base is essential), which starts in milliseconds where node takes a second under emulation. */
const PERL_WRITER = String.raw`$0 = "vfio sysfs writer"; $| = 1; $SIG{PIPE} = "IGNORE";
while (defined(my $l = <STDIN>)) {
  chomp $l;
  my ($id, $p, $d) = split(/ /, $l, -1);
  next unless defined $d && $id =~ /^\d+$/;
  my ($s, $e) = ("", 0);
  if (!open(my $f, ">", pack("H*", $p))) { ($s, $e) = ("open", $! + 0) }
  elsif (!defined(syswrite($f, pack("H*", $d)))) { ($s, $e) = ("write", $! + 0) }
  elsif (!close($f)) { ($s, $e) = ("close", $! + 0) }
  print($s ? qq({"id":$id,"errno":-$e,"syscall":"$s"}\n) : qq({"id":$id,"ok":true}\n));
}`;

/** The same in node, when there is no perl; it reports Node's own `code` too. */
const NODE_WRITER = `process.title = 'vfio sysfs writer';
const fs = require('fs');
let buf = '';
process.stdin.setEncoding('latin1');
process.stdin.on('data', (s) => {
  buf += s;
  for (let i; (i = buf.indexOf('\\n')) >= 0; ) {
    const [id, p, d] = buf.slice(0, i).split(' ');
    buf = buf.slice(i + 1);
    if (d === undefined || !/^\\d+$/.test(id)) continue;
    let r;
    try {
      fs.writeFileSync(Buffer.from(p, 'hex'), Buffer.from(d, 'hex'));
      r = { id: Number(id), ok: true };
    } catch (e) {
      r = { id: Number(id), code: e.code, errno: e.errno, syscall: e.syscall };
    }
    process.stdout.write(JSON.stringify(r) + '\\n');
  }
});`;

const PERL = ['/usr/bin/perl', '/bin/perl'].find((p) => existsSync(p));

/** Which interpreter runs the writer. @internal */
export type WriterRuntime = 'perl' | 'node';

/** Options of {@link SysfsWriter.write}. @internal */
export interface SysfsWriteOptions {
  /** Reject with ETIMEDOUT after this long; the write itself completes in the background. Default: wait for ever. */
  timeoutMs?: number;
  /** The operation named in errors ('mdev remove'). */
  operation?: string;
  /** The path named in errors (the system path, when `file` lies under a test root). Default `file`. */
  path?: string;
  /** The message and hint of the ETIMEDOUT error, computed when the timeout fires. */
  onTimeout?: () => { message: string; hint?: string };
}

interface Waiter {
  resolve: () => void;
  reject: (err: VfioError) => void;
  timer: NodeJS.Timeout | undefined;
  operation: string | undefined;
  path: string;
}

interface Child {
  proc: ChildProcess;
  /** Ids sent and not yet answered: the child is busy while any is. */
  outstanding: Set<number>;
  /** Callers awaiting an answer, by id (a timed-out request has none). */
  waiters: Map<number, Waiter>;
  stdout: string;
  stderr: string;
  gone: boolean;
}

interface Reported {
  id?: unknown;
  ok?: unknown;
  code?: string;
  errno?: number;
  syscall?: string;
}

const hex = (s: string): string => Buffer.from(s, 'utf8').toString('hex');
/** setTimeout's limit; longer (or non-finite) timeouts mean no timeout. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A long-lived writer child, spawned on first use; see the module comment. @internal */
export class SysfsWriter {
  /** The interpreter of the children. */
  readonly runtime: WriterRuntime;
  #current: Child | undefined;
  #live = new Set<Child>();
  #nextId = 1;

  constructor(options: { runtime?: WriterRuntime } = {}) {
    this.runtime = options.runtime ?? (PERL ? 'perl' : 'node');
  }

  /** The pid of the child that takes the next request, or undefined when there is none (yet, or any more). */
  get pid(): number | undefined {
    return this.#current?.proc.pid;
  }

  /** The pids of every child still running, the current one and retired ones finishing a write. */
  get pids(): number[] {
    return [...this.#live].map((c) => c.proc.pid).filter((p): p is number => p !== undefined);
  }

  /**
   * Writes `data` to `file` (an on-disk path) in a child process and resolves
   * once the write and close returned. Rejects with a VfioError carrying the
   * child's errno and syscall (EACCES on open, EINVAL on write, …), ETIMEDOUT
   * after `timeoutMs` (the write goes on in the background), or
   * ERR_VFIO_CHILD when the child dies first.
   */
  write(file: string, data: string, options: SysfsWriteOptions = {}): Promise<void> {
    const { operation } = options;
    const path = options.path ?? file;
    return new Promise<void>((resolve, reject) => {
      let child = this.#current;
      if (child !== undefined && child.outstanding.size > 0) {
        // Busy, perhaps blocked in the kernel: never queue behind it.
        this.#retire(child);
        child = undefined;
      }
      child ??= this.#spawn();
      const c = child;
      const id = this.#nextId++;
      const waiter: Waiter = { resolve, reject, timer: undefined, operation, path };
      const ms = options.timeoutMs;
      if (ms !== undefined && Number.isFinite(ms) && ms <= MAX_TIMER_MS) {
        waiter.timer = setTimeout(() => {
          if (c.waiters.get(id) !== waiter) return;
          c.waiters.delete(id);
          this.#retire(c); // it is blocked: let it finish on its own and exit
          this.#updateRef(c);
          let extra: { message: string; hint?: string } | undefined;
          try {
            extra = options.onTimeout?.();
          } catch {
            /* keep the generic message */
          }
          reject(
            new VfioError({
              errno: E.ETIMEDOUT,
              operation,
              path,
              syscall: 'write',
              message: extra?.message ?? `ETIMEDOUT: writing ${path} did not finish within ${ms} ms; it completes in the background`,
              ...(extra?.hint === undefined ? {} : { hint: extra.hint }),
            }),
          );
        }, Math.max(0, ms));
      }
      c.outstanding.add(id);
      c.waiters.set(id, waiter);
      this.#updateRef(c);
      c.proc.stdin!.write(`${id} ${hex(file)} ${hex(data)}\n`);
    });
  }

  /**
   * Closes the current child's stdin, so that it exits once idle. Pending
   * requests still get their answers; the next write spawns a new child.
   */
  close(): void {
    if (this.#current) this.#retire(this.#current);
  }

  #spawn(): Child {
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    const [cmd, args] = this.runtime === 'perl' && PERL ? [PERL, ['-e', PERL_WRITER]] : [process.execPath, ['-e', NODE_WRITER]];
    const proc = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env, detached: true });
    const child: Child = { proc, outstanding: new Set(), waiters: new Map(), stdout: '', stderr: '', gone: false };
    this.#current = child;
    this.#live.add(child);
    proc.unref();
    for (const s of [proc.stdin!, proc.stdout!, proc.stderr!]) {
      (s as unknown as { unref?: () => void }).unref?.();
      s.on('error', () => {
        /* EPIPE and the like: the 'close' of the process reports it */
      });
    }
    proc.stdout!.setEncoding('utf8').on('data', (s: string) => this.#onStdout(child, s));
    proc.stderr!.setEncoding('utf8').on('data', (s: string) => (child.stderr = (child.stderr + s).slice(-4096)));
    proc.on('error', (err) => this.#gone(child, (w) => VfioError.from(err, { operation: w.operation, path: w.path })));
    proc.on('close', (code, signal) =>
      this.#gone(child, (w) => {
        const last = child.stderr.trim().split('\n').at(-1);
        return new VfioError({
          code: 'ERR_VFIO_CHILD',
          operation: w.operation,
          path: w.path,
          message: `ERR_VFIO_CHILD: the process writing ${w.path} (${this.runtime}, pid ${proc.pid}) ${signal ? `was killed by ${signal}` : `exited with status ${code}`} before answering${last ? `: ${last}` : ''}`,
        });
      }),
    );
    return child;
  }

  #onStdout(child: Child, s: string): void {
    child.stdout += s;
    for (let i; (i = child.stdout.indexOf('\n')) >= 0; ) {
      const line = child.stdout.slice(0, i);
      child.stdout = child.stdout.slice(i + 1);
      let r: Reported;
      try {
        r = JSON.parse(line) as Reported;
      } catch {
        continue; // not an answer of ours
      }
      if (typeof r?.id !== 'number') continue;
      child.outstanding.delete(r.id);
      const w = child.waiters.get(r.id);
      if (w === undefined) continue; // timed out already
      child.waiters.delete(r.id);
      clearTimeout(w.timer);
      if (r.ok === true) w.resolve();
      else w.reject(VfioError.from({ code: r.code, errno: r.errno, syscall: r.syscall }, { operation: w.operation, path: w.path }));
    }
    this.#updateRef(child);
  }

  /** The child exited or could not be spawned: fail what it still owes, forget it. */
  #gone(child: Child, error: (w: Waiter) => VfioError): void {
    child.gone = true;
    if (this.#current === child) this.#current = undefined;
    this.#live.delete(child);
    const waiters = [...child.waiters.values()];
    child.waiters.clear();
    child.outstanding.clear();
    for (const w of waiters) {
      clearTimeout(w.timer);
      w.reject(error(w));
    }
  }

  /** No more requests for `child`: it exits at EOF once its current write returns. */
  #retire(child: Child): void {
    if (this.#current === child) this.#current = undefined;
    if (!child.gone) child.proc.stdin!.end();
  }

  /** Keeps the event loop alive while, and only while, a caller awaits `child`. */
  #updateRef(child: Child): void {
    const on = child.waiters.size > 0 && !child.gone;
    for (const h of [child.proc, child.proc.stdout]) {
      const handle = h as unknown as { ref?: () => void; unref?: () => void } | null;
      if (on) handle?.ref?.();
      else handle?.unref?.();
    }
  }
}

/** The writer shared by every {@link MdevBus}: one idle child per process at most. @internal */
export const sysfsWriter = new SysfsWriter();
