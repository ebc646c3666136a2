/**
 * Known fixes for known failures. Policy lives here, in TypeScript: the native
 * seam only reports errno, syscall, operation and path.
 */

/** The failure {@link hintFor} looks up: the same fields as a {@link VfioError}'s. */
export interface HintContext {
  /** The error code: an errno name ('EBUSY') or an 'ERR_VFIO_*' code. */
  code: string;
  /** The system call that failed ('open', 'ioctl', …). */
  syscall?: string | undefined;
  /** The VFIO/iommufd/mdev operation ('VFIO_IOMMU_MAP_DMA', 'mdev create', …). */
  operation?: string | undefined;
  /** The file involved ('/dev/vfio/12', a sysfs attribute, …). */
  path?: string | undefined;
}

interface HintRule {
  when: (c: HintContext) => boolean;
  hint: string | ((c: HintContext) => string);
}

const op = (c: HintContext, ...names: string[]): boolean => c.operation !== undefined && names.includes(c.operation);
const under = (c: HintContext, prefix: string): boolean => c.path !== undefined && c.path.startsWith(prefix);
const isGroupNode = (p?: string): boolean => p !== undefined && /^\/dev\/vfio\/(noiommu-)?\d+$/.test(p);

const RULES: HintRule[] = [
  // --- migration v2 data streams --------------------------------------------
  {
    when: (c) => c.code === 'EFAULT' && op(c, 'migration data write'),
    hint: 'not a stream from a compatible device: the device rejected the stream\'s header (another driver, another version, or another port count)',
  },
  {
    when: (c) => c.code === 'ENOMEM' && op(c, 'migration data write'),
    hint: 'too much data: the stream is longer than this device\'s state (saved from a device with more state, such as more ports, or corrupted)',
  },
  {
    when: (c) => c.code === 'ENODEV' && op(c, 'migration data read'),
    hint: 'the data fd was disabled when the device left STOP_COPY (or PRE_COPY): read everything before leaving that state',
  },
  // --- opening device nodes -------------------------------------------------
  {
    when: (c) => (c.code === 'EACCES' || c.code === 'EPERM') && c.syscall === 'open' && (under(c, '/dev/vfio') || under(c, '/dev/iommu')),
    hint: (c) =>
      `${c.path} is root-only by default: run as root, or give your user access to the node (chown/chmod, or a udev rule such as SUBSYSTEM=="vfio", OWNER="you")`,
  },
  {
    when: (c) => c.code === 'ENOENT' && c.syscall === 'open' && c.path === '/dev/vfio/vfio',
    hint: 'no VFIO container device: load the module (modprobe vfio) or use a kernel with CONFIG_VFIO and CONFIG_VFIO_CONTAINER',
  },
  {
    when: (c) => c.code === 'ENOENT' && c.syscall === 'open' && c.path === '/dev/iommu',
    hint: 'no iommufd device: load the module (modprobe iommufd) or use a kernel with CONFIG_IOMMUFD',
  },
  {
    when: (c) => c.code === 'ENOENT' && c.syscall === 'open' && isGroupNode(c.path),
    hint: 'no such VFIO group: bind the group\'s devices to a VFIO driver (vfio-pci, or create an mdev) and check /sys/kernel/iommu_groups',
  },
  {
    when: (c) => c.code === 'ENOENT' && c.syscall === 'open' && under(c, '/dev/vfio/devices/'),
    hint: 'no such VFIO device cdev: the kernel needs CONFIG_VFIO_DEVICE_CDEV, and the device must be bound to a VFIO driver',
  },
  {
    when: (c) => c.code === 'EBUSY' && c.syscall === 'open' && isGroupNode(c.path),
    hint: 'a VFIO group can be open only once at a time: another process, or another Group object in this one, holds it',
  },
  {
    when: (c) => c.code === 'EINVAL' && c.syscall === 'ioctl' && under(c, '/dev/vfio/devices/') && !op(c, 'VFIO_DEVICE_BIND_IOMMUFD', 'VFIO_DEVICE_ATTACH_IOMMUFD_PT'),
    hint: 'a device cdev answers nothing until it is bound: device.bind(iommufd), then device.attach(ioas)',
  },
  {
    when: (c) => c.code === 'EINVAL' && op(c, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT'),
    hint: 'bind the device to the iommufd first (device.bind(iommufd)); an mdev can only attach to an IOAS',
  },
  // --- group / container ordering ----------------------------------------------
  {
    when: (c) => c.code === 'EINVAL' && op(c, 'VFIO_GROUP_GET_DEVICE_FD'),
    hint: 'the group needs a container with an IOMMU set first (group.setContainer(container) then container.setIommu()), and the device name must match exactly',
  },
  {
    when: (c) => c.code === 'EPERM' && op(c, 'VFIO_SET_IOMMU', 'VFIO_GROUP_SET_CONTAINER', 'VFIO_DEVICE_BIND_IOMMUFD'),
    hint: 'the platform lacks interrupt remapping (MSI isolation): enable IRQ remapping, or allow it with vfio_iommu_type1.allow_unsafe_interrupts=1 / iommufd.allow_unsafe_interrupts=1',
  },
  // --- DMA ---------------------------------------------------------------------
  {
    when: (c) => c.code === 'ENOMEM' && op(c, 'VFIO_IOMMU_MAP_DMA', 'IOMMU_IOAS_MAP'),
    hint: 'pinning the pages exceeded RLIMIT_MEMLOCK: raise it (ulimit -l, or LimitMEMLOCK= in systemd) or run with CAP_IPC_LOCK',
  },
  {
    when: (c) => c.code === 'ENOSPC' && op(c, 'VFIO_IOMMU_MAP_DMA'),
    hint: 'the type1 IOMMU ran out of DMA mapping entries: raise /sys/module/vfio_iommu_type1/parameters/dma_entry_limit or map larger buffers',
  },
  {
    when: (c) => c.code === 'EINVAL' && op(c, 'VFIO_DEVICE_RESET'),
    hint: 'the device has no working reset method (VFIO_DEVICE_FLAGS_RESET is not set in device.info().flags)',
  },
  {
    when: (c) => c.code === 'ENODEV' && op(c, 'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO', 'VFIO_DEVICE_PCI_HOT_RESET'),
    hint: 'neither the slot nor the bus of this device can be reset (e.g. a device on the root bus)',
  },
  // --- kernel quirks -------------------------------------------------------------
  {
    when: (c) => c.code === 'ENOMEM' && op(c, 'VFIO_DEVICE_QUERY_GFX_PLANE'),
    hint: 'mbochs answers ENOMEM to the first query of a new mode (samples/vfio-mdev/mbochs.c); querying again succeeds',
  },
  {
    when: (c) => c.code === 'EINVAL' && op(c, 'dma-buf mmap'),
    hint:
      'mbochs exports gfx dma-bufs read-only (dma_buf_fd(buf, 0)), the kernel drops VM_SHARED from mappings of read-only files (mm/mmap.c:411) and mbochs_mmap_dmabuf() requires it (mbochs.c:841): its dma-bufs cannot be mapped from userspace on Linux 6.12; read the pixels through the VRAM region (device.mmap(0)) at the plane\'s offset',
  },
  // --- mdev sysfs ----------------------------------------------------------------
  {
    when: (c) => c.code === 'EEXIST' && op(c, 'mdev create'),
    hint: 'that UUID is already in use by an mdev (on any parent): pick another, or omit it to generate one',
  },
  {
    when: (c) => c.code === 'ENOSPC' && op(c, 'mdev create'),
    hint: 'the parent has no resources left for this type (mtty: 24 ports shared by mtty-1 and mtty-2; mbochs: the module\'s `count` MB of video memory): remove an mdev first',
  },
  {
    when: (c) => c.code === 'EUSERS' && op(c, 'mdev create'),
    hint: 'the parent\'s instance limit is reached (mdpy: `count` instances, 4 by default, shared by its types): remove an mdev first',
  },
  // --- mdev definitions (mdevctl's /etc/mdevctl.d) -----------------------------------
  {
    when: (c) => c.code === 'EINVAL' && op(c, 'mdev definition'),
    hint: 'fix the file, in mdevctl\'s format { "mdev_type": "<type>", "start": "auto" or "manual", "attrs": [ { "<name>": "<value>" }, … ] }, or delete it (`vfio mdev undefine`)',
  },
  {
    when: (c) => c.code === 'EEXIST' && op(c, 'mdev define'),
    hint: 'that UUID is already defined on this parent: change the definition with `vfio mdev modify`, or `vfio mdev undefine` it first',
  },
  {
    when: (c) => (c.code === 'EACCES' || c.code === 'EPERM' || c.code === 'EROFS') && op(c, 'mdev define', 'mdev modify', 'mdev undefine'),
    hint: 'the definitions directory (/etc/mdevctl.d) is writable by root only',
  },
  {
    when: (c) => c.code === 'ENOENT' && op(c, 'mdev start', 'mdev autostart') && under(c, '/sys/bus/mdev/devices/'),
    hint: 'the definition names an attribute this device does not have: fix it with `vfio mdev modify <uuid> --delattr --index N`',
  },
  {
    when: (c) => c.code !== 'EACCES' && c.code !== 'EPERM' && op(c, 'mdev start', 'mdev autostart') && under(c, '/sys/bus/mdev/devices/'),
    hint: 'the device rejected the value (its driver decides what it accepts): fix the definition with `vfio mdev modify <uuid> --delattr --index N` and `--addattr NAME --value V --index N`',
  },
  {
    when: (c) => c.code === 'ENOENT' && op(c, 'mdev start', 'mdev autostart') && under(c, '/sys/class/mdev_bus/') && c.path!.includes('/mdev_supported_types/'),
    hint: 'the parent does not offer the definition\'s type: change it with `vfio mdev modify <uuid> --type T` (types: `vfio mdev types`)',
  },
  {
    when: (c) => c.code === 'ENOENT' && op(c, 'mdev start', 'mdev autostart') && under(c, '/sys/class/mdev_bus/'),
    hint: 'the parent device is not present: load its driver; `vfio mdev autostart` (or mdevctl\'s udev rule) starts its auto definitions once it is',
  },
  {
    when: (c) => c.code === 'ENOENT' && op(c, 'mdev start', 'mdev modify', 'mdev undefine'),
    hint: 'no definition has that UUID: list them with `vfio mdev list --defined`; `vfio mdev create` starts a device without one',
  },
  {
    when: (c) => c.code === 'EEXIST' && op(c, 'mdev start', 'mdev autostart'),
    hint: 'the device runs already: stop it first (`vfio mdev stop`)',
  },
  {
    when: (c) => (c.code === 'EACCES' || c.code === 'EPERM') && under(c, '/sys/'),
    hint: 'writing sysfs attributes needs root',
  },
  {
    when: (c) => c.code === 'EINVAL' && c.operation !== undefined && c.operation.startsWith('mdev '),
    hint: 'an mdev UUID is 36 characters, 8-4-4-4-12 hexadecimal digits (any case); omit it when creating to get a fresh one',
  },
  {
    when: (c) => c.code === 'ENOENT' && op(c, 'mdev create', 'mdev types', 'mdev type'),
    hint: 'list the parents and types with `vfio mdev types`; the sample parents come from the mtty, mdpy and mbochs modules (modprobe them)',
  },
  {
    when: (c) => c.code === 'ENOENT' && op(c, 'mdev remove', 'mdev stop', 'mdev lookup'),
    hint: 'no mdev has that UUID (removed already?): list them with `vfio mdev list`',
  },
  {
    when: (c) => c.code === 'EBUSY' && op(c, 'mdev remove', 'mdev stop'),
    hint: 'close this process\'s handles on the device first: the kernel would block the remove write until they are closed',
  },
  {
    when: (c) => c.code === 'ETIMEDOUT' && op(c, 'mdev create'),
    hint: 'the kernel accepted the UUID but the device did not reach VFIO in time; it is still listed by `vfio mdev list`: check its driver binding and remove it with `vfio mdev remove`',
  },
  {
    when: (c) => c.code === 'ETIMEDOUT' && op(c, 'mdev remove', 'mdev stop'),
    hint: 'a process holds the device open; the kernel finishes the removal in the background once it is closed',
  },
  {
    when: (c) => c.code === 'EAGAIN' && op(c, 'mdev remove', 'mdev stop'),
    hint: 'the device is still being created or is already being removed: try again shortly',
  },
  {
    when: (c) => c.code === 'ENODEV' && op(c, 'mdev create', 'mdev remove', 'mdev stop'),
    hint: 'the parent is being unregistered (its module is unloading)',
  },
  // --- DMA buffers and IOVA allocation ------------------------------------------------
  {
    when: (c) => op(c, 'DmaBuffer alloc (hugetlb)'),
    hint: 'no free huge pages: reserve some first (echo N > /proc/sys/vm/nr_hugepages, 2 MiB each; check HugePages_Free in /proc/meminfo), or allocate without hugepage',
  },
  {
    when: (c) => c.code === 'ENOSPC' && op(c, 'IOVA alloc'),
    hint: 'the IOVA space (within the DMA mapper\'s limit) has no free block that large: unmap mappings you no longer need, map smaller pieces, or raise the limit if the device can address more',
  },
];

/**
 * The known fix for a failure: permissions on `/dev/vfio` and `/dev/iommu`,
 * missing modules, the order of group/container and cdev/iommufd calls,
 * RLIMIT_MEMLOCK and the type1 mapping limit, mdev resource limits, and the
 * kernel's sample drivers' quirks. {@link VfioError} fills its `hint` from this.
 *
 * @param c - the code, syscall, operation and path of the failure
 * @returns one sentence naming the fix, or undefined when none is known
 */
export function hintFor(c: HintContext): string | undefined {
  for (const r of RULES) if (r.when(c)) return typeof r.hint === 'string' ? r.hint : r.hint(c);
  return undefined;
}
