/**
 * Proves the test bed itself: the guest kernel has what every later suite
 * relies on. Raw sysfs/devfs on purpose: this file must not depend on the
 * library it is there to test.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

const MDEV_BUS = '/sys/class/mdev_bus';
const read = (p: string): string => readFileSync(p, 'utf8').trim();
const isCharDev = (p: string): boolean => existsSync(p) && statSync(p).isCharacterDevice();

describe('the guest kernel', () => {
  it('is Linux 6.12', () => {
    expect(release()).toMatch(/^6\.12\./);
  });

  it('has the three mdev sample parents with their 8 types', () => {
    expect(readdirSync(MDEV_BUS).sort()).toEqual(['mbochs', 'mdpy', 'mtty']);
    const types = Object.fromEntries(
      ['mtty', 'mdpy', 'mbochs'].map((p) => [p, readdirSync(join(MDEV_BUS, p, 'mdev_supported_types')).sort()]),
    );
    expect(types).toEqual({
      mtty: ['mtty-1', 'mtty-2'],
      mdpy: ['mdpy-hd', 'mdpy-vga', 'mdpy-xga'],
      mbochs: ['mbochs-large', 'mbochs-medium', 'mbochs-small'],
    });
    expect(read(join(MDEV_BUS, 'mtty/mdev_supported_types/mtty-2/name'))).toBe('Dual port serial');
    expect(read(join(MDEV_BUS, 'mtty/mdev_supported_types/mtty-2/device_api'))).toBe('vfio-pci');
  });

  it('has the VFIO container, iommufd and the cdev directory', () => {
    expect(isCharDev('/dev/vfio/vfio')).toBe(true);
    expect(isCharDev('/dev/iommu')).toBe(true);
    expect(statSync('/dev/vfio/devices').isDirectory()).toBe(true);
  });

  it('runs under the emulated Intel IOMMU', () => {
    const iommus = readdirSync('/sys/class/iommu');
    expect(iommus.some((n) => n.startsWith('dmar'))).toBe(true);
  });
});

describe('edu (1234:11e8)', () => {
  const pci = '/sys/bus/pci/devices';
  const edu = readdirSync(pci).find((d) => read(join(pci, d, 'vendor')) === '0x1234' && read(join(pci, d, 'device')) === '0x11e8');

  it('is present and bound to vfio-pci', () => {
    expect(edu).toBeDefined();
    expect(basename(readlinkSync(join(pci, edu!, 'driver')))).toBe('vfio-pci');
  });

  it('has its own IOMMU group with a /dev/vfio/N node and a device cdev', () => {
    const group = basename(readlinkSync(join(pci, edu!, 'iommu_group')));
    expect(group).toMatch(/^\d+$/);
    expect(readdirSync(join('/sys/kernel/iommu_groups', group, 'devices'))).toEqual([edu]);
    expect(isCharDev(join('/dev/vfio', group))).toBe(true);
    const [cdev] = readdirSync(join(pci, edu!, 'vfio-dev'));
    expect(cdev).toMatch(/^vfio\d+$/);
    expect(isCharDev(join('/dev/vfio/devices', cdev!))).toBe(true);
  });
});

describe('an mtty-2 mdev through raw sysfs', () => {
  const type = join(MDEV_BUS, 'mtty/mdev_supported_types/mtty-2');
  let created: string | null = null;

  afterEach(() => {
    if (created && existsSync(join('/sys/bus/mdev/devices', created))) writeFileSync(join('/sys/bus/mdev/devices', created, 'remove'), '1');
    created = null;
  });

  it('appears with an IOMMU group and a vfio cdev when created, and goes away when removed', () => {
    const uuid = randomUUID();
    const before = Number(read(join(type, 'available_instances')));
    writeFileSync(join(type, 'create'), uuid);
    created = uuid;
    const dev = join('/sys/bus/mdev/devices', uuid);
    expect(existsSync(dev)).toBe(true);
    expect(basename(readlinkSync(join(dev, 'mdev_type')))).toBe('mtty-2');
    expect(Number(read(join(type, 'available_instances')))).toBe(before - 1);

    const group = basename(readlinkSync(join(dev, 'iommu_group')));
    expect(group).toMatch(/^\d+$/);
    expect(read(join('/sys/kernel/iommu_groups', group, 'name'))).toBe('vfio-noiommu');
    expect(isCharDev(join('/dev/vfio', group))).toBe(true);
    const [cdev] = readdirSync(join(dev, 'vfio-dev'));
    expect(cdev).toMatch(/^vfio\d+$/);
    expect(isCharDev(join('/dev/vfio/devices', cdev!))).toBe(true);

    writeFileSync(join(dev, 'remove'), '1');
    expect(existsSync(dev)).toBe(false);
    expect(existsSync(join(type, 'devices', uuid))).toBe(false);
    expect(Number(read(join(type, 'available_instances')))).toBe(before);
    created = null;
  });
});
