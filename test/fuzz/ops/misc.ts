/**
 * Operations off the device path: MdevBus (the mdev lifecycle), the `vfio`
 * CLI run in-process, the pure uapi/PCI codecs, the EduDriver, and plain
 * asynchronous interleaving (timers, waiting for what is pending).
 */
import fc from 'fast-check';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { classifyCli } from '../classify.js';
import type { OpCtx, OpDef } from './types.js';
import { result } from './types.js';
import { rootArb } from './device.js';
import { arr, asUint, big, bytesVal, fdVal, hostile, hostileString, index, num, obj, opt, options, rawBytes, str, target, uint, wrongType, type Val } from '../values.js';
import type { Entry } from '../world.js';
import { registerOpened } from './device.js';

const A = (...a: fc.Arbitrary<Val>[]): fc.Arbitrary<Val[]> => fc.tuple(...a);
const none = (): fc.Arbitrary<Val[]> => fc.constant([]);

/** Stands for an mdev this run created (or a fresh UUID when there is none). */
const CREATED = '@created';
/** Stands for a file in the run's temporary directory. */
const TMP_FILE = '@tmp/shot.png';
/** How many mdevs one run may create (the pools are small: mdpy has 4 instances). */
const MAX_CREATED = 2;

const TYPES = ['mtty-1', 'mtty-2', 'mdpy-vga', 'mbochs-small', 'mbochs-medium'];
const typeArb: fc.Arbitrary<Val> = fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...TYPES).map(str) }, { weight: 1, arbitrary: fc.constantFrom(str('mtty-3'), str(''), str('../mtty-1'), str('mtty')) }, { weight: 1, arbitrary: wrongType });
const parentArb: fc.Arbitrary<Val> = fc.oneof(fc.constantFrom(str('mtty'), str('mdpy'), str('mbochs'), str('nope'), str(''), str('..'), str('mtty/../mdpy')), wrongType);
const uuidArb: fc.Arbitrary<Val> = fc.oneof(
  { weight: 4, arbitrary: fc.constant(str(CREATED)) },
  { weight: 2, arbitrary: fc.constantFrom(target('uuidOther'), target('name'), target('upper')) },
  { weight: 1, arbitrary: hostileString },
  { weight: 1, arbitrary: wrongType },
);
const timeoutMsArb: fc.Arbitrary<Val> = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(num(500), num(2000)) }, { weight: 1, arbitrary: fc.constantFrom(num(0), num(-1), num(NaN), num(1.5)) }, { weight: 1, arbitrary: wrongType });

/** Replaces the markers by this run's values. */
function resolveMarker(x: OpCtx, v: unknown): unknown {
  if (v === CREATED) return [...x.w.createdMdevs][0] ?? x.t.fields.uuidOther;
  if (v === TMP_FILE) return join(x.w.tmpDir, 'shot.png');
  return v;
}

/** Whether this thread holds the target open through the library (so removing it must be refused with EBUSY). */
function holdsTarget(x: OpCtx): boolean {
  return x.w.all('device').some((e) => e.state !== 'closed' && e.obj.closed === false && String(e.obj.name).toLowerCase() === x.t.device.toLowerCase());
}

const isTarget = (x: OpCtx, v: unknown): boolean => typeof v === 'string' && v.trim().toLowerCase() === x.t.device.toLowerCase();

/** Removing the target is only tried while this thread holds it (it must then be refused): never really removed. */
function removeGuard(x: OpCtx, uuid: unknown): string | null {
  if (isTarget(x, uuid) && !holdsTarget(x)) return 'would remove the target device';
  return null;
}

/**
 * Removing the target while this thread holds it must be refused (EBUSY, or
 * an argument error before anything is written), and the device must still
 * be there: never a removal that blocks (ETIMEDOUT) or goes through.
 */
function targetSurvived(x: OpCtx, refused: boolean, code: string | undefined): string | null {
  if (x.t.driver !== 'vfio-pci' && !existsSync(`/sys/bus/mdev/devices/${x.t.device}`)) return 'the target is gone';
  if (!refused) return 'the removal was not refused';
  if (code === 'ETIMEDOUT') return 'the removal was attempted (ETIMEDOUT) instead of refused';
  return null;
}

function mustBeBusy(x: OpCtx, uuid: unknown, error: unknown, threw: boolean): { kind: 'leak'; detail: string } | null {
  if (!isTarget(x, uuid)) return null;
  const why = targetSurvived(x, threw, (error as { code?: string })?.code);
  return why ? { kind: 'leak', detail: `removing the target while this process holds it open: ${why}` } : null;
}

// ---------------------------------------------------------------------------
// The CLI, in-process (src/cli/vfio.ts main(argv, io)).

const devArb: fc.Arbitrary<Val> = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(target('name'), target('cdev')) }, { weight: 1, arbitrary: fc.constantFrom(target('uuidOther'), target('short'), target('upper')) }, { weight: 1, arbitrary: hostileString });
const flag = (f: string): fc.Arbitrary<Val[]> => fc.oneof(fc.constant<Val[]>([]), fc.constant<Val[]>([str(f)]));
const withValue = (f: string, v: fc.Arbitrary<Val>): fc.Arbitrary<Val[]> => fc.oneof({ weight: 2, arbitrary: fc.constant<Val[]>([]) }, { weight: 1, arbitrary: v.map((x): Val[] => [str(f), x]) }, { weight: 1, arbitrary: fc.constant<Val[]>([str(f)]) });
const cat = (...parts: fc.Arbitrary<Val[]>[]): fc.Arbitrary<Val[]> => fc.tuple(...parts).map((p) => p.flat());
const words = (...w: string[]): fc.Arbitrary<Val[]> => fc.constant(w.map(str));

/** argv holds strings only (what a shell passes): the generators' non-strings are left out. */
const onlyStrings = (a: fc.Arbitrary<Val>): fc.Arbitrary<Val> => a.filter((v) => v.t === 'str' || v.t === 'target');
const cliUuid = onlyStrings(uuidArb);
const cliParent = onlyStrings(parentArb);
const cliType = onlyStrings(typeArb);

const argvArb: fc.Arbitrary<Val[]> = cat(
  fc.oneof(
    cat(words('ls'), flag('--json')),
    cat(words('mdev', 'types'), withValue('--parent', cliParent), flag('--json')),
    cat(words('mdev', 'list'), flag('--json')),
    cat(words('info'), devArb.map((d) => [d]), withValue('--backend', fc.oneof(fc.constantFrom(str('group'), str('cdev')), hostileString)), flag('--json')),
    cat(words('screenshot'), devArb.map((d) => [d]), fc.constantFrom(str(TMP_FILE), str(''), str('/nonexistent/x.png'), str('/dev/null')).map((o) => [str('-o'), o]), withValue('--backend', fc.constantFrom(str('group'), str('cdev'))), flag('--json')),
    cat(words('mdev', 'create'), cliType.map((t) => [t]), withValue('--uuid', cliUuid), withValue('--timeout', fc.constantFrom(str('2'), str('0'), str('-1'), str('NaN'), str('1e400'), str('abc'))), withValue('--parent', cliParent), flag('--json')),
    cat(words('mdev', 'remove'), cliUuid.map((u) => [u]), withValue('--timeout', fc.constantFrom(str('2'), str('0'), str('NaN'), str('x')))),
    fc.array(fc.oneof(fc.constantFrom(str('mdev'), str('ls'), str('--help'), str('-h'), str('--json'), str('--'), str('-x'), str('info'), str('--root')), hostileString), { maxLength: 4 }),
  ),
  withValue('--root', fc.oneof(fc.constantFrom(str('/'), str('type1'), str('/nonexistent'), str('/dev/null'), str('/tmp'), str('')), hostileString)),
);

/** The CLI may write files only where the run allows (the screenshot's -o). */
function cliGuard(x: OpCtx, argv: unknown[]): string | null {
  const safeOut = (v: unknown): boolean => v === TMP_FILE || v === '' || v === '/nonexistent/x.png' || v === '/dev/null';
  if (argv.some((a) => typeof a === 'string' && /^(-o.|--output=|--o)/.test(a))) return 'an output file in an unchecked form';
  for (let i = 0; i < argv.length; i++) if ((argv[i] === '-o' || argv[i] === '--output') && !safeOut(argv[i + 1])) return 'an output file outside the run directory';
  const iRemove = argv.indexOf('remove');
  if (iRemove >= 0 && argv.slice(iRemove + 1).some((a) => isTarget(x, a)) && !holdsTarget(x)) return 'would remove the target device';
  if (argv.includes('create') && x.w.createdMdevs.size >= MAX_CREATED) return 'enough mdevs created in this run';
  return null;
}

async function runCli(x: OpCtx, argv: string[]): Promise<unknown> {
  if (!x.cli) throw new TypeError('the CLI module could not be loaded');
  let stdout = '';
  let stderr = '';
  const status = await x.cli.main(argv, { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) } });
  if (status === 0 && argv.includes('create')) {
    const m = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i.exec(stdout);
    if (m) x.w.createdMdevs.add(m[0].toLowerCase());
  }
  if (status === 0 && argv.includes('remove')) for (const a of argv) if (typeof a === 'string') x.w.createdMdevs.delete(a.toLowerCase());
  const c = classifyCli(status, stderr);
  const iRemove = argv.indexOf('remove');
  if (iRemove >= 0 && argv.slice(iRemove + 1).some((a) => isTarget(x, a))) {
    const why = targetSurvived(x, status !== 0, /^vfio: ([A-Z_]+):/.exec(stderr)?.[1]);
    if (why) return result({ key: c.key, bad: { kind: 'leak', detail: `vfio mdev remove of the held target: ${why} (exit ${status}, ${stderr.trim().slice(0, 200)})` } });
  }
  return result(c);
}

// ---------------------------------------------------------------------------
// Pure codecs: each takes hostile input and must answer with a value, a
// TypeError/RangeError, or a VfioError (ERR_VFIO_BAD_STRUCT and friends).

const tableArb: fc.Arbitrary<Val> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(str('@DEVICE_FLAGS'), str('@REGION_FLAGS'), str('@IRQ_FLAGS'), str('@PCI_COMMAND_BITS')) },
  { weight: 2, arbitrary: fc.constantFrom(obj({ A: num(1) }), obj({ A: num(1), B: num(2), C: num(0) }), obj({})) },
  { weight: 2, arbitrary: fc.constantFrom(obj({ A: str('x') }), obj({ A: num(-1) }), obj({ A: num(1.5) }), obj({ A: big(1n) }), obj({ A: num(2 ** 40) }), obj({ A: num(NaN) })) },
  { weight: 1, arbitrary: wrongType },
);
const flagsArb = uint([0, 1, 3, 0xff, 0x80000000, 2 ** 32, 2 ** 53 - 1], 3);

const DECODERS = [
  'decodeDeviceInfo',
  'decodeRegionInfo',
  'decodeIrqInfo',
  'decodeGroupStatus',
  'decodeType1Info',
  'decodeGfxPlaneInfo',
  'decodeHotResetInfo',
  'decodeDeviceFeature',
  'decodeMigrationFeature',
  'decodeMigState',
  'decodeIovaRanges',
  'decodeIoasIovaRanges',
  'decodeHwInfo',
  'decodeHwInfoVtd',
  'decodeEdidRegs',
  'decodeMigDataSize',
  'decodePrecopyInfo',
  'parsePciConfig',
];

const uapiCall = (name: string, args: () => fc.Arbitrary<Val[]>, weight = 0.3): OpDef => ({
  name: `uapi.${name}`,
  weight,
  args,
  run: (x, _s, a) => {
    const tables: Record<string, unknown> = { '@DEVICE_FLAGS': x.V.DEVICE_FLAGS, '@REGION_FLAGS': x.V.REGION_FLAGS, '@IRQ_FLAGS': x.V.IRQ_FLAGS, '@PCI_COMMAND_BITS': (x.V as Record<string, unknown>).PCI_COMMAND_BITS };
    const f = (x.V as Record<string, unknown>)[name];
    if (typeof f !== 'function') throw new TypeError(`${name} is not exported`);
    return (f as (...p: unknown[]) => unknown)(...a.map((v) => (typeof v === 'string' && v in tables ? tables[v] : v)));
  },
});

const UAPI_OPS: OpDef[] = [
  uapiCall('bitNames', () => A(flagsArb, tableArb), 1),
  ...DECODERS.map((d) => uapiCall(d, () => A(fc.oneof({ weight: 6, arbitrary: rawBytes() }, { weight: 1, arbitrary: bytesVal([0, 3, 16]) }, { weight: 1, arbitrary: wrongType })))),
  uapiCall('walkCaps', () => A(rawBytes(), index([0, 16, 24, 32, 60]), opt(fc.constant(obj({})))), 0.3),
  uapiCall('decodeRegionCaps', () => A(rawBytes(), index([0, 32])), 0.3),
  uapiCall('decodeType1Caps', () => A(rawBytes(), index([0, 24])), 0.3),
  uapiCall('encodeIrqSet', () => A(options({ flags: index([0x24, 0x21, 0x11, 0xff]), index: index([0, 1]), start: index([0]), count: index([0, 1, 2]), data: fc.oneof(fc.array(fdVal, { maxLength: 3 }).map(arr), wrongType) }))),
  uapiCall('encodeGfxPlaneQuery', () => A(options({ flags: index([1, 2, 4, 5]), drmPlaneType: index([0, 1, 2]) }))),
  uapiCall('encodeHotReset', () => A(fc.oneof(fc.array(fdVal, { maxLength: 4 }).map(arr), wrongType))),
  uapiCall('encodeDeviceFeature', () => A(flagsArb, opt(bytesVal([0, 1, 8])))),
  uapiCall('encodeMigState', () => A(index([0, 1, 2, 8]))),
  uapiCall('regionName', () => A(index([0, 7, 8, 9, 16]), opt(options({ type: index([1, 3]), subtype: index([1, 2]) })))),
  uapiCall('irqName', () => A(index([0, 1, 4, 5]))),
  uapiCall('fourccToString', () => A(uint([0x34325258, 0, 0xffffffff]))),
  uapiCall('formatPciAddress', () => A(index([0, 0xffff]), index([0, 0xff]), index([0x18, 0xff]))),
  uapiCall('deviceFlagNames', () => A(flagsArb)),
  uapiCall('regionFlagNames', () => A(flagsArb)),
  uapiCall('pciCapName', () => A(index([5, 0x10, 0xff]))),
  uapiCall('errnoName', () => A(index([16, 87, 524, 9999]))),
  uapiCall('errnoNumber', () => A(fc.oneof(fc.constantFrom(str('EBUSY'), str('EUSERS'), str('ENOTSUPP')), hostileString))),
  uapiCall('parseUuid', () => A(uuidArb)),
  uapiCall('sizeOf', () => A(fc.oneof(fc.constantFrom(str('vfio_device_info'), str('vfio_region_info'), str('nope'), str('__proto__')), wrongType))),
  uapiCall('offsetOf', () => A(fc.constantFrom(str('vfio_device_info'), str('nope'), str('constructor')), fc.constantFrom(str('flags'), str('argsz'), str('__proto__'), str('nope')))),
  uapiCall('hintFor', () => A(options({ code: fc.oneof(fc.constantFrom(str('EPERM'), str('ENOMEM'), str('EBUSY')), hostileString), syscall: hostileString, operation: hostileString, path: hostileString }))),
];

// ---------------------------------------------------------------------------
// EduDriver: edu's own driver on the public API (its DMA checks keep QEMU alive;
// the guard below keeps them in force whatever the arguments).

const EDU_DMA_MAX = 4095n;

function eduDmaGuard(_x: OpCtx, _s: Entry | undefined, a: any[]): string | null {
  const count = asUint(a[2]);
  const off = asUint(a[3]?.deviceOffset ?? 0);
  if (count !== null && off !== null && off + count > EDU_DMA_MAX) return 'an edu transfer past its buffer aborts QEMU';
  if (typeof a[1] === 'bigint' && count !== null && (a[1] < 0n || a[1] + count > 0x10000000n)) return 'an IOVA past edu’s 28-bit DMA mask';
  return null;
}

const waitArb = options({ irq: fc.oneof(fc.constantFrom(str('msi'), str('intx')), hostileString), timeoutMs: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(num(2000), num(500)) }, { weight: 1, arbitrary: fc.constantFrom(num(NaN), num(-1), num(0)) }) });

const EDU_OPS: OpDef[] = [
  {
    name: 'EduDriver.open',
    weight: 0.5,
    args: () => A(opt(options({ address: fc.oneof({ weight: 4, arbitrary: fc.constant(target('name')) }, { weight: 1, arbitrary: hostileString }), backend: fc.oneof(fc.constant(target('backend')), wrongType) }), 1, 5)),
    run: (x, _s, [o]) => {
      const edu = x.V.EduDriver.open(o);
      const oe = registerOpened(x, edu.opened);
      const dev = x.w.all('device').at(-1)!;
      x.w.add('view', edu.regs, dev, { device: dev });
      return x.w.add('edu', edu, (oe.note?.root as Entry) ?? null);
    },
  },
  { name: 'edu.id', on: 'edu', weight: 0.3, args: none, run: (_x, s) => s!.obj.id() },
  { name: 'edu.liveness', on: 'edu', weight: 0.3, args: () => A(fc.oneof(fc.nat().map(num), hostile)), run: (_x, s, [v]) => s!.obj.liveness(v) },
  { name: 'edu.enableBusMaster', on: 'edu', weight: 0.3, args: none, run: (_x, s) => s!.obj.enableBusMaster() },
  { name: 'edu.useInterrupts', on: 'edu', weight: 0.5, args: () => A(fc.oneof(fc.constantFrom(str('msi'), str('intx')), wrongType)), run: (_x, s, [m]) => s!.obj.useInterrupts(m) },
  { name: 'edu.factorial', on: 'edu', weight: 0.7, args: () => A(fc.oneof(index([0, 5, 12, 13]), hostile), opt(waitArb)), run: (_x, s, [n, o]) => s!.obj.factorial(n, o) },
  {
    name: 'edu.dma',
    on: 'edu',
    weight: 0.7,
    args: () =>
      A(
        fc.oneof(fc.constantFrom(str('to-device'), str('to-ram')), wrongType),
        fc.oneof(uint([0x1000, 0x100000, 0xffff000]).map((v) => (v.t === 'num' ? big(BigInt(v.v as number)) : v)), hostile),
        fc.oneof(index([1, 16, 256, 4095, 4096]), hostile),
        opt(options({ deviceOffset: index([0, 1, 4094, 4095]), irq: fc.constantFrom(str('msi'), str('intx')), timeoutMs: fc.constant(num(2000)) })),
      ),
    guard: eduDmaGuard,
    run: (_x, s, [dir, iova, n, o]) => s!.obj.dma(dir, iova, n, o),
  },
  {
    name: 'edu.dmaRoundTrip',
    on: 'edu',
    weight: 0.5,
    args: () => A(fc.oneof(bytesVal([0, 1, 64, 4095, 4096]), wrongType), opt(waitArb)),
    guard: (_x, _s, [d]) => (ArrayBuffer.isView(d) && d.byteLength > 4095 ? 'an edu round trip past its buffer aborts QEMU' : null),
    run: (_x, s, [d, o]) => s!.obj.dmaRoundTrip(d, o),
  },
  {
    name: 'edu.close',
    on: 'edu',
    weight: 0.3,
    args: none,
    run: (x, s) => {
      try {
        s!.obj.close();
      } finally {
        x.w.markClosed(s!);
        const root = s!.parent;
        if (root) x.w.markClosed(root);
      }
    },
  },
];

// ---------------------------------------------------------------------------

export const MISC_OPS: OpDef[] = [
  // MdevBus ------------------------------------------------------------------
  {
    name: 'new MdevBus',
    weight: 1,
    args: () => A(opt(options({ root: rootArb }), 1, 2)),
    run: (x, _s, [o]) => x.w.add('bus', new x.V.MdevBus(o)),
  },
  { name: 'bus.parentNames', on: 'bus', weight: 0.5, args: none, run: (_x, s) => s!.obj.parentNames() },
  { name: 'bus.parents', on: 'bus', weight: 0.5, args: none, run: (_x, s) => s!.obj.parents() },
  { name: 'bus.types', on: 'bus', weight: 0.7, args: () => A(opt(options({ parent: parentArb }))), run: (_x, s, [o]) => s!.obj.types(o) },
  { name: 'bus.type', on: 'bus', weight: 0.5, args: () => A(typeArb, opt(parentArb)), run: (_x, s, [id, p]) => s!.obj.type(id, p) },
  { name: 'bus.list', on: 'bus', weight: 0.5, args: none, run: (_x, s) => s!.obj.list() },
  { name: 'bus.find', on: 'bus', weight: 0.5, args: () => A(uuidArb), run: (x, s, [u]) => s!.obj.find(resolveMarker(x, u)) },
  { name: 'bus.get', on: 'bus', weight: 0.5, args: () => A(uuidArb), run: (x, s, [u]) => s!.obj.get(resolveMarker(x, u)) },
  {
    name: 'bus.create',
    on: 'bus',
    weight: 0.5,
    args: () => A(typeArb, opt(options({ uuid: uuidArb, parent: parentArb, timeoutMs: timeoutMsArb }))),
    guard: (x) => (x.w.createdMdevs.size >= MAX_CREATED ? 'enough mdevs created in this run' : null),
    run: async (x, s, [type, o]) => {
      const opts = o && typeof o === 'object' && 'uuid' in o ? { ...o, uuid: resolveMarker(x, o.uuid) } : o;
      const m = await s!.obj.create(type, opts);
      if (m?.uuid) x.w.createdMdevs.add(String(m.uuid).toLowerCase());
      return m;
    },
  },
  {
    name: 'bus.remove',
    on: 'bus',
    weight: 0.5,
    args: () => A(uuidArb, opt(options({ timeoutMs: timeoutMsArb }))),
    guard: (x, _s, [u]) => removeGuard(x, resolveMarker(x, u)),
    oracle: (x, _s, [u], error, threw) => mustBeBusy(x, resolveMarker(x, u), error, threw),
    run: async (x, s, [u, o]) => {
      const uuid = resolveMarker(x, u);
      await s!.obj.remove(uuid, o);
      if (typeof uuid === 'string') x.w.createdMdevs.delete(uuid.toLowerCase());
    },
  },

  // The CLI --------------------------------------------------------------------
  {
    name: 'cli',
    weight: 1.5,
    args: () => argvArb,
    guard: (x, _s, argv) => cliGuard(x, argv),
    run: (x, _s, argv) => runCli(x, argv.map((a) => resolveMarker(x, a)) as string[]),
  },

  ...UAPI_OPS,
  ...EDU_OPS,

  // Asynchronous interleaving ---------------------------------------------------
  {
    name: 'tick',
    weight: 1.5,
    args: () => A(fc.constantFrom(num(-1), num(0), num(1), num(10), num(50))),
    run: (_x, _s, [ms]) => new Promise<void>((r) => (ms < 0 ? setImmediate(r) : setTimeout(r, ms))),
  },
  {
    name: 'pending.await',
    weight: 0.7,
    args: none,
    // Waits a little for the oldest unsettled background call (its own outcome is counted when it settles).
    run: async (x) => {
      const p = x.w.pending.find((q) => !q.settled);
      if (p) await Promise.race([p.promise.catch(() => {}), new Promise((r) => setTimeout(r, 300))]);
    },
  },
];

