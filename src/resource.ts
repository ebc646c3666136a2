/**
 * Explicit lifetimes. Every handle closes idempotently, closes what depends on
 * it first (devices before groups before containers; devices before IOAS
 * before iommufd), and throws ERR_VFIO_CLOSED when used afterwards.
 */
import { statSync } from 'node:fs';
import { VfioError } from './errors.js';
import type { NativeFd, NativeFdKey } from './native.js';

/**
 * The base of every handle that owns an fd or native memory.
 *
 * @internal
 */
export abstract class Resource {
  #closed = false;
  readonly #dependents = new Set<Resource>();
  #parent: Resource | null = null;
  #fdKey: NativeFdKey | undefined;

  /** What this is, for error messages ('device 5f1c…', 'group 12'). */
  protected abstract describe(): string;
  /** Releases this object's own fds and memory; called once, after its dependents closed. */
  protected abstract release(): void;
  /** Runs once, first thing in close(), while this object is still open (its failures are ignored). */
  protected beforeClose(): void {}

  /** Whether `close()` has been called; every other method then throws {@link ERR_VFIO_CLOSED}. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Throws ERR_VFIO_CLOSED naming `operation` if this object is closed. */
  protected ensureOpen(operation: string): void {
    if (this.#closed) throw VfioError.closed(`${this.describe()} (${operation})`);
  }

  /**
   * The key of this object's native fd (see NativeFd.key), checked open. Hot
   * paths (register access, DMA map/unmap) pass it instead of the handle: the
   * addon checks a key with one tag compare.
   */
  protected fdKey(fd: NativeFd, operation: string): NativeFdKey {
    this.ensureOpen(operation);
    return (this.#fdKey ??= fd.key);
  }

  /** Makes `child` close before this object does (moving it from any previous parent). */
  protected adopt(child: Resource): void {
    if (child.#parent === this) return;
    const previous = child.#parent;
    if (previous) previous.#dependents.delete(child);
    child.#parent = this;
    this.#dependents.add(child);
  }

  /** The objects that close before this one (adopted children), in adoption order. */
  protected dependents(): Resource[] {
    return [...this.#dependents];
  }

  /**
   * Closes what depends on this object first (devices before groups before
   * containers; devices before IOAS before iommufd), then releases this
   * object's own fds and memory. Idempotent: a second call does nothing.
   *
   * @throws the first error a dependent's or this object's release threw, after everything was closed
   */
  close(): void {
    if (this.#closed) return;
    try {
      this.beforeClose();
    } catch {
      // a last call that fails does not stop the close
    }
    this.#closed = true;
    let first: unknown;
    for (const d of [...this.#dependents].reverse()) {
      try {
        d.close();
      } catch (e) {
        first ??= e;
      }
    }
    this.#dependents.clear();
    try {
      this.release();
    } finally {
      const parent = this.#parent;
      if (parent) parent.#dependents.delete(this);
      this.#parent = null;
    }
    if (first !== undefined) throw first;
  }

  /** Same as `close()`, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Same as `close()`, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }
}

/** A bigint or safe non-negative integer, as bigint; anything else is a TypeError/RangeError. @internal */
export function toU64(value: unknown, name: string): bigint {
  if (typeof value === 'bigint') {
    if (value < 0n || value > 0xffff_ffff_ffff_ffffn) throw new RangeError(`${name} must be between 0 and 2^64-1, got ${value}`);
    return value;
  }
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${name} must be a non-negative safe integer or a bigint, got ${value}`);
    return BigInt(value);
  }
  throw new TypeError(`${name} must be a bigint or a number, got ${typeof value}`);
}

/**
 * Like {@link toU64}, but a safe non-negative integer number is passed through
 * as it is, for the native seam (which takes both): no BigInt is made on hot
 * paths such as register accesses.
 *
 * @internal
 */
export function u64Arg(value: unknown, name: string): number | bigint {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : toU64(value, name);
}

/** A non-negative 32-bit integer (indexes, counts, flags). @internal */
export function toU32(value: unknown, name: string): number {
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number, got ${typeof value}`);
  if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) throw new RangeError(`${name} must be an integer between 0 and 2^32-1, got ${value}`);
  return value;
}

/**
 * A filesystem root argument (the directory under which `/sys`, `/dev` and
 * `/proc` are found; `/` on a real system, a fake tree in tests), checked:
 * a TypeError for a non-string, a VfioError ENOENT or ENOTDIR for a path that
 * is not a directory, so a wrong argument never surfaces as a raw fs error
 * from deep inside a lookup.
 *
 * @internal
 */
export function rootArg(root: unknown, operation: string): string {
  if (typeof root !== 'string' || root === '') throw new TypeError(`root must be a directory path, got ${typeof root === 'string' ? "''" : typeof root}`);
  let dir = false;
  try {
    dir = statSync(root).isDirectory();
  } catch (e) {
    throw new VfioError({ code: 'ENOENT', errno: 2, syscall: 'stat', operation, path: root, message: `ENOENT: root ${root} does not exist`, hint: "the root is the directory under which /sys, /dev and /proc are found: '/' on a real system" });
  }
  if (!dir) throw new VfioError({ code: 'ENOTDIR', errno: 20, syscall: 'stat', operation, path: root, message: `ENOTDIR: root ${root} is not a directory`, hint: "the root is the directory under which /sys, /dev and /proc are found: '/' on a real system" });
  return root;
}
