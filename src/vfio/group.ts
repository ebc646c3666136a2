/**
 * A VFIO group (/dev/vfio/N): status, container attachment, device fds.
 */
import { VfioError } from '../errors.js';
import { Container } from './container.js';
import { Device } from './device.js';
import { native, type NativeFd } from '../native.js';
import { Resource } from '../resource.js';
import { decodeGroupStatus, type GroupStatus } from '../uapi/vfio.js';

export class Group extends Resource {
  /** The IOMMU group number. */
  readonly id: number;
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
   */
  static open(id: number, options: { noiommu?: boolean; devRoot?: string } = {}): Group {
    if (!Number.isInteger(id) || id < 0) throw new RangeError(`group id must be a non-negative integer, got ${String(id)}`);
    const path = `${options.devRoot ?? '/dev/vfio'}/${options.noiommu ? 'noiommu-' : ''}${id}`;
    return new Group(id, native().open(path, 'group'));
  }

  protected describe(): string {
    return `group ${this.id}`;
  }

  /** VFIO_GROUP_GET_STATUS. */
  status(): GroupStatus {
    this.ensureOpen('status');
    return decodeGroupStatus(native().groupGetStatus(this.#fd));
  }

  get container(): Container | null {
    return this.#container;
  }

  /** VFIO_GROUP_SET_CONTAINER. The container then closes this group before itself. */
  setContainer(container: Container): void {
    this.ensureOpen('set container');
    if (this.#container) throw new VfioError({ code: 'EBUSY', errno: 16, operation: 'VFIO_GROUP_SET_CONTAINER', path: this.path, message: `group ${this.id} already has a container` });
    native().groupSetContainer(this.#fd, container.handle('set container'));
    this.#container = container;
    container.attach(this);
  }

  /** VFIO_GROUP_UNSET_CONTAINER (the kernel refuses while devices are open). */
  unsetContainer(): void {
    this.ensureOpen('unset container');
    native().groupUnsetContainer(this.#fd);
    this.#container = null;
  }

  /**
   * VFIO_GROUP_GET_DEVICE_FD. The container must have its IOMMU set first;
   * the kernel answers EINVAL otherwise (and for a wrong name).
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
