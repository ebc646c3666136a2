/**
 * Loads the native addon and types its surface. Internal: the public API is the
 * classes in this package, which add the policy (argsz protocols, decoding,
 * ordering, bounds) on top of these thin functions.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VfioError } from './errors.js';

/** An fd owned by native code (closed exactly once, O_CLOEXEC). */
export interface NativeFd {
  readonly fd: number;
  readonly path: string;
  readonly kind: string;
  readonly closed: boolean;
  /**
   * A new key for this handle (keep the one you get): a type-tagged External
   * that every function taking a handle accepts in its place, checked with one
   * tag compare instead of an object's tag check and unwrap. Hot paths pass it.
   */
  readonly key: NativeFdKey;
  close(): void;
}

declare const fdKeyBrand: unique symbol;
/** An opaque key standing for a {@link NativeFd} (see `NativeFd.key`); ERR_VFIO_CLOSED once its handle is gone. */
export interface NativeFdKey {
  readonly [fdKeyBrand]: 'NativeFdKey';
}
/** A handle argument: the handle itself or its key. */
export type FdRef = NativeFd | NativeFdKey;

export interface NativeMapping {
  /** The view's ArrayBuffer (writable mappings only); detached once unmapped. */
  readonly buffer: ArrayBuffer;
  readonly length: number;
  readonly writable: boolean;
  readonly mapped: boolean;
  unmap(): void;
  readInto(offset: bigint | number, dst: Uint8Array): number;
  writeFrom(offset: bigint | number, src: Uint8Array): number;
  load(offset: bigint | number, width: 1 | 2 | 4): number;
  load(offset: bigint | number, width: 8): bigint;
  store(offset: bigint | number, width: number, value: number | bigint): void;
}

/**
 * A non-blocking eventfd owned by native code (O_CLOEXEC), as
 * {@link createEventFd} returns it: for IRQ triggers, ioeventfds and tests.
 *
 * @inline
 */
export interface NativeEventFd {
  /** The fd number (still owned by this object). */
  readonly fd: number;
  /** Whether close() has run. */
  readonly closed: boolean;
  /** Watches the fd with uv_poll on this thread's loop; `cb` gets the counter read on each wake-up (or an error text). */
  start(cb: (err: string | null, count: number) => void): void;
  /** Stops watching. */
  stop(): void;
  /** Lets the watch keep the event loop alive (the default). */
  ref(): void;
  /** Lets the process exit while watching. */
  unref(): void;
  /** Reads and resets the counter without blocking: 0 when nothing was signalled. */
  read(): number;
  /** Adds `count` (default 1) to the counter, as a device's interrupt would. */
  signal(count?: bigint | number): void;
  /** Stops watching and closes the fd; idempotent. */
  close(): void;
}

/**
 * DMA-able memory owned by native code, from {@link allocDmaBuffer}: page-aligned
 * (anonymous, memfd or hugetlb), and never freed while a container or IOAS maps it.
 *
 * @inline
 */
export interface NativeDmaBuffer {
  /** Size in bytes (a multiple of the page or huge-page size). */
  readonly size: bigint;
  /** How many DMA mappings (type1 or IOAS) hold it now; free() refuses with EBUSY while this is above 0. */
  readonly pins: number;
  /** Whether free() has run. */
  readonly freed: boolean;
  /** The memory as an ArrayBuffer; detached once freed. */
  readonly buffer: ArrayBuffer;
  /** The backing memfd's fd number for memfd-backed buffers, else -1. */
  readonly memfd: number;
  /** Releases the memory; idempotent. @throws {@link VfioError} EBUSY while mapped */
  free(): void;
}

export interface StructLayout {
  size: number;
  fields: Record<string, number>;
}

export interface NativeAddon {
  /** The wrapped classes (constructible only from native code). */
  FdHandle: abstract new () => NativeFd;
  Mapping: abstract new () => NativeMapping;
  EventFd: abstract new () => NativeEventFd;
  DmaBuffer: abstract new () => NativeDmaBuffer;
  initialize(errorClass: typeof VfioError): void;
  open(path: string, kind: string, readOnly?: boolean): NativeFd;
  adopt(fd: number, kind: string, label: string): NativeFd;
  layouts(): Record<string, StructLayout>;
  stats(): { openFds: number; fdHandles: number; mappings: number; eventfds: number; dmaBuffers: number };
  mmap(h: FdRef, offset: bigint, length: bigint, writable: boolean): NativeMapping;
  dmaAlloc(size: bigint, hugepage: boolean, memfd: boolean): NativeDmaBuffer;
  eventfd(): NativeEventFd;

  getApiVersion(h: FdRef): number;
  checkExtension(h: FdRef, ext: number): number;
  setIommu(h: FdRef, type: number): number;
  iommuGetInfo(h: FdRef, argsz: number): Buffer;
  mapDma(h: FdRef, flags: number, buf: NativeDmaBuffer, offset: bigint | number, iova: bigint | number, size: bigint | number): void;
  unmapDma(h: FdRef, flags: number, iova: bigint | number, size: bigint | number): bigint;
  iommuDirtyPages(h: FdRef, flags: 1 | 2): undefined;
  iommuDirtyPages(h: FdRef, flags: 4, iova: bigint, size: bigint, pgsize: bigint): Buffer;

  groupGetStatus(h: FdRef): Buffer;
  groupSetContainer(h: FdRef, container: NativeFd): void;
  groupUnsetContainer(h: FdRef): number;
  groupGetDeviceFd(h: FdRef, name: string): NativeFd;

  deviceGetInfo(h: FdRef, argsz: number): Buffer;
  deviceGetRegionInfo(h: FdRef, index: number, argsz: number): Buffer;
  /** The reply copied into `reply` (its length is the argsz); returns that length. */
  deviceGetRegionInfo(h: FdRef, index: number, reply: Uint8Array): number;
  deviceGetIrqInfo(h: FdRef, index: number): Buffer;
  /** The reply copied into `reply` (exactly sizeof(struct vfio_irq_info) bytes); returns that length. */
  deviceGetIrqInfo(h: FdRef, index: number, reply: Uint8Array): number;
  deviceSetIrqs(h: FdRef, irqSet: Uint8Array): void;
  deviceReset(h: FdRef): number;
  deviceQueryGfxPlane(h: FdRef, plane: Uint8Array): Buffer;
  deviceGetGfxDmabuf(h: FdRef, dmabufId: number): NativeFd;
  deviceFeature(h: FdRef, feature: Uint8Array): Buffer;
  deviceIoeventfd(h: FdRef, ioeventfd: Uint8Array): Buffer;
  deviceGetPciHotResetInfo(h: FdRef, argsz: number): Buffer;
  devicePciHotReset(h: FdRef, hotReset: Uint8Array): Buffer;

  iommufdDestroy(h: FdRef, id: number): void;
  ioasAlloc(h: FdRef, flags?: number): number;
  ioasIovaRanges(h: FdRef, ioasId: number, capacity: number): { numIovas: number; alignment: bigint; ranges: Buffer };
  ioasAllowIovas(h: FdRef, ioasId: number, ranges: Uint8Array): void;
  ioasMap(h: FdRef, flags: number, ioasId: number, buf: NativeDmaBuffer, offset: bigint | number, length: bigint | number, iova: bigint | number): bigint;
  ioasUnmap(h: FdRef, ioasId: number, iova: bigint | number, length: bigint | number): bigint;
  ioasCopy(h: FdRef, flags: number, dstIoasId: number, srcIoasId: number, length: bigint, dstIova: bigint, srcIova: bigint): bigint;
  iommufdOption(h: FdRef, optionId: number, op: number, objectId: number, val64: bigint): bigint;
  iommufdVfioIoas(h: FdRef, op: number, ioasId: number): number;
  getHwInfo(h: FdRef, devId: number, dataLen: number): { type: number; maxPasidLog2: number; capabilities: bigint; dataLen: number; data: Buffer };
  hwptAlloc(h: FdRef, flags: number, devId: number, ptId: number, dataType: number, data?: Uint8Array): number;
  hwptSetDirtyTracking(h: FdRef, hwptId: number, enable: boolean): void;
  hwptGetDirtyBitmap(h: FdRef, hwptId: number, iova: bigint, length: bigint, pageSize: bigint, flags: number): Buffer;
  deviceBindIommufd(h: FdRef, iommufd: NativeFd): number;
  deviceAttachPt(h: FdRef, ptId: number): number;
  deviceDetachPt(h: FdRef): void;

  /** MIG_DEVICE_STATE SET; a data fd the kernel returned is already owned by a handle. */
  deviceMigState(h: FdRef, state: number): { state: number; data: NativeFd | null };
  migPrecopyInfo(h: FdRef): Buffer;
  deviceDmaLoggingStart(h: FdRef, pageSize: bigint, ranges: Uint8Array): bigint;
  deviceDmaLoggingStop(h: FdRef): void;
  deviceDmaLoggingReport(h: FdRef, iova: bigint, length: bigint, pageSize: bigint): Buffer;
  /** One read(2) on the thread pool; an empty Buffer at end of stream. */
  fdReadAsync(h: FdRef, maxBytes: number): Promise<Buffer>;
  /** Writes all of `bytes` (copied first) on the thread pool. */
  fdWriteAsync(h: FdRef, bytes: Uint8Array): Promise<number>;
  regionRead(h: FdRef, offset: bigint | number, width: 1 | 2 | 4): number;
  regionRead(h: FdRef, offset: bigint | number, width: 8): bigint;
  regionRead(h: FdRef, offset: bigint | number, width: number): number | bigint;
  regionWrite(h: FdRef, offset: bigint | number, width: number, value: number | bigint): void;
  regionReadInto(h: FdRef, offset: bigint | number, dst: Uint8Array): number;
  regionWriteFrom(h: FdRef, offset: bigint | number, src: Uint8Array): number;
}

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return dir;
}

/** One place the loader looked, and why it did not take it (null: loaded). */
interface Attempt {
  path: string;
  error: string | null;
}

/**
 * Where the addon may be, in order: `VFIO_NATIVE_PATH` alone when set (it wins
 * over everything), else this package's own builds (node-gyp, cmake-js), then
 * the prebuilt binary for this platform that `node-gyp-build` picks from
 * `prebuilds/` (the file `npm pack` ships).
 */
export function addonCandidates(root: string, env: NodeJS.ProcessEnv = process.env): string[] {
  // Relative to the working directory, as a user would mean it (require() would
  // otherwise take a bare relative path for a package name).
  if (env.VFIO_NATIVE_PATH) return [resolve(env.VFIO_NATIVE_PATH)];
  const paths = [
    join(root, 'build', 'Release', 'vfio.node'),
    join(root, 'build-cmake', 'Release', 'vfio.node'),
    join(root, 'build-cmake', 'vfio.node'),
    join(root, 'build', 'Debug', 'vfio.node'),
  ];
  try {
    const gypBuild = createRequire(import.meta.url)('node-gyp-build') as { path(dir: string): string };
    paths.push(gypBuild.path(root));
  } catch {
    paths.push(join(root, 'prebuilds', `${process.platform}-${process.arch}`, '*.node'));
  }
  return [...new Set(paths)];
}

let addon: NativeAddon | undefined;

/**
 * The addon, loaded once per environment (main thread or worker) and wired to
 * VfioError. A candidate that exists but does not load (a corrupt file, a
 * binary for another platform) is passed over for the next one; when none
 * loads, ERR_VFIO_NO_ADDON lists every place and what went wrong there.
 */
export function native(): NativeAddon {
  if (addon) return addon;
  const root = packageRoot();
  const load = createRequire(import.meta.url);
  const tried: Attempt[] = [];
  for (const path of addonCandidates(root)) {
    if (!existsSync(path)) {
      tried.push({ path, error: 'not found' });
      continue;
    }
    let loaded: NativeAddon;
    try {
      loaded = load(path) as NativeAddon;
      if (typeof loaded.initialize !== 'function' || typeof loaded.layouts !== 'function') throw new Error('not the vfio addon (no initialize/layouts exports)');
    } catch (e) {
      tried.push({ path, error: String((e as Error).message ?? e).split('\n')[0]! });
      continue;
    }
    loaded.initialize(VfioError);
    addon = loaded;
    return loaded;
  }
  const viaEnv = !!process.env.VFIO_NATIVE_PATH;
  throw new VfioError({
    code: 'ERR_VFIO_NO_ADDON',
    message: `ERR_VFIO_NO_ADDON: no loadable native addon for ${process.platform}-${process.arch}; tried:\n${tried.map((t) => `  ${t.path}: ${t.error}`).join('\n')}`,
    hint: viaEnv
      ? 'VFIO_NATIVE_PATH names the addon to load: point it at a built vfio.node, or unset it to use the package\'s own'
      : `rebuild it from the shipped sources with \`npm rebuild vfio\` (needs python3, make and g++; Debian: apt-get install python3 make g++), or set VFIO_NATIVE_PATH to a built vfio.node`,
  });
}
