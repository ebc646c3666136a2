/**
 * A small sysfs/devfs/procfs reader under an injectable root, plus the IOMMU
 * group listing built on it. Every path the rest of the library passes in is
 * the absolute path on a real system ('/sys/bus/mdev/devices'); `SysRoot`
 * maps it under its root, so tests can point the library at a fake tree of
 * plain files and relative symlinks in a temporary directory.
 */
import { existsSync, readFileSync, readdirSync, readlinkSync, realpathSync, writeFileSync } from 'node:fs';
import { posix } from 'node:path';
import { rootArg } from '../resource.js';

const isMissing = (err: unknown): boolean => {
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
};

/** Calls `fn`, returning `fallback` when the file is missing (ENOENT/ENOTDIR); rethrows anything else. */
function orMissing<T, F>(fn: () => T, fallback: F): T | F {
  try {
    return fn();
  } catch (err) {
    if (isMissing(err)) return fallback;
    throw err;
  }
}

/**
 * Whether `name` is usable as one directory entry (a parent, a type, a UUID,
 * an attribute): not empty, '.', '..', and without '/' or NUL.
 *
 * @internal
 */
export function isPlainName(name: string): boolean {
  return typeof name === 'string' && name !== '' && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0');
}

/** A filesystem root under which `/sys`, `/dev` and `/proc` are looked up. */
export class SysRoot {
  /** The directory that stands for `/`. */
  readonly root: string;
  #realRoot: string | undefined;

  /**
   * Looks system paths up under `root`, e.g. a fake sysfs tree in tests.
   *
   * @param root - the directory that stands for `/` (default: the real root)
   */
  constructor(root = '/') {
    this.root = posix.resolve(rootArg(root, 'sysfs root'));
  }

  /** The on-disk path of the absolute system path `abs` (`join(root, abs)`). */
  path(abs: string): string {
    return posix.join(this.root, abs);
  }

  /** Whether `abs` exists (following symlinks). */
  exists(abs: string): boolean {
    return existsSync(this.path(abs));
  }

  /** The contents of `abs` without the trailing newline(s). Throws Node's error when unreadable. */
  read(abs: string): string {
    return readFileSync(this.path(abs), 'utf8').replace(/\n+$/, '');
  }

  /** Like {@link read}, but null when the file does not exist. */
  readOptional(abs: string): string | null {
    return orMissing(() => this.read(abs), null);
  }

  /** The sorted entries of the directory `abs`; empty when it does not exist. */
  list(abs: string): string[] {
    return orMissing(() => readdirSync(this.path(abs)), [] as string[]).sort();
  }

  /** The raw target of the symlink `abs`, or null when it does not exist. */
  readlink(abs: string): string | null {
    return orMissing(() => readlinkSync(this.path(abs)), null);
  }

  /**
   * The canonical absolute system path of `abs` with every symlink resolved
   * (inside the root), or null when it does not exist.
   */
  real(abs: string): string | null {
    const real = orMissing(() => realpathSync(this.path(abs)), null);
    if (real === null) return null;
    this.#realRoot ??= realpathSync(this.root);
    const rel = posix.relative(this.#realRoot, real);
    return rel.startsWith('..') ? real : `/${rel}`;
  }

  /** The last component of the resolved symlink `abs` ('vfio-pci' for a `driver` link), or null. */
  linkName(abs: string): string | null {
    const target = this.readlink(abs);
    return target === null ? null : posix.basename(target);
  }

  /** Writes `data` to `abs` synchronously. Only for writes that cannot block. */
  write(abs: string, data: string): void {
    writeFileSync(this.path(abs), data);
  }
}

/** How a device reaches VFIO: its IOMMU group, the group node and the device cdev. */
export interface VfioNodes {
  /** The IOMMU group number, or null when the device has none. */
  iommuGroup: number | null;
  /** `/dev/vfio/N` when that node exists, else null (no VFIO driver bound). */
  groupPath: string | null;
  /** The vfio device name ('vfio0') from `<device>/vfio-dev/`, or null. */
  vfioDev: string | null;
  /** `/dev/vfio/devices/vfioM` when that node exists, else null. */
  cdevPath: string | null;
}

/** The IOMMU group, group node and vfio cdev of the device whose sysfs directory is `dev`. @internal */
export function vfioNodes(sys: SysRoot, dev: string): VfioNodes {
  const group = sys.linkName(`${dev}/iommu_group`);
  const iommuGroup = group !== null && /^\d+$/.test(group) ? Number(group) : null;
  const groupPath = iommuGroup === null ? null : `/dev/vfio/${iommuGroup}`;
  const vfioDev = sys.list(`${dev}/vfio-dev`).find((n) => /^vfio\d+$/.test(n)) ?? null;
  const cdevPath = vfioDev === null ? null : `/dev/vfio/devices/${vfioDev}`;
  return {
    iommuGroup,
    groupPath: groupPath !== null && sys.exists(groupPath) ? groupPath : null,
    vfioDev,
    cdevPath: cdevPath !== null && sys.exists(cdevPath) ? cdevPath : null,
  };
}

/** One device in an IOMMU group. */
export interface GroupDevice extends VfioNodes {
  /** The device's sysfs name: a PCI address ('0000:00:03.0') or an mdev UUID. */
  name: string;
  /** Its bus ('pci', 'mdev', …), or null when unknown. */
  bus: string | null;
  /** The bound driver ('vfio-pci', 'mtty', …), or null when none is bound. */
  driver: string | null;
  /** For PCI devices, 'vendor:device' in hex without 0x ('1234:11e8'); else null. */
  pciId: string | null;
  /** For mdevs, the type id ('mtty-2'); else null. */
  mdevType: string | null;
  /** For mdevs, the parent device's name ('mtty'); else null. */
  parent: string | null;
  /** The canonical sysfs directory of the device. */
  path: string;
}

/** An IOMMU group from /sys/kernel/iommu_groups. */
export interface IommuGroup {
  /** The group number. */
  id: number;
  /** The group's `name` attribute ('vfio-noiommu' for mdev groups), or null when absent. */
  name: string | null;
  /** The group's `type` attribute ('DMA', 'identity', 'unknown', …), or null when absent. */
  type: string | null;
  /** `/dev/vfio/N` when that node exists, else null. */
  node: string | null;
  /** The group's devices, by name. */
  devices: GroupDevice[];
}

/** A process that has one of the given nodes open. */
export interface Holder {
  /** The process id. */
  pid: number;
  /** `/proc/<pid>/comm`, or null when unreadable. */
  command: string | null;
}

/**
 * The processes that hold any of `nodes` ('/dev/vfio/3', …) open, found by
 * scanning the `/proc/<pid>/fd` symlinks. Processes this one may not inspect
 * are skipped. A node deleted while open still matches (' (deleted)').
 *
 * @param sys - where `/proc` is found
 * @param nodes - system paths of device nodes
 * @returns the holders, by ascending pid
 */
export function processesHolding(sys: SysRoot, nodes: string[]): Holder[] {
  const wanted = new Set(nodes);
  const found: Holder[] = [];
  for (const pid of sys.list('/proc').filter((n) => /^\d+$/.test(n)).map(Number).sort((a, b) => a - b)) {
    let fds: string[];
    try {
      fds = sys.list(`/proc/${pid}/fd`);
    } catch {
      continue; // EACCES: not ours to look at
    }
    const holds = fds.some((fd) => {
      try {
        const target = sys.readlink(`/proc/${pid}/fd/${fd}`);
        return target !== null && wanted.has(target.replace(/ \(deleted\)$/, ''));
      } catch {
        return false;
      }
    });
    if (holds) {
      let command: string | null = null;
      try {
        command = sys.readOptional(`/proc/${pid}/comm`);
      } catch {
        /* unreadable */
      }
      found.push({ pid, command });
    }
  }
  return found;
}

const hex = (s: string | null): string | null => (s === null ? null : s.replace(/^0x/, ''));

/** Describes the device whose sysfs directory (canonical or a symlink to it) is `dev`. @internal */
export function describeDevice(sys: SysRoot, dev: string): GroupDevice {
  const path = sys.real(dev) ?? dev;
  const bus = sys.linkName(`${path}/subsystem`);
  const isPci = bus === 'pci';
  const type = sys.real(`${path}/mdev_type`);
  const vendor = isPci ? hex(sys.readOptional(`${path}/vendor`)) : null;
  const device = isPci ? hex(sys.readOptional(`${path}/device`)) : null;
  return {
    name: posix.basename(path),
    bus,
    driver: sys.linkName(`${path}/driver`),
    pciId: vendor !== null && device !== null ? `${vendor}:${device}` : null,
    mdevType: type === null ? null : posix.basename(type),
    parent: type === null ? null : posix.basename(posix.dirname(path)),
    path,
    ...vfioNodes(sys, path),
  };
}

/**
 * Every IOMMU group and its devices, by group number, from
 * `/sys/kernel/iommu_groups` (what `vfio ls` prints).
 *
 * @param sys - where `/sys` and `/dev` are found; default the real root
 */
export function iommuGroups(sys: SysRoot = new SysRoot()): IommuGroup[] {
  const base = '/sys/kernel/iommu_groups';
  return sys
    .list(base)
    .filter((n) => /^\d+$/.test(n))
    .map(Number)
    .sort((a, b) => a - b)
    .map((id) => {
      const dir = `${base}/${id}`;
      const node = `/dev/vfio/${id}`;
      return {
        id,
        name: sys.readOptional(`${dir}/name`),
        type: sys.readOptional(`${dir}/type`),
        node: sys.exists(node) ? node : null,
        devices: sys.list(`${dir}/devices`).map((d) => describeDevice(sys, `${dir}/devices/${d}`)),
      };
    });
}
