/**
 * Errors. `VfioError` looks like Node's own SystemError (`code`, `errno`,
 * `syscall`, `path`) and adds the VFIO `operation` that failed and, where the
 * fix is known, a `hint`. The native addon throws real instances of this class.
 */
import { constants } from 'node:os';
import { getSystemErrorMap } from 'node:util';
import { hintFor } from './hints.js';

/** Thrown by every method of an object after its `close()`. */
export const ERR_VFIO_CLOSED = 'ERR_VFIO_CLOSED';

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

/** The errno name for a positive or negative errno ('EBUSY'), or `E<n>` when unknown. */
export function errnoName(errno: number): string {
  return errnoNames.get(Math.abs(errno)) ?? `E${Math.abs(errno)}`;
}

/** The positive errno for a name ('EBUSY' → 16), or undefined. */
export function errnoNumber(code: string): number | undefined {
  const known = (constants.errno as Record<string, number>)[code];
  if (known !== undefined) return known;
  const extra = Object.entries(LINUX_ERRNOS).find(([, [name]]) => name === code);
  return extra ? Number(extra[0]) : undefined;
}

/** strerror-like text, as Node prints it ('device or resource busy'). */
export function errnoMessage(errno: number): string {
  systemErrors ??= getSystemErrorMap();
  return systemErrors.get(-Math.abs(errno))?.[1] ?? LINUX_ERRNOS[Math.abs(errno)]?.[1] ?? `error ${Math.abs(errno)}`;
}

export class VfioError extends Error {
  /** 'EBUSY', 'ENOENT', … or a Node-style 'ERR_VFIO_*' code. */
  readonly code: string;
  /** Negative, as in Node's SystemError (-16 for EBUSY); 0 when no errno applies. */
  readonly errno: number;
  readonly syscall: string | undefined;
  readonly operation: string | undefined;
  readonly path: string | undefined;
  readonly hint: string | undefined;

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

  /** Wraps an fs/child-process error (a Node SystemError) with the operation that failed. */
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

  /** The error every use of a closed object throws. */
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
