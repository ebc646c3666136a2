/**
 * vfio's main job in one program: real devices driven from Node.js.
 *
 *   npm run demo        (on a host with /dev/vfio as root, or else in the test-bed guest)
 *
 * It lists the mdev types, creates an mtty, an mdpy and an mbochs, talks to the
 * mtty UART by interrupts, draws a test card on both displays and screenshots
 * them to PNG, runs QEMU's edu device behind the vIOMMU on both backends, and
 * removes what it created, also when a step fails or on Ctrl-C.
 */
import { mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { EDU_DMA_MAX, EduDriver, MdevBus, captureDisplay, eduFactorial, openDevice, type Mdev, type OpenedDevice } from 'vfio';
import { drawTestCard } from './testcard.js';

/** The steps, in order. */
export const STEPS = ['mdev types', 'create', 'mtty', 'mdpy', 'mbochs', 'edu group/type1', 'edu cdev/iommufd', 'remove'] as const;
export type StepName = (typeof STEPS)[number];
export interface StepResult {
  step: StepName;
  ok: boolean;
  detail: string;
  ms: number;
}
export interface DemoOptions {
  /** Where the PNGs go (default demo-output/). */
  outDir?: string;
  /** Make this step fail (tests: everything created must still be removed). */
  failAt?: StepName;
  /** Stops the demo between steps and interrupt waits; what was created is still removed. */
  signal?: AbortSignal;
  log?: (line: string) => void;
}
export interface DemoResult {
  steps: StepResult[];
  /** The UUIDs the demo created (all removed again when it returns). */
  created: string[];
  /** The PNG files written. */
  images: string[];
}

const TYPES = ['mtty-2', 'mdpy-xga', 'mbochs-small'] as const;
/** The caption of the test card drawn on a display of `type`. */
export const caption = (type: string, width: number, height: number): string => `${type} ${width}x${height}`.toUpperCase();
const UART = { RX: 0, TX: 0, IER: 1, FCR: 2, IER_RDI: 0x01, FCR_CLEAR: 0x07 };
const MSI = 1;
const DISPI = (i: number): number => 0x500 + 2 * i; // bochs DISPI register i in mbochs' MMIO BAR (region 2)
const [XRES, YRES, BPP, ENABLE] = [1, 2, 3, 4];

export async function runDemo(o: DemoOptions = {}): Promise<DemoResult> {
  const log = o.log ?? ((line: string) => console.log(line));
  const outDir = resolve(o.outDir ?? 'demo-output');
  const bus = new MdevBus();
  const made = new Map<string, Mdev>();
  const opened = new Set<{ close(): void }>();
  const result: DemoResult = { steps: [], created: [], images: [] };
  const open = (uuid: string): OpenedDevice => {
    const d = openDevice(uuid);
    opened.add(d);
    return d;
  };
  const closeAll = (): void => {
    for (const d of opened) d.close();
    opened.clear();
  };
  const mdevOf = (type: string): Mdev => {
    const m = made.get(type);
    if (!m) throw new Error(`no ${type} was created`);
    return m;
  };

  const step = async (name: StepName, run: () => string | Promise<string>, always = false): Promise<void> => {
    if (!always) o.signal?.throwIfAborted();
    log(`\n▶ ${name}`);
    const t0 = performance.now();
    let ok = true;
    let detail: string;
    try {
      if (o.failAt === name) throw new Error(`failure injected at step '${name}'`);
      detail = await run();
    } catch (e) {
      if (o.signal?.aborted && !always) throw e;
      ok = false;
      const code = (e as { code?: string }).code ?? (e as Error).name;
      const message = e instanceof Error ? e.message : String(e);
      detail = message.startsWith(`${code}:`) ? message : `${code}: ${message}`;
    } finally {
      closeAll(); // what a step opened, it closes, whatever happened
    }
    const ms = performance.now() - t0;
    result.steps.push({ step: name, ok, detail, ms });
    log(`  ${ok ? '✔' : '✘'} ${detail} (${ms.toFixed(0)} ms)`);
  };

  const screenshot = (d: OpenedDevice, name: string): string => {
    const frame = captureDisplay(d.device, { png: true });
    mkdirSync(outDir, { recursive: true });
    const file = join(outDir, `${name}.png`);
    writeFileSync(file, frame.png!);
    result.images.push(file);
    return `${file} (${frame.width}x${frame.height} ${frame.format}, read back from the ${frame.source})`;
  };

  try {
    await step('mdev types', () => {
      for (const t of bus.types()) log(`  ${t.parent.padEnd(7)} ${t.id.padEnd(14)} ${String(t.availableInstances).padStart(3)} free  ${t.description ?? ''}`);
      return `${bus.parents().length} parents, ${bus.types().length} types`;
    });

    await step('create', async () => {
      for (const type of TYPES) {
        const m = await bus.create(type);
        made.set(type, m);
        result.created.push(m.uuid);
        log(`  ${type}: ${m.uuid} → ${m.groupPath}${m.cdevPath ? `, ${m.cdevPath}` : ''}`);
      }
      return `created ${TYPES.join(', ')}`;
    });

    await step('mtty', async () => {
      const d = open(mdevOf('mtty-2').uuid);
      const uart = d.device.region(0);
      const irqs = d.device.enableInterrupts(MSI);
      uart.write8(UART.FCR, UART.FCR_CLEAR);
      uart.write8(UART.IER, UART.IER_RDI); // an MSI whenever a byte arrives in the empty FIFO
      const sent = Buffer.from('hello from node');
      const got: number[] = [];
      let msis = 0;
      for (const byte of sent) {
        const irq = irqs.next({ signal: AbortSignal.any([AbortSignal.timeout(5000), ...(o.signal ? [o.signal] : [])]) });
        uart.write8(UART.TX, byte); // loopback: the byte goes into the receive FIFO
        msis += (await irq).count;
        got.push(uart.read8(UART.RX));
      }
      const back = Buffer.from(got).toString('latin1');
      log(`  sent "${sent.toString('latin1')}", ${msis} MSIs on the event loop, read back "${back}"`);
      if (back !== sent.toString('latin1')) throw new Error(`read back "${back}"`);
      return `${sent.length} bytes through the UART in loopback, one MSI each`;
    });

    await step('mdpy', () => {
      const d = open(mdevOf('mdpy-xga').uuid);
      const plane = d.device.queryGfxPlane({ kind: 'region' });
      const fb = d.device.mmap(0); // the framebuffer BAR, MAP_SHARED
      new Uint32Array(fb.buffer).set(drawTestCard(plane.width, plane.height, caption('mdpy-xga', plane.width, plane.height)));
      log(`  drew a ${plane.width}x${plane.height} test card into BAR0 through mmap`);
      return screenshot(d, 'mdpy');
    });

    await step('mbochs', () => {
      const d = open(mdevOf('mbochs-small').uuid);
      const [w, h] = [800, 600];
      const mmio = d.device.region(2);
      for (const [reg, v] of [[XRES, w], [YRES, h], [BPP, 32], [ENABLE, 0x41]]) mmio.write16(DISPI(reg!), v!);
      const vram = d.device.mmap(0, { length: BigInt(Math.ceil((w * h * 4) / 4096) * 4096) });
      new Uint32Array(vram.buffer).set(drawTestCard(w, h, caption('mbochs-small', w, h)));
      log(`  set mode ${w}x${h}x32 through the DISPI registers, drew into VRAM through mmap`);
      return screenshot(d, 'mbochs');
    });

    for (const backend of ['group', 'cdev'] as const) {
      await step(backend === 'group' ? 'edu group/type1' : 'edu cdev/iommufd', async () => {
        const edu = EduDriver.open({ backend });
        opened.add(edu);
        edu.enableBusMaster();
        const n = 10;
        const f = await edu.factorial(n, { irq: 'msi' });
        if (f !== eduFactorial(n)) throw new Error(`factorial(${n}) = ${f}`);
        const data = new Uint8Array(EDU_DMA_MAX).map((_, i) => (i * 7 + 1) & 0xff);
        const r = await edu.dmaRoundTrip(data, { irq: 'msi' });
        if (!r.result.every((b, i) => b === data[i])) throw new Error('the DMA round trip came back different');
        return `${edu.device.name}: ${n}! = ${f} by MSI; ${data.length} bytes RAM → edu → RAM by DMA at IOVAs 0x${r.source.iova.toString(16)}, 0x${r.destination.iova.toString(16)}`;
      });
    }
  } finally {
    // Every device is closed by now (the kernel blocks a remove while one is open).
    await step('remove', async () => {
      const errors: string[] = [];
      for (const m of made.values()) await bus.remove(m.uuid).catch((e: Error) => errors.push(`${m.uuid}: ${e.message}`));
      if (errors.length) throw new Error(errors.join('; '));
      return `removed ${made.size} mdev(s)`;
    }, true);
  }
  return result;
}

/** Prints the summary table: step, result, time. */
export function summary(steps: StepResult[]): string {
  const rows = steps.map((s) => [s.step, s.ok ? 'ok' : 'FAILED', `${(s.ms / 1000).toFixed(2)} s`, s.detail]);
  const head = ['STEP', 'RESULT', 'TIME', 'DETAIL'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c)).join('  ');
  return [line(head), ...rows.map(line)].join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  const stop = new AbortController();
  process.once('SIGINT', () => {
    console.log('\nCtrl-C: stopping, removing what was created');
    stop.abort(new Error('interrupted'));
  });
  const t0 = performance.now();
  const out = process.argv.includes('--out') ? process.argv[process.argv.indexOf('--out') + 1] : undefined;
  runDemo({ signal: stop.signal, ...(out ? { outDir: out } : {}) }).then(
    (r) => {
      console.log(`\n${summary(r.steps)}\n\n${r.steps.filter((s) => s.ok).length} of ${r.steps.length} steps passed in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      process.exitCode = r.steps.every((s) => s.ok) ? 0 : 1;
    },
    (e: Error) => {
      console.error(`demo stopped: ${e.message}`);
      process.exitCode = stop.signal.aborted ? 130 : 1;
    },
  );
}
