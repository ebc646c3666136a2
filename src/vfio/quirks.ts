/**
 * Known bugs of the kernel's sample mdev drivers (Linux 6.12) that a plain
 * region access would trigger. Some corrupt guest kernel memory, so the
 * library refuses those accesses with a VfioError that says what to do
 * instead. Source: ../shared/reference/kernel-6.12-facts.md §6.
 */
import { readlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import { VfioError } from '../errors.js';

/** A kernel driver bug that makes pread/pwrite of some regions unsafe. @internal */
export interface RegionQuirk {
  /** Region indexes whose read()/write() must not be used. */
  indexes: readonly number[];
  /** Why, and what to do instead. */
  reason: string;
}

const QUIRKS: Record<string, RegionQuirk[]> = {
  mbochs: [
    {
      indexes: [0],
      reason:
        'mbochs shifts read()/write() of its VRAM BAR by 0x2000 and can run past its page array, corrupting kernel memory (mbochs.c:480): map the region with device.mmap(0) instead',
    },
  ],
  mdpy: [
    {
      indexes: [0, 16],
      reason: 'mdpy ignores the offset of read()/write() on its framebuffer (mdpy.c:189-193): map the region with device.mmap(0) instead',
    },
  ],
  mtty: [
    {
      indexes: [2, 3, 4, 5],
      reason: 'mtty indexes a 2-entry port array with the BAR number, so BAR2-BAR5 accesses write out of bounds in the kernel (mtty.c:164, 738-752): only BAR0/BAR1 are ports',
    },
  ],
};

/**
 * The kernel driver bound to a device, from its sysfs `driver` link.
 *
 * @param name - an mdev UUID or a full PCI address ('0000:00:03.0')
 * @param sysRoot - where `/sys` is found; default `/`
 * @returns the driver's name ('vfio-pci', 'mtty', 'mbochs', …), or null when
 *   the device is unbound or does not exist
 */
export function boundDriver(name: string, sysRoot = '/'): string | null {
  for (const bus of ['mdev', 'pci']) {
    try {
      return basename(readlinkSync(join(sysRoot, 'sys/bus', bus, 'devices', name, 'driver')));
    } catch {
      /* not on this bus */
    }
  }
  return null;
}

/**
 * Throws ERR_VFIO_DRIVER_QUIRK if region `index` of a device bound to `driver` must not be read or written.
 *
 * @internal
 */
export function checkRegionAccess(driver: string | null, index: number): void {
  if (!driver) return;
  for (const q of QUIRKS[driver] ?? []) {
    if (q.indexes.includes(index)) {
      throw new VfioError({
        code: 'ERR_VFIO_DRIVER_QUIRK',
        operation: `region ${index} read/write`,
        message: `ERR_VFIO_DRIVER_QUIRK: refusing read/write of region ${index} on ${driver}`,
        hint: q.reason,
      });
    }
  }
}

/**
 * Throws ERR_VFIO_DRIVER_QUIRK when exporting dma-buf `id` again would be
 * unsafe: mbochs hands out its one dma-buf file again without taking a
 * reference, and re-exports a released one over pages whose references were
 * dropped (mbochs.c:907-924, 1177-1185), so a second export corrupts kernel memory.
 *
 * @internal
 */
export function checkDmabufReexport(driver: string | null, id: number): void {
  if (driver !== 'mbochs') return;
  throw new VfioError({
    code: 'ERR_VFIO_DRIVER_QUIRK',
    operation: 'get gfx dmabuf',
    message: `ERR_VFIO_DRIVER_QUIRK: refusing to export dma-buf ${id} of mbochs a second time`,
    hint: 'mbochs mishandles the references of a dma-buf exported twice (mbochs.c:907-924, 1177-1185): keep the first GfxDmabuf open while you need it; a new mode gets a new id',
  });
}

/**
 * Throws ERR_VFIO_DRIVER_QUIRK before mtty is asked to leave RESUMING when
 * this process did not open the resume session. mtty's close_device drops its
 * resume file but keeps the state (mtty.c:1935-1943), and any arc out of
 * RESUMING loads from that file (mtty_load_state, mtty.c:948-953): a NULL
 * dereference that panics the kernel. The fuzzer found it (a device closed in
 * RESUMING, opened again, asked for STOP). VFIO_DEVICE_RESET is safe: mtty's
 * reset returns the state to RUNNING.
 */
export function checkMigrationLeave(driver: string | null, current: string, ownResumeSession: boolean): void {
  if (driver !== 'mtty' || current !== 'RESUMING' || ownResumeSession) return;
  throw new VfioError({
    code: 'ERR_VFIO_DRIVER_QUIRK',
    operation: 'migration state',
    message: 'ERR_VFIO_DRIVER_QUIRK: refusing to take mtty out of a RESUMING state this process did not enter: mtty no longer has the resume file and would dereference NULL in the kernel',
    hint: 'the device was closed while RESUMING; device.migration.recover() (a VFIO_DEVICE_RESET) returns it to RUNNING safely',
  });
}

/** Whether closing a device with `driver` in migration state `state` must reset it first (see checkMigrationLeave). */
export function resetMigrationBeforeClose(driver: string | null, state: string): boolean {
  return driver === 'mtty' && state !== 'RUNNING';
}
