import { spawn, execFileSync } from 'node:child_process';
import { chmodSync, closeSync, constants as fsConstants, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VfioError } from '../../src/errors.js';
import { SysfsWriter, type WriterRuntime } from '../../src/mdev/writer.js';
import { REPO, failure } from './mdev-shared.js';

const E = constants.errno;
const HAVE_PERL = ['/usr/bin/perl', '/bin/perl'].some((p) => existsSync(p));
const RUNTIMES: WriterRuntime[] = HAVE_PERL ? ['perl', 'node'] : ['node'];

let dir: string;
const writers: SysfsWriter[] = [];
/** FIFOs a test may have left a writer blocked on: opened for reading (and drained) at the end. */
const fifos: string[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'vfio-writer-'));
});
afterEach(async () => {
  for (const f of fifos.splice(0)) unblock(f);
  for (const w of writers.splice(0)) w.close();
  rmSync(dir, { recursive: true, force: true });
});

const file = (name: string, content = ''): string => {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
};

/** A FIFO nobody reads: opening it for writing blocks, like the kernel's `remove` while the device is open. */
const fifo = (name: string): string => {
  const p = join(dir, name);
  execFileSync('mkfifo', [p]);
  fifos.push(p);
  return p;
};

/** Opens `path` for reading, letting a writer blocked on it through, and drains it after `settled`. */
async function drain(path: string, settled: Promise<unknown>): Promise<string> {
  const fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  try {
    await settled;
    const buf = Buffer.alloc(64);
    try {
      return buf.subarray(0, readSync(fd, buf)).toString();
    } catch {
      return '';
    }
  } finally {
    closeSync(fd);
  }
}

function unblock(path: string): void {
  try {
    closeSync(openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK));
  } catch {
    /* gone with the temp dir */
  }
}

/** Whether `pid` has exited (a zombie not yet reaped by whoever inherited it counts as exited). */
function exited(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** Polls `cond` every 20 ms for at most `ms`; returns whether it held. */
async function eventually(cond: () => boolean, ms = 10_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

/** Whether `p` is still pending after the writer had every chance to answer something else. */
async function pending(p: Promise<unknown>): Promise<boolean> {
  const marker = Symbol('pending');
  return (await Promise.race([p.then(() => null, () => null), new Promise((r) => setTimeout(() => r(marker), 50))])) === marker;
}

describe.each(RUNTIMES)('SysfsWriter (%s)', (runtime) => {
  const writer = (): SysfsWriter => {
    const w = new SysfsWriter({ runtime });
    writers.push(w);
    return w;
  };

  it('spawns one child lazily and reuses it for sequential writes', async () => {
    const w = writer();
    expect(w.runtime).toBe(runtime);
    expect(w.pid).toBeUndefined();
    const a = file('a');
    await w.write(a, '1');
    const pid = w.pid;
    expect(pid).toBeTypeOf('number');
    for (let i = 0; i < 20; i++) await w.write(a, `${i}`);
    expect(readFileSync(a, 'utf8')).toBe('19');
    expect(w.pid).toBe(pid);
    expect(w.pids).toEqual([pid]);
    w.close();
    expect(await eventually(() => exited(pid!))).toBe(true);
    await w.write(a, 'again');
    expect(w.pid).not.toBe(pid);
    expect(readFileSync(a, 'utf8')).toBe('again');
  });

  it('passes any path and data through intact (spaces, newlines, UTF-8)', async () => {
    const w = writer();
    const odd = file('a b\nc é', 'old contents, longer');
    await w.write(odd, 'x y\nz\tü\n');
    expect(readFileSync(odd, 'utf8')).toBe('x y\nz\tü\n');
    await w.write(odd, '');
    expect(readFileSync(odd, 'utf8')).toBe('');
  });

  it('serves concurrent requests, each on a child of its own when the previous one has not answered', async () => {
    const w = writer();
    const files = Array.from({ length: 6 }, (_, i) => file(`f${i}`));
    await Promise.all(files.map((f, i) => w.write(f, `value ${i}`)));
    expect(files.map((f) => readFileSync(f, 'utf8'))).toEqual(files.map((_, i) => `value ${i}`));
    // The retired children exit at EOF; one stays for the next request.
    expect(await eventually(() => w.pids.length === 1)).toBe(true);
    expect(w.pids).toEqual([w.pid]);
  });

  it('does not let a blocked write delay the next request to another path', async () => {
    const w = writer();
    const fifoPath = fifo('remove');
    const blocked = w.write(fifoPath, '1');
    const blockedPid = w.pid!;
    const other = file('other');
    await w.write(other, '1'); // would hang here if it queued behind the FIFO
    expect(readFileSync(other, 'utf8')).toBe('1');
    expect(await pending(blocked)).toBe(true);
    expect(w.pid).not.toBe(blockedPid);
    expect(w.pids.sort()).toEqual([blockedPid, w.pid!].sort());
    // Requests after that reuse the fresh child.
    const fresh = w.pid;
    await w.write(other, '2');
    expect(w.pid).toBe(fresh);
    // Once the FIFO is read, the blocked write completes, answers and its child exits.
    expect(await drain(fifoPath, blocked)).toBe('1');
    expect(await eventually(() => exited(blockedPid))).toBe(true);
  });

  it('times out with ETIMEDOUT, and the write completes in the background', async () => {
    const w = writer();
    const fifoPath = fifo('remove');
    const err = await failure(() =>
      w.write(fifoPath, '1', { timeoutMs: 150, operation: 'mdev remove', path: '/sys/x/remove', onTimeout: () => ({ message: 'ETIMEDOUT: still open', hint: 'pid 1 holds it' }) }),
    );
    expect(err).toMatchObject({ code: 'ETIMEDOUT', errno: -E.ETIMEDOUT, syscall: 'write', operation: 'mdev remove', path: '/sys/x/remove', message: 'ETIMEDOUT: still open', hint: 'pid 1 holds it' });
    const blockedPid = w.pids[0]!;
    expect(w.pid).toBeUndefined(); // retired at once
    const other = file('other');
    await w.write(other, 'next');
    expect(readFileSync(other, 'utf8')).toBe('next');
    expect(exited(blockedPid)).toBe(false);
    expect(await drain(fifoPath, eventually(() => exited(blockedPid)))).toBe('1');

    const generic = await failure(() => w.write(fifo('again'), '1', { timeoutMs: 50 }));
    expect(generic).toMatchObject({ code: 'ETIMEDOUT', syscall: 'write', path: join(dir, 'again') });
    expect(generic.message).toMatch(/^ETIMEDOUT: writing .* did not finish within 50 ms/);
  });

  it('fails the pending request with ERR_VFIO_CHILD when its child is killed, and spawns a new one', async () => {
    const w = writer();
    const fifoPath = fifo('remove');
    const blocked = w.write(fifoPath, '1', { timeoutMs: 20_000, operation: 'mdev remove', path: '/sys/x/remove' });
    const pid = w.pid!;
    process.kill(pid, 'SIGKILL');
    const err = await failure(() => blocked);
    expect(err).toMatchObject({ code: 'ERR_VFIO_CHILD', operation: 'mdev remove', path: '/sys/x/remove' });
    expect(err.message).toContain('killed by SIGKILL');
    expect(w.pid).toBeUndefined();
    const other = file('other');
    await w.write(other, '1');
    expect(readFileSync(other, 'utf8')).toBe('1');
    expect(w.pid).not.toBe(pid);

    // An idle child killed: the next request spawns another.
    const idle = w.pid!;
    process.kill(idle, 'SIGTERM');
    expect(await eventually(() => w.pid === undefined)).toBe(true);
    await w.write(other, '2');
    expect(readFileSync(other, 'utf8')).toBe('2');
    expect(w.pid).not.toBe(idle);
  });

  it('relays the errno and syscall of a failed open or write', async () => {
    const w = writer();
    const opts = (path: string) => ({ operation: 'mdev remove', path });

    const missing = await failure(() => w.write(join(dir, 'no/such/remove'), '1', opts('/sys/bus/mdev/devices/x/remove')));
    expect(missing).toMatchObject({ code: 'ENOENT', errno: -E.ENOENT, syscall: 'open', operation: 'mdev remove', path: '/sys/bus/mdev/devices/x/remove' });

    mkdirSync(join(dir, 'adir'));
    expect(await failure(() => w.write(join(dir, 'adir'), '1', opts('/sys/adir')))).toMatchObject({ code: 'EISDIR', errno: -E.EISDIR, syscall: 'open' });

    // EACCES at open: a read-only file (for root, whom modes do not stop: a read-only sysfs attribute, which kernfs refuses to open for writing).
    const ro = process.getuid?.() === 0 ? '/sys/devices/system/cpu/online' : file('ro');
    if (ro !== '/sys/devices/system/cpu/online') chmodSync(ro, 0o444);
    const denied = await failure(() => w.write(ro, '1', opts('/sys/devices/x/remove')));
    expect(denied).toMatchObject({ code: 'EACCES', errno: -E.EACCES, syscall: 'open', operation: 'mdev remove', path: '/sys/devices/x/remove' });
    expect(denied.hint).toContain('root');
    expect(denied.message).toBe("EACCES: permission denied, open mdev remove '/sys/devices/x/remove'");

    // EINVAL from the write itself, as a kernel attribute's store() answers: procfs parsing a number.
    const invalid = await failure(() => w.write('/proc/self/oom_score_adj', 'not a number', opts('/proc/self/oom_score_adj')));
    expect(invalid).toMatchObject({ code: 'EINVAL', errno: -E.EINVAL, syscall: 'write' });
    expect(invalid).toBeInstanceOf(VfioError);

    // The child survived all of that.
    const pid = w.pid;
    await w.write(file('ok'), '1');
    expect(w.pid).toBe(pid);
  });

  if (runtime === 'node') {
    it('keeps NODE_OPTIONS out of the child', async () => {
      const saved = process.env.NODE_OPTIONS;
      process.env.NODE_OPTIONS = `--require ${join(dir, 'does-not-exist.cjs')}`;
      try {
        const f = file('f');
        await writer().write(f, '1');
        expect(readFileSync(f, 'utf8')).toBe('1');
      } finally {
        if (saved === undefined) delete process.env.NODE_OPTIONS;
        else process.env.NODE_OPTIONS = saved;
      }
    });
  }

  it('never keeps the process alive when idle, and its children exit with it', { timeout: 60_000 }, async () => {
    const script = join(dir, 'use-writer.mts');
    writeFileSync(
      script,
      `import { SysfsWriter } from ${JSON.stringify(`${REPO}src/mdev/writer.ts`)};
const [runtime, ok, blocked] = process.argv.slice(2);
const w = new SysfsWriter({ runtime });
await w.write(ok, 'hello');
const a = w.pid;
const err = await w.write(blocked, '1', { timeoutMs: 100 }).catch((e) => e.code);
await w.write(ok, 'again');
console.log(JSON.stringify({ a, b: w.pid, err }));
`,
    );
    const ok = file('ok');
    const fifoPath = fifo('remove');
    const run = spawn(process.execPath, ['--import', 'tsx', script, runtime, ok, fifoPath], { cwd: REPO, env: { ...process.env, NODE_OPTIONS: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let errOut = '';
    run.stdout.on('data', (d) => (out += d));
    run.stderr.on('data', (d) => (errOut += d));
    const status = await new Promise<number | string>((resolve) => {
      const guard = setTimeout(() => {
        run.kill('SIGKILL');
        resolve('still running after 45 s');
      }, 45_000);
      run.on('close', (code, signal) => {
        clearTimeout(guard);
        resolve(code ?? String(signal));
      });
    });
    expect({ status, errOut }).toEqual({ status: 0, errOut: '' });
    const { a, b, err } = JSON.parse(out) as { a: number; b: number; err: string };
    expect(err).toBe('ETIMEDOUT');
    expect(readFileSync(ok, 'utf8')).toBe('again');
    // The idle child saw EOF when its parent exited.
    expect(await eventually(() => exited(b))).toBe(true);
    // The blocked one outlived its parent, still in its write; it exits once that returns.
    expect(a).not.toBe(b);
    expect(exited(a)).toBe(false);
    expect(await drain(fifoPath, eventually(() => exited(a)))).toBe('1');
  });

  it('keeps the process alive while a caller awaits an answer', { timeout: 60_000 }, async () => {
    const script = join(dir, 'await-writer.mts');
    writeFileSync(
      script,
      `import { SysfsWriter } from ${JSON.stringify(`${REPO}src/mdev/writer.ts`)};
const w = new SysfsWriter({ runtime: process.argv[2] });
const p = w.write(process.argv[3], '1');
console.log('waiting');
await p;
console.log('done');
`,
    );
    const fifoPath = fifo('remove');
    const run = spawn(process.execPath, ['--import', 'tsx', script, runtime, fifoPath], { cwd: REPO, env: { ...process.env, NODE_OPTIONS: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    run.stdout.on('data', (d) => (out += d));
    const closed = new Promise<number | null>((resolve) => run.on('close', (code) => resolve(code)));
    expect(await eventually(() => out.includes('waiting') || run.exitCode !== null, 45_000)).toBe(true);
    // Still alive, waiting for the blocked write: let it through.
    expect(await pending(closed)).toBe(true);
    expect(await drain(fifoPath, closed)).toBe('1');
    expect(await closed).toBe(0);
    expect(out).toBe('waiting\ndone\n');
  });
});
