/**
 * The native seam on the host: no VFIO needed for these. Layouts against the
 * compiler, argument checking, views and their revocation, DMA buffers,
 * eventfds, and fd hygiene.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { VfioError } from '../../src/errors.js';
import { addonCandidates, native } from '../../src/native.js';
import { LAYOUTS } from '../../src/uapi/layouts.js';

const n = native();

describe('struct layouts', () => {
  it('match the compiler\'s sizeof/offsetof for every struct the addon passes to the kernel', () => {
    const compiled = n.layouts();
    expect(Object.keys(compiled).length).toBeGreaterThanOrEqual(20);
    for (const [name, c] of Object.entries(compiled)) {
      const ts = (LAYOUTS as Record<string, { size: number; fields: Record<string, number> }>)[name];
      expect(ts, name).toBeDefined();
      expect(ts!.size, `${name} size`).toBe(c.size);
      for (const [field, off] of Object.entries(c.fields)) expect(ts!.fields[field], `${name}.${field}`).toBe(off);
    }
  });
});

describe('errors from native code', () => {
  it('are real VfioError instances shaped like SystemError, with hints', () => {
    let err: unknown;
    try {
      n.open('/dev/vfio/vfio-does-not-exist', 'container');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(VfioError);
    expect(err).toMatchObject({ code: 'ENOENT', errno: -2, syscall: 'open', path: '/dev/vfio/vfio-does-not-exist' });
    expect((err as Error).message).toBe("ENOENT: no such file or directory, open '/dev/vfio/vfio-does-not-exist'");
  });

  it('reject forged and mistyped handles with TypeError, never a crash', () => {
    const e = n.eventfd();
    try {
      for (const bad of [{}, null, 42, 'x', e, Object.create(n.FdHandle.prototype)]) {
        expect(() => n.regionRead(bad as never, 0n, 4)).toThrow(TypeError);
      }
      expect(() => new (n.FdHandle as unknown as new () => unknown)()).toThrow(TypeError);
      expect(() => new (n.EventFd as unknown as new () => unknown)()).toThrow(TypeError);
    } finally {
      e.close();
    }
  });

  it('take a handle\'s key in its place; a key is ERR_VFIO_CLOSED once its handle is closed or collected', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vfio-key-'));
    try {
      const path = join(dir, 'regs');
      writeFileSync(path, Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]));
      const h = n.open(path, 'test');
      const k = h.key;
      expect(typeof k).toBe('object');
      expect(n.regionRead(k, 0, 4)).toBe(0x04030201);
      expect(n.regionRead(k, 0, 8)).toBe(0x0807060504030201n);
      n.regionWrite(k, 4, 2, 0xbeef);
      expect(n.regionRead(h, 4, 2)).toBe(0xbeef);
      // A key is not a handle: it has no methods, and a handle's methods refuse it.
      expect(() => (k as unknown as { close(): void }).close()).toThrow(TypeError);
      h.close();
      expect(() => n.regionRead(k, 0, 4)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
      expect(() => n.regionRead(h.key, 0, 4)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));

      // A key that outlives its FdHandle (collected): ERR_VFIO_CLOSED, never a dangling pointer.
      setFlagsFromString('--expose-gc');
      const gc = runInNewContext('gc') as () => void;
      const handles = n.stats().fdHandles;
      const orphans = Array.from({ length: 50 }, () => n.open(path, 'test').key);
      expect(n.stats().fdHandles).toBe(handles + 50);
      for (let i = 0; i < 10 && n.stats().fdHandles > handles; i++) {
        gc();
        await new Promise((r) => setImmediate(r));
      }
      expect(n.stats().fdHandles).toBe(handles);
      expect(n.stats().openFds).toBe(0);
      for (const key of orphans) expect(() => n.regionRead(key, 0, 4)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('copy an INFO reply into a caller\'s array only within the struct\'s bounds, and leave it untouched on failure', () => {
    const h = n.open('/dev/null', 'test');
    try {
      for (const bad of [new Uint8Array(31), new Uint8Array(65537), new Uint16Array(16)]) {
        expect(() => n.deviceGetRegionInfo(h.key, 0, bad as Uint8Array)).toThrow(bad instanceof Uint8Array ? RangeError : TypeError);
      }
      expect(() => n.deviceGetIrqInfo(h.key, 0, new Uint8Array(17))).toThrow(RangeError);
      expect(() => n.deviceGetIrqInfo(h.key, 0, new Uint8Array(15))).toThrow(RangeError);
      // A detached array has no bytes: refused before the ioctl.
      const detached = new Uint8Array(new ArrayBuffer(32));
      structuredClone(detached.buffer, { transfer: [detached.buffer] });
      expect(() => n.deviceGetRegionInfo(h.key, 0, detached)).toThrow(RangeError);
      // /dev/null answers ENOTTY: a typed error, and the caller's bytes stay as they were.
      const reply = new Uint8Array(32).fill(0xa5);
      expect(() => n.deviceGetRegionInfo(h.key, 0, reply)).toThrow(expect.objectContaining({ code: 'ENOTTY', syscall: 'ioctl' }));
      expect(reply.every((b) => b === 0xa5)).toBe(true);
    } finally {
      h.close();
    }
  });

  it('reject bad numbers: negative, fractional, unsafe, oversized bigints', () => {
    const h = n.open('/dev/zero', 'test', true);
    try {
      expect(() => n.regionRead(h, -1n as bigint, 4)).toThrow(RangeError);
      expect(() => n.regionRead(h, 1n << 64n, 4)).toThrow(RangeError);
      expect(() => n.regionRead(h, 2 ** 53 as unknown as bigint, 4)).toThrow(RangeError);
      expect(() => n.regionRead(h, 0.5 as unknown as bigint, 4)).toThrow(RangeError);
      expect(() => n.regionRead(h, 0n, 3)).toThrow(RangeError);
      expect(() => n.deviceGetRegionInfo(h, 0, 1 << 20)).toThrow(RangeError);
      expect(() => n.deviceSetIrqs(h, Buffer.alloc(24))).toThrow(/argsz field/);
      expect(() => n.mmap(h, 1n, 4096n, false)).toThrow(/page-aligned/);
      expect(n.regionRead(h, 0n, 8)).toBe(0n);
    } finally {
      h.close();
    }
  });
});

describe('mapped views', () => {
  it('are detached on unmap, and a stale view reads nothing', () => {
    const h = n.open('/dev/zero', 'test');
    const m = n.mmap(h, 0n, 8192n, true);
    const v = new Uint8Array(m.buffer);
    v[7] = 9;
    expect(m.load(4, 4)).toBe(9 << 24);
    m.unmap();
    m.unmap();
    expect(v.length).toBe(0);
    expect(v[7]).toBeUndefined();
    expect(() => m.buffer).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    expect(() => m.load(0, 4)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    h.close();
  });

  it('give no view of read-only memory (a JS write would fault), only copies', () => {
    const h = n.open('/dev/zero', 'test', true);
    const m = n.mmap(h, 0n, 4096n, false);
    expect(() => m.buffer).toThrow(TypeError);
    expect(() => m.store(0, 4, 1)).toThrow(TypeError);
    const out = Buffer.alloc(16, 1);
    m.readInto(0, out);
    expect(out.equals(Buffer.alloc(16))).toBe(true);
    expect(() => m.readInto(4090, out)).toThrow(RangeError);
    m.unmap();
    h.close();
  });
});

describe('DMA buffers', () => {
  it('are page-aligned native memory, zeroed, freed idempotently and detached when freed', () => {
    expect(() => n.dmaAlloc(100n, false, false)).toThrow(RangeError);
    expect(() => n.dmaAlloc(0n, false, false)).toThrow(RangeError);
    const b = n.dmaAlloc(16384n, false, true);
    expect(b.size).toBe(16384n);
    expect(b.memfd).toBeGreaterThan(2);
    const bytes = new Uint8Array(b.buffer);
    expect(bytes.every((x) => x === 0)).toBe(true);
    bytes[1] = 5;
    b.free();
    b.free();
    expect(b.freed).toBe(true);
    expect(bytes.length).toBe(0);
    expect(() => b.buffer).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
  });
});

describe('eventfds', () => {
  it('deliver the counter, so coalesced signals are counted', async () => {
    const e = n.eventfd();
    const got = new Promise<number>((resolve) => e.start((_err, count) => resolve(count)));
    e.signal(2);
    e.signal(5n);
    expect(await got).toBe(7);
    expect(e.read()).toBe(0);
    e.close();
    e.close();
    expect(() => e.signal()).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
  });

  it('are close-on-exec and non-blocking', () => {
    const e = n.eventfd();
    try {
      const flags = readlinkSync(`/proc/self/fd/${e.fd}`);
      expect(flags).toBe('anon_inode:[eventfd]');
      const fdinfo = spawnSync('cat', [`/proc/${process.pid}/fdinfo/${e.fd}`], { encoding: 'utf8' }).stdout;
      const octal = Number.parseInt(/flags:\s+(\d+)/.exec(fdinfo)![1]!, 8);
      expect(octal & 0o2000000).toBe(0o2000000); // O_CLOEXEC
      expect(octal & 0o4000).toBe(0o4000); // O_NONBLOCK
    } finally {
      e.close();
    }
  });

  it('unref() lets the process exit while still watching', () => {
    const script = `
      const { native } = await import(${JSON.stringify(new URL('../../src/native.ts', import.meta.url).href)});
      const e = native().eventfd();
      e.start(() => {});
      e.unref();
      setTimeout(() => console.log('timer done'), 50);`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('timer done\n');
  });

  it('a ref()ed watch keeps the process alive until closed', () => {
    const script = `
      const { native } = await import(${JSON.stringify(new URL('../../src/native.ts', import.meta.url).href)});
      const e = native().eventfd();
      e.start((err, n) => { console.log('irq', n); e.close(); });
      setTimeout(() => e.signal(3), 100);`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('irq 3\n');
  });
});

describe('fds', () => {
  it('are opened close-on-exec and not leaked by 1,000 open/close cycles', () => {
    const before = readdirSync('/proc/self/fd').length;
    for (let i = 0; i < 1000; i++) {
      const h = n.open('/dev/null', 'test');
      const e = n.eventfd();
      h.close();
      e.close();
    }
    expect(readdirSync('/proc/self/fd').length).toBe(before);
    expect(n.stats().openFds).toBe(0);
  });

  it('adopt() duplicates a handed-in fd and leaves the caller\'s alone', () => {
    const h = n.open('/dev/null', 'test');
    const a = n.adopt(h.fd, 'test', 'adopted');
    expect(a.fd).not.toBe(h.fd);
    a.close();
    expect(readlinkSync(`/proc/self/fd/${h.fd}`)).toBe('/dev/null');
    h.close();
    expect(() => n.adopt(-1, 'x', 'y')).toThrow(RangeError);
    expect(() => n.adopt(987654, 'x', 'y')).toThrow(expect.objectContaining({ code: 'EBADF' }));
  });
});

describe('the loader', () => {
  it('takes a relative VFIO_NATIVE_PATH against the working directory, and names a missing one', () => {
    const script = "import('./src/native.ts').then((m) => { m.native(); console.log('loaded'); }).catch((e) => { console.log(e.code); })";
    const run = (path: string): string =>
      spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { cwd: process.cwd(), env: { ...process.env, VFIO_NATIVE_PATH: path }, encoding: 'utf8' }).stdout.trim();
    expect(run('build/Release/vfio.node')).toBe('loaded');
    expect(run('./build/Release/vfio.node')).toBe('loaded');
    expect(run('no/such/vfio.node')).toBe('ERR_VFIO_NO_ADDON');
  });

  const loadError = (env: Record<string, string>): { code: string; message: string; hint: string } => {
    const script = "import('./src/native.ts').then((m) => { m.native(); console.log('{}'); }).catch((e) => { console.log(JSON.stringify({ code: e.code, message: e.message, hint: e.hint })); })";
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { cwd: process.cwd(), env: { ...process.env, ...env }, encoding: 'utf8' });
    expect(r.signal).toBeNull();
    return JSON.parse(r.stdout.trim()) as { code: string; message: string; hint: string };
  };

  it('refuses a missing or corrupt VFIO_NATIVE_PATH with the path, the reason and the fix, never a crash', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vfio-loader-'));
    try {
      const missing = loadError({ VFIO_NATIVE_PATH: join(dir, 'absent.node') });
      expect(missing.code).toBe('ERR_VFIO_NO_ADDON');
      expect(missing.message).toContain(`${join(dir, 'absent.node')}: not found`);
      expect(missing.hint).toMatch(/VFIO_NATIVE_PATH/);
      const corrupt = join(dir, 'corrupt.node');
      writeFileSync(corrupt, Buffer.alloc(4096, 0x5a));
      const bad = loadError({ VFIO_NATIVE_PATH: corrupt });
      expect(bad.code).toBe('ERR_VFIO_NO_ADDON');
      expect(bad.message).toMatch(new RegExp(`${corrupt}: .*(ELF|too short|invalid)`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('looks at VFIO_NATIVE_PATH alone when set, else the local builds, then the prebuild node-gyp-build picks', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vfio-loader-'));
    try {
      expect(addonCandidates(dir, { VFIO_NATIVE_PATH: 'x/vfio.node' })).toEqual([resolve('x/vfio.node')]);
      mkdirSync(join(dir, 'prebuilds', `linux-${process.arch}`), { recursive: true });
      writeFileSync(join(dir, 'prebuilds', `linux-${process.arch}`, 'node.napi.node'), '');
      writeFileSync(join(dir, 'package.json'), '{"name":"vfio"}');
      const c = addonCandidates(dir, {});
      expect(c.slice(0, 2)).toEqual([join(dir, 'build', 'Release', 'vfio.node'), join(dir, 'build-cmake', 'Release', 'vfio.node')]);
      expect(c.at(-1)).toBe(join(dir, 'prebuilds', `linux-${process.arch}`, 'node.napi.node'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
