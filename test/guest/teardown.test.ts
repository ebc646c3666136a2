/**
 * Ending with everything still open: a process that holds devices on both
 * backends, mappings, a mapped DMA buffer, enabled interrupts and a pending
 * interrupt wait ends by process.exit, by an uncaught exception or by SIGTERM;
 * a worker thread that holds the same is terminated, exits or throws. Each ends
 * with the expected status and no crash, and the mdevs can then be removed at
 * once: every fd was released.
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { MdevBus } from '../../src/mdev/bus.js';
import { REPO } from '../host/mdev-shared.js';

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  out: string;
}

function holdAll(mtty: string, mdpy: string, where: string, how: string): Promise<Run> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/guest/children/hold-all.ts', mtty, mdpy, where, how], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const timer = setTimeout(() => child.kill('SIGKILL'), 50_000);
  return new Promise((resolve) => {
    const onData = (b: Buffer): void => {
      out += b.toString('utf8');
      if (how === 'sigterm' && out.includes('held\n') && child.signalCode === null && !child.killed) child.kill('SIGTERM');
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, out });
    });
  });
}

const CASES = [
  { where: 'main', how: 'exit', status: 0 + 3, signal: null, says: [] },
  { where: 'main', how: 'throw', status: 1, signal: null, says: ['thrown while holding everything'] },
  { where: 'main', how: 'sigterm', status: null, signal: 'SIGTERM', says: [] },
  { where: 'worker', how: 'terminate', status: 0, signal: null, says: ['worker exit 1', 'device fds left: 0', 'survived'] },
  { where: 'worker', how: 'exit', status: 0, signal: null, says: ['worker exit 3', 'device fds left: 0', 'survived'] },
  { where: 'worker', how: 'throw', status: 0, signal: null, says: ['worker error: thrown while holding everything', 'worker exit 1', 'device fds left: 0', 'survived'] },
] as const;

describe('ending with everything open', () => {
  const bus = new MdevBus();
  it.each(CASES)('$where thread, $how: ends as expected with no crash, and releases every fd', async (c) => {
    const mtty = await bus.create('mtty-2');
    const mdpy = await bus.create('mdpy-vga');
    let r: Run;
    try {
      r = await holdAll(mtty.uuid, mdpy.uuid, c.where, c.how);
    } finally {
      // At once: a device fd still open anywhere would make this time out.
      await bus.remove(mtty.uuid, { timeoutMs: 5000 });
      await bus.remove(mdpy.uuid, { timeoutMs: 5000 });
    }
    expect(r.out).toContain('held\n');
    expect({ status: r.status, signal: r.signal }, r.out).toEqual({ status: c.status, signal: c.signal });
    for (const line of c.says) expect(r.out).toContain(line);
    expect(r.out).not.toMatch(/Aborted|Segmentation|Bus error|FATAL ERROR|core dumped/);
  });
});
