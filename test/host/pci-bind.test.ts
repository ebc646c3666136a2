import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { normalizePciAddress } from '../../src/pci/address.js';
import { bindPciDriver, findPciFunction } from '../../src/pci/bind.js';

const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});

/** A fake /sys with one PCI function bound to `driver`, and the PCI drivers named. */
function tree(addr: string, driver: string | null, drivers: string[]): string {
  const root = mkdtempSync(join(tmpdir(), 'vfio-bind-'));
  roots.push(root);
  const dev = join(root, 'sys/bus/pci/devices', addr);
  mkdirSync(dev, { recursive: true });
  writeFileSync(join(dev, 'vendor'), '0x1b36\n');
  writeFileSync(join(dev, 'device'), '0x0010\n');
  writeFileSync(join(dev, 'driver_override'), '(null)\n');
  for (const d of drivers) mkdirSync(join(root, 'sys/bus/pci/drivers', d), { recursive: true });
  if (driver) {
    writeFileSync(join(root, 'sys/bus/pci/drivers', driver, 'unbind'), '');
    symlinkSync(join(root, 'sys/bus/pci/drivers', driver), join(dev, 'driver'));
  }
  writeFileSync(join(root, 'sys/bus/pci/drivers_probe'), '');
  return root;
}

describe('normalizePciAddress', () => {
  it('takes the full and the short form, any case, and nothing else', () => {
    expect(normalizePciAddress('0000:01:00.0')).toBe('0000:01:00.0');
    expect(normalizePciAddress(' 0000:0A:1F.7 ')).toBe('0000:0a:1f.7');
    expect(normalizePciAddress('01:00.0')).toBe('0000:01:00.0');
    for (const bad of ['1:00.0', '0000:01:00.8', '0000:01:00', 'mtty', '', 42 as unknown as string]) expect(normalizePciAddress(bad), String(bad)).toBeNull();
  });
});

describe('bindPciDriver', () => {
  it('refuses a malformed address, a missing device, and a driver that is not loaded', () => {
    const root = tree('0000:01:00.0', 'vfio-pci', ['vfio-pci']);
    expect(() => bindPciDriver('1:00.0', 'nvme', { root })).toThrow(expect.objectContaining({ code: 'EINVAL', message: expect.stringMatching(/malformed PCI address "1:00.0"/) }));
    // The short form (no segment) is the same device, as openDevice() takes it.
    expect(bindPciDriver('01:00.0', 'vfio-pci', { root })).toBe('vfio-pci');
    expect(() => bindPciDriver('02:00.0', 'nvme', { root })).toThrow(expect.objectContaining({ code: 'ENOENT', message: 'ENOENT: no PCI device 0000:02:00.0' }));
    expect(() => bindPciDriver('0000:01:00.0', '../x', { root })).toThrow(TypeError);
    expect(() => bindPciDriver('0000:02:00.0', 'nvme', { root })).toThrow(expect.objectContaining({ code: 'ENOENT', message: 'ENOENT: no PCI device 0000:02:00.0' }));
    expect(() => bindPciDriver('0000:01:00.0', 'nvme', { root, modprobe: false })).toThrow(expect.objectContaining({ code: 'ENODEV', hint: expect.stringMatching(/modprobe nvme/) }));
    // Nothing was written on the way to those errors.
    expect(readFileSync(join(root, 'sys/bus/pci/devices/0000:01:00.0/driver_override'), 'utf8')).toBe('(null)\n');
  });

  it('is a no-op for the driver it has, and otherwise writes override, unbind and probe, then names the driver it found', () => {
    const root = tree('0000:01:00.0', 'vfio-pci', ['vfio-pci', 'nvme']);
    expect(bindPciDriver('0000:01:00.0', 'vfio-pci', { root })).toBe('vfio-pci');
    expect(readFileSync(join(root, 'sys/bus/pci/devices/0000:01:00.0/driver_override'), 'utf8')).toBe('(null)\n');
    // A fake tree has no kernel behind it: the writes land, the device stays where it was, and the error says so.
    expect(() => bindPciDriver('0000:01:00.0', 'nvme', { root, modprobe: false })).toThrow(
      expect.objectContaining({ code: 'ENODEV', message: 'ENODEV: 0000:01:00.0 did not bind to nvme (bound to vfio-pci; vendor:device 1b36:0010)' }),
    );
    expect(readFileSync(join(root, 'sys/bus/pci/devices/0000:01:00.0/driver_override'), 'utf8')).toBe('nvme');
    expect(readFileSync(join(root, 'sys/bus/pci/drivers/vfio-pci/unbind'), 'utf8')).toBe('0000:01:00.0');
    expect(readFileSync(join(root, 'sys/bus/pci/drivers_probe'), 'utf8')).toBe('0000:01:00.0');
  });
});

describe('findPciFunction', () => {
  it('returns the first function, in address order, whose attributes match; null for none; a VfioError for no /sys', () => {
    const root = tree('0000:01:00.0', 'vfio-pci', ['vfio-pci']);
    mkdirSync(join(root, 'sys/bus/pci/devices/0000:00:03.0'));
    writeFileSync(join(root, 'sys/bus/pci/devices/0000:00:03.0/vendor'), '0x1b36\n');
    writeFileSync(join(root, 'sys/bus/pci/devices/0000:00:03.0/device'), '0x0001\n');
    const seen: string[] = [];
    expect(findPciFunction((a, attr) => (seen.push(a), attr('vendor') === '0x1b36'), root)).toBe('0000:00:03.0');
    expect(seen).toEqual(['0000:00:03.0']);
    expect(findPciFunction((_, attr) => attr('device') === '0x0010', root)).toBe('0000:01:00.0');
    expect(findPciFunction(() => false, root)).toBeNull();
    expect(() => findPciFunction(() => true, join(root, 'sys'), 'find x')).toThrow(expect.objectContaining({ code: 'ENOENT', operation: 'find x' }));
  });
});
