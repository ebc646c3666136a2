/**
 * Guest-test fixtures over raw sysfs (so device tests do not depend on the mdev
 * API under test elsewhere): create/remove mdevs and open devices on the group path.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, readlinkSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { Container } from '../../src/vfio/container.js';
import type { Device } from '../../src/vfio/device.js';
import { Group } from '../../src/vfio/group.js';

const TYPES: Record<string, string> = {
  'mtty-1': 'mtty',
  'mtty-2': 'mtty',
  'mdpy-vga': 'mdpy',
  'mdpy-xga': 'mdpy',
  'mdpy-hd': 'mdpy',
  'mbochs-small': 'mbochs',
  'mbochs-medium': 'mbochs',
  'mbochs-large': 'mbochs',
};

export function createMdev(type: string): string {
  const uuid = randomUUID();
  writeFileSync(join('/sys/class/mdev_bus', TYPES[type]!, 'mdev_supported_types', type, 'create'), uuid);
  return uuid;
}

/** Removes an mdev; call only after every fd of it is closed (the write blocks otherwise). */
export function removeMdev(uuid: string): void {
  const p = join('/sys/bus/mdev/devices', uuid, 'remove');
  if (existsSync(p)) writeFileSync(p, '1');
}

export function groupOf(name: string): number {
  const bus = existsSync(join('/sys/bus/mdev/devices', name)) ? 'mdev' : 'pci';
  return Number(basename(readlinkSync(join('/sys/bus', bus, 'devices', name, 'iommu_group'))));
}

export function eduAddress(): string {
  const pci = '/sys/bus/pci/devices';
  const d = readdirSync(pci).find((a) => readFileSync(join(pci, a, 'vendor'), 'utf8').trim() === '0x1234' && readFileSync(join(pci, a, 'device'), 'utf8').trim() === '0x11e8');
  if (!d) throw new Error('no edu device in the guest');
  return d;
}

export interface Opened {
  container: Container;
  group: Group;
  device: Device;
  close(): void;
}

/** container → group → setIommu(type1v2) → device, closed in the right order by close(). */
export function openOnGroup(name: string): Opened {
  const container = Container.open();
  let group: Group | undefined;
  try {
    group = Group.open(groupOf(name));
    group.setContainer(container);
    container.setIommu();
    const device = group.openDevice(name);
    return { container, group, device, close: () => container.close() };
  } catch (e) {
    group?.close();
    container.close();
    throw e;
  }
}

/** Open fds of this process. */
export function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/**
 * Creates an mdev of `type` and opens it on the group path before the
 * describe block's tests (handing both to `use`), and closes and removes it after them.
 */
export function useOpenedMdev(type: string, use: (opened: Opened, uuid: string) => void): void {
  let uuid = '';
  let o: Opened | undefined;
  beforeAll(() => {
    uuid = createMdev(type);
    o = openOnGroup(uuid);
    use(o, uuid);
  });
  afterAll(() => {
    o?.close();
    if (uuid) removeMdev(uuid);
  });
}
