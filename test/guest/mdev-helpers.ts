/**
 * Shared by the mdev and CLI guest suites: the sample drivers' pool rules
 * (read from raw sysfs, independent of the library under test), a tracker
 * that removes every mdev a suite created, and a child process that holds a
 * device node open.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { basename } from 'node:path';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { MdevBus } from '../../src/mdev/bus.js';

const read = (p: string): string => readFileSync(p, 'utf8').trim();

/** mtty's fixed pool (MAX_MTTYS, mtty.c) and the ports each type takes. */
export const MTTY_PORTS = 24;
export const PORTS: Record<string, number> = { 'mtty-1': 1, 'mtty-2': 2 };
/** mbochs' video memory per type, in MB. */
export const MBOCHS_MB: Record<string, number> = { 'mbochs-small': 4, 'mbochs-medium': 16, 'mbochs-large': 64 };
export const MDPY_TYPES = ['mdpy-vga', 'mdpy-xga', 'mdpy-hd'];
export const ALL_TYPES: [parent: string, type: string][] = [
  ['mtty', 'mtty-1'],
  ['mtty', 'mtty-2'],
  ['mdpy', 'mdpy-vga'],
  ['mdpy', 'mdpy-xga'],
  ['mdpy', 'mdpy-hd'],
  ['mbochs', 'mbochs-small'],
  ['mbochs', 'mbochs-medium'],
  ['mbochs', 'mbochs-large'],
];

/** The module parameters that size the mdpy and mbochs pools. */
export const mdpyCount = (): number => Number(read('/sys/module/mdpy/parameters/count'));
export const mbochsMb = (): number => Number(read('/sys/module/mbochs/parameters/count'));

/** Type ids of every mdev that exists, from raw sysfs. */
export function existingTypes(): string[] {
  return readdirSync('/sys/bus/mdev/devices').map((u) => basename(readlinkSync(`/sys/bus/mdev/devices/${u}/mdev_type`)));
}

/** `available_instances` of every type, from raw sysfs. */
export function rawAvailability(): Record<string, number> {
  return Object.fromEntries(ALL_TYPES.map(([p, t]) => [t, Number(read(`/sys/class/mdev_bus/${p}/mdev_supported_types/${t}/available_instances`))]));
}

/**
 * What each type's `available_instances` must be given the mdevs that exist,
 * by the drivers' rules: mtty-1/mtty-2 share 24 ports (1 and 2 per device);
 * mdpy's three types share `count` instances; mbochs' types share `count` MB
 * (4, 16, 64 MB per device).
 */
export function expectedAvailability(types = existingTypes()): Record<string, number> {
  const ports = MTTY_PORTS - types.reduce((n, t) => n + (PORTS[t] ?? 0), 0);
  const mdpy = mdpyCount() - types.filter((t) => MDPY_TYPES.includes(t)).length;
  const mb = mbochsMb() - types.reduce((n, t) => n + (MBOCHS_MB[t] ?? 0), 0);
  return {
    'mtty-1': ports,
    'mtty-2': Math.floor(ports / 2),
    'mdpy-vga': mdpy,
    'mdpy-xga': mdpy,
    'mdpy-hd': mdpy,
    'mbochs-small': Math.floor(mb / 4),
    'mbochs-medium': Math.floor(mb / 16),
    'mbochs-large': Math.floor(mb / 64),
  };
}

/** Asserts that every pool is exactly where the drivers' rules put it now. */
export function expectPoolsConsistent(): void {
  expect(rawAvailability()).toEqual(expectedAvailability());
}

/** Remembers the mdevs a suite creates and removes them all. */
export class Created {
  readonly uuids = new Set<string>();
  constructor(readonly bus = new MdevBus()) {}

  add(uuid: string): string {
    this.uuids.add(uuid.toLowerCase());
    return uuid;
  }

  /** Removes every tracked mdev still present, then waits until each is gone for good. */
  async removeAll(): Promise<void> {
    for (const uuid of this.uuids) {
      if (this.bus.find(uuid)) await this.bus.remove(uuid, { timeoutMs: 30_000 });
    }
    for (const uuid of this.uuids) await waitGone(uuid);
    this.uuids.clear();
  }
}

/** Resolves once no trace of the mdev is left in sysfs (its directory under the parent goes last). */
export async function waitGone(uuid: string, timeoutMs = 30_000): Promise<void> {
  const dirs = ['mtty', 'mdpy', 'mbochs'].map((p) => `/sys/devices/virtual/${p}/${p}/${uuid}`);
  const deadline = Date.now() + timeoutMs;
  while (existsSync(`/sys/bus/mdev/devices/${uuid}`) || dirs.some((d) => existsSync(d))) {
    if (Date.now() > deadline) throw new Error(`mdev ${uuid} still present after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A child process (`sh`) holding `node` open read-write until `close()`. */
export interface NodeHolder {
  pid: number;
  close(): Promise<void>;
}

export function holdOpen(node: string): Promise<NodeHolder> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', 'exec 3<>"$0" && echo ready && read x', node], { stdio: ['pipe', 'pipe', 'inherit'] });
    const exited = new Promise<void>((r) => child.on('close', () => r()));
    child.on('error', reject);
    child.on('close', (code) => reject(new Error(`holder of ${node} exited with ${code} before it was ready`)));
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      if (!s.includes('ready')) return;
      resolve({
        pid: child.pid!,
        close: async () => {
          child.stdin.end();
          await exited;
        },
      });
    });
  });
}

/**
 * Registers the hooks every guest file that creates mdevs needs: remove what
 * `created` tracks after each test, and check at the end that the set of mdevs
 * and every pool are exactly as the file found them (other files assert counts).
 */
export function guardPools(created: Created): void {
  let pools: Record<string, number>;
  let devices: string[];
  beforeAll(() => {
    pools = rawAvailability();
    devices = readdirSync('/sys/bus/mdev/devices').sort();
  });
  afterEach(async () => {
    await created.removeAll();
  });
  afterAll(() => {
    expect(readdirSync('/sys/bus/mdev/devices').sort()).toEqual(devices);
    expect(rawAvailability()).toEqual(pools);
  });
}
