/**
 * Persistent mdev definitions in mdevctl's on-disk format, so that mdevctl
 * and this package see each other's devices.
 *
 * The format, as mdevctl 1.2 reads and writes it: one file per device,
 * `<config root>/<parent>/<uuid>` (default root `/etc/mdevctl.d`; the parent
 * is the directory's name, the UUID the file's), holding
 *
 * ```json
 * {
 *   "mdev_type": "mtty-2",
 *   "start": "auto",
 *   "attrs": [
 *     {
 *       "assign_adapter": "5"
 *     }
 *   ]
 * }
 * ```
 *
 * serialized as serde_json's `to_string_pretty` does: keys in that order,
 * two-space indentation, `": "`, no newline at the end — byte for byte what
 * `JSON.stringify(value, null, 2)` gives. `attrs` is ordered, and may repeat a
 * name: each `{ name: value }` is written to the device's sysfs attribute of
 * that name, in order, when it starts.
 *
 * mdevctl rewrites a file from its three fields; this store keeps any other
 * top-level key, and the file's key order, when it modifies one. It reads
 * strictly: a file mdevctl would half-accept (`"start": "sometimes"`, read by
 * mdevctl as manual) is an error naming the file and the field.
 *
 * Writes are atomic: the new contents go to a temporary file in the same
 * directory, are flushed, and then replace the definition with rename(2)
 * (modify) or appear under its name with link(2) (define), which fails with
 * EEXIST if the name exists: of two processes defining the same UUID on the
 * same parent, exactly one wins, and no reader ever sees a partial file.
 */
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  closeSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
  type Dirent,
} from 'node:fs';
import { constants } from 'node:os';
import { join, resolve } from 'node:path';
import { VfioError } from '../errors.js';
import { isPlainName } from './sysfs.js';

const { errno: E } = constants;

/** mdevctl's configuration root: one directory per parent, one file per device. */
export const DEFAULT_CONFIG_ROOT = '/etc/mdevctl.d';

/** mdevctl's own directory under the configuration root (callout and notifier scripts), never a parent. */
const SCRIPTS_DIR = 'scripts.d';
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** The operation named by errors about the contents of a definition file. */
const READ_OP = 'mdev definition';

/** When a defined device starts: `auto` when its parent appears (mdevctl's udev rule, or {@link MdevBus.autostart}), `manual` on request only. */
export type StartMode = 'auto' | 'manual';

/** One entry of a definition's ordered attribute list: written to `/sys/bus/mdev/devices/<uuid>/<name>` when the device starts. */
export interface MdevAttribute {
  /** The sysfs attribute's name, relative to the device's directory ('assign_adapter'). */
  name: string;
  /** The value written, as is (no newline is added). */
  value: string;
}

/**
 * An attribute as the API takes it: `{ name, value }`, or mdevctl's own
 * shape, an object with a single key (`{ assign_adapter: '5' }`).
 */
export type MdevAttributeInput = MdevAttribute | Readonly<Record<string, string>>;

/** A stored definition: one file of the configuration root. */
export interface MdevDefinition {
  /** The device's UUID, lower case (the file's name). */
  uuid: string;
  /** The parent device's name, as under /sys/class/mdev_bus (the directory's name). */
  parent: string;
  /** The mdev type (`mdev_type`). */
  type: string;
  /** `start`: `auto` or `manual`. */
  start: StartMode;
  /** `attrs`, in order. */
  attrs: MdevAttribute[];
  /** The file, on disk (`/etc/mdevctl.d/mtty/<uuid>`). */
  path: string;
  /**
   * Every top-level key of the file as read, known and unknown, in the file's
   * order: a modification keeps the keys this package does not know, where
   * they were. `{}` for a definition that was not read from a file.
   */
  json: Readonly<Record<string, unknown>>;
}

/** A file of the configuration root that could not be read or is malformed. */
export interface DefinitionFileError {
  /** The UUID its name gives, lower case. */
  uuid: string;
  /** Its directory's name. */
  parent: string;
  /** The file. */
  path: string;
  /** What is wrong: EINVAL naming the file and the field, or the error reading it. */
  error: VfioError;
}

/** What {@link MdevDefinitionStore.scan} finds. */
export interface DefinitionScan {
  /** The well-formed definitions, sorted by parent then UUID (mdevctl's order). */
  definitions: MdevDefinition[];
  /** The files that are not, in the same order. */
  errors: DefinitionFileError[];
}

/** Which definitions {@link MdevDefinitionStore.scan} and {@link MdevDefinitionStore.list} look at. */
export interface DefinitionFilter {
  /** Only this parent's. */
  parent?: string;
  /** Only this UUID's (any case). */
  uuid?: string;
}

/** The fields of a definition to write: {@link MdevDefinition} without its path. */
export interface DefinitionContents {
  /** The UUID (lower case). */
  uuid: string;
  /** The parent. */
  parent: string;
  /** The mdev type. */
  type: string;
  /** The start mode. */
  start: StartMode;
  /** The attributes, in order. */
  attrs: readonly MdevAttribute[];
  /** The keys to keep, and their order ({@link MdevDefinition.json}); default none. */
  json?: Readonly<Record<string, unknown>>;
}

const show = (v: unknown): string => {
  const s = v === undefined ? 'nothing' : JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
};

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A name usable as one directory entry: not empty, '.', '..', and without '/' or NUL. */
/**
 * Whether `name` can name an attribute of a device: a relative path inside
 * its sysfs directory ('assign_adapter', or 'group/attr' for an attribute
 * group), without '.', '..' or empty components.
 */
export function isAttributeName(name: string): boolean {
  return typeof name === 'string' && name.split('/').every(isPlainName);
}

/**
 * Whether `name` can be a parent in the configuration root: one directory
 * name, and not mdevctl's `scripts.d`.
 */
export function isParentName(name: string): boolean {
  return typeof name === 'string' && isPlainName(name) && name !== SCRIPTS_DIR;
}

/** The hint of a malformed attribute list given to the API. */
const ATTRS_HINT = 'attributes are { name, value } objects, or mdevctl\'s { "<name>": "<value>" }, with string values; a name is a file in the device\'s sysfs directory';

function invalid(operation: string, message: string, path?: string, hint?: string): VfioError {
  return new VfioError({ errno: E.EINVAL, operation, ...(path === undefined ? {} : { path }), ...(hint === undefined ? {} : { hint }), message: `EINVAL: ${message}` });
}

/**
 * Normalizes attributes given as `{ name, value }` or as mdevctl's
 * `{ [name]: value }` and checks them. VfioError EINVAL naming the entry for
 * anything else.
 *
 * @param attrs - the attributes, in order
 * @param operation - the operation named in errors
 */
export function normalizeAttributes(attrs: readonly MdevAttributeInput[] | undefined, operation: string): MdevAttribute[] {
  if (attrs === undefined) return [];
  if (!Array.isArray(attrs)) throw invalid(operation, `attrs must be an array of { name, value } objects, got ${show(attrs)}`, undefined, ATTRS_HINT);
  return attrs.map((a: unknown, i) => {
    let name: unknown;
    let value: unknown;
    const keys = isObject(a) ? Object.keys(a) : [];
    if (isObject(a) && keys.length === 2 && 'name' in a && 'value' in a) ({ name, value } = a);
    else if (isObject(a) && keys.length === 1) [name, value] = [keys[0], a[keys[0]!]];
    else throw invalid(operation, `attrs[${i}] must be { name, value } or { "<name>": "<value>" }, got ${show(a)}`, undefined, ATTRS_HINT);
    if (typeof name !== 'string' || !isAttributeName(name)) {
      throw invalid(operation, `attrs[${i}]: ${show(name)} is not an attribute name (a file in the device's sysfs directory)`, undefined, ATTRS_HINT);
    }
    if (typeof value !== 'string') throw invalid(operation, `attrs[${i}] (${show(name)}): the value must be a string, got ${show(value)}`, undefined, ATTRS_HINT);
    return { name, value };
  });
}

/**
 * Parses the contents of a definition file, strictly. VfioError EINVAL
 * (operation 'mdev definition', `path` the file) naming the file and the
 * field for: text that is not JSON, anything but an object, a missing or
 * non-string `mdev_type`, a `start` other than "auto" or "manual", `attrs`
 * that is not an array (missing or null is an empty list, as for mdevctl),
 * an entry that is not an object with exactly one string value, an
 * attribute name that leaves the device's directory.
 *
 * @param text - the file's contents
 * @param where - the file (for errors and {@link MdevDefinition.path}), and the parent and UUID its path gives
 */
export function parseDefinition(text: string, where: { path: string; parent: string; uuid: string }): MdevDefinition {
  const { path } = where;
  const bad = (what: string): VfioError => invalid(READ_OP, `${path}: ${what}`, path);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw bad(`not JSON (${(err as Error).message})`);
  }
  if (!isObject(json)) throw bad(`must hold a JSON object ({ "mdev_type": …, "start": …, "attrs": […] }), got ${show(json)}`);
  const type = json.mdev_type;
  if (type === undefined || type === null) throw bad('"mdev_type" is missing');
  if (typeof type !== 'string' || type === '') throw bad(`"mdev_type" must be a non-empty string, got ${show(type)}`);
  const start = json.start;
  if (start === undefined || start === null) throw bad('"start" is missing: it must be "auto" or "manual"');
  if (start !== 'auto' && start !== 'manual') throw bad(`"start" must be "auto" or "manual", got ${show(start)}`);
  const raw = json.attrs ?? [];
  if (!Array.isArray(raw)) throw bad(`"attrs" must be an array of { "<name>": "<value>" } objects, got ${show(raw)}`);
  const attrs = raw.map((a: unknown, i): MdevAttribute => {
    const keys = isObject(a) ? Object.keys(a) : [];
    if (!isObject(a) || keys.length !== 1) throw bad(`"attrs"[${i}] must be an object with exactly one attribute, { "<name>": "<value>" }, got ${show(a)}`);
    const name = keys[0]!;
    const value = a[name];
    if (typeof value !== 'string') throw bad(`"attrs"[${i}] (${show(name)}): the value must be a string, got ${show(value)}`);
    if (!isAttributeName(name)) throw bad(`"attrs"[${i}]: ${show(name)} is not an attribute name (a file in the device's sysfs directory)`);
    return { name, value };
  });
  return { uuid: where.uuid.toLowerCase(), parent: where.parent, type, start, attrs, path, json };
}

/** A definition in mdevctl's JSON: a file's known fields, and one device of `mdevctl list --dumpjson`. */
export interface MdevctlDefinitionJson {
  /** The mdev type. */
  mdev_type: string;
  /** `auto` or `manual`. */
  start: StartMode;
  /** The attributes, in order, each an object with one key: `{ "<name>": "<value>" }`. */
  attrs: Record<string, string>[];
}

/**
 * The definition as mdevctl prints it (`mdevctl list --dumpjson` for one
 * device, and the file's three fields): `{ mdev_type, start, attrs: [{ name: value }] }`.
 *
 * @param def - the definition
 */
export function mdevctlJson(def: Pick<DefinitionContents, 'type' | 'start' | 'attrs'>): MdevctlDefinitionJson {
  return {
    mdev_type: def.type,
    start: def.start,
    // fromEntries, not a literal: an attribute named __proto__ stays a key.
    attrs: def.attrs.map((a) => Object.fromEntries([[a.name, a.value]]) as Record<string, string>),
  };
}

/**
 * A definition file's contents, byte for byte as mdevctl 1.2 writes it
 * (two-space indentation, no final newline), with the keys of `def.json`
 * this package does not know kept in their places; known keys a file lacks
 * are added in mdevctl's order (`mdev_type`, `start`, `attrs`).
 *
 * @param def - the fields to write
 */
export function serializeDefinition(def: Pick<DefinitionContents, 'type' | 'start' | 'attrs' | 'json'>): string {
  const known: Record<string, unknown> = { ...mdevctlJson(def) };
  const entries: [string, unknown][] = Object.keys(def.json ?? {}).map((k) => [k, Object.hasOwn(known, k) ? known[k] : def.json![k]]);
  for (const k of Object.keys(known)) if (!entries.some(([key]) => key === k)) entries.push([k, known[k]]);
  return JSON.stringify(Object.fromEntries(entries), null, 2);
}

const errnoOf = (err: unknown): string | undefined => (err as NodeJS.ErrnoException)?.code;

/**
 * The definitions under one configuration root (mdevctl's `/etc/mdevctl.d`):
 * scan, read, create exclusively, replace atomically, remove. Files whose
 * names are not UUIDs, entries that are not regular files, and mdevctl's
 * `scripts.d` are ignored, as mdevctl ignores them.
 */
export class MdevDefinitionStore {
  /** The configuration root on disk. */
  readonly dir: string;

  /**
   * Nothing is read until a method is called; the root need not exist.
   *
   * @param dir - the configuration root; default {@link DEFAULT_CONFIG_ROOT}
   */
  constructor(dir: string = DEFAULT_CONFIG_ROOT) {
    if (typeof dir !== 'string' || dir === '') throw new TypeError(`the definitions directory must be a non-empty string, not ${show(dir)}`);
    this.dir = resolve(dir);
  }

  /**
   * The file of the definition of `uuid` on `parent`. VfioError EINVAL for a
   * parent that cannot be a directory of the root.
   *
   * @param operation - the operation named in errors
   */
  fileOf(parent: string, uuid: string, operation = READ_OP): string {
    if (!isParentName(parent)) {
      throw invalid(
        operation,
        `${show(parent)} cannot be a parent: a parent is one directory name under ${this.dir} (not '', '.', '..', ${SCRIPTS_DIR}, nor containing '/')`,
        undefined,
        'name the parent as /sys/class/mdev_bus lists it (`vfio mdev types`)',
      );
    }
    return join(this.dir, parent, uuid);
  }

  /**
   * Every definition (or those `filter` selects), and the files that could
   * not be read, without throwing for one bad file. A missing root or parent
   * directory holds none.
   */
  scan(filter: DefinitionFilter = {}): DefinitionScan {
    const uuid = filter.uuid?.toLowerCase();
    const out: DefinitionScan = { definitions: [], errors: [] };
    const parents = this.#entries(this.dir)
      .filter((d) => d.isDirectory() && d.name !== SCRIPTS_DIR && (filter.parent === undefined || d.name === filter.parent))
      .map((d) => d.name)
      .sort(byteOrder);
    for (const parent of parents) {
      const files = this.#entries(join(this.dir, parent))
        .filter((f) => f.isFile() && UUID_RE.test(f.name) && (uuid === undefined || f.name.toLowerCase() === uuid))
        .map((f) => f.name)
        .sort((a, b) => byteOrder(a.toLowerCase(), b.toLowerCase()));
      for (const name of files) {
        const path = join(this.dir, parent, name);
        try {
          out.definitions.push(this.#readFile(path, parent, name));
        } catch (err) {
          out.errors.push({ uuid: name.toLowerCase(), parent, path, error: VfioError.from(err, { operation: READ_OP, path }) });
        }
      }
    }
    return out;
  }

  /**
   * Every definition (or those `filter` selects), sorted by parent then UUID.
   * Throws the error of the first file that cannot be read or is malformed
   * (VfioError EINVAL naming the file and the field), as mdevctl refuses to
   * list with one.
   */
  list(filter: DefinitionFilter = {}): MdevDefinition[] {
    const { definitions, errors } = this.scan(filter);
    if (errors.length) throw errors[0]!.error;
    return definitions;
  }

  /**
   * The definition of `uuid` on `parent`, or null when there is none.
   * VfioError EINVAL for a malformed file.
   */
  read(parent: string, uuid: string): MdevDefinition | null {
    return this.list({ parent, uuid })[0] ?? null;
  }

  /**
   * Writes a new definition, exclusively: VfioError EEXIST (naming the file)
   * when `contents.uuid` is already defined on `contents.parent`, including
   * by a process racing this one. Creates the parent's directory as needed.
   *
   * @param contents - what to write; `json` gives keys to keep
   * @param operation - the operation named in errors; default 'mdev define'
   */
  create(contents: DefinitionContents, operation = 'mdev define'): MdevDefinition {
    const file = this.fileOf(contents.parent, contents.uuid, operation);
    const dir = join(this.dir, contents.parent);
    const text = serializeDefinition(contents);
    const existing = this.scan({ parent: contents.parent, uuid: contents.uuid });
    const other = [...existing.definitions, ...existing.errors].find((d) => d.path !== file);
    if (other) throw this.#exists(other.path, contents, operation);
    try {
      mkdirSync(dir, { recursive: true, mode: 0o755 });
    } catch (err) {
      throw VfioError.from(err, { operation, path: dir });
    }
    const tmp = this.#writeTemp(dir, contents.uuid, text, operation);
    try {
      linkSync(tmp, file); // EEXIST if the name exists: exactly one of two racing creates wins
    } catch (err) {
      if (errnoOf(err) === 'EEXIST') throw this.#exists(file, contents, operation);
      throw VfioError.from(err, { operation, path: file });
    } finally {
      unlinkQuietly(tmp);
    }
    syncDir(dir);
    return this.#contentsToDefinition(contents, file, text);
  }

  /**
   * Replaces the definition `def` (as read) with `contents`, atomically (a
   * temporary file renamed over it), keeping the file's mode, and its owner
   * when run as root. The parent and UUID cannot change.
   *
   * @param def - the definition as read: its path is replaced
   * @param contents - the new fields; `json` defaults to `def.json`
   * @param operation - the operation named in errors; default 'mdev modify'
   */
  replace(def: MdevDefinition, contents: Omit<DefinitionContents, 'uuid' | 'parent'>, operation = 'mdev modify'): MdevDefinition {
    const all: DefinitionContents = { ...contents, uuid: def.uuid, parent: def.parent, json: contents.json ?? def.json };
    const text = serializeDefinition(all);
    const dir = join(def.path, '..');
    let mode = 0o644;
    let owner: { uid: number; gid: number } | null = null;
    try {
      const st = statSync(def.path);
      mode = st.mode & 0o7777;
      owner = { uid: st.uid, gid: st.gid };
    } catch (err) {
      throw VfioError.from(err, { operation, path: def.path });
    }
    const tmp = this.#writeTemp(dir, def.uuid, text, operation, mode);
    try {
      if (owner && process.getuid?.() === 0) chownSync(tmp, owner.uid, owner.gid);
      renameSync(tmp, def.path);
    } catch (err) {
      unlinkQuietly(tmp);
      throw VfioError.from(err, { operation, path: def.path });
    }
    syncDir(dir);
    return this.#contentsToDefinition(all, def.path, text);
  }

  /**
   * Deletes the file of `def`. VfioError ENOENT if it is gone already. The
   * parent's directory stays, as mdevctl leaves it.
   *
   * @param operation - the operation named in errors; default 'mdev undefine'
   */
  remove(def: Pick<MdevDefinition, 'path'>, operation = 'mdev undefine'): void {
    try {
      unlinkSync(def.path);
    } catch (err) {
      throw VfioError.from(err, { operation, path: def.path });
    }
    syncDir(join(def.path, '..'));
  }

  #exists(path: string, contents: DefinitionContents, operation: string): VfioError {
    return new VfioError({
      errno: E.EEXIST,
      operation,
      path,
      message: `EEXIST: ${path}: mdev ${contents.uuid} is already defined on parent '${contents.parent}'`,
    });
  }

  #contentsToDefinition(c: DefinitionContents, path: string, text: string): MdevDefinition {
    return { uuid: c.uuid, parent: c.parent, type: c.type, start: c.start, attrs: c.attrs.map((a) => ({ ...a })), path, json: JSON.parse(text) as Record<string, unknown> };
  }

  #entries(dir: string): Dirent[] {
    try {
      return readdirSync(dir, { withFileTypes: true });
    } catch (err) {
      const code = errnoOf(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') return [];
      throw VfioError.from(err, { operation: READ_OP, path: dir });
    }
  }

  #readFile(path: string, parent: string, name: string): MdevDefinition {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw VfioError.from(err, { operation: READ_OP, path });
    }
    return parseDefinition(text, { path, parent, uuid: name });
  }

  /** Writes `text` to a fresh hidden file in `dir` (never a UUID, so mdevctl and scan() skip it) and flushes it. */
  #writeTemp(dir: string, uuid: string, text: string, operation: string, mode = 0o644): string {
    const tmp = join(dir, `.${uuid}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
    let fd: number;
    try {
      fd = openSync(tmp, 'wx', mode);
    } catch (err) {
      throw VfioError.from(err, { operation, path: dir });
    }
    try {
      const data = Buffer.from(text, 'utf8');
      for (let off = 0; off < data.length; ) off += writeSync(fd, data, off);
      if (mode !== 0o644) chmodSync(tmp, mode); // the umask applied to open's mode
      fsyncSync(fd);
    } catch (err) {
      closeSync(fd);
      unlinkQuietly(tmp);
      throw VfioError.from(err, { operation, path: tmp });
    }
    closeSync(fd);
    return tmp;
  }
}

const byteOrder = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    /* gone already */
  }
}

/** Flushes a directory's entries, so a define or modify survives a crash. Best effort. */
function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    /* some filesystems refuse fsync on directories */
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
