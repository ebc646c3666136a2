/**
 * PCI functions in sysfs: finding one by its attributes, and moving it
 * between drivers (vfio-pci and a kernel driver) through driver_override,
 * unbind and drivers_probe (root only).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { VfioError } from '../errors.js';
import { rootArg } from '../resource.js';
import { boundDriver } from '../vfio/quirks.js';
import { normalizePciAddress } from './address.js';

const { errno: E } = constants;

/**
 * The first PCI function, in address order, for which `match` holds; null
 * when none does. `attr(name)` reads one of its sysfs attributes, trimmed
 * ('vendor' → '0x1b36', 'class' → '0x010802').
 *
 * @param root - the filesystem root that holds /sys; default '/'
 * @throws {@link VfioError} when /sys/bus/pci/devices cannot be read
 */
export function findPciFunction(match: (address: string, attr: (name: string) => string) => boolean, root = '/', operation = 'find pci'): string | null {
  const pci = join(rootArg(root, operation), 'sys/bus/pci/devices');
  try {
    for (const a of readdirSync(pci).sort()) {
      if (match(a, (name) => readFileSync(join(pci, a, name), 'utf8').trim())) return a;
    }
  } catch (e) {
    throw VfioError.from(e, { operation, path: pci });
  }
  return null;
}

/** Options of {@link bindPciDriver}. */
export interface BindOptions {
  /** The filesystem root that holds /sys. Default '/'. */
  root?: string;
  /** Load the driver's module first (`modprobe <driver>`) when it is not loaded. Default true. */
  modprobe?: boolean;
}

/**
 * Binds the PCI function `address` to `driver` (e.g. 'vfio-pci', 'nvme'):
 * sets driver_override so no other driver takes it, unbinds the current driver,
 * and asks the PCI core to probe it. Returns the driver it was bound to before
 * (null for none). A no-op when it is bound to `driver` already.
 *
 * The unbinding waits for the current driver to let go: for vfio-pci, until
 * every process that holds the device open closes it (close it first).
 *
 * @throws {@link VfioError} ENOENT for no such device; ENODEV when `driver` is
 *   not loaded (and could not be) or did not take the device; EACCES when not root
 */
export function bindPciDriver(address: string, driver: string, options: BindOptions = {}): string | null {
  const operation = 'pci bind';
  const root = options.root ?? '/';
  const a = normalizePciAddress(address);
  if (a === null) {
    throw new VfioError({ errno: E.EINVAL, operation, message: `EINVAL: malformed PCI address ${JSON.stringify(address)}: expected dddd:bb:dd.f or bb:dd.f, e.g. 0000:01:00.0` });
  }
  if (typeof driver !== 'string' || !/^[A-Za-z0-9_.-]+$/.test(driver)) throw new TypeError(`driver must be a driver's name, got ${JSON.stringify(driver)}`);
  const dev = join(root, 'sys/bus/pci/devices', a);
  if (!existsSync(dev)) throw new VfioError({ errno: E.ENOENT, operation, path: dev, message: `ENOENT: no PCI device ${a}` });
  const before = boundDriver(a, root);
  if (before === driver) return before;
  const drivers = join(root, 'sys/bus/pci/drivers', driver);
  if (!existsSync(drivers) && options.modprobe !== false) spawnSync('modprobe', [driver], { stdio: 'ignore' });
  if (!existsSync(drivers)) {
    throw new VfioError({ errno: E.ENODEV, operation, path: drivers, message: `ENODEV: no PCI driver ${driver} is loaded`, hint: `modprobe ${driver}, or build it into the kernel` });
  }
  const write = (file: string, value: string): void => {
    try {
      writeFileSync(file, value);
    } catch (e) {
      throw VfioError.from(e, { operation, path: file });
    }
  };
  write(join(dev, 'driver_override'), driver);
  if (before !== null) write(join(dev, 'driver', 'unbind'), a);
  // drivers_probe fails (ENODEV etc.) when no driver takes it; the check below names it.
  try {
    writeFileSync(join(root, 'sys/bus/pci/drivers_probe'), a);
  } catch {
    /* checked below */
  }
  const now = boundDriver(a, root);
  if (now !== driver) {
    throw new VfioError({
      errno: E.ENODEV,
      operation,
      path: dev,
      message: `ENODEV: ${a} did not bind to ${driver} (bound to ${now ?? 'no driver'}; vendor:device ${readId(dev)})`,
      hint: `see dmesg for ${driver}'s probe error`,
    });
  }
  return before;
}

function readId(dev: string): string {
  try {
    const v = readFileSync(join(dev, 'vendor'), 'utf8').trim().replace(/^0x/, '');
    const d = readFileSync(join(dev, 'device'), 'utf8').trim().replace(/^0x/, '');
    return `${v}:${d}`;
  } catch {
    return 'unknown';
  }
}
