/**
 * Mediated devices (mdev) through sysfs: list parents and types, create an
 * mdev and wait for its VFIO nodes, look one up by UUID, and remove it without
 * ever blocking the caller.
 *
 * The kernel ABI (drivers/vfio/mdev/): parents are linked from
 * /sys/class/mdev_bus/<parent>, their types live in
 * <parent>/mdev_supported_types/<type>, writing a UUID to a type's `create`
 * makes /sys/bus/mdev/devices/<uuid>, and writing 1 to its `remove` deletes
 * it — a write the kernel blocks, uninterruptibly, for as long as any fd of
 * the device is open anywhere.
 */
import { constants } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomUUID } from 'node:crypto';
import { VfioError } from '../errors.js';
import { heldCount } from '../registry.js';
import { SysRoot, describeDevice, processesHolding, vfioNodes, type VfioNodes } from './sysfs.js';
import { sysfsWriter } from './writer.js';

// The sysfs layer is part of this module's public API: `new MdevBus({ root: new SysRoot(dir) })`,
// and `iommuGroups()` is what `vfio ls` prints.
export { SysRoot, iommuGroups, processesHolding, type GroupDevice, type Holder, type IommuGroup, type VfioNodes } from './sysfs.js';

const { errno: E } = constants;

/** How long {@link MdevBus.create} waits for the device's nodes by default. */
export const DEFAULT_CREATE_TIMEOUT_MS = 5_000;
/** How long {@link MdevBus.remove} waits for the kernel's `remove` write by default. */
export const DEFAULT_REMOVE_TIMEOUT_MS = 10_000;

const MDEV_BUS = '/sys/class/mdev_bus';
const MDEV_DEVICES = '/sys/bus/mdev/devices';
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const POLL_MS = 10;

/** VfioError.from with the operation and path (errors.ts names the errnos Node does not, such as mdpy's EUSERS). */
function wrapFsError(err: unknown, operation: string, path: string): VfioError {
  return VfioError.from(err, { operation, path });
}

/** An mdev type of one parent, from <parent>/mdev_supported_types/<id>. */
export interface MdevType {
  /** The type directory name, `<driver>-<type>` ('mtty-2'). Unique per parent, not across parents. */
  id: string;
  /** The parent device's name ('mtty'), as linked from /sys/class/mdev_bus. */
  parent: string;
  /** The `name` attribute ('Dual port serial'). */
  name: string;
  /** The `description` attribute, or null when the driver provides none (mtty). */
  description: string | null;
  /** The `device_api` attribute ('vfio-pci'). */
  deviceApi: string;
  /** The `available_instances` attribute: how many more mdevs of this type can be created now. */
  availableInstances: number;
  /** UUIDs of the mdevs of this type that exist, sorted. */
  devices: string[];
  /** The type's sysfs directory, via the class link (/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-2). */
  path: string;
}

/** A parent device that supports mdevs. */
export interface MdevParent {
  /** Its name under /sys/class/mdev_bus ('mtty', or a PCI address for real hardware). */
  name: string;
  /** Its canonical sysfs directory (/sys/devices/virtual/mtty/mtty). */
  path: string;
  /** Its types, by id. */
  types: MdevType[];
}

/** An existing mdev. */
export interface Mdev extends VfioNodes {
  /** Its UUID, lower case (the kernel names the device with `%pUl`). */
  uuid: string;
  /** The parent device's name ('mtty'). */
  parent: string;
  /** The type id ('mtty-2'), or null when the `mdev_type` link is gone (removal in progress). */
  type: string | null;
  /** The bound mdev driver ('mtty'), or null. */
  driver: string | null;
  /** /sys/bus/mdev/devices/<uuid>. */
  path: string;
}

/** Options of {@link MdevBus.create}. */
export interface CreateOptions {
  /** The parent, needed when several parents offer a type with the same id. */
  parent?: string;
  /** The UUID to use (any case; reported in lower case). Default: a fresh v4 UUID. */
  uuid?: string;
  /** How long to wait for /sys/bus/mdev/devices/<uuid> and /dev/vfio/<group>. Default {@link DEFAULT_CREATE_TIMEOUT_MS}. */
  timeoutMs?: number;
}

/** Options of {@link MdevBus.remove}. */
export interface RemoveOptions {
  /** How long to wait for the kernel to finish the removal. Default {@link DEFAULT_REMOVE_TIMEOUT_MS}. */
  timeoutMs?: number;
}

/** Options of the {@link MdevBus} constructor. */
export interface MdevBusOptions {
  /** The filesystem root to find /sys, /dev and /proc under (a directory or a {@link SysRoot}). Default '/'. */
  root?: string | SysRoot;
}

/**
 * Validates an mdev UUID (8-4-4-4-12 hex digits, any case) and returns it in
 * lower case. Throws a VfioError EINVAL for anything else, including ''.
 *
 * @param operation - the operation named in the error; default 'mdev'
 */
export function parseUuid(uuid: string, operation = 'mdev'): string {
  if (typeof uuid !== 'string' || !UUID_RE.test(uuid)) {
    throw new VfioError({
      errno: E.EINVAL,
      operation,
      message: `EINVAL: malformed UUID ${JSON.stringify(uuid)}: expected 8-4-4-4-12 hexadecimal digits, e.g. 83b8f4f2-509f-482f-bc1e-e6bfe0fa1001`,
    });
  }
  return uuid.toLowerCase();
}

/**
 * The mdevs, parents and types under one sysfs root: list parents and types,
 * create an mdev and wait for its VFIO nodes, look one up, remove it. Creating
 * and removing need root (writing sysfs); listing does not.
 *
 * @example
 * ```ts
 * const bus = new MdevBus();
 * const mdev = await bus.create('mtty-2'); // resolves once /dev/vfio/<group> exists
 * const dev = openDevice(mdev.uuid);
 * // …
 * dev.close(); // remove() refuses (EBUSY) while this process holds it open
 * await bus.remove(mdev.uuid);
 * ```
 */
export class MdevBus {
  /** The root everything is looked up under. */
  readonly sys: SysRoot;

  /**
   * Nothing is read until a method is called.
   *
   * @param options - the root to find /sys, /dev and /proc under; default '/'
   */
  constructor(options: MdevBusOptions = {}) {
    this.sys = options.root instanceof SysRoot ? options.root : new SysRoot(options.root);
  }

  /** Names of the parents (/sys/class/mdev_bus/*), sorted. */
  parentNames(): string[] {
    return this.sys.list(MDEV_BUS);
  }

  /** Every parent with its types. */
  parents(): MdevParent[] {
    return this.parentNames().map((name) => ({
      name,
      path: this.sys.real(`${MDEV_BUS}/${name}`) ?? `${MDEV_BUS}/${name}`,
      types: this.#typesOf(name),
    }));
  }

  /**
   * The types of every parent, or of `options.parent` only (VfioError ENOENT
   * when there is no such parent), sorted by parent then id.
   */
  types(options: { parent?: string } = {}): MdevType[] {
    if (options.parent !== undefined) {
      this.#assertParent(options.parent, 'mdev types');
      return this.#typesOf(options.parent);
    }
    return this.parentNames().flatMap((p) => this.#typesOf(p));
  }

  /**
   * The type `id`, on `parent` if given. VfioError ENOENT for an unknown
   * parent or type, EINVAL when several parents have the type and no parent
   * was given.
   *
   * @param operation - the operation named in errors; default 'mdev type'
   */
  type(id: string, parent?: string, operation = 'mdev type'): MdevType {
    if (parent !== undefined) this.#assertParent(parent, operation);
    const all = parent === undefined ? this.types() : this.#typesOf(parent);
    const matches = all.filter((t) => t.id === id);
    if (matches.length === 1) return matches[0]!;
    if (matches.length === 0) {
      const known = [...new Set(all.map((t) => t.id))].join(', ') || 'none';
      throw new VfioError({
        errno: E.ENOENT,
        operation,
        ...(parent === undefined ? {} : { path: `${MDEV_BUS}/${parent}/mdev_supported_types/${id}` }),
        message: `ENOENT: no mdev type ${JSON.stringify(id)}${parent === undefined ? '' : ` on parent '${parent}'`} (types: ${known})`,
      });
    }
    const parents = matches.map((t) => t.parent).join(', ');
    throw new VfioError({
      errno: E.EINVAL,
      operation,
      message: `EINVAL: mdev type '${id}' is offered by several parents (${parents})`,
      hint: `name the parent: one of ${parents} (--parent in the CLI)`,
    });
  }

  /** Every existing mdev, by UUID. */
  list(): Mdev[] {
    return this.sys.list(MDEV_DEVICES).map((uuid) => this.#describe(uuid));
  }

  /** The mdev `uuid` (any case), or null when it does not exist. VfioError EINVAL for a malformed UUID. */
  find(uuid: string): Mdev | null {
    const id = parseUuid(uuid, 'mdev lookup');
    return this.sys.exists(`${MDEV_DEVICES}/${id}`) ? this.#describe(id) : null;
  }

  /** The mdev `uuid` (any case). VfioError EINVAL for a malformed UUID, ENOENT when there is no such mdev. */
  get(uuid: string, operation = 'mdev lookup'): Mdev {
    const id = parseUuid(uuid, operation);
    if (!this.sys.exists(`${MDEV_DEVICES}/${id}`)) {
      throw new VfioError({
        errno: E.ENOENT,
        operation,
        path: `${MDEV_DEVICES}/${id}`,
        message: `ENOENT: no mdev ${id}`,
      });
    }
    return this.#describe(id);
  }

  /**
   * Creates an mdev of type `type` and resolves once /sys/bus/mdev/devices/<uuid>
   * and its /dev/vfio/<group> node exist.
   *
   * The UUID (given or generated) and the type are checked before anything is
   * written. Kernel refusals become VfioErrors: ENOSPC (mtty ports, mbochs
   * memory exhausted), EUSERS (mdpy instances exhausted), EEXIST (UUID in use
   * on any parent), EACCES (not root). If the kernel accepted the UUID but the
   * nodes do not appear within `timeoutMs`, rejects with ETIMEDOUT and leaves
   * the device in place, listed, for the caller to inspect or remove.
   */
  async create(type: string, options: CreateOptions = {}): Promise<Mdev> {
    const operation = 'mdev create';
    const uuid = options.uuid === undefined ? randomUUID() : parseUuid(options.uuid, operation);
    const t = this.#findType(type, options.parent, operation);
    const create = `${t.path}/create`;
    try {
      this.sys.write(create, uuid);
    } catch (err) {
      throw wrapFsError(err, operation, create);
    }

    // The kernel makes the device and its group node before the write returns
    // (mdev_device_create → probe → vfio_register_group_dev): look at once, and
    // poll only as a fallback for a driver that binds asynchronously.
    const timeoutMs = options.timeoutMs ?? DEFAULT_CREATE_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    const path = `${MDEV_DEVICES}/${uuid}`;
    for (;;) {
      // Parent and type are known: only the nodes (and the driver) are read.
      const nodes = vfioNodes(this.sys, path);
      if (nodes.groupPath) return { uuid, parent: t.parent, type: t.id, driver: this.sys.linkName(`${path}/driver`), path, ...nodes };
      if (Date.now() >= deadline) {
        const missing = !this.sys.exists(path) ? path : nodes.iommuGroup === null ? `${path}/iommu_group` : `/dev/vfio/${nodes.iommuGroup}`;
        throw new VfioError({
          errno: E.ETIMEDOUT,
          operation,
          path: missing,
          message: `ETIMEDOUT: mdev ${uuid} was created (${type}) but ${missing} did not appear within ${timeoutMs} ms; the device is left in place`,
        });
      }
      await sleep(POLL_MS);
    }
  }

  /**
   * Removes the mdev `uuid` (any case).
   *
   * Refuses with EBUSY while this process holds the device open through the
   * library (the kernel would wait for those very fds). Otherwise writes
   * `remove` from a long-lived child process (one per process, shared), so a
   * device held open elsewhere can never block this process, nor the removal
   * of another device; if the kernel has not finished within `timeoutMs`, rejects
   * with ETIMEDOUT naming the processes that hold it open, and the removal
   * completes in the background once they close it. EINVAL for a malformed
   * UUID, ENOENT when there is no such mdev (or it was removed already).
   */
  async remove(uuid: string, options: RemoveOptions = {}): Promise<void> {
    const operation = 'mdev remove';
    const id = parseUuid(uuid, operation);
    const path = `${MDEV_DEVICES}/${id}`;
    if (!this.sys.exists(path)) this.get(id, operation); // throws ENOENT
    const held = heldCount(id);
    if (held > 0) {
      throw new VfioError({
        errno: E.EBUSY,
        operation,
        path,
        message: `EBUSY: mdev ${id} is open in this process through the library (${held} handle${held === 1 ? '' : 's'})`,
      });
    }
    // The nodes vanish from sysfs as soon as the removal starts: note them now,
    // for the timeout's hint. Only their names: the two reads this takes.
    const group = this.sys.linkName(`${path}/iommu_group`);
    const vfioDev = this.sys.list(`${path}/vfio-dev`).find((n) => /^vfio\d+$/.test(n));
    const nodes = [group !== null && /^\d+$/.test(group) ? `/dev/vfio/${group}` : null, vfioDev && `/dev/vfio/devices/${vfioDev}`].filter(
      (n): n is string => typeof n === 'string',
    );
    const timeoutMs = options.timeoutMs ?? DEFAULT_REMOVE_TIMEOUT_MS;
    const remove = `${path}/remove`;
    await sysfsWriter.write(this.sys.path(remove), '1', {
      timeoutMs,
      operation,
      path: remove,
      onTimeout: () => {
        const holders = processesHolding(this.sys, nodes);
        const who = holders.map((h) => `pid ${h.pid}${h.command ? ` (${h.command})` : ''}`).join(', ');
        return {
          message: `ETIMEDOUT: removing mdev ${id} did not finish within ${timeoutMs} ms: the device is still open`,
          hint: holders.length
            ? `${who} ${holders.length === 1 ? 'holds' : 'hold'} ${nodes.join(' or ')} open; the kernel finishes the removal in the background once ${holders.length === 1 ? 'it closes' : 'they close'} it`
            : `some process holds ${nodes.join(' or ') || 'the device'} open (none found in /proc that this user may inspect); the kernel finishes the removal in the background once it is closed`,
        };
      },
    });
  }

  /**
   * The type `id` as create() needs it: its parent and its sysfs directory
   * (via the class link), found with one stat per parent instead of reading
   * every type's attributes. Anything but exactly one match goes through
   * {@link type}, for its error.
   */
  #findType(id: string, parent: string | undefined, operation: string): Pick<MdevType, 'id' | 'parent' | 'path'> {
    const plain = (n: string): boolean => n !== '' && n !== '.' && n !== '..' && !n.includes('/');
    if (plain(id) && (parent === undefined || plain(parent))) {
      const parents = parent === undefined ? this.parentNames() : [parent];
      const found = parents.filter((p) => this.sys.exists(`${MDEV_BUS}/${p}/mdev_supported_types/${id}/create`));
      if (found.length === 1) return { id, parent: found[0]!, path: `${MDEV_BUS}/${found[0]}/mdev_supported_types/${id}` };
    }
    return this.type(id, parent, operation);
  }

  #assertParent(parent: string, operation: string): void {
    if (parent === '' || parent === '.' || parent === '..' || parent.includes('/') || !this.sys.exists(`${MDEV_BUS}/${parent}`)) {
      throw new VfioError({
        errno: E.ENOENT,
        operation,
        path: `${MDEV_BUS}/${parent}`,
        message: `ENOENT: no mdev parent ${JSON.stringify(parent)} (parents: ${this.parentNames().join(', ') || 'none'})`,
      });
    }
  }

  #typesOf(parent: string): MdevType[] {
    const base = `${MDEV_BUS}/${parent}/mdev_supported_types`;
    return this.sys.list(base).map((id) => {
      const path = `${base}/${id}`;
      return {
        id,
        parent,
        name: this.sys.readOptional(`${path}/name`) ?? id,
        description: this.sys.readOptional(`${path}/description`),
        deviceApi: this.sys.read(`${path}/device_api`),
        availableInstances: Number(this.sys.read(`${path}/available_instances`)),
        devices: this.sys.list(`${path}/devices`),
        path,
      };
    });
  }

  #describe(uuid: string): Mdev {
    const path = `${MDEV_DEVICES}/${uuid}`;
    const d = describeDevice(this.sys, path);
    return {
      uuid,
      parent: d.parent ?? d.path.split('/').at(-2) ?? '',
      type: d.mdevType,
      driver: d.driver,
      path,
      iommuGroup: d.iommuGroup,
      groupPath: d.groupPath,
      vfioDev: d.vfioDev,
      cdevPath: d.cdevPath,
    };
  }
}
