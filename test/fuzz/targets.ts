/**
 * The devices the fuzzer drives (QEMU's edu on vfio-pci, and every mdev sample
 * type), what is interesting about each (regions, offsets, IRQ indexes,
 * features), how the harness makes them exist, and the guest-safety rules:
 * the accesses that would corrupt the guest kernel or abort QEMU are never
 * made, whatever the library would do with them (kernel-6.12-facts §6).
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { TargetField } from './values.js';

export const TARGET_NAMES = ['edu', 'mtty-1', 'mtty-2', 'mdpy-vga', 'mdpy-xga', 'mdpy-hd', 'mbochs-small', 'mbochs-medium', 'mbochs-large'] as const;
export type TargetName = (typeof TARGET_NAMES)[number];
export type Driver = 'vfio-pci' | 'mtty' | 'mdpy' | 'mbochs';

/** A target as it exists in the guest now (JSON: handed to the child process). */
export interface TargetInfo {
  name: TargetName;
  driver: Driver;
  /** The sysfs name: a PCI address or an mdev UUID. */
  device: string;
  group: number;
  groupPath: string;
  cdevPath: string | null;
  /** Whether the harness created it (an mdev) and must remove it. */
  created: boolean;
  /** What `target` value descriptors stand for. */
  fields: Record<TargetField, unknown>;
}

/** What the generators should aim at on one kind of device. */
export interface TargetSpec {
  driver: Driver;
  /** Region index → the offsets worth trying in it. */
  regions: Record<number, number[]>;
  irqIndexes: number[];
  features: number[];
  mmapIndexes: number[];
  /** Config-space offsets the fuzzer may write (edu: the command/status registers and a few harmless bytes). */
  configWritable?: [number, number][];
}

const UART = [0, 1, 2, 3, 4, 5, 6, 7, 8];
const CONFIG = [0, 2, 4, 5, 6, 8, 0x0c, 0x10, 0x14, 0x2c, 0x34, 0x3c, 0x3d, 0x40, 0x44, 0x60, 0xfc, 0xfe, 0xff, 0x100];

export const SPECS: Record<Driver, TargetSpec> = {
  'vfio-pci': {
    driver: 'vfio-pci',
    regions: {
      0: [0, 4, 8, 0x20, 0x24, 0x60, 0x64, 0x80, 0x98, 0x100, 0x1000, 0xffff8, 0xffffc, 0x100000],
      7: [4, 4, 4, 4, 5, 6, 0, 0x0c, 0x3c, 0x34, 0x40, 0x50, 0xfe, 0x100],
    },
    irqIndexes: [0, 1, 2, 3, 4],
    features: [1, 2, 3, 4, 5, 6, 9],
    mmapIndexes: [0],
    configWritable: [
      [4, 8],
      [0x0c, 0x0e],
      [0x3c, 0x3d],
    ],
  },
  mtty: {
    driver: 'mtty',
    regions: { 0: UART, 1: UART, 2: [0], 5: [0], 6: [0], 7: CONFIG, 8: [0] },
    irqIndexes: [0, 1, 2, 4],
    features: [1, 2, 6, 7, 8, 9, 10],
    mmapIndexes: [0, 7],
  },
  mdpy: {
    driver: 'mdpy',
    regions: { 0: [0, 4, 0x1000], 7: CONFIG, 16: [0, 4], 1: [0] },
    irqIndexes: [0, 1],
    features: [1, 3],
    mmapIndexes: [0, 16],
  },
  mbochs: {
    driver: 'mbochs',
    regions: { 0: [0, 4, 0x1000], 2: [0, 0x500, 0x502, 0x504, 0x506, 0x508, 0x50c, 0x510, 0x512, 0x514, 0x600, 0xffe], 7: CONFIG, 9: [0, 4, 8, 12, 16, 20, 0x800, 0xbfc] },
    irqIndexes: [0, 1],
    features: [1],
    mmapIndexes: [0, 2, 9],
  },
};

export const driverOf = (name: TargetName): Driver => (name === 'edu' ? 'vfio-pci' : (name.split('-')[0] as Driver));

// ---------------------------------------------------------------------------
// Safety: accesses never made, whatever the arguments.

/** The DMA registers of edu (0x80-0x9f): a bad transfer there aborts QEMU. */
const EDU_DMA_REGS: [bigint, bigint] = [0x80n, 0xa0n];
/** mbochs read()/write() of VRAM runs 0x2000 past the offset: keep clear of the last 0x2000 bytes. */
const MBOCHS_SHIFT = 0x2000n;
/** mbochs EDID register edid_size (+8): left alone. */
const MBOCHS_EDID_SIZE: [bigint, bigint] = [8n, 12n];

const overlaps = (a: bigint, n: bigint, [lo, hi]: [bigint, bigint]): boolean => a < hi && a + n > lo;

/**
 * Why an access of `length` bytes at `offset` of region `index` (a pread/pwrite
 * through Region, or a load/store through a view whose region offset is
 * folded in) must not be made, or null when it may. `offset` null means the
 * argument is not an integer at all: the library has to reject it, so it may go.
 */
export function unsafeAccess(driver: Driver, index: number, offset: bigint | null, length: number, write: boolean, regionSize: bigint | null, viaMmap: boolean): string | null {
  if (offset === null) return null;
  const n = BigInt(Math.max(length, 1));
  if (driver === 'vfio-pci') {
    if (write && index === 0 && overlaps(offset, n, EDU_DMA_REGS)) return 'edu DMA registers (a bad transfer aborts QEMU)';
    if (write && index === 7) {
      const allowed = SPECS['vfio-pci'].configWritable!.some(([lo, hi]) => offset >= BigInt(lo) && offset + n <= BigInt(hi));
      if (!allowed) return 'edu config space outside the command register and a few harmless bytes';
    }
  }
  if (driver === 'mbochs' && !viaMmap) {
    if (index === 0 && (regionSize === null || offset + n > regionSize - MBOCHS_SHIFT)) return 'mbochs VRAM read()/write() past size-0x2000 (kernel memory, H8)';
    if (write && index === 9 && overlaps(offset, n, MBOCHS_EDID_SIZE)) return 'mbochs EDID edid_size';
  }
  return null;
}

/** Region accesses the library must refuse with ERR_VFIO_DRIVER_QUIRK (src/vfio/quirks.ts). */
export function quirkRegion(driver: Driver, index: number): boolean {
  return (driver === 'mbochs' && index === 0) || (driver === 'mdpy' && (index === 0 || index === 16)) || (driver === 'mtty' && index >= 2 && index <= 5);
}

/** Most bytes one DMA buffer may have, and how many may be live. */
export const DMA_MAX_BYTES = 1n << 20n;
export const DMA_MAX_LIVE = 6;

// ---------------------------------------------------------------------------
// Making the targets exist (the harness does this, as root in the guest).

const MDEV_PARENT: Record<string, string> = { mtty: 'mtty', mdpy: 'mdpy', mbochs: 'mbochs' };

/** The PCI address of QEMU's edu device, or null. */
export function eduAddress(): string | null {
  const pci = '/sys/bus/pci/devices';
  try {
    return readdirSync(pci).find((a) => readFileSync(join(pci, a, 'vendor'), 'utf8').trim() === '0x1234' && readFileSync(join(pci, a, 'device'), 'utf8').trim() === '0x11e8') ?? null;
  } catch {
    return null;
  }
}

function describeTarget(name: TargetName, device: string, created: boolean): TargetInfo {
  // backend/otherBackend are filled in per run (withBackend).
  const bus = name === 'edu' ? 'pci' : 'mdev';
  const dir = join('/sys/bus', bus, 'devices', device);
  const group = Number(basename(readlinkSync(join(dir, 'iommu_group'))));
  let cdev: string | null = null;
  try {
    cdev = readdirSync(join(dir, 'vfio-dev')).find((n) => /^vfio\d+$/.test(n)) ?? null;
  } catch {
    /* no cdev */
  }
  const cdevPath = cdev ? `/dev/vfio/devices/${cdev}` : null;
  const short = device.startsWith('0000:') ? device.slice(5) : device.slice(0, 8);
  return {
    name,
    driver: driverOf(name),
    device,
    group,
    groupPath: `/dev/vfio/${group}`,
    cdevPath,
    created,
    fields: {
      name: device,
      upper: device.toUpperCase(),
      short,
      cdev: cdevPath,
      group,
      groupPath: `/dev/vfio/${group}`,
      uuidOther: randomUUID(),
      pciOther: '0000:00:1f.7',
      cdevOther: '/dev/vfio/devices/vfio99',
      backend: 'group',
      otherBackend: 'cdev',
    },
  };
}

/** Makes the target exist: finds edu, or creates the mdev (sysfs write, as root). */
export function setUpTarget(name: TargetName): TargetInfo {
  if (name === 'edu') {
    const a = eduAddress();
    if (!a) throw new Error('no edu device (1234:11e8) in this machine');
    return describeTarget(name, a, false);
  }
  const uuid = randomUUID();
  writeFileSync(join('/sys/class/mdev_bus', MDEV_PARENT[driverOf(name)]!, 'mdev_supported_types', name, 'create'), uuid);
  return describeTarget(name, uuid, true);
}

/**
 * Removes an mdev. Only call it once no process holds the device open: the
 * kernel blocks the write until then (H13). Returns false when it is gone already.
 */
export function removeMdevNow(uuid: string): boolean {
  const p = join('/sys/bus/mdev/devices', uuid, 'remove');
  if (!existsSync(p)) return false;
  writeFileSync(p, '1');
  return true;
}

/** The target as a run on `backend` sees it. */
export function withBackend(t: TargetInfo, backend: 'group' | 'cdev'): TargetInfo {
  return { ...t, fields: { ...t.fields, backend, otherBackend: backend === 'group' ? 'cdev' : 'group' } };
}

/** Tears down what setUpTarget() made. */
export function tearDownTarget(t: TargetInfo): void {
  if (t.created) removeMdevNow(t.device);
}
