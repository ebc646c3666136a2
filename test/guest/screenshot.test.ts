/**
 * captureDisplay() and `vfio screenshot` on every mdpy and mbochs type: the
 * pixels and the PNG are exactly what was drawn, a mode change shows in the
 * next capture's size, the scan-out offset is honoured, mbochs' dma-buf is
 * exported once, and devices without a display are refused.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode } from 'fast-png';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drawTestCard } from '../../examples/testcard.js';
import { VfioError } from '../../src/errors.js';
import { captureDisplay } from '../../src/vfio/display.js';
import { expectCliFailure, runVfio } from '../host/mdev-shared.js';
import { createMdev, openOnGroup, removeMdev, type Opened } from './fixtures.js';

/** The RGBA bytes of XRGB8888 pixels (0x00RRGGBB). */
function rgba(px: Uint32Array): Uint8Array {
  const out = new Uint8Array(px.length * 4);
  px.forEach((v, i) => out.set([(v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff, 255], i * 4));
  return out;
}
function rgb(px: Uint32Array): Uint8Array {
  const out = new Uint8Array(px.length * 3);
  px.forEach((v, i) => out.set([(v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff], i * 3));
  return out;
}
/** Index of the first differing byte, or -1 (a readable failure instead of a 3-million-element diff). */
const firstDiff = (a: Uint8Array, b: Uint8Array): number => (a.length !== b.length ? -2 : a.findIndex((v, i) => v !== b[i]));

const work = mkdtempSync(join(tmpdir(), 'vfio-shot-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/**
 * An mdev of `type` created and opened on its group before the block's tests,
 * closed (if a test has not already) and removed after them.
 */
function useMdev(type: string): { uuid: string; o: Opened | undefined; close(): void } {
  const m = { uuid: '', o: undefined as Opened | undefined, close: (): void => (m.o?.close(), (m.o = undefined)) };
  beforeAll(() => {
    m.uuid = createMdev(type);
    m.o = openOnGroup(m.uuid);
  });
  afterAll(() => {
    m.close();
    if (m.uuid) removeMdev(m.uuid);
  });
  return m;
}

describe.each([
  { type: 'mdpy-vga', width: 640, height: 480 },
  { type: 'mdpy-xga', width: 1024, height: 768 },
  { type: 'mdpy-hd', width: 1920, height: 1080 },
])('screenshot of $type', ({ type, width, height }) => {
  const m = useMdev(type);

  it('captures exactly the test card drawn through the mapped framebuffer, and its PNG decodes to the same pixels', () => {
    const card = drawTestCard(width, height, `${type} ${width}x${height}`);
    const fb = m.o!.device.mmap(0);
    new Uint32Array(fb.buffer).set(card);
    fb.unmap();
    const shot = captureDisplay(m.o!.device, { png: true });
    expect(shot).toMatchObject({ width, height, stride: width * 4, format: 'XR24', source: 'region', hasAlpha: false });
    expect(firstDiff(shot.pixels, rgba(card))).toBe(-1);
    const png = decode(shot.png!);
    expect([png.width, png.height, png.channels, png.depth]).toEqual([width, height, 3, 8]);
    expect(firstDiff(png.data as Uint8Array, rgb(card))).toBe(-1);
  });

  it('`vfio screenshot` writes the same picture from another process (mdpy keeps its framebuffer across opens)', async () => {
    m.close();
    const file = join(work, `${type}.png`);
    const r = await runVfio(['screenshot', m.uuid, '-o', file, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(json).toMatchObject({ device: m.uuid, backend: 'group', file, width, height, stride: width * 4, format: 'XR24', source: 'region' });
    const png = decode(readFileSync(file));
    expect(json.bytes).toBe(readFileSync(file).length);
    expect(firstDiff(png.data as Uint8Array, rgb(drawTestCard(width, height, `${type} ${width}x${height}`)))).toBe(-1);
  });
});

const DISPI = (i: number): number => 0x500 + 2 * i;
const [XRES, YRES, BPP, ENABLE, VIRT_WIDTH, X_OFFSET, Y_OFFSET] = [1, 2, 3, 4, 6, 8, 9];

describe.each([
  { type: 'mbochs-small', modes: [[640, 480], [800, 600]] },
  { type: 'mbochs-medium', modes: [[1024, 768], [1280, 720]] },
  { type: 'mbochs-large', modes: [[1920, 1080], [640, 480]] },
])('screenshot of $type', ({ type, modes }) => {
  const m = useMdev(type);
  const setMode = (w: number, h: number, yOffset = 0): void => {
    const mmio = m.o!.device.region(2);
    for (const [reg, v] of [[ENABLE, 0], [XRES, w], [YRES, h], [BPP, 32], [VIRT_WIDTH, 0], [X_OFFSET, 0], [Y_OFFSET, yOffset], [ENABLE, 0x41]]) mmio.write16(DISPI(reg!), v!);
  };
  const draw = (w: number, h: number, byteOffset = 0): Uint32Array => {
    const card = drawTestCard(w, h, `${type} ${w}x${h}`);
    const vram = m.o!.device.mmap(0, { length: BigInt(Math.ceil((byteOffset + w * h * 4) / 4096) * 4096) });
    new Uint32Array(vram.buffer, byteOffset, w * h).set(card);
    vram.unmap();
    return card;
  };

  it('refuses to capture before a mode is set (the display is off)', () => {
    let err: VfioError | undefined;
    try {
      captureDisplay(m.o!.device);
    } catch (e) {
      err = e as VfioError;
    }
    expect(err).toBeInstanceOf(VfioError);
    expect(err!.code).toBe('ERR_VFIO_DISPLAY_OFF');
    expect(err!.hint).toMatch(/DISPI/);
  });

  it('captures each mode exactly, and a mode change shows in the next capture', () => {
    for (const [w, h] of modes) {
      setMode(w!, h!);
      const card = draw(w!, h!);
      const shot = captureDisplay(m.o!.device, { png: true });
      expect(shot).toMatchObject({ width: w, height: h, stride: w! * 4, format: 'XR24', source: 'vram' });
      expect(firstDiff(shot.pixels, rgba(card))).toBe(-1);
      const png = decode(shot.png!);
      expect([png.width, png.height]).toEqual([w, h]);
      expect(firstDiff(png.data as Uint8Array, rgb(card))).toBe(-1);
    }
  });

  it('reads from the scan-out offset the DISPI registers give (page-aligned and not)', () => {
    const [w, h] = modes[0]!;
    for (const rows of [8, 3]) {
      setMode(w!, h!, rows);
      const card = draw(w!, h!, rows * w! * 4);
      expect(firstDiff(captureDisplay(m.o!.device).pixels, rgba(card))).toBe(-1);
    }
  });

  it('exports a mode\'s dma-buf once however often it captures, and refuses a second export after it was closed', () => {
    const [w, h] = modes[1]!;
    setMode(w!, h!);
    draw(w!, h!);
    const first = captureDisplay(m.o!.device);
    for (let i = 0; i < 3; i++) expect(firstDiff(captureDisplay(m.o!.device).pixels, first.pixels)).toBe(-1);
    const id = first.plane.dmabufId!;
    const dmabuf = m.o!.device.getGfxDmabuf(id);
    expect(m.o!.device.getGfxDmabuf(id)).toBe(dmabuf);
    dmabuf.close();
    expect(() => m.o!.device.getGfxDmabuf(id)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_DRIVER_QUIRK' }));
    // The capture no longer needs the export: it reads VRAM.
    expect(firstDiff(captureDisplay(m.o!.device).pixels, first.pixels)).toBe(-1);
  });

  it('`vfio screenshot` from another process shows the mode, all black: mbochs frees VRAM when the last user closes it', async () => {
    const [w, h] = modes[0]!;
    setMode(w!, h!);
    m.close();
    const file = join(work, `${type}.png`);
    const r = await runVfio(['screenshot', m.uuid, '-o', file]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${file}: ${w}x${h} XR24 (stride ${w! * 4}, read from the vram), ${readFileSync(file).length} bytes\n`);
    const png = decode(readFileSync(file));
    expect([png.width, png.height]).toEqual([w, h]);
    expect((png.data as Uint8Array).every((b) => b === 0)).toBe(true);
  });
});

describe('a device without a display', () => {
  const m = useMdev('mtty-1');

  it('is refused by captureDisplay and by `vfio screenshot`, with nothing written', async () => {
    expect(() => captureDisplay(m.o!.device)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_NO_DISPLAY' }));
    m.close();
    const file = join(work, 'mtty.png');
    const r = await runVfio(['screenshot', m.uuid, '-o', file]);
    expectCliFailure(r, 'ERR_VFIO_NO_DISPLAY', 'display devices');
    expect(() => readFileSync(file)).toThrow();
  });
});
