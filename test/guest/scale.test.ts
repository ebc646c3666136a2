/**
 * Leaks at scale: open/close cycles of edu on each backend, each cycle doing
 * what a driver does (map BAR0 and read it, map a DMA buffer, enable MSI,
 * close everything). Afterwards the fds, the addon's live-object counters,
 * the pinned pages (VmLck on type1, VmPin on iommufd) and RSS are back at
 * their baseline. `npm test` runs VFIO_SCALE_CYCLES (default 1,000) per
 * backend; `npm run test:scale` runs 10,000.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { allocDmaBuffer } from '../../src/dma/buffer.js';
import { native } from '../../src/native.js';
import { openDevice } from '../../src/vfio/open.js';
import { eduAddress } from './fixtures.js';

const CYCLES = Number(process.env.VFIO_SCALE_CYCLES ?? 1000);

function snapshot(): { fds: number; stats: ReturnType<ReturnType<typeof native>['stats']>; rssKiB: number; lockedKiB: number; pinnedKiB: number } {
  const status = readFileSync('/proc/self/status', 'utf8');
  const kib = (f: string): number => Number(new RegExp(`^${f}:\\s*(\\d+)`, 'm').exec(status)?.[1] ?? 0);
  return { fds: readdirSync('/proc/self/fd').length, stats: native().stats(), rssKiB: kib('VmRSS'), lockedKiB: kib('VmLck'), pinnedKiB: kib('VmPin') };
}

/** A full GC, then the turns of the loop in which Node-API runs the wrappers' finalizers. */
async function collect(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    globalThis.gc!();
    await new Promise((r) => setImmediate(r));
  }
}

describe.each(['group', 'cdev'] as const)('edu on %s', (backend) => {
  it(`returns to baseline after ${CYCLES} open/map/DMA/MSI/close cycles`, async () => {
    expect(typeof globalThis.gc, 'run node with --expose-gc (vitest.config.ts execArgv)').toBe('function');
    const edu = eduAddress();
    const cycle = (): void => {
      const o = openDevice(edu, { backend });
      const buf = allocDmaBuffer(4096);
      try {
        const bar = o.device.mmap(0, { length: 4096 });
        if (bar.read32(0) !== 0x010000ed) throw new Error('edu ID is wrong');
        o.dma.map(buf, { iova: 0x10000n, read: true, write: true });
        o.device.enableInterrupts(1);
      } finally {
        o.close(); // unmaps the BAR and the DMA mapping, disables MSI, closes every fd
        buf.free();
      }
    };
    // Warm up: lazily created caches, the JIT, and the heap growing to its working size.
    for (let i = 0; i < Math.max(100, CYCLES / 10); i++) cycle();
    await collect();
    const before = snapshot();
    const t0 = performance.now();
    for (let i = 0; i < CYCLES; i++) cycle();
    const ms = performance.now() - t0;
    await collect();
    const after = snapshot();
    console.log(
      `edu ${backend}: ${CYCLES} cycles in ${(ms / 1000).toFixed(1)} s (${((ms * 1000) / CYCLES).toFixed(0)} µs each); ` +
        `fds ${before.fds} -> ${after.fds}, VmLck ${before.lockedKiB} -> ${after.lockedKiB} KiB, VmPin ${before.pinnedKiB} -> ${after.pinnedKiB} KiB, ` +
        `RSS ${before.rssKiB} -> ${after.rssKiB} KiB (${after.rssKiB - before.rssKiB >= 0 ? '+' : ''}${after.rssKiB - before.rssKiB}), stats ${JSON.stringify(after.stats)}`,
    );
    expect(after.fds).toBe(before.fds);
    expect(after.stats).toEqual(before.stats);
    expect(after.lockedKiB).toBe(before.lockedKiB);
    expect(after.pinnedKiB).toBe(before.pinnedKiB);
    // RSS: at most 6 KiB a cycle over a floor of 32 MiB (in the suite's long-lived
    // fork the heap alone has moved RSS by +9 to +17 MiB over 1,000 cycles). Observed under TCG: the cdev path flat (+0.1 KiB a
    // cycle over 10,000), the group path +3.8 KiB a cycle over its first 10,000 — the V8
    // heap reaching its working size: in one process over six passes of 2,000 cycles
    // (group ×3, cdev, group, cdev) RSS went 87 → 99 → 93 → 102 → 102 → 100 → 101 MiB
    // with heapUsed flat at 7–8 MiB, external and arrayBuffers constant.
    // (Under ASan, npm run test:asan, freed memory is quarantined and RSS says nothing.)
    if (process.env.VFIO_ASAN !== '1') expect(after.rssKiB - before.rssKiB).toBeLessThan(Math.max(32768, CYCLES * 6));
  }, 900_000);
});
