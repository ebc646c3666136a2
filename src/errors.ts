/**
 * Errors. `VfioError` looks like Node's own SystemError (`code`, `errno`,
 * `syscall`, `path`) and adds the VFIO `operation` that failed and, where the
 * fix is known, a `hint`. The native addon throws real instances of this class.
 */
import { constants } from 'node:os';
import { getSystemErrorMap } from 'node:util';
import { hintFor } from './hints.js';

/**
 * The `code` of the {@link VfioError} that every method of a handle
 * ({@link Container}, {@link Group}, {@link Device}, {@link IommuFd}, …)
 * throws once the handle is closed. Its `errno` is EBADF.
 */
export const ERR_VFIO_CLOSED = 'ERR_VFIO_CLOSED';

/** What {@link VfioError}'s constructor takes; every member is optional. */
export interface VfioErrorInit {
  /** An errno, positive (kernel style) or negative (Node style); stored negative as Node does. */
  errno?: number;
  /** Defaults to the errno's name ('EBUSY'); required when there is no errno. */
  code?: string;
  /** The system call that failed: 'ioctl', 'open', 'write', 'mmap', … */
  syscall?: string;
  /** The VFIO/iommufd operation: 'VFIO_GROUP_SET_CONTAINER', 'mdev create', … */
  operation?: string;
  /** The file involved: '/dev/vfio/12', a sysfs attribute, … */
  path?: string;
  /** Overrides the hint that would be looked up. */
  hint?: string;
  /** Overrides the generated message. */
  message?: string;
  /** The underlying error, kept as the standard `Error.cause`. */
  cause?: unknown;
}

/** Linux (x86_64) errnos that the kernel's VFIO/mdev/iommufd paths return but libuv does not name. */
const LINUX_ERRNOS: Record<number, [string, string]> = {
  77: ['EBADFD', 'file descriptor in bad state'],
  87: ['EUSERS', 'too many users'],
  121: ['EREMOTEIO', 'remote I/O error'],
  524: ['ENOTSUPP', 'operation is not supported'],
};

const errnoNames = new Map<number, string>([
  ...Object.entries(LINUX_ERRNOS).map(([n, [name]]): [number, string] => [Number(n), name]),
  ...Object.entries(constants.errno).map(([name, n]): [number, string] => [n, name]),
]);
let systemErrors: Map<number, [string, string]> | undefined;

/**
 * The symbolic name of an errno, as Node and the kernel spell it.
 *
 * @param errno - positive (kernel style) or negative (Node style); 16 and -16 are both EBUSY
 * @returns `'EBUSY'`, …; Linux names libuv does not know (`EUSERS`, `ENOTSUPP`, …)
 *   are included; an unknown number gives `E<n>`
 */
export function errnoName(errno: number): string {
  return errnoNames.get(Math.abs(errno)) ?? `E${Math.abs(errno)}`;
}

/**
 * The inverse of {@link errnoName}.
 *
 * @param code - an errno name such as `'EBUSY'`
 * @returns the positive errno (`'EBUSY'` → 16), or undefined for a name that is not an errno
 */
export function errnoNumber(code: string): number | undefined {
  const known = (constants.errno as Record<string, number>)[code];
  if (known !== undefined) return known;
  const extra = Object.entries(LINUX_ERRNOS).find(([, [name]]) => name === code);
  return extra ? Number(extra[0]) : undefined;
}

/**
 * The strerror-like text of an errno, as Node prints it.
 *
 * @param errno - positive or negative
 * @returns `'device or resource busy'` for EBUSY, …; `'error <n>'` when unknown
 */
export function errnoMessage(errno: number): string {
  systemErrors ??= getSystemErrorMap();
  return systemErrors.get(-Math.abs(errno))?.[1] ?? LINUX_ERRNOS[Math.abs(errno)]?.[1] ?? `error ${Math.abs(errno)}`;
}

/**
 * The error this package throws for every failed system call and for
 * malformed kernel data, shaped like Node's own `SystemError`: `code`,
 * negative `errno`, `syscall` and `path`, plus the VFIO/iommufd `operation`
 * that failed and, where the fix is known, a `hint`. The native addon throws
 * real instances of this class, so `instanceof VfioError` holds for errors
 * from every layer.
 *
 * Bad arguments are reported as `TypeError`/`RangeError` instead, before any
 * system call is made.
 *
 * @example
 * ```ts
 * try {
 *   group.openDevice('0000:00:03.0');
 * } catch (e) {
 *   if (e instanceof VfioError && e.code === 'EINVAL') console.error(e.hint);
 * }
 * ```
 */
export class VfioError extends Error {
  /** 'EBUSY', 'ENOENT', … or a Node-style 'ERR_VFIO_*' code. */
  readonly code: string;
  /** Negative, as in Node's SystemError (-16 for EBUSY); 0 when no errno applies. */
  readonly errno: number;
  /** The system call that failed ('ioctl', 'open', 'mmap', 'write', …), if one did. */
  readonly syscall: string | undefined;
  /** The VFIO/iommufd/mdev operation that failed ('VFIO_GROUP_SET_CONTAINER', 'IOMMU_IOAS_MAP', 'mdev create', …). */
  readonly operation: string | undefined;
  /** The file involved: a device node ('/dev/vfio/12'), a sysfs attribute, … */
  readonly path: string | undefined;
  /**
   * A known fix for this failure (permissions, RLIMIT_MEMLOCK, a missing
   * module, the order of calls, a kernel quirk), from {@link hintFor} unless
   * given; undefined when none is known. Not part of `message`.
   */
  readonly hint: string | undefined;

  /**
   * Builds the error. The message is generated from the code, the errno's
   * text, the syscall, operation and path unless `init.message` is given,
   * and the hint is looked up with {@link hintFor} unless `init.hint` is given.
   *
   * @param init - errno and/or code, and what failed
   */
  constructor(init: VfioErrorInit) {
    const errno = init.errno ? -Math.abs(init.errno) : 0;
    const code = init.code ?? (errno ? errnoName(errno) : 'ERR_VFIO');
    const hint = init.hint ?? hintFor({ code, syscall: init.syscall, operation: init.operation, path: init.path });
    let message = init.message;
    if (message === undefined) {
      message = `${code}: ${errno ? errnoMessage(errno) : 'error'}`;
      const where = [init.syscall, init.operation].filter(Boolean).join(' ');
      if (where) message += `, ${where}`;
      if (init.path) message += ` '${init.path}'`;
    }
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'VfioError';
    this.code = code;
    this.errno = errno;
    this.syscall = init.syscall;
    this.operation = init.operation;
    this.path = init.path;
    this.hint = hint;
  }

  /**
   * Wraps an error from Node (an fs or child-process `SystemError`) as a
   * VfioError naming the operation that failed; the original becomes `cause`.
   * A VfioError is returned as it is; an error without an errno or code gets
   * the code `'ERR_VFIO'`.
   *
   * @param err - what was caught
   * @param init - the operation, and a syscall, path or hint to use instead of the original's
   */
  static from(err: unknown, init: Omit<VfioErrorInit, 'errno' | 'code'> = {}): VfioError {
    if (err instanceof VfioError) return err;
    const e = err as NodeJS.ErrnoException;
    if (typeof e?.errno === 'number' || typeof e?.code === 'string') {
      const errno = typeof e.errno === 'number' ? e.errno : errnoNumber(e.code ?? '');
      // Node names errnos libuv does not know 'Unknown system error -87': use the Linux name.
      const code = errno && (!e.code || e.code.startsWith('Unknown system error')) ? errnoName(errno) : e.code;
      return new VfioError({
        ...(errno ? { errno } : {}),
        code,
        syscall: init.syscall ?? e.syscall,
        operation: init.operation,
        path: init.path ?? e.path,
        cause: err,
        ...(init.hint ? { hint: init.hint } : {}),
      });
    }
    return new VfioError({ code: 'ERR_VFIO', message: String((err as Error)?.message ?? err), ...init, cause: err });
  }

  /**
   * The error every use of a closed object throws: code
   * {@link ERR_VFIO_CLOSED}, errno EBADF.
   *
   * @param what - the object and the operation tried, for the message
   * @param path - the object's device node, if it has one
   */
  static closed(what: string, path?: string): VfioError {
    return new VfioError({
      code: ERR_VFIO_CLOSED,
      errno: constants.errno.EBADF,
      operation: what,
      path,
      message: `${ERR_VFIO_CLOSED}: ${what} is closed${path ? ` '${path}'` : ''}`,
    });
  }
}
