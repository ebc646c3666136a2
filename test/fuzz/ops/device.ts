/**
 * Operations on devices and what hangs off them: opening (openDevice, cdevs,
 * adoption), Device, Region, MappedRegion, Interrupts, GfxDmabuf, eventfds.
 */
import fc from 'fast-check';
import { DMA_MAX_BYTES, quirkRegion, unsafeAccess, type TargetSpec } from '../targets.js';
import type { Entry } from '../world.js';
import {
  arr,
  asUint,
  bool,
  bytesVal,
  fdVal,
  hostile,
  hostileString,
  index,
  num,
  obj,
  offsetArb,
  opt,
  options,
  ref,
  refOf,
  regValue,
  signalVal,
  str,
  target,
  uint,
  undef,
  wrongType,
  type Val,
} from '../values.js';
import type { OpCtx, OpDef } from './types.js';

const A = (...a: fc.Arbitrary<Val>[]): fc.Arbitrary<Val[]> => fc.tuple(...a);
const none = (): fc.Arbitrary<Val[]> => fc.constant([]);

/** Device specs: the target by each of its names, other devices, and junk. */
const specArb: fc.Arbitrary<Val> = fc.oneof(
  { weight: 8, arbitrary: fc.constant(target('name')) },
  { weight: 2, arbitrary: fc.constantFrom(target('upper'), target('short'), target('cdev')) },
  { weight: 1, arbitrary: fc.constantFrom(target('uuidOther'), target('pciOther'), target('cdevOther')) },
  { weight: 1, arbitrary: hostile },
);
const backendArb: fc.Arbitrary<Val> = fc.oneof(
  { weight: 8, arbitrary: fc.constant(target('backend')) },
  { weight: 2, arbitrary: fc.constantFrom(target('otherBackend'), str('auto')) },
  { weight: 1, arbitrary: fc.constantFrom(str('type1'), str('iommufd'), str(''), undef) },
  { weight: 1, arbitrary: wrongType },
);
/** A filesystem root argument: mostly absent, sometimes '/', sometimes not a directory at all. */
export const rootArb: fc.Arbitrary<Val> = fc.oneof(
  { weight: 6, arbitrary: fc.constant(undef) },
  { weight: 2, arbitrary: fc.constant(str('/')) },
  { weight: 2, arbitrary: fc.constantFrom(str('type1'), str('/nonexistent'), str('/dev/null'), str(''), str('relative'), str('/tmp'), str('/proc')) },
  { weight: 1, arbitrary: wrongType },
);

const allOffsets = (s: TargetSpec): number[] => [...new Set(Object.values(s.regions).flat())];
/** The interesting offsets of the receiver's region (a Region, or a view: relative to the view). */
const regionSlots = (x: OpCtx, self: Entry | undefined): readonly number[] => {
  try {
    return x.spec.regions[self!.obj.index] ?? [0];
  } catch {
    return [0];
  }
};
const viewSlots = (x: OpCtx, self: Entry | undefined): readonly number[] => {
  try {
    const base = Number(self!.obj.offset);
    return (x.spec.regions[self!.obj.index] ?? [0]).map((o) => o - base).filter((o) => o >= 0);
  } catch {
    return [0];
  }
};
const regionIndexes = (s: TargetSpec): number[] => Object.keys(s.regions).map(Number);

// ---------------------------------------------------------------------------
// Registration of what calls return.

/** Registers an OpenedDevice and its parts, with the library's close order. */
export function registerOpened(x: OpCtx, o: any): Entry {
  const oe = x.w.add('opened', o);
  if (o?.container) {
    const c = x.w.add('container', o.container);
    const g = o.group ? x.w.add('group', o.group, c) : c;
    x.w.add('device', o.device, g);
    oe.note = { root: c };
  } else if (o?.iommufd) {
    const f = x.w.add('iommufd', o.iommufd);
    const io = o.ioas ? x.w.add('ioas', o.ioas, f) : f;
    x.w.add('device', o.device, io);
    oe.note = { root: f };
  }
  return oe;
}

const viewsOf = (x: OpCtx, dev: Entry): Entry[] => x.w.all('view').filter((v) => v.device === dev);

// ---------------------------------------------------------------------------
// Guards and oracles for region and view accesses.

function regionGuard(write: boolean, lenOf: (a: any[]) => number) {
  return (x: OpCtx, self: Entry | undefined, a: any[]): string | null => {
    const r = self!.obj;
    let size: bigint | null = null;
    let index = -1;
    try {
      size = r.size as bigint;
      index = r.index as number;
    } catch {
      return null;
    }
    return unsafeAccess(x.t.driver, index, asUint(a[0]), lenOf(a), write, size, false);
  };
}

function viewGuard(write: boolean, lenOf: (a: any[]) => number) {
  return (x: OpCtx, self: Entry | undefined, a: any[]): string | null => {
    const v = self!.obj;
    const off = asUint(a[0]);
    const index = typeof v.index === 'number' ? v.index : -1;
    return unsafeAccess(x.t.driver, index, off === null ? null : off + BigInt(v.offset ?? 0n), lenOf(a), write, null, true);
  };
}

/** Region accesses a sample driver mishandles must be refused (ERR_VFIO_DRIVER_QUIRK), or fail on their arguments first. */
function quirkOracle(x: OpCtx, self: Entry | undefined, _a: any[], error: unknown, threw: boolean): { kind: 'quirk-bypassed'; detail: string } | null {
  let index: number;
  try {
    index = self!.obj.index;
  } catch {
    return null;
  }
  // The driver of the region's own device: EduDriver.open() brings edu into any target's run.
  let driver = x.t.driver;
  try {
    const d: unknown = self!.device?.obj.driver;
    if (d === 'vfio-pci' || d === 'mtty' || d === 'mdpy' || d === 'mbochs') driver = d;
  } catch {
    /* a closed device: keep the target's */
  }
  if (!quirkRegion(driver, index)) return null;
  if (!threw) return { kind: 'quirk-bypassed', detail: `region ${index} of ${driver} was read or written` };
  const code = (error as { code?: string })?.code;
  if (error instanceof TypeError || error instanceof RangeError || code === 'ERR_VFIO_DRIVER_QUIRK' || code === 'EACCES') return null;
  return { kind: 'quirk-bypassed', detail: `region ${index} of ${driver}: expected ERR_VFIO_DRIVER_QUIRK, got ${String(code ?? error)}` };
}

const byteLen = (v: unknown): number => (ArrayBuffer.isView(v) ? v.byteLength : 0);
const widthOps = [1, 2, 4, 8] as const;

// ---------------------------------------------------------------------------

const MIG_STATES = ['ERROR', 'STOP', 'RUNNING', 'STOP_COPY', 'RESUMING', 'RUNNING_P2P', 'PRE_COPY', 'PRE_COPY_P2P'];

export const DEVICE_OPS: OpDef[] = [
  // Opening -----------------------------------------------------------------
  {
    name: 'openDevice',
    weight: 1,
    args: () => A(specArb, options({ backend: backendArb, root: rootArb })),
    run: (x, _s, [spec, o]) => registerOpened(x, x.V.openDevice(spec, o)),
  },
  {
    name: 'resolveDevice',
    weight: 0.5,
    args: () => A(specArb, rootArb),
    run: (x, _s, [spec, root]) => x.V.resolveDevice(spec, root),
  },
  {
    name: 'Device.openCdev',
    args: () => A(fc.oneof({ weight: 4, arbitrary: fc.constant(target('cdev')) }, { weight: 1, arbitrary: fc.constantFrom(target('cdevOther'), str('/dev/null'), str('relative')) }, { weight: 1, arbitrary: hostile })),
    run: (x, _s, [p]) => x.w.add('device', x.V.Device.openCdev(p)),
  },
  {
    name: 'Device.adoptCdev',
    weight: 0.5,
    args: () => A(fdVal),
    run: (x, _s, [fd]) => x.w.add('device', x.V.Device.adoptCdev(fd)),
  },
  { name: 'cdevDeviceName', weight: 0.3, args: () => A(fdVal, rootArb), run: (x, _s, [fd, root]) => x.V.cdevDeviceName(fd, root) },
  { name: 'boundDriver', weight: 0.3, args: () => A(specArb, rootArb), run: (x, _s, [n, root]) => x.V.boundDriver(n, root) },
  { name: 'findEdu', weight: 0.3, args: () => A(rootArb), run: (x, _s, [root]) => x.V.findEdu(root) },
  { name: 'heldCount', weight: 0.3, args: () => A(specArb), run: (x, _s, [n]) => x.V.heldCount(n) },
  {
    name: 'opened.close',
    on: 'opened',
    weight: 0.7,
    args: none,
    run: (x, s) => {
      const root = s!.note?.root as Entry | undefined;
      try {
        s!.obj.close();
      } finally {
        if (root) x.w.markClosed(root);
        x.w.markClosed(s!);
      }
    },
  },

  // Device ------------------------------------------------------------------
  { name: 'device.info', on: 'device', closedThrows: true, args: none, run: (_x, s) => s!.obj.info() },
  { name: 'device.regionInfo', on: 'device', closedThrows: true, args: (sp) => A(index([...regionIndexes(sp), 9, 16])), run: (_x, s, [i]) => s!.obj.regionInfo(i) },
  { name: 'device.regions', on: 'device', weight: 0.5, closedThrows: true, args: none, run: (_x, s) => s!.obj.regions() },
  { name: 'device.irqInfo', on: 'device', closedThrows: true, args: (sp) => A(index(sp.irqIndexes)), run: (_x, s, [i]) => s!.obj.irqInfo(i) },
  { name: 'device.irqs', on: 'device', weight: 0.5, closedThrows: true, args: none, run: (_x, s) => s!.obj.irqs() },
  {
    name: 'device.region',
    on: 'device',
    weight: 4,
    closedThrows: true,
    args: (sp) => A(index(regionIndexes(sp))),
    run: (x, s, [i]) => x.w.add('region', s!.obj.region(i), s!, { device: s! }),
  },
  {
    name: 'device.mmap',
    on: 'device',
    weight: 3,
    closedThrows: true,
    args: (sp) => A(index(sp.mmapIndexes), opt(options({ offset: uint([0, 4096, 8192, 0x3000]), length: uint([4096, 8192, 0x100000, 0x400000]), area: index([0, 1]) }))),
    run: (x, s, [i, o]) => {
      const v = s!.obj.mmap(i, o);
      return x.w.add('view', v, s!, { device: s! });
    },
  },
  {
    name: 'device.revokeViews',
    on: 'device',
    weight: 0.5,
    args: () => A(opt(fc.oneof(fc.constant(arr([num(0)])), fc.constant(arr([])), wrongType))),
    run: (x, s, [idx]) => {
      try {
        s!.obj.revokeViews(idx);
      } finally {
        for (const v of viewsOf(x, s!)) x.w.markUnknown(v);
      }
    },
  },
  {
    name: 'device.setIrqs',
    on: 'device',
    weight: 2,
    args: (sp) =>
      A(
        options({
          index: index(sp.irqIndexes),
          action: fc.oneof(fc.constantFrom(str('trigger'), str('mask'), str('unmask')), hostileString),
          start: index([0, 1]),
          count: index([0, 1, 2]),
          data: fc.oneof(
            fc.array(fc.oneof(fc.boolean().map(bool), hostile), { maxLength: 3 }).map((b) => obj({ bools: arr(b) })),
            fc.array(fdVal, { maxLength: 3 }).map((f) => obj({ eventfds: arr(f) })),
            wrongType,
          ),
        }),
      ),
    run: (_x, s, [o]) => s!.obj.setIrqs(o),
  },
  {
    name: 'device.enableInterrupts',
    on: 'device',
    weight: 3,
    closedThrows: true,
    args: (sp) => A(index(sp.irqIndexes), opt(options({ start: index([0, 1]), count: index([1, 1, 2, 0]) }))),
    run: (x, s, [i, o]) => x.w.add('irqs', s!.obj.enableInterrupts(i, o), s!, { device: s! }),
  },
  { name: 'device.disableInterrupts', on: 'device', args: (sp) => A(index(sp.irqIndexes)), run: (_x, s, [i]) => s!.obj.disableInterrupts(i) },
  { name: 'device.trigger', on: 'device', weight: 1.5, args: (sp) => A(index(sp.irqIndexes), opt(index([0, 1])), opt(index([1, 0, 2]))), run: (_x, s, [i, st, c]) => s!.obj.trigger(i, st, c) },
  { name: 'device.mask', on: 'device', args: (sp) => A(index(sp.irqIndexes), opt(index([0])), opt(index([1]))), run: (_x, s, [i, st, c]) => s!.obj.mask(i, st, c) },
  { name: 'device.unmask', on: 'device', args: (sp) => A(index(sp.irqIndexes), opt(index([0])), opt(index([1]))), run: (_x, s, [i, st, c]) => s!.obj.unmask(i, st, c) },
  {
    name: 'device.reset',
    on: 'device',
    closedThrows: true,
    args: none,
    run: (x, s) => {
      try {
        s!.obj.reset();
      } finally {
        for (const v of viewsOf(x, s!)) x.w.markUnknown(v);
      }
    },
  },
  { name: 'device.hotResetInfo', on: 'device', weight: 0.3, closedThrows: true, args: none, run: (_x, s) => s!.obj.hotResetInfo() },
  {
    name: 'device.hotReset',
    on: 'device',
    weight: 0.3,
    args: () => A(opt(fc.oneof(fc.array(fdVal, { maxLength: 3 }).map(arr), wrongType))),
    run: (x, s, [fds]) => {
      try {
        s!.obj.hotReset(fds);
      } finally {
        for (const v of viewsOf(x, s!)) x.w.markUnknown(v);
      }
    },
  },
  {
    name: 'device.featureProbe',
    on: 'device',
    args: (sp) => A(index(sp.features), opt(options({ get: fc.boolean().map(bool), set: fc.boolean().map(bool) }))),
    run: (_x, s, [f, o]) => s!.obj.featureProbe(f, o),
  },
  {
    name: 'device.featureGet',
    on: 'device',
    args: (sp) => A(index(sp.features), index([0, 4, 8, 16, 24])),
    guard: (_x, _s, [, size]) => ((asUint(size) ?? 0n) > DMA_MAX_BYTES ? 'feature data over 1 MiB' : null),
    run: (_x, s, [f, size]) => s!.obj.featureGet(f, size),
  },
  {
    name: 'device.featureSet',
    on: 'device',
    args: (sp) => A(index(sp.features), opt(bytesVal([0, 4, 8, 16, 24, 32]))),
    run: (x, s, [f, data]) => {
      try {
        return s!.obj.featureSet(f, data);
      } finally {
        // A low-power entry (vfio-pci features 3, 4) zaps the BAR mappings in the kernel.
        for (const v of viewsOf(x, s!)) x.w.markUnknown(v);
      }
    },
  },
  // --- migration v2 and device DMA logging (issue 15) ---
  {
    name: 'device.migration.state',
    on: 'device',
    args: () => A(),
    run: (_x, s) => s!.obj.migration?.state ?? null,
  },
  {
    name: 'device.migration.setState',
    on: 'device',
    args: () => A(fc.oneof(fc.constantFrom(...MIG_STATES.map(str)), hostileString, wrongType)),
    run: (_x, s, [st]) => s!.obj.migration?.setState(st) ?? null,
  },
  {
    name: 'device.migration.save',
    on: 'device',
    args: () => A(opt(options({ precopy: fc.boolean().map(bool), then: fc.oneof(fc.constantFrom(str('STOP'), str('RUNNING')), hostileString), chunkSize: uint([1, 7, 24, 4096, 1 << 20]) }))),
    run: async (_x, s, [o]) => {
      const m = s!.obj.migration;
      if (!m) return null;
      return (await m.saveToBuffer(o)).length;
    },
  },
  {
    name: 'device.migration.load',
    on: 'device',
    args: () => A(bytesVal([0, 8, 24, 40, 60, 96, 200]), opt(options({ resume: fc.boolean().map(bool) }))),
    run: async (_x, s, [data, o]) => {
      const m = s!.obj.migration;
      if (!m) return null;
      return (await m.load(data, o)).bytes;
    },
  },
  {
    name: 'device.migration.recover',
    on: 'device',
    args: () => A(),
    run: (_x, s) => s!.obj.migration?.recover() ?? null,
  },
  {
    name: 'device.dmaLoggingStart',
    on: 'device',
    args: () =>
      A(
        fc.oneof(
          fc.array(options({ iova: uint([0, 0x1000, 0x10000, 0x10800, 2 ** 52]), length: uint([0, 0x1000, 0x2000, 0x1800]) }), { maxLength: 4 }).map(arr),
          wrongType,
        ),
        opt(uint([4096, 2048, 8192, 65536])),
      ),
    run: (_x, s, [ranges, ps]) => s!.obj.dmaLoggingStart(ranges, ps),
  },
  {
    name: 'device.dmaLoggingReport',
    on: 'device',
    args: () => A(uint([0, 0x1000, 0x10000]), uint([0, 0x1000, 0x1800, 0x100000]), opt(uint([4096, 2048, 8192]))),
    // The addon bounds the bitmap at 256 MiB; keep what the guest allocates small.
    guard: (_x, _s, [, len, ps]) => ((asUint(len) ?? 0n) / ((asUint(ps) ?? 4096n) || 1n) > 1n << 24n ? 'a bitmap over 2 MiB' : null),
    run: (_x, s, [iova, len, ps]) => s!.obj.dmaLoggingReport(iova, len, ps).length,
  },
  { name: 'device.dmaLoggingStop', on: 'device', args: () => A(), run: (_x, s) => s!.obj.dmaLoggingStop() },
  {
    name: 'device.queryGfxPlane',
    on: 'device',
    weight: 1.5,
    args: () => A(options({ kind: fc.oneof(fc.constantFrom(str('region'), str('dmabuf')), hostileString), drmPlaneType: index([0, 1, 2]) }), opt(index([0, 1, 2]))),
    run: (_x, s, [o, r]) => s!.obj.queryGfxPlane(o, r),
  },
  { name: 'device.gfxPlaneSupported', on: 'device', args: () => A(fc.oneof(fc.constantFrom(str('region'), str('dmabuf')), wrongType)), run: (_x, s, [k]) => s!.obj.gfxPlaneSupported(k) },
  {
    name: 'device.getGfxDmabuf',
    on: 'device',
    weight: 1.5,
    args: () => A(index([1, 2, 3, 0])),
    run: (x, s, [id]) => {
      const d = s!.obj.getGfxDmabuf(id);
      return x.w.entryOf(d) ?? x.w.add('dmabuf', d, s!, { device: s! });
    },
  },
  { name: 'device.pciConfig', on: 'device', weight: 0.5, closedThrows: true, args: none, run: (_x, s) => s!.obj.pciConfig() },
  {
    name: 'device.bind',
    on: 'device',
    args: () => A(fc.oneof({ weight: 4, arbitrary: refOf('iommufd') }, { weight: 1, arbitrary: wrongType })),
    run: (x, s, [fd]) => {
      const r = s!.obj.bind(fd);
      const fe = x.w.entryOf(fd);
      if (fe) x.w.adopt(fe, s!);
      return r;
    },
  },
  {
    name: 'device.attach',
    on: 'device',
    args: () => A(fc.oneof({ weight: 4, arbitrary: refOf('ioas', 'hwpt') }, { weight: 1, arbitrary: wrongType })),
    run: (x, s, [t]) => {
      const r = s!.obj.attach(t);
      const te = x.w.entryOf(t);
      if (te) x.w.adopt(te, s!);
      return r;
    },
  },
  { name: 'device.detach', on: 'device', weight: 0.5, args: none, run: (_x, s) => s!.obj.detach() },
  {
    name: 'device.getters',
    on: 'device',
    weight: 0.3,
    args: none,
    run: (_x, s) => [s!.obj.name, s!.obj.backend, s!.obj.driver, s!.obj.devid, s!.obj.attachedTo, s!.obj.closed],
  },
  {
    name: 'device.close',
    on: 'device',
    weight: 0.8,
    args: none,
    run: (x, s) => {
      try {
        s!.obj.close();
      } finally {
        x.w.markClosed(s!);
      }
    },
  },
  {
    name: 'captureDisplay',
    on: 'device',
    weight: 0.7,
    args: () => A(opt(options({ png: fc.oneof({ weight: 1, arbitrary: fc.constant(bool(true)) }, { weight: 4, arbitrary: fc.constant(bool(false)) }) }))),
    run: (x, s, [o]) => x.V.captureDisplay(s!.obj, o),
  },
  { name: 'isMdev', on: 'device', weight: 0.2, args: () => A(rootArb), run: (x, s, [root]) => x.V.isMdev(s!.obj, root) },

  // Region (pread/pwrite) -----------------------------------------------------
  ...widthOps.map(
    (w): OpDef => ({
      name: `region.read${8 * w}`,
      on: 'region',
      slots: regionSlots,
      weight: 1.5,
      closedThrows: true,
      args: (sp) => A(offsetArb(allOffsets(sp))),
      guard: regionGuard(false, () => w),
      oracle: quirkOracle,
      run: (_x, s, [off]) => s!.obj[`read${8 * w}`](off),
    }),
  ),
  ...widthOps.map(
    (w): OpDef => ({
      name: `region.write${8 * w}`,
      on: 'region',
      slots: regionSlots,
      weight: w === 2 ? 3 : 1.5,
      closedThrows: true,
      args: (sp) => A(offsetArb(allOffsets(sp)), regValue(w, [0x0, 0x2, 0x4, 0x6, 0x7, 0x400, 0x406, 0x41, 0x80, 0x07])),
      guard: regionGuard(true, () => w),
      oracle: quirkOracle,
      run: (x, s, [off, v]) => {
        try {
          return s!.obj[`write${8 * w}`](off, v);
        } finally {
          // A config write may clear Memory Space Enable, which revokes the BAR views.
          if (s!.device && s!.obj.index === 7) for (const v2 of viewsOf(x, s!.device)) x.w.markUnknown(v2);
        }
      },
    }),
  ),
  {
    name: 'region.readInto',
    on: 'region',
    slots: regionSlots,
    closedThrows: true,
    args: (sp) => A(offsetArb(allOffsets(sp)), bytesVal([0, 1, 2, 4, 8, 16, 255, 256])),
    guard: regionGuard(false, (a) => byteLen(a[1])),
    oracle: quirkOracle,
    run: (_x, s, [off, dst]) => s!.obj.readInto(off, dst),
  },
  {
    name: 'region.read',
    on: 'region',
    slots: regionSlots,
    closedThrows: true,
    args: (sp) => A(offsetArb(allOffsets(sp)), index([0, 1, 4, 8, 255, 256, 4096])),
    guard: (x, s, a) => ((asUint(a[1]) ?? 0n) > 1n << 26n ? 'read of more than 64 MiB' : regionGuard(false, (b) => Number(asUint(b[1]) ?? 1n))(x, s, a)),
    oracle: quirkOracle,
    run: (_x, s, [off, n]) => s!.obj.read(off, n),
  },
  {
    name: 'region.write',
    on: 'region',
    slots: regionSlots,
    closedThrows: true,
    args: (sp) => A(offsetArb(allOffsets(sp)), bytesVal([0, 1, 2, 3, 4, 8, 16])),
    guard: regionGuard(true, (a) => byteLen(a[1])),
    oracle: quirkOracle,
    run: (x, s, [off, src]) => {
      try {
        return s!.obj.write(off, src);
      } finally {
        if (s!.device && s!.obj.index === 7) for (const v2 of viewsOf(x, s!.device)) x.w.markUnknown(v2);
      }
    },
  },
  { name: 'region.getters', on: 'region', weight: 0.2, args: none, run: (_x, s) => [s!.obj.index, s!.obj.size, s!.obj.info] },

  // MappedRegion (mmap'd views) ---------------------------------------------------
  ...widthOps.map(
    (w): OpDef => ({
      name: `view.read${8 * w}`,
      on: 'view',
      slots: viewSlots,
      weight: w === 4 ? 3 : 1,
      closedThrows: true,
      args: (sp) => A(offsetArb(allOffsets(sp))),
      guard: viewGuard(false, () => w),
      run: (_x, s, [off]) => s!.obj[`read${8 * w}`](off),
    }),
  ),
  ...widthOps.map(
    (w): OpDef => ({
      name: `view.write${8 * w}`,
      on: 'view',
      slots: viewSlots,
      closedThrows: true,
      args: (sp) => A(offsetArb(allOffsets(sp)), regValue(w, [0x12345678, 1, 0x80])),
      guard: viewGuard(true, () => w),
      run: (_x, s, [off, v]) => s!.obj[`write${8 * w}`](off, v),
    }),
  ),
  {
    name: 'view.readInto',
    on: 'view',
    slots: viewSlots,
    closedThrows: true,
    args: (sp) => A(offsetArb(allOffsets(sp)), bytesVal([0, 1, 4, 16, 4096])),
    guard: viewGuard(false, (a) => byteLen(a[1])),
    run: (_x, s, [off, dst]) => s!.obj.readInto(off, dst),
  },
  {
    name: 'view.writeFrom',
    on: 'view',
    slots: viewSlots,
    closedThrows: true,
    args: (sp) => A(offsetArb(allOffsets(sp)), bytesVal([0, 1, 4, 16, 64])),
    guard: viewGuard(true, (a) => byteLen(a[1])),
    run: (_x, s, [off, src]) => s!.obj.writeFrom(off, src),
  },
  {
    // Plain JS access to the mapped bytes: a Uint8Array and a Uint32Array over `buffer`.
    name: 'view.bytesRead',
    on: 'view',
    slots: viewSlots,
    weight: 1.5,
    args: (sp) => A(uint(allOffsets(sp).filter((o) => o % 4 === 0)), fc.boolean().map(bool)),
    guard: viewGuard(false, () => 4),
    run: (_x, s, [i, wide]) => (wide ? new Uint32Array(s!.obj.buffer)[Number(i) / 4] : s!.obj.bytes[Number(i)]),
  },
  {
    name: 'view.bytesWrite',
    on: 'view',
    slots: viewSlots,
    args: (sp) => A(offsetArb(allOffsets(sp)), fc.integer({ min: 0, max: 255 }).map(num)),
    guard: viewGuard(true, () => 4),
    run: (_x, s, [i, v]) => {
      s!.obj.bytes[Number(i)] = v;
    },
  },
  { name: 'view.getters', on: 'view', weight: 0.3, args: none, run: (_x, s) => [s!.obj.mapped, s!.obj.writable, s!.obj.index, s!.obj.offset, s!.obj.length] },
  {
    name: 'view.unmap',
    on: 'view',
    weight: 0.7,
    args: none,
    run: (x, s) => {
      try {
        s!.obj.unmap();
      } finally {
        x.w.markClosed(s!);
      }
    },
  },

  // Interrupts ---------------------------------------------------------------------
  {
    name: 'irqs.next',
    on: 'irqs',
    weight: 1.5,
    background: true,
    signalled: true,
    args: () => A(opt(options({ signal: signalVal }), 1, 6)),
    run: (_x, s, [o]) => s!.obj.next(o),
  },
  {
    name: 'irqs.events',
    on: 'irqs',
    background: true,
    signalled: true,
    args: () => A(options({ signal: signalVal }), fc.integer({ min: 1, max: 3 }).map(num)),
    run: async (_x, s, [o, max]) => {
      const got: unknown[] = [];
      for await (const e of s!.obj.events(o)) {
        got.push(e);
        if (got.length >= max) break;
      }
      return got;
    },
  },
  { name: 'irqs.signal', on: 'irqs', weight: 1.5, closedThrows: true, args: () => A(opt(index([0, 1, 2])), opt(uint([1, 2, 0, 0xfffffffe]))), run: (_x, s, [v, c]) => s!.obj.signal(v, c) },
  { name: 'irqs.ref', on: 'irqs', weight: 0.3, args: () => A(fc.boolean().map(bool)), run: (_x, s, [on]) => (on ? s!.obj.ref() : s!.obj.unref()) },
  { name: 'irqs.listen', on: 'irqs', weight: 0.3, args: none, run: (_x, s) => s!.obj.on('interrupt', () => {}) },
  { name: 'irqs.getters', on: 'irqs', weight: 0.2, args: none, run: (_x, s) => [s!.obj.fds, s!.obj.totals, s!.obj.closed, s!.obj.refed] },
  {
    name: 'irqs.close',
    on: 'irqs',
    weight: 0.7,
    args: none,
    run: (x, s) => {
      try {
        s!.obj.close();
      } finally {
        x.w.markClosed(s!);
      }
    },
  },

  // GfxDmabuf -----------------------------------------------------------------------
  { name: 'dmabuf.info', on: 'dmabuf', weight: 0.5, args: none, run: (_x, s) => s!.obj.info() },
  { name: 'dmabuf.fd', on: 'dmabuf', weight: 0.3, closedThrows: true, args: none, run: (_x, s) => s!.obj.fd },
  {
    name: 'dmabuf.map',
    on: 'dmabuf',
    args: () => A(uint([4096, 1228800, 1 << 20])),
    run: (x, s, [n]) => x.w.add('view', s!.obj.map(n), s!, { device: s!.device }),
  },
  {
    name: 'dmabuf.close',
    on: 'dmabuf',
    weight: 0.5,
    args: none,
    run: (x, s) => {
      try {
        s!.obj.close();
      } finally {
        x.w.markClosed(s!);
      }
    },
  },

  // Bare eventfds ---------------------------------------------------------------------
  { name: 'createEventFd', weight: 0.7, args: none, run: (x) => x.w.add('eventfd', x.V.createEventFd()) },
  { name: 'eventfd.signal', on: 'eventfd', args: () => A(opt(uint([1, 2, 0, 0xfffffffe]))), run: (_x, s, [c]) => s!.obj.signal(c) },
  { name: 'eventfd.read', on: 'eventfd', args: none, run: (_x, s) => s!.obj.read() },
  {
    name: 'eventfd.start',
    on: 'eventfd',
    args: () => A(fc.oneof({ weight: 4, arbitrary: fc.constant<Val>({ t: 'fn' }) }, { weight: 1, arbitrary: wrongType })),
    run: (_x, s, [cb]) => s!.obj.start(cb),
  },
  { name: 'eventfd.stop', on: 'eventfd', weight: 0.5, args: none, run: (_x, s) => s!.obj.stop() },
  { name: 'eventfd.ref', on: 'eventfd', weight: 0.3, args: () => A(fc.boolean().map(bool)), run: (_x, s, [on]) => (on ? s!.obj.ref() : s!.obj.unref()) },
  {
    name: 'eventfd.close',
    on: 'eventfd',
    weight: 0.5,
    args: none,
    run: (x, s) => {
      try {
        s!.obj.close();
      } finally {
        x.w.markClosed(s!);
      }
    },
  },
];

export { ref };
