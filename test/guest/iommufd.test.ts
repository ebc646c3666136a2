/**
 * iommufd and the device cdev (kernel-6.12-facts §3.5): the same device on both
 * backends, IOAS behaviour, edu behind the emulated VT-d, and bad input.
 */
import { closeSync, openSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allocDmaBuffer } from '../../src/dma/buffer.js';
import { Device } from '../../src/vfio/device.js';
import { VfioError } from '../../src/errors.js';
import { IommuFd } from '../../src/iommufd/iommufd.js';
import { openDevice, resolveDevice } from '../../src/vfio/open.js';
import { createMdev, eduAddress, removeMdev } from './fixtures.js';

const TYPES = ['mtty-1', 'mtty-2', 'mdpy-vga', 'mdpy-xga', 'mdpy-hd', 'mbochs-small', 'mbochs-medium', 'mbochs-large'];
const U64_MAX = 0xffff_ffff_ffff_ffffn;
const json = (v: unknown): string => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `${x}n` : Buffer.isBuffer(x) ? x.toString('hex') : x));

function catchErr(f: () => unknown): VfioError | undefined {
  try {
    f();
  } catch (e) {
    return e as VfioError;
  }
  return undefined;
}

describe.each(TYPES)('%s on both backends', (type) => {
  let uuid: string;
  beforeAll(() => {
    uuid = createMdev(type);
  });
  afterAll(() => removeMdev(uuid));

  it('gives identical device, region and irq results', () => {
    const results = (['group', 'cdev'] as const).map((backend) => {
      using o = openDevice(uuid, { backend });
      expect(o.backend).toBe(backend);
      expect(o.device.backend).toBe(backend);
      const info = o.device.info();
      return json({ info, regions: o.device.regions(), irqs: o.device.irqs() });
    });
    expect(results[1]).toBe(results[0]);
  });

  it('maps the mmap-able region and (mtty) delivers interrupts on the cdev path', async () => {
    using o = openDevice(uuid, { backend: 'cdev' });
    if (type.startsWith('mtty')) {
      const irq = o.device.enableInterrupts(1);
      const got = irq.next({ signal: AbortSignal.timeout(5000) });
      o.device.trigger(1);
      expect(await got).toEqual({ vector: 0, count: 1 });
      irq.close();
      expect(() => o.device.mmap(0)).toThrow(/cannot be mmap'd/);
    } else {
      const view = o.device.mmap(0, { length: 4096 });
      view.bytes[0] = 0x5a;
      expect(view.bytes[0]).toBe(0x5a);
      view.unmap();
    }
  });
});

describe('IOAS behaviour with an mdev', () => {
  let uuid: string;
  beforeAll(() => {
    uuid = createMdev('mtty-1');
  });
  afterAll(() => removeMdev(uuid));

  it('a fresh IOAS has one range 0..2^64-1; attaching an mdev makes the alignment 4096', () => {
    using iommufd = IommuFd.open();
    const ioas = iommufd.allocIoas();
    expect(ioas.iovaRanges()).toEqual({ ranges: [{ start: 0n, last: U64_MAX }], alignment: 1n });
    const dev = Device.openCdev(resolveDevice(uuid).cdevPath!);
    iommufd.own(dev);
    const devid = dev.bind(iommufd);
    expect(devid).toBeGreaterThan(0);
    expect(dev.attach(ioas)).toBe(ioas.id);
    expect(ioas.iovaRanges()).toEqual({ ranges: [{ start: 0n, last: U64_MAX }], alignment: 4096n });
  });

  it('unmapping a range with nothing mapped is ENOENT; destroying an attached IOAS is EBUSY', () => {
    using o = openDevice(uuid, { backend: 'cdev' });
    expect(catchErr(() => o.ioas!.unmap(0x100000n, 0x1000n))).toMatchObject({ code: 'ENOENT', operation: 'IOMMU_IOAS_UNMAP' });
    expect(o.ioas!.unmapAll()).toBe(0n);
    expect(catchErr(() => o.iommufd!.destroy(o.ioas!.id))).toMatchObject({ code: 'EBUSY', operation: 'IOMMU_DESTROY' });
  });

  it('before BIND every ioctl is EINVAL, with a hint', () => {
    const dev = Device.openCdev(resolveDevice(uuid).cdevPath!);
    try {
      const err = catchErr(() => dev.info());
      expect(err).toMatchObject({ code: 'EINVAL', operation: 'VFIO_DEVICE_GET_INFO' });
      expect(err!.hint).toMatch(/bind/);
      expect(catchErr(() => dev.regionInfo(0))).toMatchObject({ code: 'EINVAL' });
    } finally {
      dev.close();
    }
  });

  it('an mdev devid answers GET_HW_INFO and HWPT_ALLOC with ENOENT (an access, not a device)', () => {
    using o = openDevice(uuid, { backend: 'cdev' });
    const devid = o.device.devid!;
    expect(catchErr(() => o.iommufd!.hwInfo(devid))).toMatchObject({ code: 'ENOENT', operation: 'IOMMU_GET_HW_INFO' });
    expect(catchErr(() => o.iommufd!.allocHwpt(devid, o.ioas!))).toMatchObject({ code: 'ENOENT', operation: 'IOMMU_HWPT_ALLOC' });
  });

  it('maps library-owned buffers at kernel-chosen and fixed IOVAs, copies between IOASes, and refuses overlap (EEXIST)', () => {
    using o = openDevice(uuid, { backend: 'cdev' });
    const ioas = o.ioas!;
    const buf = allocDmaBuffer(0x10000);
    const chosen = ioas.map(buf, { size: 0x4000 });
    expect(chosen % 4096n).toBe(0n);
    expect(chosen).toBeGreaterThan(0n);
    expect(ioas.map(buf, { iova: 0x4000_0000n, offset: 0x4000 })).toBe(0x4000_0000n);
    expect(buf.pins).toBe(2);
    expect(catchErr(() => ioas.map(buf, { iova: 0x4000_1000n, size: 0x1000 }))).toMatchObject({ code: 'EEXIST', operation: 'IOMMU_IOAS_MAP' });
    const other = o.iommufd!.allocIoas();
    expect(other.copyFrom(ioas, 0x4000_0000n, 0xc000n, { iova: 0x8000_0000n })).toBe(0x8000_0000n);
    expect(buf.pins).toBe(3);
    expect(catchErr(() => buf.free())).toMatchObject({ code: 'EBUSY' });
    expect(ioas.unmap(0x4000_0000n, 0xc000n)).toBe(0xc000n);
    expect(ioas.unmapAll()).toBe(0x4000n);
    other.close();
    expect(buf.pins).toBe(0);
    buf.free();
    expect(catchErr(() => other.iovaRanges())).toMatchObject({ code: 'ERR_VFIO_CLOSED' });
    expect(() => ioas.map(buf, {})).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
  });

  it('bad input: double bind, attach before bind, a cdev path that is not a VFIO device, an fd that is not one', () => {
    using o = openDevice(uuid, { backend: 'cdev' });
    expect(catchErr(() => o.device.bind(o.iommufd!))).toMatchObject({ code: 'EINVAL', operation: 'VFIO_DEVICE_BIND_IOMMUFD' });
    expect(() => resolveDevice('/dev/vfio/devices/vfio999')).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    const fd = openSync('/dev/null', 'r');
    try {
      expect(() => Device.adoptCdev(fd)).toThrow(/not a VFIO device cdev/);
    } finally {
      closeSync(fd);
    }
  });

  it('closes device before IOAS before iommufd, whatever order they were made in', () => {
    const o = openDevice(uuid, { backend: 'cdev' });
    o.close();
    expect([o.device.closed, o.ioas!.closed, o.iommufd!.closed]).toEqual([true, true, true]);
    // the mdev is free again: a new open works
    using again = openDevice(uuid, { backend: 'cdev' });
    expect(again.device.info().numRegions).toBe(9);
  });
});

describe('iommufd options, allowed IOVAs, fd passing and detach', () => {
  let uuid: string;
  beforeAll(() => {
    uuid = createMdev('mtty-1');
  });
  afterAll(() => removeMdev(uuid));

  it('IOMMU_OPTION: RLIMIT mode per user by default, settable to per-mm only while the iommufd is empty; huge pages per IOAS', () => {
    using fresh = IommuFd.open();
    expect(fresh.rlimitMode()).toBe('user');
    expect(fresh.rlimitMode('mm')).toBe('mm');
    expect(fresh.rlimitMode()).toBe('mm');
    const ioas = fresh.allocIoas();
    expect(catchErr(() => fresh.rlimitMode('user'))).toMatchObject({ code: 'EBUSY', operation: 'IOMMU_OPTION' });
    expect(fresh.hugePages(ioas)).toBe(true);
    expect(fresh.hugePages(ioas, false)).toBe(false);
    expect(fresh.hugePages(ioas)).toBe(false);
  });

  it('IOMMU_IOAS_ALLOW_IOVAS confines kernel-chosen IOVAs', () => {
    using iommufd = IommuFd.open();
    const ioas = iommufd.allocIoas();
    ioas.allowIovas([{ start: 0x1000_0000n, last: 0x1fff_ffffn }]);
    const buf = allocDmaBuffer(0x2000);
    const iova = ioas.map(buf);
    expect(iova >= 0x1000_0000n && iova + 0x2000n - 1n <= 0x1fff_ffffn).toBe(true);
    // Allowed ranges only conflict with reserved ones (io_pagetable.c:782-801), not with
    // mappings: a new range is taken, and the next kernel-chosen IOVA lands in it.
    ioas.allowIovas([{ start: 0x3000_0000n, last: 0x3fff_ffffn }]);
    const next = ioas.map(buf);
    expect(next >= 0x3000_0000n && next <= 0x3fff_ffffn).toBe(true);
    ioas.unmapAll();
    buf.free();
  });

  it('adopts a device cdev fd handed in (as a VMM would), keeping the caller\'s fd its own', () => {
    const fd = openSync(resolveDevice(uuid).cdevPath!, 'r+');
    try {
      using iommufd = IommuFd.open();
      const ioas = iommufd.allocIoas();
      const dev = Device.adoptCdev(fd);
      expect(dev.name).toBe(uuid);
      expect(dev.backend).toBe('cdev');
      dev.bind(iommufd);
      dev.attach(ioas);
      expect(dev.info().numRegions).toBe(9);
      dev.detach();
      expect(dev.attachedTo).toBeNull();
      expect(dev.attach(ioas)).toBe(ioas.id);
      dev.close();
    } finally {
      closeSync(fd);
    }
  });
});

describe('attach before bind', () => {
  it('is refused by the kernel', () => {
    const uuid = createMdev('mtty-1');
    try {
      using iommufd = IommuFd.open();
      const ioas = iommufd.allocIoas();
      const dev = Device.openCdev(resolveDevice(uuid).cdevPath!);
      iommufd.own(dev);
      expect(catchErr(() => dev.attach(ioas))).toMatchObject({ code: 'EINVAL', operation: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT' });
    } finally {
      removeMdev(uuid);
    }
  });
});

describe('edu via cdev + iommufd behind VT-d', () => {
  it('reports Intel VT-d hardware info, and a HWPT can be allocated and attached', () => {
    using o = openDevice(eduAddress(), { backend: 'cdev' });
    const hw = o.iommufd!.hwInfo(o.device.devid!);
    expect(hw.typeName).toBe('intel-vtd');
    expect(hw.vtd!.capReg).toBeGreaterThan(0n);
    expect(hw.vtd!.ecapReg).toBeGreaterThan(0n);
    const hwpt = o.iommufd!.allocHwpt(o.device.devid!, o.ioas!);
    expect(hwpt.id).toBeGreaterThan(0);
    expect(o.device.attach(hwpt)).toBe(hwpt.id);
    expect(o.device.region(0).read32(0)).toBe(0x010000ed);
  });

  it('has the same regions and irqs as on the group path', () => {
    const r = (['group', 'cdev'] as const).map((backend) => {
      using o = openDevice(eduAddress(), { backend });
      return json({ regions: o.device.regions(), irqs: o.device.irqs(), flags: o.device.info().flags });
    });
    expect(r[1]).toBe(r[0]);
  });
});
