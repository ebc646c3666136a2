/**
 * Opens a device by mdev UUID, PCI address or cdev path on the backend asked
 * for — the legacy group/container path or the cdev + iommufd path — or on the
 * best one available, and hands back one DmaSpace either way.
 */
import { existsSync, readdirSync, readlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Container } from './container.js';
import { Device } from './device.js';
import type { DmaSpace } from '../dma/buffer.js';
import { VfioError } from '../errors.js';
import { normalizePciAddress } from '../pci/address.js';
import { rootArg } from '../resource.js';
import { Group } from './group.js';
import { IOMMUFD_PATH, IommuFd, type Ioas } from '../iommufd/iommufd.js';

/**
 * Which path {@link openDevice} takes: `'group'` (the legacy group and type1
 * container), `'cdev'` (the device cdev bound to an iommufd), or `'auto'`
 * (cdev + iommufd when the device has a cdev and `/dev/iommu` exists, else group).
 */
export type BackendChoice = 'group' | 'cdev' | 'auto';

/** Options of {@link openDevice}. */
export interface OpenDeviceOptions {
  /** 'group' (type1 container), 'cdev' (iommufd) or 'auto' (cdev + iommufd when the kernel has them). */
  backend?: BackendChoice;
  /** Root of /sys and /dev, for tests. */
  root?: string;
  /**
   * 'close': close everything this opened when the kernel asks for the device
   * back (the REQ IRQ: an unbind or hot-unplug), so that the unbinding process
   * does not wait on this one. Only vfio-pci devices offer the request; on
   * others openDevice throws ERR_VFIO_IRQ_NOT_OFFERED (and closes what it opened).
   */
  onRequest?: 'close';
}

/** A device with its DMA space, from {@link openDevice}; close() closes everything in order. */
export interface OpenedDevice {
  /** The opened device: its IOMMU is set (group path) or it is bound and attached (cdev path). */
  device: Device;
  /** Where to map its DMA: the {@link Container} on the group path, the {@link Ioas} on the cdev path. */
  dma: DmaSpace;
  /** The path that was taken ('auto' resolved). */
  backend: 'group' | 'cdev';
  /** The group path's pieces, or the cdev path's, for those who need them. */
  container?: Container;
  /** The device's group (group path only). */
  group?: Group;
  /** The iommufd the device is bound to (cdev path only). */
  iommufd?: IommuFd;
  /** The IOAS the device is attached to (cdev path only); the same object as `dma`. */
  ioas?: Ioas;
  /** Closes the device, then its group and container, or its IOAS and iommufd. Idempotent. */
  close(): void;
  /** Same as `close()`, for `using`. */
  [Symbol.dispose](): void;
}

/** Where a device is, from {@link resolveDevice}. Paths are system paths (not under a test root). */
export interface ResolvedDevice {
  /** The sysfs name: an mdev UUID (lower case) or a PCI address. */
  name: string;
  /** The bus the device is on. */
  bus: 'mdev' | 'pci';
  /** The IOMMU group number. */
  iommuGroup: number;
  /** /dev/vfio/N (or noiommu-N). */
  groupPath: string;
  /** The cdev node name ('vfio0') or null. */
  cdev: string | null;
  /** `/dev/vfio/devices/vfioN`, or null when the device has no cdev (not bound to a VFIO driver, or no CONFIG_VFIO_DEVICE_CDEV). */
  cdevPath: string | null;
}

/**
 * Finds a device's group and cdev in sysfs.
 *
 * @param spec - an mdev UUID (any case), a PCI address ('0000:00:03.0', or the
 *   short form '00:03.0'), or a device cdev path ('/dev/vfio/devices/vfio0')
 * @param root - where `/sys` and `/dev` are found; default `/`
 * @throws {@link VfioError} ENOENT when there is no such device, or it has no
 *   IOMMU group (not bound to a VFIO driver); the hint says what to do
 */
export function resolveDevice(spec: string, root = '/'): ResolvedDevice {
  if (typeof spec !== 'string' || spec === '') throw new TypeError(`the device must be an mdev UUID, a PCI address or a cdev path, got ${typeof spec === 'string' ? "''" : typeof spec}`);
  rootArg(root, 'resolve device');
  const sys = (...p: string[]): string => join(root, 'sys', ...p);
  let name = spec.trim().toLowerCase();
  const cdevMatch = /^\/dev\/vfio\/devices\/(vfio\d+)$/.exec(spec);
  if (cdevMatch) {
    try {
      name = basename(readlinkSync(sys('class/vfio-dev', cdevMatch[1]!, 'device')));
    } catch {
      throw new VfioError({ code: 'ENOENT', errno: 2, operation: 'resolve device', path: spec, message: `ENOENT: ${spec} is not a VFIO device cdev` });
    }
  } else {
    name = normalizePciAddress(name) ?? name;
  }
  const bus = existsSync(sys('bus/mdev/devices', name)) ? 'mdev' : existsSync(sys('bus/pci/devices', name)) ? 'pci' : null;
  if (!bus) {
    const what = normalizePciAddress(name) !== null ? 'PCI device' : 'mdev';
    throw new VfioError({ code: 'ENOENT', errno: 2, operation: 'resolve device', path: spec, message: `ENOENT: no ${what} named ${spec}`, hint: 'list devices with `vfio ls`' });
  }
  const dev = sys('bus', bus, 'devices', name);
  let iommuGroup: number;
  try {
    iommuGroup = Number(basename(readlinkSync(join(dev, 'iommu_group'))));
  } catch {
    throw new VfioError({ code: 'ENOENT', errno: 2, operation: 'resolve device', path: dev, message: `ENOENT: ${name} has no IOMMU group`, hint: 'bind it to a VFIO driver (vfio-pci) first' });
  }
  const noiommu = existsSync(join(root, 'dev/vfio', `noiommu-${iommuGroup}`));
  let cdev: string | null = null;
  try {
    cdev = readdirSync(join(dev, 'vfio-dev')).find((n) => /^vfio\d+$/.test(n)) ?? null;
  } catch {
    /* no vfio-dev: not bound to a VFIO driver, or no CONFIG_VFIO_DEVICE_CDEV */
  }
  return {
    name,
    bus,
    iommuGroup,
    groupPath: join('/dev/vfio', `${noiommu ? 'noiommu-' : ''}${iommuGroup}`),
    cdev,
    cdevPath: cdev ? join('/dev/vfio/devices', cdev) : null,
  };
}

function opened(o: Omit<OpenedDevice, 'close' | typeof Symbol.dispose>, close: () => void, options: OpenDeviceOptions): OpenedDevice {
  const result = { ...o, close, [Symbol.dispose]: close };
  if (options.onRequest === 'close') {
    // Not from inside the eventfd's own callback: on the next turn.
    o.device.on('request', () => setImmediate(close));
  }
  return result;
}

/**
 * Opens a device ready for use: on 'group', a type1v2 container with the
 * device's group in it; on 'cdev', the device cdev bound to a new iommufd and
 * attached to a fresh IOAS. 'auto' (the default) prefers cdev + iommufd.
 * Whatever was opened is closed again when a step fails.
 *
 * @param spec - an mdev UUID, a PCI address or a device cdev path, as {@link resolveDevice} takes
 * @example
 * ```ts
 * using dev = openDevice('0000:00:03.0');
 * const bar0 = dev.device.region(0);
 * ```
 * @throws TypeError for an unknown backend
 * @throws {@link VfioError} ENOENT when the device, its group or its cdev is
 *   missing; the errors of {@link Group.open}, {@link Container.setIommu},
 *   {@link Device.bind} and {@link Device.attach} (EBUSY, EPERM, EACCES, …)
 */
export function openDevice(spec: string, options: OpenDeviceOptions = {}): OpenedDevice {
  const root = options.root ?? '/';
  const r = resolveDevice(spec, root);
  let backend = options.backend ?? 'auto';
  if (backend !== 'group' && backend !== 'cdev' && backend !== 'auto') throw new TypeError(`backend must be 'group', 'cdev' or 'auto', got ${String(backend)}`);
  if (options.onRequest !== undefined && options.onRequest !== 'close') throw new TypeError(`onRequest must be 'close', got ${String(options.onRequest)}`);
  if (backend === 'auto') backend = r.cdevPath && existsSync(join(root, IOMMUFD_PATH)) ? 'cdev' : 'group';
  if (backend === 'cdev') {
    if (!r.cdevPath) {
      throw new VfioError({ code: 'ENOENT', errno: 2, operation: 'open device cdev', path: r.name, message: `ENOENT: ${r.name} has no VFIO device cdev`, hint: 'the kernel needs CONFIG_VFIO_DEVICE_CDEV; use the group backend' });
    }
    const iommufd = IommuFd.open(join(root, IOMMUFD_PATH));
    try {
      const ioas = iommufd.allocIoas();
      const device = Device.openCdev(join(root, r.cdevPath));
      iommufd.own(device);
      device.bind(iommufd);
      device.attach(ioas);
      return opened({ device, dma: ioas, backend, iommufd, ioas }, () => iommufd.close(), options);
    } catch (e) {
      iommufd.close();
      throw e;
    }
  }
  const container = Container.open(join(root, 'dev/vfio/vfio'));
  let group: Group | undefined;
  try {
    group = Group.open(r.iommuGroup, { devRoot: join(root, 'dev/vfio'), noiommu: r.groupPath.includes('noiommu-') });
    group.setContainer(container);
    container.setIommu();
    const device = group.openDevice(r.name);
    return opened({ device, dma: container, backend, container, group }, () => container.close(), options);
  } catch (e) {
    group?.close();
    container.close();
    throw e;
  }
}
