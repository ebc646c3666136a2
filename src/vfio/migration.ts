/**
 * VFIO migration v2: a device's state machine (VFIO_DEVICE_FEATURE
 * MIG_DEVICE_STATE), its saved state as a stream on the data fd the kernel
 * hands out, and {@link migrate} between two open devices. The native seam
 * owns the data fd from the moment the kernel returns it and reads and writes
 * it on the thread pool; the protocol is here.
 */
import { Readable } from 'node:stream';
import { VfioError } from '../errors.js';
import { native, type NativeFd } from '../native.js';
import { Resource } from '../resource.js';
import { MIGRATION_FLAGS, MIG_STATE_NAMES, VFIO_DEVICE_FEATURE_MIGRATION, VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, VFIO_MIGRATION_P2P, VFIO_MIGRATION_PRE_COPY, VFIO_MIGRATION_STOP_COPY } from '../uapi/constants.js';
import { decodePrecopyInfo } from '../uapi/vfio.js';
import { bitNames, view } from '../uapi/binary.js';
import { LAYOUTS } from '../uapi/layouts.js';
import type { Device } from './device.js';
import { checkMigrationLeave, resetMigrationBeforeClose } from './quirks.js';

/** A migration state (enum vfio_device_mig_state), by name. */
export type MigrationState = 'ERROR' | 'STOP' | 'RUNNING' | 'STOP_COPY' | 'RESUMING' | 'RUNNING_P2P' | 'PRE_COPY' | 'PRE_COPY_P2P';

/** The state numbers of the uapi, by name. */
export const MIGRATION_STATES: Readonly<Record<MigrationState, number>> = Object.freeze({
  ERROR: 0,
  STOP: 1,
  RUNNING: 2,
  STOP_COPY: 3,
  RESUMING: 4,
  RUNNING_P2P: 5,
  PRE_COPY: 6,
  PRE_COPY_P2P: 7,
});

/** What a device's MIGRATION feature says it supports. */
export interface MigrationFlags {
  /** The raw VFIO_MIGRATION_* bits. */
  raw: bigint;
  /** STOP_COPY and RESUMING: the base protocol (always set on a device that migrates). */
  stopCopy: boolean;
  /** RUNNING_P2P. */
  p2p: boolean;
  /** PRE_COPY (and PRE_COPY_P2P with p2p). */
  preCopy: boolean;
  /** 'STOP_COPY', 'P2P', 'PRE_COPY'. */
  names: string[];
}

const CHUNK = 1 << 20;
const EINVAL = 22;

const stateName = (n: number): MigrationState | `STATE${number}` => (MIG_STATE_NAMES[n] as MigrationState | undefined) ?? `STATE${n}`;

/**
 * The states a device with these flags can be put in (the uapi's rules in
 * include/uapi/linux/vfio.h): STOP, RUNNING, STOP_COPY and RESUMING with
 * STOP_COPY; RUNNING_P2P with P2P; PRE_COPY with PRE_COPY; PRE_COPY_P2P with
 * both. ERROR is never set by the user.
 */
export function allowedStates(flags: bigint): Set<MigrationState> {
  const s = new Set<MigrationState>();
  if ((flags & BigInt(VFIO_MIGRATION_STOP_COPY)) === 0n) return s;
  for (const n of ['STOP', 'RUNNING', 'STOP_COPY', 'RESUMING'] as const) s.add(n);
  const p2p = (flags & BigInt(VFIO_MIGRATION_P2P)) !== 0n;
  const pre = (flags & BigInt(VFIO_MIGRATION_PRE_COPY)) !== 0n;
  if (p2p) s.add('RUNNING_P2P');
  if (pre) s.add('PRE_COPY');
  if (p2p && pre) s.add('PRE_COPY_P2P');
  return s;
}

/** Why `state` cannot be asked of a device with these flags, or null when it can. */
export function refusal(state: string, flags: bigint): string | null {
  if (!(state in MIGRATION_STATES)) return `unknown migration state ${JSON.stringify(state)}: one of ${Object.keys(MIGRATION_STATES).join(', ')}`;
  if (state === 'ERROR') return 'ERROR is entered by the kernel when a transition fails, never set';
  if (allowedStates(flags).has(state as MigrationState)) return null;
  const need: Record<string, string> = { RUNNING_P2P: 'P2P', PRE_COPY: 'PRE_COPY', PRE_COPY_P2P: 'PRE_COPY and P2P' };
  return `${state} needs the device's ${need[state] ?? 'STOP_COPY'} migration flag; this device has ${flagNames(flags).join('|') || 'none'}`;
}

const flagNames = (flags: bigint): string[] => bitNames(flags, MIGRATION_FLAGS);

/**
 * A migration failed part way. `state` is the device's state afterwards, as
 * the kernel reports it (null when it could not be read); `recover()` on the
 * device's {@link Migration} brings it back to RUNNING.
 */
export class MigrationError extends VfioError {
  /** The device's migration state after the failure (null when unreadable). */
  readonly state: MigrationState | `STATE${number}` | null;
  /** The device. */
  readonly device: string;

  constructor(cause: unknown, device: string, state: MigrationState | `STATE${number}` | null, what: string) {
    const v = cause instanceof VfioError ? cause : null;
    super({
      code: v?.code ?? 'ERR_VFIO_MIGRATION',
      errno: v?.errno === undefined ? 0 : -v.errno,
      syscall: v?.syscall,
      operation: v?.operation ?? what,
      path: v?.path,
      message: `${what} of ${device} failed: ${(cause as Error)?.message ?? String(cause)}; the device is now ${state ?? 'in an unknown state'}`,
      hint: `${v?.hint ? `${v.hint}. ` : ''}device.migration.recover() brings it back to RUNNING (through a reset if the kernel requires one)`,
      cause,
    });
    this.name = 'MigrationError';
    this.state = state;
    this.device = device;
  }
}

/**
 * A migration data fd (the kernel's stream of a device's state), owned here
 * from the moment the kernel returned it. Reads and writes run on the thread
 * pool. Its device closes it before itself.
 */
export class MigrationData extends Resource {
  readonly #fd: NativeFd;
  readonly #label: string;

  /** @internal */
  constructor(fd: NativeFd, label: string) {
    super();
    this.#fd = fd;
    this.#label = label;
  }

  protected describe(): string {
    return `migration data fd of ${this.#label}`;
  }

  /** The fd number (for diagnostics: it is owned here). */
  get fd(): number {
    this.ensureOpen('fd');
    return this.#fd.fd;
  }

  /**
   * One read(2) of at most `max` bytes, off the event loop. An empty Buffer is
   * the end of the stream in STOP_COPY (in PRE_COPY: nothing more for now).
   *
   * @throws {@link VfioError} ENODEV once the device left the state this fd was for
   */
  read(max = CHUNK): Promise<Buffer> {
    return native().fdReadAsync(this.#fd, max);
  }

  /**
   * Writes all of `bytes` (copied first), off the event loop.
   *
   * @throws {@link VfioError} EFAULT for a header this device does not accept; ENOMEM past the device's state size
   */
  write(bytes: Uint8Array): Promise<number> {
    return native().fdWriteAsync(this.#fd, bytes);
  }

  /** VFIO_MIG_GET_PRECOPY_INFO: what is left to read in PRE_COPY. */
  precopyInfo(): PrecopyInfo {
    this.ensureOpen('precopy info');
    return decodePrecopyInfo(native().migPrecopyInfo(this.#fd));
  }

  protected release(): void {
    this.#fd.close();
  }
}

/** What VFIO_MIG_GET_PRECOPY_INFO reports in PRE_COPY. */
export interface PrecopyInfo {
  /** Bytes of the initial state still to read. */
  initialBytes: bigint;
  /** Bytes of state the device changed since, still to read. */
  dirtyBytes: bigint;
}

/** Options of {@link Migration.save}. */
export interface SaveOptions {
  /** Go through PRE_COPY first (where the device offers it) and stream its data before STOP_COPY. Default false. */
  precopy?: boolean;
  /** The state to leave the device in afterwards: 'STOP' (default) or 'RUNNING'. */
  then?: 'STOP' | 'RUNNING';
  /** Bytes per read (default 1 MiB). */
  chunkSize?: number;
}

/** What {@link Migration.load} did. */
export interface LoadResult {
  /** Bytes written to the device. */
  bytes: number;
}

/** Options of {@link Migration.load}. */
export interface LoadOptions {
  /** Put the device in RUNNING after the state is loaded. Default false (it stays STOP). */
  resume?: boolean;
}

/**
 * A device's migration v2 interface, from {@link Device.migration} (null on
 * devices without it). The kernel walks multi-step arcs itself: asking for
 * STOP_COPY from RUNNING goes through STOP, and RESUMING from RUNNING through
 * STOP. A state the device's flags do not allow is refused before any syscall.
 */
export class Migration {
  readonly #device: Device;
  /** What the device's MIGRATION feature reported. */
  readonly flags: MigrationFlags;
  #data: MigrationData | null = null;
  /** This object entered RESUMING and the device has not left it since (see checkMigrationLeave). */
  #resuming = false;

  /** @internal */
  constructor(device: Device, raw: bigint) {
    this.#device = device;
    this.flags = Object.freeze({
      raw,
      stopCopy: (raw & BigInt(VFIO_MIGRATION_STOP_COPY)) !== 0n,
      p2p: (raw & BigInt(VFIO_MIGRATION_P2P)) !== 0n,
      preCopy: (raw & BigInt(VFIO_MIGRATION_PRE_COPY)) !== 0n,
      names: flagNames(raw),
    });
  }

  /** @internal The MIGRATION feature's flags, or null where the device has no migration. */
  static probe(device: Device): bigint | null {
    try {
      return view(device.featureGet(VFIO_DEVICE_FEATURE_MIGRATION, LAYOUTS.vfio_device_feature_migration.size), 'vfio_device_feature_migration').u64('flags');
    } catch (e) {
      const code = (e as VfioError).code;
      if (code === 'ENOTTY' || code === 'EINVAL' || code === 'EOPNOTSUPP') return null;
      throw e;
    }
  }

  /** The current state (MIG_DEVICE_STATE GET), read from the kernel each time. */
  get state(): MigrationState | `STATE${number}` {
    const payload = this.#device.featureGet(VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, LAYOUTS.vfio_device_feature_mig_state.size);
    return stateName(view(payload, 'vfio_device_feature_mig_state').u32('device_state'));
  }

  /** The data fd of the current saving or resuming session, if any. */
  get data(): MigrationData | null {
    return this.#data !== null && !this.#data.closed ? this.#data : null;
  }

  /**
   * Moves the device to `state` (MIG_DEVICE_STATE SET); the kernel walks any
   * intermediate states. Entering STOP_COPY (from STOP), RESUMING or PRE_COPY
   * opens a new data session: its fd is returned (and kept as `data`, the
   * previous one closed). PRE_COPY → STOP_COPY continues on the same fd.
   *
   * @returns the new session's data fd, or null when the kernel opened none
   * @throws {@link VfioError} ERR_VFIO_MIGRATION_STATE (before any syscall) for a
   *   state the device's flags do not allow, with the reason; the kernel's error
   *   for a transition it refuses
   */
  setState(state: MigrationState): MigrationData | null {
    const why = refusal(state, this.flags.raw);
    if (why !== null) throw new VfioError({ code: 'ERR_VFIO_MIGRATION_STATE', errno: 0, operation: 'migration state', message: `ERR_VFIO_MIGRATION_STATE: ${why}` });
    if (state !== 'RESUMING' && this.#device.driver === 'mtty' && !this.#resuming) checkMigrationLeave(this.#device.driver, this.state, false);
    const r = native().deviceMigState(this.#device.handle('migration state'), MIGRATION_STATES[state]);
    this.#resuming = state === 'RESUMING'; // the SET succeeded: the device is where it was asked to be
    if (r.data === null) return null;
    const d = new MigrationData(r.data, this.#device.name);
    this.#device.own(d);
    this.#data?.close();
    this.#data = d;
    return d;
  }

  /** MIG_DATA_SIZE: the kernel's estimate of the STOP_COPY stream's length, in bytes. */
  dataSize(): bigint {
    return view(this.#device.featureGet(VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, LAYOUTS.vfio_device_feature_mig_data_size.size), 'vfio_device_feature_mig_data_size').u64('stop_copy_length');
  }

  /**
   * VFIO_MIG_GET_PRECOPY_INFO on the current PRE_COPY session's fd.
   *
   * @throws {@link VfioError} EINVAL outside PRE_COPY
   */
  precopyInfo(): PrecopyInfo {
    const d = this.data;
    if (!d) throw new VfioError({ code: 'EINVAL', errno: EINVAL, operation: 'VFIO_MIG_GET_PRECOPY_INFO', message: 'EINVAL: no migration data session is open: setState(\'PRE_COPY\') first' });
    return d.precopyInfo();
  }

  /** The state after a failure, for the error: null when even that read fails. */
  #stateAfterFailure(): MigrationState | `STATE${number}` | null {
    try {
      return this.state;
    } catch {
      return null;
    }
  }

  /** @internal Wraps a failure part way into a MigrationError naming the state the device is left in. */
  failed(e: unknown, what: string): MigrationError {
    if (e instanceof MigrationError) return e;
    return new MigrationError(e, this.#device.name, this.#stateAfterFailure(), what);
  }

  /** @internal Reads what PRE_COPY has for now (initial + dirty bytes) into `sink`; returns the bytes read. */
  async drainPrecopyInto(d: MigrationData, sink: (b: Buffer) => Promise<void> | void, chunk = CHUNK): Promise<number> {
    let total = 0;
    for (;;) {
      const { initialBytes, dirtyBytes } = d.precopyInfo();
      const left = initialBytes + dirtyBytes;
      if (left === 0n) return total;
      const b = await d.read(Number(left < BigInt(chunk) ? left : BigInt(chunk)));
      if (b.length === 0) return total;
      total += b.length;
      await sink(b);
    }
  }

  /** @internal Reads a STOP_COPY session to its end into `sink`; returns the bytes read. */
  async drainStopCopyInto(d: MigrationData, sink: (b: Buffer) => Promise<void> | void, chunk = CHUNK): Promise<number> {
    let total = 0;
    for (;;) {
      const b = await d.read(chunk);
      if (b.length === 0) return total;
      total += b.length;
      await sink(b);
    }
  }

  /**
   * The device's saved state as a stream. Reading it drives RUNNING →
   * (PRE_COPY →) STOP_COPY, reads the data fd to its end and leaves the device
   * in STOP (or RUNNING with `then`). Nothing happens until the stream is read.
   *
   * @throws {@link VfioError} ERR_VFIO_MIGRATION_STATE at once when the device cannot
   *   do it (no STOP_COPY; `precopy` without PRE_COPY). Failures later are the
   *   stream's 'error': a {@link MigrationError} naming the state the device was left in.
   */
  save(options: SaveOptions = {}): Readable {
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    const precopy = options.precopy === true;
    const then = options.then ?? 'STOP';
    const chunk = options.chunkSize ?? CHUNK;
    if (!Number.isInteger(chunk) || chunk < 1 || chunk > 64 * CHUNK) throw new RangeError(`chunkSize must be 1..${64 * CHUNK}, got ${String(chunk)}`);
    if (then !== 'STOP' && then !== 'RUNNING') throw new TypeError(`then must be 'STOP' or 'RUNNING', got ${String(then)}`);
    const why = refusal('STOP_COPY', this.flags.raw) ?? (precopy ? refusal('PRE_COPY', this.flags.raw) : null);
    if (why !== null) throw new VfioError({ code: 'ERR_VFIO_MIGRATION_STATE', errno: 0, operation: 'migration save', message: `ERR_VFIO_MIGRATION_STATE: ${why}` });
    const chunks: Buffer[] = [];
    let done = false;
    let waiting: (() => void) | null = null;
    const run = async (): Promise<void> => {
      try {
        await steps();
      } catch (e) {
        throw this.failed(e, 'migration save');
      }
    };
    const steps = async (): Promise<void> => {
      const sink = (b: Buffer): void => {
        chunks.push(b);
        waiting?.();
      };
      if (precopy) {
        const d = this.setState('PRE_COPY');
        if (!d) throw new Error('internal: PRE_COPY opened no data fd');
        await this.drainPrecopyInto(d, sink, chunk);
        this.setState('STOP_COPY'); // the same fd goes on
        await this.drainStopCopyInto(d, sink, chunk);
      } else {
        const d = this.setState('STOP_COPY') ?? this.data;
        if (!d) throw new Error('internal: STOP_COPY opened no data fd');
        await this.drainStopCopyInto(d, sink, chunk);
      }
      this.setState(then);
      this.#data?.close();
    };
    let started: Promise<void> | null = null;
    let failure: unknown = null;
    return new Readable({
      read(this: Readable): void {
        if (started === null) {
          started = run().then(
            () => {
              done = true;
              waiting?.();
            },
            (e: unknown) => {
              failure = e;
              waiting?.();
            },
          );
        }
        const pump = (): void => {
          waiting = null;
          while (chunks.length > 0) if (!this.push(chunks.shift())) return;
          if (failure !== null) this.destroy(failure as Error);
          else if (done) this.push(null);
          else waiting = pump;
        };
        pump();
      },
    });
  }

  /** {@link Migration.save} collected into one Buffer. */
  async saveToBuffer(options: SaveOptions = {}): Promise<Buffer> {
    const parts: Buffer[] = [];
    const stream = this.save(options); // bad options throw here, before anything happens
    try {
      for await (const b of stream) parts.push(b as Buffer);
    } catch (e) {
      throw this.failed(e, 'migration save');
    }
    return Buffer.concat(parts);
  }

  /**
   * Loads a saved state: STOP → RESUMING, writes the stream, then STOP (and
   * RUNNING with `resume`). From RUNNING the kernel goes through STOP first.
   *
   * @returns the bytes written
   * @throws {@link MigrationError} naming the state the device is left in: EFAULT
   *   for a stream from an incompatible device, ENOMEM for too much data, EINVAL
   *   (on leaving RESUMING) for too little
   */
  async load(source: Readable | AsyncIterable<Uint8Array> | Uint8Array, options: LoadOptions = {}): Promise<LoadResult> {
    const why = refusal('RESUMING', this.flags.raw);
    if (why !== null) throw new VfioError({ code: 'ERR_VFIO_MIGRATION_STATE', errno: 0, operation: 'migration load', message: `ERR_VFIO_MIGRATION_STATE: ${why}` });
    const iterable = (v: unknown): boolean => v !== null && typeof v === 'object' && (Symbol.asyncIterator in v || Symbol.iterator in v);
    if (!(source instanceof Uint8Array) && !iterable(source)) throw new TypeError(`source must be a Uint8Array, a Readable or an (async) iterable of Uint8Array, got ${source === null ? 'null' : typeof source}`);
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    let bytes = 0;
    try {
      const d = this.setState('RESUMING');
      if (!d) throw new Error('internal: RESUMING opened no data fd');
      const put = async (b: Uint8Array): Promise<void> => {
        for (let off = 0; off < b.length; off += CHUNK) {
          const part = b.subarray(off, Math.min(b.length, off + CHUNK));
          try {
            bytes += await d.write(part);
          } catch (e) {
            throw this.#tooMuch(e, bytes, part.length);
          }
        }
      };
      if (source instanceof Uint8Array) await put(source);
      else
        for await (const b of source as AsyncIterable<unknown>) {
          if (typeof b === 'string') await put(Buffer.from(b));
          else if (b instanceof Uint8Array) await put(b);
          else throw new TypeError(`the stream gave a ${b === null ? 'null' : typeof b}, not bytes`);
        }
      this.finishResume(bytes);
      if (options.resume === true) this.setState('RUNNING');
      this.#data?.close();
    } catch (e) {
      throw this.failed(e, 'migration load');
    }
    return { bytes };
  }

  /** An ENOMEM from a resume write, told in the stream's terms: what the device took, and its own state size. */
  #tooMuch(e: unknown, took: number, offered: number): unknown {
    if (!(e instanceof VfioError) || e.code !== 'ENOMEM') return e;
    let size = '';
    try {
      size = `, its MIG_DATA_SIZE ${this.dataSize()}`;
    } catch {
      // the estimate is optional
    }
    return new VfioError({
      code: 'ENOMEM',
      errno: 12,
      syscall: e.syscall,
      operation: e.operation,
      path: e.path,
      message: `ENOMEM: the device took ${took} of ${took + offered} bytes offered and refused the rest${size}: the stream is longer than its state`,
      cause: e,
    });
  }

  /** @internal RESUMING → STOP, where the device checks it got its whole state (EINVAL: short data). */
  finishResume(bytes: number): void {
    try {
      this.setState('STOP');
    } catch (e) {
      if (e instanceof VfioError && e.code === 'EINVAL') {
        throw new VfioError({
          code: 'EINVAL',
          errno: EINVAL,
          syscall: 'ioctl',
          operation: 'VFIO_DEVICE_FEATURE MIG_DEVICE_STATE',
          path: e.path,
          message: `EINVAL: the device refused to leave RESUMING after ${bytes} bytes: the stream is short of the device's state`,
          hint: 'short data: the stream was cut off, or comes from a device with less state (save it again, whole)',
          cause: e,
        });
      }
      throw e;
    }
  }

  /**
   * Brings the device back to RUNNING after a failure: asks for RUNNING, and
   * where the kernel refuses (ERROR, or a RESUMING it cannot leave) resets the
   * device, which returns it to RUNNING. Closes any data session.
   *
   * @returns the state afterwards
   */
  recover(): MigrationState | `STATE${number}` {
    this.#data?.close();
    this.#data = null;
    let s = this.#stateAfterFailure();
    if (s === 'RUNNING') return s;
    // mtty in a RESUMING it cannot leave safely goes straight to the reset.
    const trapped = this.#device.driver === 'mtty' && s === 'RESUMING' && !this.#resuming;
    if (s !== 'ERROR' && !trapped) {
      try {
        this.setState('RUNNING');
        return this.state;
      } catch {
        // fall through to the reset
      }
    }
    this.#device.reset();
    this.#resuming = false;
    s = this.state;
    return s;
  }

  /** @internal Before the device closes: mtty keeps a non-RUNNING state across close, a trap for the next opener (see quirks.ts). */
  beforeClose(): void {
    try {
      const s = this.state;
      if (resetMigrationBeforeClose(this.#device.driver, s)) this.#device.reset();
    } catch {
      // closing anyway
    }
  }
}

/** Options of {@link migrate}. */
export interface MigrateOptions {
  /** Stream PRE_COPY data while the source still runs (default: when the source offers PRE_COPY). */
  precopy?: boolean;
  /** At most this many PRE_COPY rounds (default 8). */
  maxPrecopyRounds?: number;
  /** The source's state afterwards: 'STOP' (default, a migration) or 'RUNNING' (a clone). */
  source?: 'STOP' | 'RUNNING';
  /** The target's state afterwards: 'RUNNING' (default) or 'STOP'. */
  target?: 'RUNNING' | 'STOP';
}

/** What {@link migrate} did. */
export interface MigrateResult {
  /** Bytes moved in all. */
  bytes: number;
  /** Of which while the source still ran (PRE_COPY). */
  precopyBytes: number;
  /** PRE_COPY rounds that moved data. */
  precopyRounds: number;
  /** Milliseconds from the source leaving its running state to the target's final state: the downtime. */
  downtimeMs: number;
  /** Milliseconds for the whole migration. */
  totalMs: number;
  /** The state the source was left in. */
  sourceState: string;
  /** The state the target was left in. */
  targetState: string;
}

/**
 * Moves `source`'s state into `target`: the target to RESUMING, PRE_COPY rounds
 * (driven by VFIO_MIG_GET_PRECOPY_INFO) while the source runs, then the source
 * to STOP_COPY and the rest of its stream, then the target to STOP and RUNNING.
 * The downtime is measured from the source stopping to the target running.
 *
 * @throws {@link VfioError} ERR_VFIO_MIGRATION_STATE before anything happens when either device cannot migrate
 * @throws {@link MigrationError} for a failure part way, naming the device and the state it was left in
 */
export async function migrate(source: Device, target: Device, options: MigrateOptions = {}): Promise<MigrateResult> {
  const src = source.migration;
  const dst = target.migration;
  const missing = (d: Device): VfioError =>
    new VfioError({ code: 'ERR_VFIO_MIGRATION_STATE', errno: 0, operation: 'migrate', message: `ERR_VFIO_MIGRATION_STATE: ${d.name} (${d.driver ?? 'unknown driver'}) does not support migration` });
  if (!src) throw missing(source);
  if (!dst) throw missing(target);
  const precopy = options.precopy ?? src.flags.preCopy;
  const why = refusal('STOP_COPY', src.flags.raw) ?? refusal('RESUMING', dst.flags.raw) ?? (precopy ? refusal('PRE_COPY', src.flags.raw) : null);
  if (why !== null) throw new VfioError({ code: 'ERR_VFIO_MIGRATION_STATE', errno: 0, operation: 'migrate', message: `ERR_VFIO_MIGRATION_STATE: ${why}` });
  const maxRounds = options.maxPrecopyRounds ?? 8;
  if (!Number.isInteger(maxRounds) || maxRounds < 0) throw new RangeError(`maxPrecopyRounds must be a whole number, got ${String(maxRounds)}`);
  if (options.source !== undefined && options.source !== 'STOP' && options.source !== 'RUNNING') throw new TypeError(`source must be 'STOP' or 'RUNNING', got ${String(options.source)}`);
  if (options.target !== undefined && options.target !== 'RUNNING' && options.target !== 'STOP') throw new TypeError(`target must be 'RUNNING' or 'STOP', got ${String(options.target)}`);
  const t0 = performance.now();
  let bytes = 0;
  let precopyBytes = 0;
  let rounds = 0;
  let stopped = 0;
  let side: 'source' | 'target' = 'target';
  try {
    const out = dst.setState('RESUMING');
    if (!out) throw new Error('internal: RESUMING opened no data fd');
    const sink = async (b: Buffer): Promise<void> => {
      side = 'target';
      await out.write(b);
      bytes += b.length;
      side = 'source';
    };
    side = 'source';
    let d: MigrationData | null = null;
    if (precopy) {
      d = src.setState('PRE_COPY');
      if (!d) throw new Error('internal: PRE_COPY opened no data fd');
      for (; rounds < maxRounds; rounds++) {
        const n = await src.drainPrecopyInto(d, sink);
        if (n === 0) break;
        precopyBytes += n;
      }
    }
    stopped = performance.now();
    const fresh = src.setState('STOP_COPY');
    d = fresh ?? d;
    if (!d) throw new Error('internal: STOP_COPY opened no data fd');
    await src.drainStopCopyInto(d, sink);
    src.setState(options.source ?? 'STOP');
    src.data?.close();
    side = 'target';
    dst.finishResume(bytes);
    if ((options.target ?? 'RUNNING') === 'RUNNING') dst.setState('RUNNING');
    dst.data?.close();
  } catch (e) {
    throw (side === 'source' ? src : dst).failed(e, `migrate (${side})`);
  }
  const end = performance.now();
  return {
    bytes,
    precopyBytes,
    precopyRounds: rounds,
    downtimeMs: end - (stopped || t0),
    totalMs: end - t0,
    sourceState: src.state,
    targetState: dst.state,
  };
}
