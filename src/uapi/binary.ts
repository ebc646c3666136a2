/**
 * Little-endian readers and writers over the uapi structs in {@link LAYOUTS},
 * plus the argument checks the encoders share. Every read is bounds-checked:
 * kernel data that is too short throws a {@link VfioError}, never a
 * RangeError from Buffer and never a read past the end.
 */
import { VfioError } from '../errors.js';
import { LAYOUTS, offsetOf, type FieldName, type StructName } from './layouts.js';

/**
 * The `code` of the {@link VfioError} a decoder throws when the kernel's
 * reply is shorter than its struct's fixed part (or than what it says it holds).
 */
export const ERR_VFIO_BAD_STRUCT = 'ERR_VFIO_BAD_STRUCT';
/**
 * The `code` of the {@link VfioError} a decoder throws when a capability
 * chain is malformed: a `next` offset out of bounds, misaligned or going
 * backwards (a loop), or more than 64 capabilities.
 */
export const ERR_VFIO_BAD_CAP_CHAIN = 'ERR_VFIO_BAD_CAP_CHAIN';
/** The `code` of the {@link VfioError} a decoder throws when one capability's contents do not fit the bytes it occupies. */
export const ERR_VFIO_BAD_CAP = 'ERR_VFIO_BAD_CAP';

/** A VfioError for malformed kernel data; the message starts with the code. @internal */
export function malformed(code: string, message: string): VfioError {
  return new VfioError({ code, message: `${code}: ${message}` });
}

/** Throws a TypeError unless `buf` is a Uint8Array (a Buffer is one); returns it as a Buffer view. @internal */
export function asBuffer(buf: unknown, what = 'buffer'): Buffer {
  if (Buffer.isBuffer(buf)) return buf;
  if (buf instanceof Uint8Array) return Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  throw new TypeError(`${what} must be a Buffer or Uint8Array, got ${describe(buf)}`);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? `an instance of ${(v as object).constructor?.name ?? 'Object'}` : typeof v;
}

/** Hex with a 0x prefix, for messages. @internal */
export function hex(n: number | bigint): string {
  return `0x${n.toString(16)}`;
}

/**
 * Bounds-checked reads of one struct at `base` inside a buffer. Field offsets
 * come from {@link LAYOUTS}; a field that lies past the end of the buffer
 * throws {@link ERR_VFIO_BAD_STRUCT}.
 *
 * @internal
 */
export class StructView<S extends StructName> {
  /**
   * @param buf   the bytes the kernel returned
   * @param struct the struct's kernel name
   * @param base  where the struct starts in `buf`
   * @param need  how many bytes from `base` must exist (default: the struct's size)
   */
  constructor(
    readonly buf: Buffer,
    readonly struct: S,
    readonly base = 0,
    need: number = LAYOUTS[struct].size,
  ) {
    if (base < 0 || base + need > buf.length) {
      throw malformed(
        ERR_VFIO_BAD_STRUCT,
        `struct ${struct} needs ${need} bytes at offset ${base}, but the buffer holds ${buf.length}`,
      );
    }
  }

  /** The absolute offset of a field in the buffer. */
  at(field: FieldName<S>): number {
    return this.base + offsetOf(this.struct, field);
  }

  /** Whether `width` bytes of the field are inside the buffer. */
  has(field: FieldName<S>, width: number): boolean {
    return this.at(field) + width <= this.buf.length;
  }

  private pos(field: FieldName<S>, width: number): number {
    const p = this.at(field);
    if (p + width > this.buf.length) {
      throw malformed(
        ERR_VFIO_BAD_STRUCT,
        `${this.struct}.${field} (${width} bytes at offset ${p}) lies past the end of a ${this.buf.length}-byte buffer`,
      );
    }
    return p;
  }

  /** Reads a `__u8` field. */
  u8(field: FieldName<S>): number {
    return this.buf.readUInt8(this.pos(field, 1));
  }
  /** Reads a little-endian `__u16` field. */
  u16(field: FieldName<S>): number {
    return this.buf.readUInt16LE(this.pos(field, 2));
  }
  /** Reads a little-endian `__u32` field. */
  u32(field: FieldName<S>): number {
    return this.buf.readUInt32LE(this.pos(field, 4));
  }
  /** Reads a little-endian `__s32` field. */
  s32(field: FieldName<S>): number {
    return this.buf.readInt32LE(this.pos(field, 4));
  }
  /** Reads a little-endian `__u64` field as a bigint. */
  u64(field: FieldName<S>): bigint {
    return this.buf.readBigUInt64LE(this.pos(field, 8));
  }
}

/** Shorthand for `new StructView(buf, struct, base, need)`. @internal */
export function view<S extends StructName>(buf: Buffer, struct: S, base = 0, need?: number): StructView<S> {
  return new StructView(buf, struct, base, need);
}

/**
 * A zeroed buffer for one struct plus `extra` trailing bytes, with field
 * writers. Values must already be validated (see the `check*` helpers).
 *
 * @internal
 */
export class StructWriter<S extends StructName> {
  /** The struct's bytes (size + extra), zero-filled. */
  readonly buf: Buffer;
  /**
   * @param struct the struct's kernel name
   * @param extra  trailing bytes (flexible array data)
   */
  constructor(
    readonly struct: S,
    extra = 0,
  ) {
    this.buf = Buffer.alloc(LAYOUTS[struct].size + extra);
  }
  /** The offset of a field. */
  at(field: FieldName<S>): number {
    return offsetOf(this.struct, field);
  }
  /** Writes a `__u32` field. */
  u32(field: FieldName<S>, v: number): this {
    this.buf.writeUInt32LE(v, this.at(field));
    return this;
  }
  /** Writes an `__s32` field. */
  s32(field: FieldName<S>, v: number): this {
    this.buf.writeInt32LE(v, this.at(field));
    return this;
  }
  /** Writes a `__u64` field. */
  u64(field: FieldName<S>, v: bigint): this {
    this.buf.writeBigUInt64LE(v, this.at(field));
    return this;
  }
}

// ---- argument checks shared by the encoders ------------------------------------

function checkInt(value: unknown, name: string, min: number, max: number, what: string): number {
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number (${what}), got ${describe(value)}`);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be ${what} (${min}..${max}), got ${value}`);
  }
  return value;
}

/** A number that fits `__u32`, else TypeError/RangeError. @internal */
export function checkU32(value: unknown, name: string): number {
  return checkInt(value, name, 0, 0xffff_ffff, 'an unsigned 32-bit integer');
}

/** A number that fits `__s32`, else TypeError/RangeError. @internal */
export function checkS32(value: unknown, name: string): number {
  return checkInt(value, name, -0x8000_0000, 0x7fff_ffff, 'a signed 32-bit integer');
}

/** A file descriptor: 0..2^31-1 (or -1 when `allowMinusOne`). @internal */
export function checkFd(value: unknown, name: string, allowMinusOne = false): number {
  return checkInt(value, name, allowMinusOne ? -1 : 0, 0x7fff_ffff, allowMinusOne ? 'a file descriptor or -1' : 'a file descriptor');
}

/** Throws RangeError when `flags` has bits outside `allowed`. @internal */
export function checkFlagBits(flags: number, allowed: number, name: string): void {
  const extra = (flags & ~allowed) >>> 0;
  if (extra !== 0) throw new RangeError(`${name} has unknown bits ${hex(extra)} (allowed ${hex(allowed)})`);
}

/** The number of set bits of a 32-bit value. @internal */
export function popcount(v: number): number {
  let n = 0;
  for (let x = v >>> 0; x !== 0; x = (x & (x - 1)) >>> 0) n++;
  return n;
}

/**
 * Names of the set bits of `flags`, in bit order, from a `{ NAME: bit }`
 * table; bits the table does not know appear as `BIT<n>`.
 *
 * @param flags - a flags word: an unsigned integer of at most 64 bits
 * @param table - such as {@link DEVICE_FLAGS} or {@link REGION_FLAGS}
 * @throws TypeError when `flags` is not a number or bigint, or a table entry is not a non-negative safe integer; RangeError when it is negative, fractional or wider than 64 bits
 * @example
 * ```ts
 * bitNames(0b1011, REGION_FLAGS); // ['READ', 'WRITE', 'CAPS']
 * ```
 */
export function bitNames(flags: number | bigint, table: Readonly<Record<string, number>>): string[] {
  // Decoders call this on every INFO reply: the table's sorted entries and each
  // flags value's names are computed once (per table object) and copied out.
  if (typeof table !== 'object' || table === null) throw new TypeError(`table must be an object of { NAME: bit } entries, got ${table === null ? 'null' : typeof table}`);
  let memo = BIT_NAMES.get(table);
  if (!memo) {
    const entries = Object.entries(table);
    // Checked once per table: a mask that is not an unsigned safe integer has no bits to compare.
    for (const [name, bit] of entries) {
      if (typeof bit !== 'number' || !Number.isSafeInteger(bit) || bit < 0) throw new TypeError(`table entry ${name} must be a non-negative safe integer bit mask, got ${typeof bit === 'number' ? bit : typeof bit}`);
    }
    memo = { entries: entries.sort((a, b) => a[1] - b[1]), names: new Map() };
    BIT_NAMES.set(table, memo);
  }
  const hit = memo.names.get(flags);
  if (hit) return hit.slice();
  // A flags word is an unsigned integer of at most 64 bits: anything else has no bits to name
  // (and a negative bigint would never shift down to zero).
  if (typeof flags === 'number' ? !Number.isSafeInteger(flags) || flags < 0 : typeof flags !== 'bigint' || flags < 0n || flags >= 1n << 64n) {
    if (typeof flags !== 'number' && typeof flags !== 'bigint') throw new TypeError(`flags must be a number or a bigint, got ${typeof flags}`);
    throw new RangeError(`flags must be an unsigned integer of at most 64 bits, got ${String(flags)}`);
  }
  const v = BigInt(flags);
  const names: string[] = [];
  let known = 0n;
  for (const [name, bit] of memo.entries) {
    known |= BigInt(bit);
    if (bit !== 0 && (v & BigInt(bit)) === BigInt(bit)) names.push(name);
  }
  for (let i = 0n, rest = v & ~known; rest !== 0n; i++, rest >>= 1n) {
    if (rest & 1n) names.push(`BIT${i}`);
  }
  if (memo.names.size < 256) memo.names.set(flags, names.slice());
  return names;
}

const BIT_NAMES = new WeakMap<object, { entries: [string, number][]; names: Map<number | bigint, string[]> }>();
