/**
 * The addon is context-aware: it loads in worker threads, each with its own
 * state, delivers eventfd callbacks on the worker's own loop, and releases what
 * a worker left open when the worker ends (env cleanup hook). Deliberately in a
 * worker thread, in its own file.
 */
import { readdirSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { native } from '../../src/native.js';

const nativeUrl = new URL('../../src/native.ts', import.meta.url).href;

function runWorker(code: string): Promise<unknown> {
  const w = new Worker(`import('tsx/esm/api').then(({ register }) => { register(); return import('data:text/javascript,' + encodeURIComponent(${JSON.stringify(code)})); });`, { eval: true });
  return new Promise((resolve, reject) => {
    let msg: unknown;
    w.on('message', (m) => (msg = m));
    w.on('error', reject);
    w.on('exit', (c) => (c === 0 ? resolve(msg) : reject(new Error(`worker exited ${c}`))));
  });
}

describe('the addon in worker threads', () => {
  it('gets interrupts on the worker\'s own loop, and leaves nothing open when the worker ends', async () => {
    const before = native().stats();
    const fdsBefore = readdirSync('/proc/self/fd').length;
    const code = `
      import { parentPort } from 'node:worker_threads';
      const { native } = await import(${JSON.stringify(nativeUrl)});
      const n = native();
      const e = n.eventfd();
      const count = await new Promise((r) => { e.start((err, c) => r(c)); e.signal(4); });
      // Left open on purpose: the env cleanup hook must close them.
      const left = n.eventfd(); left.start(() => {}); left.unref();
      const fd = n.open('/dev/null', 'test');
      const m = n.mmap(n.open('/dev/zero', 'test'), 0n, 4096n, true);
      e.close();
      parentPort.postMessage({ count, stats: n.stats() });`;
    const results = await Promise.all([runWorker(code), runWorker(code)]);
    for (const r of results) expect(r).toMatchObject({ count: 4, stats: { openFds: 2, eventfds: 2 } });
    // The main thread's state is its own, and the workers' leftovers are closed.
    expect(native().stats()).toEqual(before);
    expect(readdirSync('/proc/self/fd').length).toBe(fdsBefore);
  });
});
