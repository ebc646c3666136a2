/**
 * Several processes creating and removing mdevs of one parent at once: for
 * each UUID exactly one winner (the others get EEXIST); a pool too small for
 * all gives exactly as many winners as it has room (EUSERS, ENOSPC for the
 * rest); the pools' accounting is right afterwards; and no writer hangs.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO } from '../host/mdev-shared.js';
import { Created, expectPoolsConsistent, rawAvailability } from './mdev-helpers.js';

interface Contender {
  send(line: string): void;
  next(): Promise<Record<string, string>>;
  exited: Promise<number | null>;
}

function contender(plan: { type: string; uuid: string }[]): Promise<Contender> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/guest/children/mdev-race.ts', JSON.stringify(plan)], { cwd: REPO, stdio: ['pipe', 'pipe', 'inherit'] });
  const queue: string[] = [];
  const waiters: ((l: string) => void)[] = [];
  let buf = '';
  child.stdout.on('data', (b: Buffer) => {
    buf += b.toString('utf8');
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const w = waiters.shift();
      if (w) w(line);
      else queue.push(line);
    }
  });
  const line = (): Promise<string> => (queue.length ? Promise.resolve(queue.shift()!) : new Promise((r) => waiters.push(r)));
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  return line().then((ready) => {
    expect(ready).toBe('ready');
    return { send: (l) => child.stdin.write(`${l}\n`), next: async () => JSON.parse(await line()) as Record<string, string>, exited };
  });
}

/** Starts every contender, lets them race, then has each remove what it won. Returns the create results. */
async function race(plans: { type: string; uuid: string }[][], created: Created): Promise<Record<string, string>[]> {
  const cs = await Promise.all(plans.map(contender));
  for (const c of cs) c.send('go');
  const results = await Promise.all(cs.map((c) => c.next()));
  for (const r of results) for (const [uuid, v] of Object.entries(r)) if (v === 'ok') created.add(uuid);
  for (const c of cs) c.send('remove');
  const removed = await Promise.all(cs.map((c) => c.next()));
  for (const r of removed) expect(Object.values(r).every((v) => v === 'ok'), JSON.stringify(removed)).toBe(true);
  expect(await Promise.all(cs.map((c) => c.exited))).toEqual(cs.map(() => 0));
  return results;
}

const shuffled = <T>(xs: T[], seed: number): T[] => xs.map((x, i) => ({ x, k: Math.sin(seed * 977 + i * 131) })).sort((a, b) => a.k - b.k).map((e) => e.x);

describe('mdevs of one parent, from four processes at once', () => {
  const created = new Created();
  afterAll(() => created.removeAll());

  it('the same eight UUIDs, each tried by all four: exactly one winner per UUID, the rest EEXIST; pools right after', async () => {
    const pools = rawAvailability();
    const uuids = Array.from({ length: 8 }, () => randomUUID());
    const results = await race([0, 1, 2, 3].map((s) => shuffled(uuids, s + 1).map((uuid) => ({ type: 'mtty-1', uuid }))), created);
    for (const uuid of uuids) {
      const outcomes = results.map((r) => r[uuid]).sort();
      expect(outcomes, uuid).toEqual(['EEXIST', 'EEXIST', 'EEXIST', 'ok']);
    }
    expect(rawAvailability()).toEqual(pools);
    expectPoolsConsistent();
  }, 240_000);

  it('pools too small for all: exactly as many winners as there is room, EUSERS (mdpy) and ENOSPC (mbochs) for the rest', async () => {
    const pools = rawAvailability();
    const mdpyRoom = pools['mdpy-vga']!;
    const largeRoom = pools['mbochs-large']!;
    const plans = [0, 1, 2, 3].map(() => [
      ...Array.from({ length: 2 }, () => ({ type: 'mdpy-vga', uuid: randomUUID() })),
      ...Array.from({ length: 2 }, () => ({ type: 'mbochs-large', uuid: randomUUID() })),
    ]);
    const results = await race(plans, created);
    const all = results.flatMap((r, i) => plans[i]!.map(({ type, uuid }) => ({ type, outcome: r[uuid]! })));
    const count = (type: string, outcome: string): number => all.filter((a) => a.type === type && a.outcome === outcome).length;
    expect(count('mdpy-vga', 'ok')).toBe(Math.min(8, mdpyRoom));
    expect(count('mdpy-vga', 'EUSERS')).toBe(8 - Math.min(8, mdpyRoom));
    expect(count('mbochs-large', 'ok')).toBe(Math.min(8, largeRoom));
    expect(count('mbochs-large', 'ENOSPC')).toBe(8 - Math.min(8, largeRoom));
    expect(rawAvailability()).toEqual(pools);
    expectPoolsConsistent();
  }, 240_000);
});
