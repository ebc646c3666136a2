/**
 * Operations on DMA spaces and memory: Container, Group, IommuFd, Ioas, Hwpt,
 * allocDmaBuffer/DmaBuffer, DmaMapper (and its dirty tracking), IovaAllocator.
 * DMA buffers stay small (≤ 1 MiB each, a handful live): the guest has 3 GiB.
 */
import fc from 'fast-check';
import { DMA_MAX_BYTES, DMA_MAX_LIVE } from '../targets.js';
import { arr, asUint, big, bool, bytesVal, fdVal, hostile, index, obj, opt, options, refOf, str, target, uint, undef, wrongType, type Val } from '../values.js';
import type { OpCtx, OpDef } from './types.js';

const A = (...a: fc.Arbitrary<Val>[]): fc.Arbitrary<Val[]> => fc.tuple(...a);
const none = (): fc.Arbitrary<Val[]> => fc.constant([]);

const PAGE = 4096;
const sizes = [PAGE, 2 * PAGE, 3 * PAGE, 16 * PAGE, 1 << 20, 0, PAGE + 1, 2 ** 21];
const iovas = [0, PAGE, 0x10000, 0x100000, 0x1000000, 0xfff0000, 0x10000000, 0xfee00000, 2 ** 39, 2 ** 48 - PAGE];
const iovaArb = uint(iovas);
const sizeArb = uint(sizes);
const accessArb = options({ read: fc.oneof(fc.boolean().map(bool), wrongType), write: fc.oneof(fc.boolean().map(bool), wrongType) });

/** A DMA space: a container or an IOAS, or something else. */
const spaceArb: fc.Arbitrary<Val> = fc.oneof({ weight: 6, arbitrary: refOf('container', 'ioas') }, { weight: 1, arbitrary: refOf('hwpt', 'device') }, { weight: 1, arbitrary: wrongType });
const bufferArb: fc.Arbitrary<Val> = fc.oneof({ weight: 8, arbitrary: refOf('buffer') }, { weight: 1, arbitrary: wrongType }, { weight: 1, arbitrary: bytesVal([4096]) });
const rangeArb: fc.Arbitrary<Val> = fc
  .tuple(uint([0, PAGE, 0x100000, 0xfee00000]), uint([0xfff, 0xfffff, 0xfffffff, 0xfedfffff, 2 ** 39 - 1]))
  .map(([start, last]) => obj({ start, last }));
const rangesArb: fc.Arbitrary<Val> = fc.oneof({ weight: 6, arbitrary: fc.array(rangeArb, { maxLength: 3 }).map(arr) }, { weight: 1, arbitrary: wrongType });

const closeOp = (name: string, on: OpDef['on']): OpDef => ({
  name,
  on,
  weight: 0.5,
  args: none,
  run: (x, s) => {
    try {
      s!.obj.close();
    } finally {
      x.w.markClosed(s!);
    }
  },
});

/** Live (unfreed) DMA buffers of the run. */
const liveBuffers = (x: OpCtx): number => x.w.all('buffer').filter((e) => !e.obj.freed).length;

export const DMA_OPS: OpDef[] = [
  // Container ---------------------------------------------------------------------
  {
    name: 'Container.open',
    weight: 1.5,
    args: () => A(fc.oneof({ weight: 6, arbitrary: fc.constant(undef) }, { weight: 1, arbitrary: fc.constantFrom(str('/dev/null'), str('/dev/iommu'), str('/nonexistent'), str('/tmp'), target('groupPath')) }, { weight: 1, arbitrary: wrongType })),
    run: (x, _s, [p]) => x.w.add('container', x.V.Container.open(p)),
  },
  { name: 'Container.adopt', weight: 0.4, args: () => A(fdVal), run: (x, _s, [fd]) => x.w.add('container', x.V.Container.adopt(fd)) },
  { name: 'container.apiVersion', on: 'container', weight: 0.3, closedThrows: true, args: none, run: (_x, s) => s!.obj.apiVersion() },
  { name: 'container.checkExtension', on: 'container', weight: 0.5, closedThrows: true, args: () => A(index([1, 3, 4, 5, 8, 9, 10])), run: (_x, s, [e]) => s!.obj.checkExtension(e) },
  { name: 'container.extensions', on: 'container', weight: 0.3, closedThrows: true, args: none, run: (_x, s) => s!.obj.extensions() },
  { name: 'container.setIommu', on: 'container', weight: 1.5, closedThrows: true, args: () => A(opt(index([1, 3, 8]), 3, 1)), run: (_x, s, [t]) => s!.obj.setIommu(t) },
  { name: 'container.iommuInfo', on: 'container', weight: 0.7, closedThrows: true, args: none, run: (_x, s) => s!.obj.iommuInfo() },
  { name: 'container.iovaRanges', on: 'container', weight: 0.5, closedThrows: true, args: none, run: (_x, s) => s!.obj.iovaRanges() },
  {
    name: 'container.mapDma',
    on: 'container',
    weight: 1.5,
    closedThrows: true,
    args: () => A(bufferArb, fc.tuple(options({ iova: iovaArb, offset: uint([0, PAGE]), size: sizeArb }), accessArb).map(([a, b]) => obj({ ...(a.t === 'obj' ? a.v : {}), ...(b.t === 'obj' ? b.v : {}) }))),
    run: (_x, s, [b, o]) => s!.obj.mapDma(b, o),
  },
  { name: 'container.unmapDma', on: 'container', closedThrows: true, args: () => A(iovaArb, sizeArb), run: (_x, s, [i, n]) => s!.obj.unmapDma(i, n) },
  {
    name: 'container.map',
    on: 'container',
    closedThrows: true,
    args: () => A(bufferArb, options({ iova: iovaArb, offset: uint([0, PAGE]), size: sizeArb, read: fc.boolean().map(bool), write: fc.boolean().map(bool) })),
    run: (_x, s, [b, o]) => s!.obj.map(b, o),
  },
  { name: 'container.unmapAll', on: 'container', weight: 0.5, closedThrows: true, args: none, run: (_x, s) => s!.obj.unmapAll() },
  closeOp('container.close', 'container'),

  // Group ----------------------------------------------------------------------------
  {
    name: 'Group.open',
    weight: 1.5,
    args: () =>
      A(
        fc.oneof({ weight: 6, arbitrary: fc.constant(target('group')) }, { weight: 1, arbitrary: index([0, 999]) }, { weight: 1, arbitrary: hostile }),
        opt(options({ noiommu: fc.boolean().map(bool), devRoot: fc.oneof(fc.constantFrom(str('/dev/vfio'), str('/tmp'), str('')), wrongType) }), 4, 1),
      ),
    run: (x, _s, [id, o]) => x.w.add('group', x.V.Group.open(id, o)),
  },
  { name: 'group.status', on: 'group', weight: 0.5, closedThrows: true, args: none, run: (_x, s) => s!.obj.status() },
  {
    name: 'group.setContainer',
    on: 'group',
    weight: 1.5,
    closedThrows: true,
    args: () => A(fc.oneof({ weight: 6, arbitrary: refOf('container') }, { weight: 1, arbitrary: refOf('iommufd', 'group') }, { weight: 1, arbitrary: wrongType })),
    run: (x, s, [c]) => {
      s!.obj.setContainer(c);
      const ce = x.w.entryOf(c);
      if (ce) x.w.adopt(ce, s!);
    },
  },
  { name: 'group.unsetContainer', on: 'group', weight: 0.5, closedThrows: true, args: none, run: (_x, s) => s!.obj.unsetContainer() },
  {
    name: 'group.openDevice',
    on: 'group',
    weight: 2,
    closedThrows: true,
    args: () => A(fc.oneof({ weight: 6, arbitrary: fc.constant(target('name')) }, { weight: 1, arbitrary: fc.constantFrom(target('upper'), target('uuidOther'), target('short')) }, { weight: 1, arbitrary: hostile })),
    run: (x, s, [n]) => x.w.add('device', s!.obj.openDevice(n), s!),
  },
  { name: 'group.getters', on: 'group', weight: 0.2, args: none, run: (_x, s) => [s!.obj.id, s!.obj.path, s!.obj.container, s!.obj.closed] },
  closeOp('group.close', 'group'),

  // IommuFd ---------------------------------------------------------------------------
  {
    name: 'IommuFd.open',
    weight: 1.5,
    args: () => A(fc.oneof({ weight: 6, arbitrary: fc.constant(undef) }, { weight: 1, arbitrary: fc.constantFrom(str('/dev/vfio/vfio'), str('/dev/null'), str('/nonexistent')) }, { weight: 1, arbitrary: wrongType })),
    run: (x, _s, [p]) => x.w.add('iommufd', x.V.IommuFd.open(p)),
  },
  { name: 'IommuFd.adopt', weight: 0.4, args: () => A(fdVal), run: (x, _s, [fd]) => x.w.add('iommufd', x.V.IommuFd.adopt(fd)) },
  { name: 'iommufd.allocIoas', on: 'iommufd', weight: 1.5, closedThrows: true, args: none, run: (x, s) => x.w.add('ioas', s!.obj.allocIoas(), s!) },
  {
    name: 'iommufd.allocHwpt',
    on: 'iommufd',
    closedThrows: true,
    args: () =>
      A(
        fc.oneof({ weight: 3, arbitrary: fc.constant<Val>({ t: 'ref', kind: 'device', i: 0 }) }, { weight: 1, arbitrary: index([0, 1, 2, 3]) }),
        fc.oneof({ weight: 3, arbitrary: refOf('ioas') }, { weight: 1, arbitrary: index([0, 1, 2, 3]) }, { weight: 1, arbitrary: wrongType }),
        opt(options({ flags: index([0, 1, 2, 4]), dataType: index([0, 1]), data: bytesVal([0, 16, 32]) })),
      ),
    // A device reference stands for its devid.
    run: (x, s, [dev, parent, o]) => x.w.add('hwpt', s!.obj.allocHwpt(typeof dev === 'object' && dev !== null ? (dev.devid ?? 0) : dev, parent, o), s!),
  },
  {
    name: 'iommufd.hwInfo',
    on: 'iommufd',
    weight: 0.7,
    closedThrows: true,
    args: () => A(fc.oneof({ weight: 3, arbitrary: fc.constant<Val>({ t: 'ref', kind: 'device', i: 0 }) }, { weight: 1, arbitrary: index([0, 1, 2]) }, { weight: 1, arbitrary: hostile })),
    run: (_x, s, [dev]) => s!.obj.hwInfo(typeof dev === 'object' && dev !== null ? (dev.devid ?? 0) : dev),
  },
  {
    name: 'iommufd.option',
    on: 'iommufd',
    weight: 0.7,
    closedThrows: true,
    args: () => A(index([0, 1, 2]), opt(index([0, 1, 2])), opt(fc.oneof(fc.constantFrom(big(0n), big(1n), big(2n)), hostile))),
    run: (_x, s, [id, o, v]) => s!.obj.option(id, o, v),
  },
  { name: 'iommufd.rlimitMode', on: 'iommufd', weight: 0.5, closedThrows: true, args: () => A(opt(fc.oneof(fc.constantFrom(str('user'), str('mm')), wrongType))), run: (_x, s, [m]) => s!.obj.rlimitMode(m) },
  { name: 'iommufd.hugePages', on: 'iommufd', weight: 0.5, args: () => A(fc.oneof(refOf('ioas'), wrongType), opt(fc.boolean().map(bool))), run: (_x, s, [io, on]) => s!.obj.hugePages(io, on) },
  {
    name: 'iommufd.destroy',
    on: 'iommufd',
    weight: 0.5,
    closedThrows: true,
    args: () => A(index([1, 2, 3, 4, 0])),
    run: (x, s, [id]) => {
      s!.obj.destroy(id);
      // The object with that id is gone in the kernel; its wrapper's calls now fail.
      for (const e of [...x.w.all('ioas'), ...x.w.all('hwpt')]) if (e.obj.id === id) x.w.markUnknown(e);
    },
  },
  closeOp('iommufd.close', 'iommufd'),

  // Ioas ------------------------------------------------------------------------------------
  { name: 'ioas.iovaRanges', on: 'ioas', weight: 0.7, closedThrows: true, args: none, run: (_x, s) => s!.obj.iovaRanges() },
  { name: 'ioas.allowIovas', on: 'ioas', weight: 0.5, closedThrows: true, args: () => A(rangesArb), run: (_x, s, [r]) => s!.obj.allowIovas(r) },
  {
    name: 'ioas.map',
    on: 'ioas',
    weight: 1.5,
    closedThrows: true,
    args: () => A(bufferArb, opt(options({ iova: iovaArb, offset: uint([0, PAGE]), size: sizeArb, read: fc.boolean().map(bool), write: fc.boolean().map(bool) }))),
    run: (_x, s, [b, o]) => s!.obj.map(b, o),
  },
  { name: 'ioas.unmap', on: 'ioas', closedThrows: true, args: () => A(iovaArb, sizeArb), run: (_x, s, [i, n]) => s!.obj.unmap(i, n) },
  { name: 'ioas.unmapAll', on: 'ioas', weight: 0.5, closedThrows: true, args: none, run: (_x, s) => s!.obj.unmapAll() },
  {
    name: 'ioas.copyFrom',
    on: 'ioas',
    weight: 0.7,
    closedThrows: true,
    args: () => A(fc.oneof({ weight: 4, arbitrary: refOf('ioas') }, { weight: 1, arbitrary: wrongType }), iovaArb, sizeArb, opt(options({ iova: iovaArb, read: fc.boolean().map(bool), write: fc.boolean().map(bool) }))),
    run: (_x, s, [src, si, n, o]) => s!.obj.copyFrom(src, si, n, o),
  },
  closeOp('ioas.close', 'ioas'),

  // Hwpt -------------------------------------------------------------------------------------
  { name: 'hwpt.setDirtyTracking', on: 'hwpt', weight: 0.5, closedThrows: true, args: () => A(fc.oneof(fc.boolean().map(bool), wrongType)), run: (_x, s, [on]) => s!.obj.setDirtyTracking(on) },
  {
    name: 'hwpt.dirtyBitmap',
    on: 'hwpt',
    weight: 0.5,
    closedThrows: true,
    args: () => A(iovaArb, sizeArb, opt(uint([4096, 1, 2 ** 21, 3])), opt(index([0, 1]))),
    run: (_x, s, [i, n, p, f]) => s!.obj.dirtyBitmap(i, n, p, f),
  },
  closeOp('hwpt.close', 'hwpt'),

  // DmaBuffer ----------------------------------------------------------------------------------
  {
    name: 'allocDmaBuffer',
    weight: 2,
    args: () => A(uint([PAGE, PAGE, 2 * PAGE, 16 * PAGE, 1 << 20, 2 ** 21, 0, PAGE + 1]), opt(options({ hugepage: fc.oneof(fc.constant(bool(false)), fc.constant(bool(true)), wrongType), memfd: fc.boolean().map(bool) }))),
    guard: (x, _s, [size]) => {
      const n = asUint(size);
      if (n !== null && n > DMA_MAX_BYTES) return 'DMA buffer over 1 MiB';
      if (liveBuffers(x) >= DMA_MAX_LIVE) return 'too many live DMA buffers';
      return null;
    },
    run: (x, _s, [size, o]) => x.w.add('buffer', x.V.allocDmaBuffer(size, o)),
  },
  {
    name: 'buffer.free',
    on: 'buffer',
    weight: 1.5,
    args: none,
    run: (x, s) => {
      s!.obj.free();
      x.w.markClosed(s!);
    },
  },
  { name: 'buffer.getters', on: 'buffer', weight: 0.5, args: none, run: (_x, s) => [s!.obj.size, s!.obj.pins, s!.obj.freed, s!.obj.memfd] },
  {
    name: 'buffer.touch',
    on: 'buffer',
    weight: 0.5,
    args: () => A(index([0, 1, 4095, 4096])),
    run: (_x, s, [i]) => {
      const b = new Uint8Array(s!.obj.buffer);
      b[Number(i)] = 0xa5;
      return b[Number(i)];
    },
  },
  {
    name: 'buffer.transfer',
    on: 'buffer',
    weight: 0.2,
    args: none,
    // Try to detach a DmaBuffer's memory (structuredClone with transfer): it must refuse or stay coherent.
    run: (_x, s) => structuredClone(s!.obj.buffer, { transfer: [s!.obj.buffer] }),
  },

  // DmaMapper --------------------------------------------------------------------------------------
  {
    name: 'new DmaMapper',
    weight: 1.5,
    args: () =>
      A(
        spaceArb,
        opt(
          options({
            limit: uint([0x10000000, PAGE, 0, 2 ** 40]),
            min: uint([PAGE, 0, 0x100000]),
            pinning: fc.oneof(fc.constantFrom(bool(true), bool(false), str('auto')), wrongType),
            kernelIova: fc.boolean().map(bool),
            devices: fc.oneof(fc.constant(arr([{ t: 'ref', kind: 'device', i: 0 }])), fc.constant(arr([])), wrongType),
          }),
        ),
      ),
    run: (x, _s, [space, o]) => {
      const m = new x.V.DmaMapper(space, o);
      return x.w.add('mapper', m, null, { note: { space: x.w.entryOf(space) } });
    },
  },
  {
    name: 'mapper.map',
    on: 'mapper',
    weight: 3,
    args: () => A(bufferArb, opt(options({ offset: uint([0, PAGE]), size: sizeArb, iova: iovaArb, align: uint([PAGE, 2 * PAGE, 1 << 20, 3]), read: fc.boolean().map(bool), write: fc.boolean().map(bool) }))),
    run: (x, s, [b, o]) => x.w.add('mapping', s!.obj.map(b, o), null, { note: { mapper: s } }),
  },
  {
    name: 'mapper.unmap',
    on: 'mapper',
    weight: 2,
    args: () => A(fc.oneof({ weight: 4, arbitrary: refOf('mapping') }, { weight: 2, arbitrary: iovaArb }, { weight: 1, arbitrary: wrongType })),
    run: (_x, s, [m]) => s!.obj.unmap(m),
  },
  { name: 'mapper.unmapAll', on: 'mapper', weight: 0.5, args: none, run: (_x, s) => s!.obj.unmapAll() },
  { name: 'mapper.mappings', on: 'mapper', weight: 0.5, args: none, run: (_x, s) => s!.obj.mappings() },
  {
    name: 'mapper.lookup',
    on: 'mapper',
    args: () => A(fc.oneof(refOf('buffer'), bytesVal([1, 4096]), wrongType), opt(uint([0, PAGE, 1]))),
    run: (_x, s, [t, o]) => s!.obj.lookup(t, o),
  },
  { name: 'mapper.find', on: 'mapper', args: () => A(iovaArb), run: (_x, s, [i]) => s!.obj.find(i) },
  { name: 'mapper.memlock', on: 'mapper', weight: 0.3, args: none, run: (_x, s) => s!.obj.memlock() },
  { name: 'mapper.checkLimit', on: 'mapper', weight: 0.3, args: () => A(sizeArb), run: (_x, s, [n]) => s!.obj.checkLimit(n) },
  { name: 'mapper.getters', on: 'mapper', weight: 0.2, args: none, run: (_x, s) => [s!.obj.alignment, s!.obj.ranges, s!.obj.pinning] },
  { name: 'mapper.dirty.probe', on: 'mapper', weight: 0.4, args: none, run: (_x, s) => s!.obj.dirty.probe() },
  { name: 'mapper.dirty.start', on: 'mapper', weight: 0.3, args: none, run: (_x, s) => s!.obj.dirty.start() },
  { name: 'mapper.dirty.stop', on: 'mapper', weight: 0.3, args: none, run: (_x, s) => s!.obj.dirty.stop() },
  { name: 'mapper.dirty.bitmap', on: 'mapper', weight: 0.3, args: () => A(iovaArb, sizeArb, opt(uint([4096, 1, 3]))), run: (_x, s, [i, n, p]) => s!.obj.dirty.bitmap(i, n, p) },

  // IovaAllocator (pure bookkeeping) -------------------------------------------------------------------
  {
    name: 'new IovaAllocator',
    weight: 0.7,
    args: () => A(rangesArb, opt(options({ alignment: uint([PAGE, 1, 2 ** 21, 3, 0]), min: uint([0, PAGE]), limit: uint([0x10000000, 2 ** 53, 0]) }))),
    run: (x, _s, [r, o]) => x.w.add('iova', new x.V.IovaAllocator(r, o)),
  },
  { name: 'iova.alloc', on: 'iova', weight: 1.5, args: () => A(sizeArb, opt(options({ align: uint([PAGE, 2 ** 20, 2 ** 40, 3, 2 ** 63]) }))), run: (_x, s, [n, o]) => s!.obj.alloc(n, o) },
  { name: 'iova.reserve', on: 'iova', args: () => A(iovaArb, sizeArb), run: (_x, s, [i, n]) => s!.obj.reserve(i, n) },
  { name: 'iova.free', on: 'iova', args: () => A(iovaArb), run: (_x, s, [i]) => s!.obj.free(i) },
  { name: 'iova.find', on: 'iova', weight: 0.5, args: () => A(iovaArb), run: (_x, s, [i]) => s!.obj.find(i) },
  { name: 'iova.reset', on: 'iova', weight: 0.2, args: none, run: (_x, s) => s!.obj.reset() },
  { name: 'iova.listings', on: 'iova', weight: 0.3, args: none, run: (_x, s) => [s!.obj.freeRanges(), s!.obj.allocations(), s!.obj.freeBytes, s!.obj.largestFree] },
];
