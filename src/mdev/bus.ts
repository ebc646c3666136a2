/**
 * Mediated devices (mdev) through sysfs: list parents and types, create an
 * mdev and wait for its VFIO nodes, look one up by UUID, and remove it without
 * ever blocking the caller; and persistent definitions in mdevctl's format
 * (definitions.ts): define, modify, start, stop, autostart.
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
import { SysRoot, describeDevice, isPlainName, processesHolding, vfioNodes, type VfioNodes } from './sysfs.js';
import { sysfsWriter } from './writer.js';
import {
  DEFAULT_CONFIG_ROOT,
  MdevDefinitionStore,
  normalizeAttributes,
  type MdevAttribute,
  type MdevAttributeInput,
  type MdevDefinition,
  type StartMode,
} from './definitions.js';

// The sysfs layer is part of this module's public API: `new MdevBus({ root: new SysRoot(dir) })`,
// and `iommuGroups()` is what `vfio ls` prints.
export { SysRoot, iommuGroups, processesHolding, type GroupDevice, type Holder, type IommuGroup, type VfioNodes } from './sysfs.js';
export {
  DEFAULT_CONFIG_ROOT,
  MdevDefinitionStore,
  isAttributeName,
  isParentName,
  mdevctlJson,
  normalizeAttributes,
  parseDefinition,
  serializeDefinition,
  type DefinitionContents,
  type DefinitionFileError,
  type DefinitionFilter,
  type DefinitionScan,
  type MdevctlDefinitionJson,
  type MdevAttribute,
  type MdevAttributeInput,
  type MdevDefinition,
  type StartMode,
} from './definitions.js';

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
  /**
   * The directory of the persistent definitions (mdevctl's configuration
   * root), on disk. Default: `/etc/mdevctl.d` under `root`.
   */
  configRoot?: string;
}

/**
 * A definition to store ({@link MdevBus.define}) or a device to start without
 * storing it ({@link MdevBus.start}).
 */
export interface MdevDefinitionSpec {
  /**
   * The parent device, as named under /sys/class/mdev_bus. It need not be
   * present to define (mdevctl 1.2 does not require it either). May be
   * omitted when `uuid` names an active mdev: its parent is taken.
   */
  parent?: string;
  /**
   * The mdev type. It need not be offered now to define. May be omitted when
   * `uuid` names an active mdev on `parent`: its type is taken.
   */
  type?: string;
  /** The UUID (any case; stored in lower case). Default: a fresh v4 UUID. */
  uuid?: string;
  /** When it starts: `auto` when its parent appears, or `manual` (the default, as for `mdevctl define`). */
  start?: StartMode;
  /** Attributes written, in order, to the device's sysfs directory when it starts. Default none. */
  attrs?: readonly MdevAttributeInput[];
}

/**
 * Changes to a stored definition ({@link MdevBus.modify}). Applied in this
 * order: `type`, `start`, `attrs`, `delAttr`, `addAttr`.
 */
export interface MdevDefinitionChanges {
  /** A new mdev type (mdevctl modify --type). */
  type?: string;
  /** A new start mode (mdevctl modify --auto / --manual). */
  start?: StartMode;
  /** A new attribute list, replacing the old one. */
  attrs?: readonly MdevAttributeInput[];
  /** Deletes the attribute at `index`, or the last one without an index (mdevctl modify --delattr [--index]). */
  delAttr?: AttributeDeletion;
  /** Inserts an attribute at `index` (0 … length), or appends it without one (mdevctl modify --addattr --value [--index]). */
  addAttr?: AttributeInsertion;
}

/** {@link MdevDefinitionChanges.delAttr}. */
export interface AttributeDeletion {
  /** The index of the attribute to delete, from 0; default the last. */
  index?: number;
}

/** {@link MdevDefinitionChanges.addAttr}. */
export interface AttributeInsertion extends MdevAttribute {
  /** Where to insert it, 0 … the number of attributes; default at the end. */
  index?: number;
}

/** Options of {@link MdevBus.undefine} and {@link MdevBus.modify}. */
export interface DefinitionOptions {
  /** The parent, when the UUID is defined on several parents. */
  parent?: string;
}

/** Options of {@link MdevBus.start}. */
export interface StartOptions {
  /** The parent, when the UUID is defined on several parents. */
  parent?: string;
  /** How long to wait for the device's nodes, as for {@link MdevBus.create}. */
  timeoutMs?: number;
}

/** Options of {@link MdevBus.list} with an argument: which devices to list. */
export interface MdevListOptions {
  /** The devices that have a stored definition, active or not. */
  defined?: boolean;
  /** The devices that exist now, defined or not. When neither is true, both. */
  active?: boolean;
}

/** One device of {@link MdevBus.list}`({ defined, active })`: a definition, an active mdev, or both (same UUID and parent). */
export interface MdevRecord {
  /** The UUID, lower case. */
  uuid: string;
  /** The parent. */
  parent: string;
  /** The definition's type, else the active device's (null while its `mdev_type` link is gone). */
  type: string | null;
  /** The definition's start mode; `manual` for a device without a definition (as mdevctl lists it). */
  start: StartMode;
  /** The definition's attributes; empty without a definition. */
  attrs: MdevAttribute[];
  /** Whether a definition is stored. */
  defined: boolean;
  /** Whether the device exists now. */
  active: boolean;
  /** The definition, or null. */
  definition: MdevDefinition | null;
  /** The active device, or null. */
  device: Mdev | null;
}

/** What {@link MdevBus.autostart} did with one definition. */
export interface AutostartResult {
  /** The definition's UUID. */
  uuid: string;
  /** Its parent. */
  parent: string;
  /** Its type; null for a file that could not be read. */
  type: string | null;
  /** True when the device runs now (started, or already active). */
  ok: boolean;
  /** `started`; `active`: it was running already, nothing was done; `failed`. */
  status: 'started' | 'active' | 'failed';
  /** The device, unless it failed. */
  device: Mdev | null;
  /** Why it failed (a malformed file included), else null. */
  error: VfioError | null;
}


function checkStart(start: unknown, operation: string): StartMode {
  if (start !== 'auto' && start !== 'manual') {
    throw new VfioError({
      errno: E.EINVAL,
      operation,
      message: `EINVAL: the start mode must be "auto" or "manual", got ${JSON.stringify(start)}`,
      hint: 'auto: started when its parent appears (`vfio mdev autostart`, or mdevctl\'s udev rule); manual: only on request',
    });
  }
  return start;
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
  /** The persistent definitions (mdevctl's configuration root). */
  readonly definitions: MdevDefinitionStore;

  /**
   * Nothing is read until a method is called.
   *
   * @param options - the root to find /sys, /dev and /proc under, default '/'; the definitions' directory, default `/etc/mdevctl.d` under it
   */
  constructor(options: MdevBusOptions = {}) {
    this.sys = options.root instanceof SysRoot ? options.root : new SysRoot(options.root);
    this.definitions = new MdevDefinitionStore(options.configRoot ?? this.sys.path(DEFAULT_CONFIG_ROOT));
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
  list(): Mdev[];
  /**
   * The defined devices, the active ones, or both (`{}`), merged: one record
   * per UUID and parent saying whether it is defined, active, or both, sorted
   * by parent then UUID (mdevctl's order). A definition whose UUID is active
   * on another parent is a record of its own, not active. VfioError EINVAL
   * naming the file and the field when a definition file is malformed.
   */
  list(options: MdevListOptions): MdevRecord[];
  list(options?: MdevListOptions): Mdev[] | MdevRecord[] {
    const active = this.sys.list(MDEV_DEVICES).map((uuid) => this.#describe(uuid));
    if (options === undefined) return active;
    const both = !options.defined && !options.active;
    const withDefined = options.defined || both;
    const withActive = options.active || both;
    const records = new Map<string, MdevRecord>();
    const key = (parent: string, uuid: string): string => `${parent}\0${uuid}`;
    // Listing the active devices only, a malformed definition elsewhere is no reason to fail.
    const defs = withDefined ? this.definitions.list() : this.definitions.scan().definitions;
    const byKey = new Map(defs.map((d) => [key(d.parent, d.uuid), d]));
    // Every definition, or only those of active devices.
    for (const d of withDefined ? defs : active.flatMap((a) => byKey.get(key(a.parent, a.uuid)) ?? [])) {
      records.set(key(d.parent, d.uuid), { uuid: d.uuid, parent: d.parent, type: d.type, start: d.start, attrs: d.attrs, defined: true, active: false, definition: d, device: null });
    }
    for (const dev of active) {
      const r = records.get(key(dev.parent, dev.uuid));
      if (r) Object.assign(r, { active: true, device: dev });
      else if (withActive) {
        records.set(key(dev.parent, dev.uuid), { uuid: dev.uuid, parent: dev.parent, type: dev.type, start: 'manual', attrs: [], defined: false, active: true, definition: null, device: dev });
      }
    }
    const order = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
    return [...records.values()].sort((a, b) => order(a.parent, b.parent) || order(a.uuid, b.uuid));
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
    return this.#remove(uuid, options, 'mdev remove');
  }

  /**
   * Stops the mdev `uuid`: removes the device and leaves its definition, as
   * `mdevctl stop`. The same as {@link remove}, refusals and hints included
   * (EBUSY while this process holds it open), with the operation 'mdev stop'.
   */
  async stop(uuid: string, options: RemoveOptions = {}): Promise<void> {
    return this.#remove(uuid, options, 'mdev stop');
  }

  /**
   * Stores a definition (mdevctl's `define`): the file
   * `<configRoot>/<parent>/<uuid>`, created exclusively. Nothing is started.
   *
   * As with mdevctl 1.2, neither the parent nor the type need be present: a
   * definition can wait for its parent (see {@link autostart}). The UUID may
   * be defined on another parent too (only one of them can run at a time).
   * VfioError EEXIST naming the file when the UUID is defined on this parent
   * already (including by another process racing this one: exactly one
   * wins), EINVAL for a malformed UUID, parent, type, start mode or
   * attribute, EACCES when the directory is not writable (root's).
   *
   * @returns the stored definition
   */
  define(spec: MdevDefinitionSpec): MdevDefinition {
    const operation = 'mdev define';
    const uuid = spec.uuid === undefined ? randomUUID() : parseUuid(spec.uuid, operation);
    let { parent, type } = spec;
    if (parent === undefined || type === undefined) {
      // mdevctl defines a running device from its UUID alone: its parent and type are taken.
      const running = spec.uuid === undefined ? null : this.find(uuid);
      if (running && parent === undefined && type === undefined) ({ parent, type } = { parent: running.parent, type: running.type ?? undefined });
      else if (running && parent === running.parent && type === undefined) type = running.type ?? undefined;
    }
    if (parent === undefined || type === undefined) {
      throw new VfioError({
        errno: E.EINVAL,
        operation,
        message: `EINVAL: a definition needs a parent and a type (${parent === undefined ? 'no parent' : 'no type'} given, and no active mdev ${uuid} to take ${parent === undefined ? 'them' : 'it'} from)`,
        hint: 'give the parent and the type (--parent, --type), or the UUID of a running mdev to define it as it is',
      });
    }
    this.#checkType(type, operation);
    const start = checkStart(spec.start ?? 'manual', operation);
    const attrs = normalizeAttributes(spec.attrs, operation);
    return this.definitions.create({ uuid, parent, type, start, attrs }, operation);
  }

  /**
   * Deletes the definition of `uuid` (mdevctl's `undefine`); a running device
   * is left running. Without `options.parent`, the definitions on every
   * parent are deleted, as mdevctl does. VfioError ENOENT when there is none.
   *
   * @returns the definitions deleted
   */
  undefine(uuid: string, options: DefinitionOptions = {}): MdevDefinition[] {
    const operation = 'mdev undefine';
    const id = parseUuid(uuid, operation);
    const defs = this.#definitionsOf(id, options.parent, operation);
    for (const d of defs) this.definitions.remove(d, operation);
    return defs;
  }

  /**
   * Changes a stored definition (mdevctl's `modify`, without `--live`): the
   * file is rewritten atomically, keeping the keys this package does not
   * know; a running device is not touched: the changes apply at its next
   * start. The parent cannot change (undefine and define again). VfioError
   * ENOENT when the UUID is not defined, EINVAL when it is defined on several
   * parents and `options.parent` is not given, or for an invalid change or
   * attribute index.
   *
   * @returns the new definition
   */
  modify(uuid: string, changes: MdevDefinitionChanges, options: DefinitionOptions = {}): MdevDefinition {
    const operation = 'mdev modify';
    const id = parseUuid(uuid, operation);
    const def = this.#definitionOf(id, options.parent, operation);
    const type = changes.type === undefined ? def.type : this.#checkType(changes.type, operation);
    const start = changes.start === undefined ? def.start : checkStart(changes.start, operation);
    const attrs = changes.attrs === undefined ? [...def.attrs] : normalizeAttributes(changes.attrs, operation);
    const badIndex = (index: unknown, max: number): VfioError =>
      new VfioError({
        errno: E.EINVAL,
        operation,
        path: def.path,
        message: `EINVAL: attribute index ${String(index)} is invalid for mdev ${id}: ${attrs.length ? `its attributes are ${attrs.map((a, i) => `${i}: ${a.name}=${JSON.stringify(a.value)}`).join(', ')}` : 'it has no attributes'} (valid: 0…${max})`,
        hint: 'attribute indexes count from 0; list them with `vfio mdev list --defined --json`',
      });
    const isIndex = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0;
    if (changes.delAttr !== undefined) {
      const { index } = changes.delAttr;
      if (index === undefined) attrs.pop();
      else if (!isIndex(index) || index >= attrs.length) throw badIndex(index, attrs.length - 1);
      else attrs.splice(index, 1);
    }
    if (changes.addAttr !== undefined) {
      const [added] = normalizeAttributes([{ name: changes.addAttr.name, value: changes.addAttr.value }], operation);
      const { index } = changes.addAttr;
      if (index === undefined) attrs.push(added!);
      else if (!isIndex(index) || index > attrs.length) throw badIndex(index, attrs.length);
      else attrs.splice(index, 0, added!);
    }
    return this.definitions.replace(def, { type, start, attrs }, operation);
  }

  /**
   * Starts a device (mdevctl's `start`): the stored definition of `target`
   * (a UUID; `options.parent` when it is defined on several parents), or a
   * definition given in full, which is not stored (a transient device).
   * Creates the mdev as {@link create} does, then writes each attribute, in
   * order, to `/sys/bus/mdev/devices/<uuid>/<name>`; if one is missing or its
   * write fails, removes the device again and throws the error naming the
   * attribute and its index.
   *
   * VfioError ENOENT when the UUID is not defined, or the definition's parent
   * or type is not present; EEXIST when the UUID is active already; EINVAL
   * for an ambiguous UUID; and {@link create}'s errors.
   *
   * @returns the running device
   */
  async start(target: string | MdevDefinitionSpec, options: StartOptions = {}): Promise<Mdev> {
    const operation = 'mdev start';
    let def: { uuid: string; parent: string; type: string; attrs: readonly MdevAttribute[]; path: string | null };
    if (typeof target === 'string') {
      def = this.#definitionOf(parseUuid(target, operation), options.parent, operation);
    } else {
      const uuid = target.uuid === undefined ? randomUUID() : parseUuid(target.uuid, operation);
      if (target.parent === undefined || target.type === undefined) {
        throw new VfioError({
          errno: E.EINVAL,
          operation,
          message: `EINVAL: a device to start needs a parent and a type (${target.parent === undefined ? 'no parent' : 'no type'} given)`,
          hint: 'give both, or start a stored definition by its UUID',
        });
      }
      this.#checkType(target.type, operation);
      def = { uuid, parent: target.parent, type: target.type, attrs: normalizeAttributes(target.attrs, operation), path: null };
    }
    const { uuid, parent, type } = def;
    const of = def.path === null ? '' : ` (${def.path})`;
    const entry = (i: number): string => `attrs[${i}]${def.path === null ? '' : ` of ${def.path}`}`;
    const running = this.find(uuid);
    if (running) {
      const how = running.parent !== parent ? ` on another parent ('${running.parent}')` : running.type !== type ? ` with another type ('${running.type}')` : '';
      throw new VfioError({
        errno: E.EEXIST,
        operation,
        path: running.path,
        message: `EEXIST: mdev ${uuid} is active already${how}`,
        hint: how ? 'only one device with a UUID can run at a time: stop it first (`vfio mdev stop`)' : 'it runs already; stop it first (`vfio mdev stop`) to start it again with its definition',
      });
    }
    if (!isPlainName(parent) || !this.sys.exists(`${MDEV_BUS}/${parent}`)) {
      throw new VfioError({
        errno: E.ENOENT,
        operation,
        path: `${MDEV_BUS}/${parent}`,
        message: `ENOENT: the parent '${parent}' of mdev ${uuid}${of} is not present (parents: ${this.parentNames().join(', ') || 'none'})`,
      });
    }
    if (!isPlainName(type) || !this.sys.exists(`${MDEV_BUS}/${parent}/mdev_supported_types/${type}`)) {
      throw new VfioError({
        errno: E.ENOENT,
        operation,
        path: `${MDEV_BUS}/${parent}/mdev_supported_types/${type}`,
        message: `ENOENT: the parent '${parent}' offers no mdev type '${type}' for mdev ${uuid}${of} (types: ${this.sys.list(`${MDEV_BUS}/${parent}/mdev_supported_types`).join(', ') || 'none'})`,
      });
    }
    const dev = await this.create(type, { uuid, parent, ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }) });
    for (const [i, a] of def.attrs.entries()) {
      const abs = `${MDEV_DEVICES}/${uuid}/${a.name}`;
      let failure: VfioError | null = null;
      if (!this.sys.exists(abs)) {
        failure = new VfioError({ errno: E.ENOENT, operation, path: abs, message: `ENOENT: mdev ${uuid} has no attribute '${a.name}' (${entry(i)})` });
      } else {
        try {
          this.sys.write(abs, a.value);
        } catch (err) {
          const e = VfioError.from(err, { operation, path: abs });
          failure = new VfioError({
            errno: -e.errno,
            code: e.code,
            ...(e.syscall ? { syscall: e.syscall } : {}),
            operation,
            path: abs,
            message: `${e.code}: writing ${JSON.stringify(a.value)} to attribute '${a.name}' (${entry(i)}) of mdev ${uuid} failed: ${e.message.replace(/^\S+: /, '')}`,
            cause: err,
          });
        }
      }
      if (failure) {
        // Roll back, as mdevctl does: the device does not stay half-configured.
        try {
          await this.#remove(uuid, {}, operation);
        } catch (err) {
          throw new VfioError({
            errno: -failure.errno,
            code: failure.code,
            operation,
            path: abs,
            message: `${failure.message}; removing the device again failed too: ${(err as Error).message}`,
            hint: `remove it with \`vfio mdev stop ${uuid}\``,
            cause: failure,
          });
        }
        throw new VfioError({
          errno: -failure.errno,
          code: failure.code,
          ...(failure.syscall ? { syscall: failure.syscall } : {}),
          operation,
          path: abs,
          message: `${failure.message}; the device was removed again`,
          ...(failure.hint ? { hint: failure.hint } : {}),
          cause: failure.cause ?? failure,
        });
      }
    }
    return dev;
  }

  /**
   * Starts every `auto` definition whose parent is present (mdevctl's
   * `start-parent-mdevs`, which its udev rule runs when a parent appears), or
   * only `parent`'s, one after the other. Never throws for one definition:
   * each result says whether it started, was running already, or failed and
   * why — a malformed definition file of a present parent included (its
   * start mode cannot be known). Definitions of absent parents are not tried.
   *
   * @param parent - only this parent's definitions
   * @param options - the timeout of each start
   */
  async autostart(parent?: string, options: { timeoutMs?: number } = {}): Promise<AutostartResult[]> {
    const operation = 'mdev autostart';
    const { definitions, errors } = this.definitions.scan(parent === undefined ? {} : { parent });
    const present = (p: string): boolean => isPlainName(p) && this.sys.exists(`${MDEV_BUS}/${p}`);
    const results: AutostartResult[] = errors
      .filter((e) => present(e.parent))
      .map((e) => ({ uuid: e.uuid, parent: e.parent, type: null, ok: false, status: 'failed', device: null, error: e.error }));
    for (const d of definitions.filter((d) => d.start === 'auto' && present(d.parent))) {
      const base = { uuid: d.uuid, parent: d.parent, type: d.type };
      const running = this.find(d.uuid);
      if (running && running.parent === d.parent) {
        results.push({ ...base, ok: true, status: 'active', device: running, error: null });
        continue;
      }
      try {
        const device = await this.start(d.uuid, { parent: d.parent, ...options });
        results.push({ ...base, ok: true, status: 'started', device, error: null });
      } catch (err) {
        results.push({ ...base, ok: false, status: 'failed', device: null, error: VfioError.from(err, { operation }) });
      }
    }
    const order = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
    return results.sort((a, b) => order(a.parent, b.parent) || order(a.uuid, b.uuid));
  }

  /** The definitions of `uuid` (on `parent` if given). VfioError ENOENT when there is none. */
  #definitionsOf(uuid: string, parent: string | undefined, operation: string): MdevDefinition[] {
    const defs = this.definitions.list(parent === undefined ? { uuid } : { uuid, parent });
    if (defs.length === 0) {
      throw new VfioError({
        errno: E.ENOENT,
        operation,
        path: parent === undefined ? this.definitions.dir : `${this.definitions.dir}/${parent}/${uuid}`,
        message: `ENOENT: mdev ${uuid} is not defined${parent === undefined ? '' : ` on parent '${parent}'`} (no file ${parent === undefined ? `${this.definitions.dir}/*/${uuid}` : `${this.definitions.dir}/${parent}/${uuid}`})`,
      });
    }
    return defs;
  }

  /** The one definition of `uuid`. ENOENT when there is none, EINVAL when there are several and no parent. */
  #definitionOf(uuid: string, parent: string | undefined, operation: string): MdevDefinition {
    const defs = this.#definitionsOf(uuid, parent, operation);
    if (defs.length > 1) {
      const parents = defs.map((d) => d.parent).join(', ');
      throw new VfioError({
        errno: E.EINVAL,
        operation,
        message: `EINVAL: mdev ${uuid} is defined on several parents (${parents}): ${defs.map((d) => d.path).join(', ')}`,
        hint: `name the parent: one of ${parents} (--parent in the CLI)`,
      });
    }
    return defs[0]!;
  }

  #checkType(type: unknown, operation: string): string {
    if (typeof type !== 'string' || !isPlainName(type)) {
      throw new VfioError({
        errno: E.EINVAL,
        operation,
        message: `EINVAL: ${JSON.stringify(type)} cannot be an mdev type: a type is one directory name under <parent>/mdev_supported_types`,
        hint: 'list the types with `vfio mdev types`',
      });
    }
    return type;
  }

  async #remove(uuid: string, options: RemoveOptions, operation: string): Promise<void> {
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
    if (isPlainName(id) && (parent === undefined || isPlainName(parent))) {
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
