/**
 * A VFIO group (/dev/vfio/N): status, container attachment, device fds.
 */
import { VfioError } from '../errors.js';
import { Container } from './container.js';
import { Device } from './device.js';
import { native, type NativeFd } from '../native.js';
import { Resource } from '../resource.js';
import { decodeGroupStatus, type GroupStatus } from '../uapi/vfio.js';

/**
 * A VFIO group (`/dev/vfio/N`): the unit of ownership on the legacy path.
 * Every device of an IOMMU group must be bound to a VFIO driver before the
 * group is viable. Put it in a {@link Container}, set the container's IOMMU,
 * then open its devices:
 *
 * ```ts
 * using container = Container.open();
 * const group = Group.open(12);
 * group.setContainer(container);
 * container.setIommu();
 * const device = group.openDevice('0000:00:03.0');
 * ```
 *
 * {@link openDevice} does all of this in one call. Closing a group closes
 * its devices first.
 */
export class Group extends Resource {
  /** The IOMMU group number. */
  readonly id: number;
  /** The group node that was opened ('/dev/vfio/12', '/dev/vfio/noiommu-0', …). */
  readonly path: string;
  readonly #fd: NativeFd;
  #container: Container | null = null;

  /** @internal */
  constructor(id: number, fd: NativeFd) {
    super();
    this.id = id;
    this.path = fd.path;
    this.#fd = fd;
  }

  /**
   * Opens /dev/vfio/<id> (or /dev/vfio/noiommu-<id> with `noiommu`). A group can
   * be open only once at a time: a second open answers EBUSY.
   *
   * @param id - the IOMMU group number (`/sys/kernel/iommu_groups/<id>`)
   * @param options - `noiommu` for a no-IOMMU group; `devRoot` instead of `/dev/vfio`
   * @throws RangeError for an id that is not a non-negative integer
   * @throws {@link VfioError} ENOENT when no such group exists (its devices are
   *   not bound to a VFIO driver), EBUSY when it is already open, EACCES
   */
  static open(id: number, options: { noiommu?: boolean; devRoot?: string } = {}): Group {
    if (!Number.isInteger(id) || id < 0) throw new RangeError(`group id must be a non-negative integer, got ${String(id)}`);
    const path = `${options.devRoot ?? '/dev/vfio'}/${options.noiommu ? 'noiommu-' : ''}${id}`;
    return new Group(id, native().open(path, 'group'));
  }

  protected describe(): string {
    return `group ${this.id}`;
  }

  /**
   * VFIO_GROUP_GET_STATUS: whether the group is viable (all its devices bound
   * to VFIO drivers) and whether it is in a container.
   */
  status(): GroupStatus {
    this.ensureOpen('status');
    return decodeGroupStatus(native().groupGetStatus(this.#fd));
  }

  /** The container this group was put in with {@link Group.setContainer}, or null. */
  get container(): Container | null {
    return this.#container;
  }

  /**
   * VFIO_GROUP_SET_CONTAINER. The container then closes this group before itself.
   *
   * @throws {@link VfioError} EBUSY when the group already has a container;
   *   EPERM without interrupt remapping (see the hint)
   */
  setContainer(container: Container): void {
    this.ensureOpen('set container');
    if (this.#container) throw new VfioError({ code: 'EBUSY', errno: 16, operation: 'VFIO_GROUP_SET_CONTAINER', path: this.path, message: `group ${this.id} already has a container` });
    native().groupSetContainer(this.#fd, container.handle('set container'));
    this.#container = container;
    container.attach(this);
  }

  /**
   * VFIO_GROUP_UNSET_CONTAINER.
   *
   * @throws {@link VfioError} EBUSY from the kernel while devices of the group are open
   */
  unsetContainer(): void {
    this.ensureOpen('unset container');
    native().groupUnsetContainer(this.#fd);
    this.#container = null;
  }

  /**
   * VFIO_GROUP_GET_DEVICE_FD. The container must have its IOMMU set first;
   * the kernel answers EINVAL otherwise (and for a wrong name).
   *
   * @param name - the device's sysfs name: a full PCI address ('0000:00:03.0') or an mdev UUID
   * @returns the device, which this group closes before itself
   * @throws TypeError for an empty name
   * @throws {@link VfioError} EINVAL (with a hint) for a wrong name or without an IOMMU set
   */
  openDevice(name: string): Device {
    this.ensureOpen('open device');
    if (typeof name !== 'string' || name.length === 0) throw new TypeError('device name must be a non-empty string');
    const fd = native().groupGetDeviceFd(this.#fd, name);
    const dev = new Device(name, fd, 'group');
    this.adopt(dev);
    return dev;
  }

  protected release(): void {
    this.#fd.close();
    this.#container = null;
  }
}
