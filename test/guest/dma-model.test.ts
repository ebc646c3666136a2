/**
 * A model check of the DMA layer (issue 13, part 2): random alloc / map /
 * unmap / unmapAll / free sequences (fast-check) against a DmaMapper over
 * edu's DMA space, on both backends. After every step the mapper must agree
 * with a plain model of what should be mapped, and with the kernel:
 *
 * - mappings(): the same IOVAs, sizes, buffers, offsets and access;
 * - every buffer's `pins` equals the number of mappings holding it, and
 *   free() is refused (EBUSY) exactly while it is mapped;
 * - unmap()/unmapAll() return the bytes the kernel actually unmapped;
 * - where the model says nothing is mapped, the kernel agrees: a raw unmap of
 *   that range reports 0 bytes (type1) or ENOENT (iommufd);
 * - where the model says a buffer is mapped device-writable, edu's DMA engine
 *   (going through the emulated VT-d) writes a fresh 16-byte stamp to that
 *   IOVA and it lands at that buffer offset; anywhere else (unmapped,
 *   read-only) the stamp lands in no buffer at all.
 *
 * Stamps: edu's internal 4 KiB buffer is loaded with 255 distinct 16-byte
 * stamps once (one DMA from a scratch buffer mapped for that moment only), and
 * each probe is a single edu → RAM transfer of one stamp.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EDU_DMA_LIMIT, EduDriver, VfioError, allocDmaBuffer, type DmaBuffer, type DmaMapping } from 'vfio';
import { eduAddress } from './fixtures.js';

const PAGE = 4096;
const MAX_LIVE = 4;
const STAMP = 16;
const STAMPS = 255;
const SEED = Number(process.env.VFIO_DMA_MODEL_SEED ?? 13);
const RUNS = Number(process.env.VFIO_DMA_MODEL_RUNS ?? 30);

type Step =
  | { op: 'alloc'; pages: number; memfd: boolean }
  | { op: 'free'; buf: number }
  | { op: 'map'; buf: number; off: number; len: number; bad: 'none' | 'zero' | 'past' | 'misalign'; fixedPage: number | null; read: boolean; write: boolean }
  | { op: 'unmap'; which: number; bogus: boolean }
  | { op: 'unmapAll' };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ op: fc.constant('alloc' as const), pages: fc.integer({ min: 1, max: 8 }), memfd: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('free' as const), buf: fc.nat(7) }) },
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant('map' as const),
      buf: fc.nat(7),
      // Where in the buffer and how much of it, as fractions of what is there (so most maps fit).
      off: fc.nat(99),
      len: fc.nat(99),
      bad: fc.oneof({ weight: 12, arbitrary: fc.constant('none' as const) }, { weight: 1, arbitrary: fc.constantFrom('zero' as const, 'past' as const, 'misalign' as const) }),
      // Fixed IOVAs in a small window, so that they collide with each other and with allocated ones.
      fixedPage: fc.option(fc.integer({ min: 0, max: 48 }), { freq: 2 }),
      read: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
      write: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('unmap' as const), which: fc.nat(7), bogus: fc.oneof({ weight: 5, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'unmapAll' as const }) },
);

interface ModelMapping {
  iova: bigint;
  size: bigint;
  buffer: DmaBuffer;
  offset: bigint;
  read: boolean;
  write: boolean;
}

const codeOf = (e: unknown): string => (e instanceof VfioError ? e.code : e instanceof Error ? e.name : String(e));

function attempt<T>(f: () => T): { ok: true; value: T } | { ok: false; code: string; error: unknown } {
  try {
    return { ok: true, value: f() };
  } catch (e) {
    return { ok: false, code: codeOf(e), error: e };
  }
}

describe.each(['group', 'cdev'] as const)('DmaMapper against the kernel on the %s backend (edu)', (backend) => {
  let edu: EduDriver;
  let stampRun = 0;
  let nextStamp = STAMPS; // forces a load before the first probe
  let probes = 0;
  /** What the runs did, printed at the end: steps by op and outcome, probes by result. */
  const seen: Record<string, number> = {};
  const note = (k: string): void => {
    seen[k] = (seen[k] ?? 0) + 1;
  };

  beforeAll(() => {
    edu = EduDriver.open({ address: eduAddress(), backend });
  });
  afterAll(() => edu?.close());

  const stampBytes = (run: number, k: number): Buffer => {
    const b = Buffer.alloc(STAMP);
    b.writeUInt32LE((0x5a17a5e0 ^ run) >>> 0, 0);
    b.writeUInt32LE(Math.imul(k + 1, 0x9e3779b1) >>> 0, 4);
    b.writeUInt32LE((run * 65537 + k) >>> 0, 8);
    b.writeUInt32LE((0xc0ffee00 | k) >>> 0, 12);
    return b;
  };

  /** Loads edu's buffer with fresh stamps, through a scratch buffer mapped for this one transfer. */
  async function loadStamps(): Promise<void> {
    stampRun++;
    const scratch = allocDmaBuffer(PAGE);
    const bytes = new Uint8Array(scratch.buffer);
    for (let k = 0; k < STAMPS; k++) bytes.set(stampBytes(stampRun, k), k * STAMP);
    const m = edu.mapper.map(scratch, { write: false });
    try {
      await edu.dma('to-device', m.iova, STAMPS * STAMP);
    } finally {
      edu.mapper.unmap(m);
      scratch.free();
    }
    nextStamp = 0;
  }

  /** edu writes a fresh stamp at `iova`; returns where it landed (buffer and offset), or null. */
  async function probe(iova: bigint, live: readonly DmaBuffer[]): Promise<{ buffer: DmaBuffer; offset: number } | null> {
    if (nextStamp >= STAMPS) await loadStamps();
    const k = nextStamp++;
    probes++;
    await edu.dma('to-ram', iova, STAMP, { deviceOffset: k * STAMP });
    const stamp = stampBytes(stampRun, k);
    for (const b of live) {
      if (b.freed) continue;
      const at = Buffer.from(b.buffer).indexOf(stamp);
      if (at >= 0) {
        note('probe: landed');
        return { buffer: b, offset: at };
      }
    }
    note('probe: landed nowhere');
    return null;
  }

  it('keeps its table, the pins and the kernel in agreement through random sequences', async () => {
    const mapper = edu.mapper;
    const space = mapper.space;
    const [lo, hi] = [0x1000n, EDU_DMA_LIMIT];

    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 4, maxLength: 24, size: 'max' }), fc.nat(), async (steps, salt) => {
        note('sequence');
        const buffers: DmaBuffer[] = [];
        let model: ModelMapping[] = [];
        const objects = new Map<bigint, DmaMapping>();
        const live = (): DmaBuffer[] => buffers.filter((b) => !b.freed);
        let rnd = salt >>> 0;
        const next = (n: number): number => {
          rnd = (Math.imul(rnd ^ (rnd >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
          return n > 0 ? rnd % n : 0;
        };
        const covering = (iova: bigint): ModelMapping | undefined => model.find((m) => iova >= m.iova && iova < m.iova + m.size);

        /** The model and the mapper, the pins and the kernel agree. */
        async function check(step: Step, touched: ModelMapping[]): Promise<void> {
          const where = `after ${JSON.stringify(step)}`;
          const table = mapper.mappings().map((m) => ({ iova: m.iova, size: m.size, buffer: m.buffer, offset: m.offset, read: m.read, write: m.write }));
          const want = [...model].sort((a, b) => (a.iova < b.iova ? -1 : 1));
          expect(table.length, where).toBe(want.length);
          table.forEach((m, i) => {
            const w = want[i]!;
            expect({ ...m, buffer: buffers.indexOf(m.buffer) }, where).toEqual({ ...w, buffer: buffers.indexOf(w.buffer) });
            expect(m.iova % BigInt(PAGE), where).toBe(0n);
            expect(m.iova >= lo && m.iova + m.size <= hi, `${where}: IOVA 0x${m.iova.toString(16)} outside edu's mask`).toBe(true);
          });
          for (const b of live()) expect(b.pins, `${where}: pins of buffer ${buffers.indexOf(b)}`).toBe(model.filter((m) => m.buffer === b).length);

          // Where the model has nothing, the kernel has nothing: a raw unmap there unmaps no byte.
          for (let i = 0; i < 2; i++) {
            const page = BigInt(1 + next(48)) * BigInt(PAGE);
            if (covering(page)) continue;
            const r = attempt(() => space.unmap(page, PAGE));
            note(`free-range unmap: ${r.ok ? `${r.value} bytes` : r.code}`);
            if (space.backend === 'type1') expect(r.ok ? r.value : r.code, `${where}: type1 unmap of free IOVA 0x${page.toString(16)}`).toBe(0n);
            else expect(r.ok ? r.value : r.code, `${where}: IOAS unmap of free IOVA 0x${page.toString(16)}`).toBe('ENOENT');
          }

          // The device sees exactly the model: probe what this step touched, and one other mapping.
          const targets = [...touched];
          if (model.length) targets.push(model[next(model.length)]!);
          for (const m of targets) {
            const delta = BigInt(next(Number(m.size / BigInt(PAGE)))) * BigInt(PAGE) + BigInt(next(PAGE / STAMP)) * BigInt(STAMP);
            const iova = m.iova + delta;
            const now = covering(iova);
            const landed = await probe(iova, live());
            if (now && now.write) {
              expect(landed && { buffer: buffers.indexOf(landed.buffer), offset: landed.offset }, `${where}: DMA to mapped IOVA 0x${iova.toString(16)}`).toEqual({ buffer: buffers.indexOf(now.buffer), offset: Number(now.offset + (iova - now.iova)) });
            } else {
              expect(landed && { buffer: buffers.indexOf(landed.buffer), offset: landed.offset }, `${where}: DMA to ${now ? 'read-only' : 'unmapped'} IOVA 0x${iova.toString(16)} landed`).toBeNull();
            }
          }
        }

        try {
          for (const step of steps) {
            const touched: ModelMapping[] = [];
            switch (step.op) {
              case 'alloc': {
                if (live().length >= MAX_LIVE) continue;
                buffers.push(allocDmaBuffer(step.pages * PAGE, { memfd: step.memfd }));
                break;
              }
              case 'free': {
                const b = buffers[step.buf % Math.max(1, buffers.length)];
                if (!b || b.freed) continue;
                const mapped = model.some((m) => m.buffer === b);
                const r = attempt(() => b.free());
                note(`free: ${r.ok ? 'ok' : r.code}`);
                expect(r.ok ? 'ok' : r.code, `free of a buffer ${mapped ? 'still mapped' : 'not mapped'}`).toBe(mapped ? 'EBUSY' : 'ok');
                break;
              }
              case 'map': {
                const b = buffers[step.buf % Math.max(1, buffers.length)];
                if (!b) continue;
                const bytes = b.freed ? 0n : b.size;
                const pages = Number(bytes) / PAGE || 1;
                const offPages = Math.floor((step.off / 100) * pages);
                const lenPages = 1 + Math.floor((step.len / 100) * (pages - offPages));
                const offset = BigInt(offPages * PAGE) + (step.bad === 'misalign' ? 512n : 0n);
                const size = step.bad === 'zero' ? 0n : BigInt((step.bad === 'past' ? pages - offPages + 1 : lenPages) * PAGE);
                const fixed = step.fixedPage === null ? undefined : BigInt(step.fixedPage * PAGE) + (step.bad === 'misalign' && step.off % 2 ? 256n : 0n);
                // What the mapper must answer, from the model alone.
                let expected = 'ok';
                if (b.freed) expected = 'ERR_VFIO_CLOSED';
                else if (offset % BigInt(PAGE) !== 0n || size === 0n || offset >= bytes || offset + size > bytes) expected = 'EINVAL';
                else if (!step.read && !step.write) expected = 'EINVAL';
                else if (fixed !== undefined) {
                  // The mapper's order: alignment, then overlap with its table, then the usable ranges.
                  if (fixed % BigInt(PAGE) !== 0n) expected = 'EINVAL';
                  else if (model.some((m) => fixed < m.iova + m.size && fixed + size > m.iova)) expected = 'EEXIST';
                  else if (fixed < lo || fixed + size > hi) expected = 'EINVAL';
                }
                const r = attempt(() => mapper.map(b, { offset, size, read: step.read, write: step.write, ...(fixed === undefined ? {} : { iova: fixed }) }));
                note(`map${fixed === undefined ? '' : ' (fixed IOVA)'}: ${r.ok ? 'ok' : r.code}`);
                expect(r.ok ? 'ok' : r.code, `map ${JSON.stringify({ ...step, offset: String(offset), size: String(size), fixed: String(fixed) })}`).toBe(expected);
                if (r.ok) {
                  const m = r.value;
                  expect(model.some((x) => m.iova < x.iova + x.size && m.iova + m.size > x.iova), `the mapper placed 0x${m.iova.toString(16)} over a live mapping`).toBe(false);
                  const mm: ModelMapping = { iova: m.iova, size, buffer: b, offset, read: step.read, write: step.write };
                  model.push(mm);
                  objects.set(m.iova, m);
                  touched.push(mm);
                }
                break;
              }
              case 'unmap': {
                if (step.bogus || model.length === 0) {
                  const iova = BigInt(1 + next(4000)) * BigInt(PAGE) + (step.bogus ? 0n : 8n);
                  if (model.some((m) => m.iova === iova)) continue;
                  const r = attempt(() => mapper.unmap(iova));
                  note(`unmap (no mapping there): ${r.ok ? 'ok' : r.code}`);
                  expect(r.ok ? 'ok' : r.code, `unmap of IOVA 0x${iova.toString(16)} where no mapping starts`).toBe('ENOENT');
                  break;
                }
                const m = model[step.which % model.length]!;
                const r = attempt(() => mapper.unmap(objects.get(m.iova)!));
                note(`unmap: ${r.ok ? 'ok' : r.code}`);
                // The kernel's count of the bytes it unmapped.
                expect(r.ok ? r.value : r.code, `unmap of the mapping at 0x${m.iova.toString(16)}`).toBe(m.size);
                model = model.filter((x) => x !== m);
                objects.delete(m.iova);
                touched.push(m);
                break;
              }
              case 'unmapAll': {
                const total = model.reduce((s, m) => s + m.size, 0n);
                const r = attempt(() => mapper.unmapAll());
                note(`unmapAll: ${r.ok ? 'ok' : r.code}`);
                expect(r.ok ? r.value : r.code, 'unmapAll: the bytes the kernel unmapped').toBe(total);
                touched.push(...model.slice(0, 2));
                model = [];
                objects.clear();
                break;
              }
            }
            await check(step, touched);
          }
        } finally {
          mapper.unmapAll();
          for (const b of buffers) if (!b.freed) b.free();
        }
      }),
      { seed: SEED, numRuns: RUNS, interruptAfterTimeLimit: 100_000 },
    );
    console.log(`${backend}: seed ${SEED}, ${probes} DMA probes; ${JSON.stringify(Object.fromEntries(Object.entries(seen).sort()))}`);
    expect(seen['probe: landed']).toBeGreaterThan(0);
    expect(seen['probe: landed nowhere']).toBeGreaterThan(0);
  }, 180_000);
});
