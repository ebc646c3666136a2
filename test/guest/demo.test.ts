/**
 * The demo (examples/demo.ts, `npm run demo`) end to end in the guest: every
 * step passes, both PNGs decode to exactly the test cards drawn, and nothing
 * is left behind — also when a step fails or when Ctrl-C stops it.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode } from 'fast-png';
import { afterAll, describe, expect, it } from 'vitest';
import { STEPS, caption, runDemo } from '../../examples/demo.js';
import { drawTestCard } from '../../examples/testcard.js';
import { REPO } from '../host/mdev-shared.js';

const work = mkdtempSync(join(tmpdir(), 'vfio-demo-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const mdevs = (): string[] => readdirSync('/sys/bus/mdev/devices');
const quiet = (): void => undefined;

function expectPng(file: string, type: string, width: number, height: number): void {
  const png = decode(readFileSync(file));
  expect([png.width, png.height, png.channels]).toEqual([width, height, 3]);
  const card = drawTestCard(width, height, caption(type, width, height));
  const data = png.data as Uint8Array;
  const bad = card.findIndex((v, i) => data[3 * i] !== ((v >>> 16) & 0xff) || data[3 * i + 1] !== ((v >>> 8) & 0xff) || data[3 * i + 2] !== (v & 0xff));
  expect(bad, `first wrong pixel of ${file}`).toBe(-1);
}

describe('the demo', () => {
  it('passes every step, writes both PNGs with exactly the pixels drawn, and leaves no mdev behind', async () => {
    const before = mdevs();
    const out = join(work, 'run');
    const r = await runDemo({ outDir: out, log: quiet });
    expect(r.steps.map((s) => s.step)).toEqual([...STEPS]);
    expect(r.steps.filter((s) => !s.ok)).toEqual([]);
    expect(r.images).toEqual([join(out, 'mdpy.png'), join(out, 'mbochs.png')]);
    expectPng(join(out, 'mdpy.png'), 'mdpy-xga', 1024, 768);
    expectPng(join(out, 'mbochs.png'), 'mbochs-small', 800, 600);
    expect(r.created).toHaveLength(3);
    expect(mdevs()).toEqual(before);
  });

  it('removes what it created when a step fails, and runs the remaining steps', async () => {
    const before = mdevs();
    const r = await runDemo({ outDir: join(work, 'fail'), failAt: 'mdpy', log: quiet });
    const failed = r.steps.filter((s) => !s.ok);
    expect(failed.map((s) => s.step)).toEqual(['mdpy']);
    expect(failed[0]!.detail).toContain("failure injected at step 'mdpy'");
    expect(r.steps.find((s) => s.step === 'mbochs')!.ok).toBe(true);
    expect(r.steps.at(-1)).toMatchObject({ step: 'remove', ok: true });
    expect(existsSync(join(work, 'fail', 'mdpy.png'))).toBe(false);
    expect(mdevs()).toEqual(before);
  });

  it('on Ctrl-C stops, removes what it created and exits 130', async () => {
    const before = mdevs();
    const child = spawn(process.execPath, ['--import', 'tsx', 'examples/demo.ts', '--out', join(work, 'sigint')], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const status = await new Promise<number | null>((resolve) => {
      child.stdout.on('data', (b: Buffer) => {
        out += b.toString('utf8');
        // Once the devices exist, interrupt it.
        if (out.includes('▶ mtty') && !child.killed) child.kill('SIGINT');
      });
      child.stderr.on('data', (b: Buffer) => (out += b.toString('utf8')));
      child.on('close', (code) => resolve(code));
    });
    expect(status, out).toBe(130);
    expect(out).toContain('Ctrl-C: stopping, removing what was created');
    expect(out).toMatch(/removed 3 mdev\(s\)/);
    expect(mdevs()).toEqual(before);
  });
});
