/**
 * Hostile values: what the fuzzer passes as arguments, valid and invalid.
 *
 * A value is generated as a JSON-serialisable descriptor ({@link Val}) and
 * only turned into the real thing ({@link materialize}) when the command runs,
 * so a recorded command list can be replayed in a fresh child process (or
 * against another commit) and shrunk there. Descriptors may name live objects
 * of the run (`ref`), open fds (`fd`) or the target device (`target`).
 */
import fc from 'fast-check';

/** The kinds of live objects a run keeps (see world.ts). */
export type Kind =
  | 'opened'
  | 'device'
  | 'region'
  | 'view'
  | 'irqs'
  | 'container'
  | 'group'
  | 'iommufd'
  | 'ioas'
  | 'hwpt'
  | 'dmabuf'
  | 'buffer'
  | 'mapper'
  | 'mapping'
  | 'iova'
  | 'eventfd'
  | 'bus'
  | 'edu';

/** Typed-array flavours, including the awkward ones. */
export type BytesKind = 'u8' | 'buf' | 'u16' | 'u32' | 'i8' | 'f64' | 'dv' | 'ab' | 'detached' | 'shared' | 'odd' | 'resizable' | 'dma';

/** What the target device offers as an argument (target.ts fills these in). */
export type TargetField = 'name' | 'upper' | 'short' | 'cdev' | 'group' | 'groupPath' | 'uuidOther' | 'pciOther' | 'cdevOther' | 'backend' | 'otherBackend';

/** A value descriptor. Numbers JSON cannot hold (NaN, ±Infinity, -0) are strings in `v`. */
export type Val =
  | { t: 'num'; v: number | 'NaN' | 'Infinity' | '-Infinity' | '-0' }
  | { t: 'big'; v: string }
  | { t: 'str'; v: string }
  | { t: 'bool'; v: boolean }
  | { t: 'undef' }
  | { t: 'null' }
  | { t: 'sym' }
  | { t: 'fn' }
  | { t: 'boxed'; v: number }
  | { t: 'obj'; v: { [k: string]: Val } }
  | { t: 'arr'; v: Val[] }
  | { t: 'bytes'; kind: BytesKind; len: number; fill: number }
  | { t: 'raw'; hex: string }
  | { t: 'slot'; k: number }
  | { t: 'ref'; kind: Kind; i: number }
  | { t: 'signal'; how: 'timeout' | 'aborted' | 'none'; ms: number }
  | { t: 'fd'; which: FdWhich }
  | { t: 'target'; field: TargetField };

/** Which fd an `fd` descriptor stands for: one of the run's objects, or a stock one. */
export type FdWhich = 'container' | 'group' | 'device' | 'iommufd' | 'eventfd' | 'dmabuf' | 'memfd' | 'stdin' | 'stdout' | 'devnull' | 'closed' | 'minus1' | 'huge';

// ---------------------------------------------------------------------------
// Constructors, for readable tables.

export const num = (v: number): Val => (Number.isNaN(v) ? { t: 'num', v: 'NaN' } : v === Infinity ? { t: 'num', v: 'Infinity' } : v === -Infinity ? { t: 'num', v: '-Infinity' } : Object.is(v, -0) ? { t: 'num', v: '-0' } : { t: 'num', v });
export const big = (v: bigint): Val => ({ t: 'big', v: v.toString() });
export const str = (v: string): Val => ({ t: 'str', v });
export const bool = (v: boolean): Val => ({ t: 'bool', v });
export const undef: Val = { t: 'undef' };
export const obj = (v: { [k: string]: Val }): Val => ({ t: 'obj', v });
export const arr = (v: Val[]): Val => ({ t: 'arr', v });
export const ref = (kind: Kind, i = 0): Val => ({ t: 'ref', kind, i });
export const target = (field: TargetField): Val => ({ t: 'target', field });

// ---------------------------------------------------------------------------
// The hostile pools.

/** Numbers that break careless integer handling. */
export const HOSTILE_NUMBERS = [NaN, Infinity, -Infinity, -0, 0.5, -1, 1.5, 2 ** 31, 2 ** 31 - 1, 2 ** 32, 2 ** 32 - 1, 2 ** 53, 2 ** 53 - 1, 2 ** 53 + 2, 2 ** 63, 2 ** 64, -(2 ** 53), Number.MAX_VALUE, Number.MIN_VALUE, Number.EPSILON];

/** Bigints: negative, at and past the u32/u64 edges, and absurdly wide. */
export const HOSTILE_BIGINTS = [-1n, -(1n << 64n), 0n, 1n << 32n, (1n << 53n) + 1n, 1n << 63n, (1n << 64n) - 1n, 1n << 64n, 1n << 128n, 1n << 4096n];

/** Strings: empty, numeric-looking, paths that are not what is wanted, long, odd. */
export const HOSTILE_STRINGS = ['', '0', '4', 'type1', 'group', 'cdev', '/', '.', '..', '/nonexistent', '/dev/null', '/proc/self', '/tmp', 'relative/path', '/dev/vfio/devices/vfio999', '0x10', ' 1 ', 'NaN', '\u0000', '💥', 'a'.repeat(4097), '00000000-0000-0000-0000-000000000000', '83B8F4F2-509F-482F-BC1E-E6BFE0FA1001', 'not-a-uuid', '0000:00:00.0', '00:03.0', '../../etc/passwd', 'mtty-1', 'mdpy-vga', 'mbochs-small', 'mtty'];

const BYTE_LENGTHS = [0, 1, 2, 3, 4, 5, 7, 8, 15, 16, 24, 32, 255, 256, 4095, 4096, 4097, 65536];

export const hostileNumber: fc.Arbitrary<Val> = fc.constantFrom(...HOSTILE_NUMBERS).map(num);
export const hostileBigint: fc.Arbitrary<Val> = fc.constantFrom(...HOSTILE_BIGINTS).map(big);
export const hostileString: fc.Arbitrary<Val> = fc.oneof(fc.constantFrom(...HOSTILE_STRINGS), fc.string({ maxLength: 12 })).map(str);

/** Typed arrays and friends: odd lengths, detached, shared, DataViews, bare ArrayBuffers. */
export const bytesVal = (lengths: number[] = BYTE_LENGTHS): fc.Arbitrary<Val> =>
  fc.record({
    t: fc.constant('bytes' as const),
    kind: fc.constantFrom<BytesKind>('u8', 'u8', 'buf', 'buf', 'u16', 'u32', 'i8', 'f64', 'dv', 'ab', 'detached', 'shared', 'odd', 'resizable', 'dma'),
    len: fc.constantFrom(...lengths),
    fill: fc.integer({ min: 0, max: 255 }),
  });

/** Anything of the wrong type (and a few of the right type with wrong values). */
export const wrongType: fc.Arbitrary<Val> = fc.oneof(
  fc.constant<Val>(undef),
  fc.constant<Val>({ t: 'null' }),
  fc.constant<Val>({ t: 'sym' }),
  fc.constant<Val>({ t: 'fn' }),
  fc.integer({ min: 0, max: 8 }).map((v): Val => ({ t: 'boxed', v })),
  fc.boolean().map(bool),
  hostileString,
  fc.constant(obj({})),
  fc.constant(arr([])),
  fc.constant(arr([num(1), num(2)])),
  bytesVal([0, 3, 8]),
);

/** Any hostile value at all. */
export const hostile: fc.Arbitrary<Val> = fc.oneof({ weight: 3, arbitrary: hostileNumber }, { weight: 3, arbitrary: hostileBigint }, { weight: 3, arbitrary: wrongType });

/**
 * An unsigned integer argument (offset, size, index, IOVA…): mostly the
 * interesting valid values given (as numbers or bigints), their neighbours
 * (±1, ±page), and sometimes something hostile.
 */
export function uint(interesting: readonly (number | bigint)[], hostileWeight = 1): fc.Arbitrary<Val> {
  const base = interesting.length ? interesting : [0];
  const near = fc.tuple(fc.constantFrom(...base), fc.constantFrom(-4096, -8, -2, -1, 1, 2, 3, 4, 8, 4096)).map(([v, d]) => (typeof v === 'bigint' ? v + BigInt(d) : v + d));
  const asVal = (v: number | bigint, asBig: boolean): Val => (typeof v === 'bigint' ? (asBig || v > BigInt(Number.MAX_SAFE_INTEGER) || v < 0n ? big(v) : num(Number(v))) : asBig && Number.isInteger(v) ? big(BigInt(v)) : num(v));
  return fc.oneof(
    { weight: 8, arbitrary: fc.tuple(fc.constantFrom(...base), fc.boolean()).map(([v, b]) => asVal(v, b)) },
    { weight: 3, arbitrary: fc.tuple(near, fc.boolean()).map(([v, b]) => asVal(v, b)) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 0x1_0000 }).map(num) },
    { weight: hostileWeight, arbitrary: hostile },
  );
}

/** A small index (region, IRQ, area, feature…): the interesting ones, small ints, or hostile. */
export function index(interesting: readonly number[]): fc.Arbitrary<Val> {
  return fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...interesting).map(num) }, { weight: 2, arbitrary: fc.integer({ min: 0, max: 20 }).map(num) }, { weight: 1, arbitrary: hostile });
}

/** A register value of `width` bytes: 0, all ones, single bits, random, or hostile. */
export function regValue(width: 1 | 2 | 4 | 8, interesting: readonly number[] = []): fc.Arbitrary<Val> {
  const max = width === 8 ? 2 ** 53 - 1 : 2 ** (8 * width) - 1;
  const valid = fc.oneof(
    fc.constantFrom(0, max, 1, 2, 4, 0x80, ...interesting.filter((v) => v <= max)),
    fc.integer({ min: 0, max: Math.min(max, 0x7fffffff) }),
    fc.nat({ max: 8 * width - 1 }).map((b) => (width === 8 ? 2 ** b : (1 << b) >>> 0)),
  );
  if (width === 8) {
    return fc.oneof({ weight: 6, arbitrary: valid.map((v) => big(BigInt(v))) }, { weight: 1, arbitrary: valid.map(num) }, { weight: 1, arbitrary: hostile });
  }
  return fc.oneof({ weight: 8, arbitrary: valid.map(num) }, { weight: 1, arbitrary: hostile });
}

/**
 * Raw bytes for the decoders: random, or a little-endian u32 header of
 * plausible values (argsz equal to the length, small counts and offsets) followed by noise.
 */
export const rawBytes = (maxLength = 96): fc.Arbitrary<Val> =>
  fc
    .tuple(fc.uint8Array({ maxLength }), fc.boolean(), fc.array(fc.constantFrom(0, 1, 2, 3, 8, 16, 24, 32, 0xffffffff), { minLength: 0, maxLength: 6 }))
    .map(([noise, header, words]): Val => {
      const b = Buffer.from(noise);
      if (header && b.length >= 4) {
        b.writeUInt32LE(b.length, 0);
        words.forEach((w, i) => {
          if (4 * (i + 1) + 4 <= b.length) b.writeUInt32LE(w >>> 0, 4 * (i + 1));
        });
      }
      return { t: 'raw', hex: b.toString('hex') };
    });

/** An AbortSignal argument: one that aborts after `ms`, one already aborted, or none. */
export const signalVal: fc.Arbitrary<Val> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(0, 1, 5, 20, 100).map((ms): Val => ({ t: 'signal', how: 'timeout', ms })) },
  { weight: 1, arbitrary: fc.constant<Val>({ t: 'signal', how: 'aborted', ms: 0 }) },
  { weight: 1, arbitrary: fc.constant<Val>({ t: 'signal', how: 'none', ms: 0 }) },
);

/** An fd number: one of the run's own, a stock one, a closed one, or a silly number. */
export const fdVal: fc.Arbitrary<Val> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom<FdWhich>('container', 'group', 'device', 'iommufd', 'eventfd', 'dmabuf', 'memfd').map((which): Val => ({ t: 'fd', which })) },
  { weight: 3, arbitrary: fc.constantFrom<FdWhich>('stdin', 'stdout', 'devnull', 'closed', 'minus1', 'huge').map((which): Val => ({ t: 'fd', which })) },
  { weight: 1, arbitrary: hostile },
);

/** A run object of one of `kinds` (the index picks among those of that kind, modulo their number). */
export function refOf(...kinds: Kind[]): fc.Arbitrary<Val> {
  return fc.tuple(fc.constantFrom(...kinds), fc.nat({ max: 7 })).map(([kind, i]) => ref(kind, i));
}

/** Sometimes an absent optional argument, else `a`. */
export function opt(a: fc.Arbitrary<Val>, absent = 1, present = 3): fc.Arbitrary<Val> {
  return fc.oneof({ weight: absent, arbitrary: fc.constant(undef) }, { weight: present, arbitrary: a });
}

/** An options object whose properties are each present or absent. */
export function options(props: { [k: string]: fc.Arbitrary<Val> }): fc.Arbitrary<Val> {
  const entries = Object.entries(props);
  return fc.oneof(
    { weight: 1, arbitrary: wrongType },
    {
      weight: 8,
      arbitrary: fc.tuple(...entries.map(([, a]) => opt(a))).map((vals) => {
        const o: { [k: string]: Val } = {};
        vals.forEach((v, i) => {
          if (v.t !== 'undef') o[entries[i]![0]] = v;
        });
        return obj(o);
      }),
    },
  );
}

/**
 * An offset chosen among the interesting ones of the region the call lands
 * on (known only when it runs): the `k`th of them, modulo their number.
 */
export class Slot {
  constructor(readonly k: number) {}
}

/** An offset argument: mostly a slot of the receiver's region, sometimes a neighbour of any interesting offset, or hostile. */
export function offsetArb(anyInteresting: readonly (number | bigint)[]): fc.Arbitrary<Val> {
  return fc.oneof({ weight: 3, arbitrary: fc.nat(63).map((k): Val => ({ t: 'slot', k })) }, { weight: 2, arbitrary: uint(anyInteresting) });
}

// ---------------------------------------------------------------------------
// Materialising.

/** What materialize() needs from the run: its objects, fds and the target. */
export interface Resolver {
  ref(kind: Kind, i: number): unknown;
  fd(which: FdWhich): number;
  target(field: TargetField): unknown;
  /** A live DmaBuffer's memory, for 'dma' byte views (undefined when there is none). */
  dmaMemory(): ArrayBuffer | undefined;
  /** Called for every AbortSignal made, so the run can wait for them. */
  signals: AbortSignal[];
}

function makeBytes(kind: BytesKind, len: number, fill: number, r: Resolver): unknown {
  const u8 = (ab: ArrayBufferLike, off = 0, n = len): Uint8Array => new Uint8Array(ab, off, n).fill(fill);
  switch (kind) {
    case 'u8':
      return new Uint8Array(len).fill(fill);
    case 'buf':
      return Buffer.alloc(len, fill);
    case 'u16':
      return new Uint16Array(len).fill(fill * 257);
    case 'u32':
      return new Uint32Array(len).fill(fill * 0x01010101);
    case 'i8':
      return new Int8Array(len).fill(fill - 128);
    case 'f64':
      return new Float64Array(len).fill(fill / 3);
    case 'dv':
      return new DataView(new ArrayBuffer(len));
    case 'ab':
      return new ArrayBuffer(len);
    case 'detached': {
      const ab = new ArrayBuffer(len);
      const view = u8(ab);
      structuredClone(ab, { transfer: [ab] });
      return view;
    }
    case 'shared':
      return u8(new SharedArrayBuffer(len));
    case 'odd': {
      // A view at an odd offset into a larger buffer, of an odd length.
      const n = len % 2 ? len : len + 1;
      return u8(new ArrayBuffer(n + 2), 1, n);
    }
    case 'resizable': {
      const ab = new (ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer)(len, { maxByteLength: len + 64 });
      return new Uint8Array(ab).fill(fill);
    }
    case 'dma': {
      const mem = r.dmaMemory();
      if (!mem || mem.byteLength === 0) return new Uint8Array(len);
      return new Uint8Array(mem, 0, Math.min(len, mem.byteLength));
    }
  }
}

/** Turns a descriptor into the value passed to the API. */
export function materialize(v: Val, r: Resolver): unknown {
  switch (v.t) {
    case 'num':
      return typeof v.v === 'number' ? v.v : v.v === '-0' ? -0 : Number(v.v);
    case 'big':
      return BigInt(v.v);
    case 'str':
      return v.v;
    case 'bool':
      return v.v;
    case 'undef':
      return undefined;
    case 'null':
      return null;
    case 'sym':
      return Symbol('fuzz');
    case 'fn':
      return () => 4;
    case 'boxed':
      return { valueOf: () => v.v, toString: () => String(v.v) };
    case 'obj':
      return Object.fromEntries(Object.entries(v.v).map(([k, x]) => [k, materialize(x, r)]));
    case 'arr':
      return v.v.map((x) => materialize(x, r));
    case 'bytes':
      return makeBytes(v.kind, v.len, v.fill, r);
    case 'raw':
      return Buffer.from(v.hex, 'hex');
    case 'slot':
      return new Slot(v.k);
    case 'ref':
      return r.ref(v.kind, v.i);
    case 'signal': {
      if (v.how === 'none') return undefined;
      const s = v.how === 'aborted' ? AbortSignal.abort() : AbortSignal.timeout(v.ms);
      r.signals.push(s);
      return s;
    }
    case 'fd':
      return r.fd(v.which);
    case 'target':
      return r.target(v.field);
  }
}

/** A short human-readable form of a descriptor, for reports. */
export function show(v: Val): string {
  switch (v.t) {
    case 'num':
      return String(v.v);
    case 'big':
      return v.v.length > 24 ? `${v.v.slice(0, 8)}…(${v.v.length} digits)n` : `${v.v}n`;
    case 'str':
      return JSON.stringify(v.v.length > 40 ? `${v.v.slice(0, 20)}…(${v.v.length})` : v.v);
    case 'bool':
      return String(v.v);
    case 'undef':
      return 'undefined';
    case 'null':
      return 'null';
    case 'sym':
      return 'Symbol()';
    case 'fn':
      return '() => 4';
    case 'boxed':
      return `{valueOf: ${v.v}}`;
    case 'obj':
      return `{ ${Object.entries(v.v)
        .map(([k, x]) => `${k}: ${show(x)}`)
        .join(', ')} }`;
    case 'arr':
      return `[${v.v.map(show).join(', ')}]`;
    case 'bytes':
      return `${v.kind}[${v.len}]`;
    case 'raw':
      return `<${v.hex.length > 32 ? `${v.hex.slice(0, 32)}…(${v.hex.length / 2} bytes)` : v.hex}>`;
    case 'slot':
      return `offset#${v.k}`;
    case 'ref':
      return `${v.kind}#${v.i}`;
    case 'signal':
      return v.how === 'timeout' ? `AbortSignal.timeout(${v.ms})` : v.how === 'aborted' ? 'AbortSignal.abort()' : 'undefined';
    case 'fd':
      return `fd(${v.which})`;
    case 'target':
      return `target.${v.field}`;
  }
}

/** The value as an unsigned integer when it is one (number or bigint, -0 counts as 0), else null. */
export function asUint(x: unknown): bigint | null {
  if (typeof x === 'number') return Number.isSafeInteger(x) && x >= 0 ? BigInt(x) : null;
  if (typeof x === 'bigint') return x >= 0n ? x : null;
  return null;
}
