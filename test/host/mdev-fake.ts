/**
 * Fake sysfs/devfs/procfs trees for the host tests of the mdev API and the
 * CLI, laid out like Linux 6.12's (plain files and relative symlinks), plus a
 * tiny fake mdev "driver" that acts on writes to `create`.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';

export interface FakeType {
  id: string;
  name: string;
  description?: string;
  available: number;
}

/** The three sample parents as a fresh guest has them. */
export const SAMPLE_PARENTS: Record<string, FakeType[]> = {
  mtty: [
    { id: 'mtty-1', name: 'Single port serial', available: 24 },
    { id: 'mtty-2', name: 'Dual port serial', available: 12 },
  ],
  mdpy: [
    { id: 'mdpy-hd', name: 'mdpy-hd', description: 'virtual display, 1920x1080 framebuffer', available: 4 },
    { id: 'mdpy-vga', name: 'mdpy-vga', description: 'virtual display, 640x480 framebuffer', available: 4 },
    { id: 'mdpy-xga', name: 'mdpy-xga', description: 'virtual display, 1024x768 framebuffer', available: 4 },
  ],
  mbochs: [
    { id: 'mbochs-large', name: 'mbochs-large', description: 'virtual display, 64 MB video memory', available: 4 },
    { id: 'mbochs-medium', name: 'mbochs-medium', description: 'virtual display, 16 MB video memory', available: 16 },
    { id: 'mbochs-small', name: 'mbochs-small', description: 'virtual display, 4 MB video memory', available: 64 },
  ],
};

export class FakeSys {
  readonly root: string;
  #vfio = 0;
  #group = 0;
  #parentDir = new Map<string, string>();

  constructor() {
    this.root = mkdtempSync(join(tmpdir(), 'vfio-fake-'));
    chmodSync(this.root, 0o755);
    for (const d of ['/sys/class/mdev_bus', '/sys/bus/mdev/devices', '/sys/kernel/iommu_groups', '/dev/vfio/devices', '/proc']) this.dir(d);
  }

  /** The on-disk path of `abs`. */
  p(abs: string): string {
    return join(this.root, abs);
  }

  dir(abs: string): void {
    mkdirSync(this.p(abs), { recursive: true });
  }

  file(abs: string, content = ''): void {
    this.dir(dirname(abs));
    writeFileSync(this.p(abs), content);
  }

  read(abs: string): string {
    return readFileSync(this.p(abs), 'utf8');
  }

  exists(abs: string): boolean {
    return existsSync(this.p(abs));
  }

  /** A symlink at `abs` pointing at the absolute system path `to`, written relative as sysfs does. */
  link(abs: string, to: string): void {
    this.dir(dirname(abs));
    symlinkSync(posix.relative(dirname(abs), to), this.p(abs));
  }

  /** A parent under /sys/devices/virtual/<name>/<name> with its class link and types. */
  addParent(name: string, types: FakeType[], devDir = `/sys/devices/virtual/${name}/${name}`): void {
    this.#parentDir.set(name, devDir);
    this.link(`/sys/class/mdev_bus/${name}`, devDir);
    for (const t of types) {
      const d = `${devDir}/mdev_supported_types/${t.id}`;
      this.file(`${d}/name`, `${t.name}\n`);
      if (t.description !== undefined) this.file(`${d}/description`, `${t.description}\n`);
      this.file(`${d}/device_api`, 'vfio-pci\n');
      this.file(`${d}/available_instances`, `${t.available}\n`);
      this.file(`${d}/create`);
      this.dir(`${d}/devices`);
    }
  }

  addSampleParents(): void {
    for (const [name, types] of Object.entries(SAMPLE_PARENTS)) this.addParent(name, types);
  }

  setAvailable(parent: string, type: string, n: number): void {
    this.file(`${this.#parentDir.get(parent)}/mdev_supported_types/${type}/available_instances`, `${n}\n`);
  }

  /** An IOMMU group directory (and its /dev/vfio/N node unless `node` is false). */
  addGroup(id: number, opts: { name?: string; type?: string; node?: boolean } = {}): void {
    this.dir(`/sys/kernel/iommu_groups/${id}/devices`);
    if (opts.name !== undefined) this.file(`/sys/kernel/iommu_groups/${id}/name`, `${opts.name}\n`);
    this.file(`/sys/kernel/iommu_groups/${id}/type`, `${opts.type ?? 'DMA'}\n`);
    if (opts.node !== false) this.file(`/dev/vfio/${id}`);
  }

  #attach(devDir: string, group: number | null, vfio: number | null, cdevNode: boolean): void {
    const name = posix.basename(devDir);
    if (group !== null) {
      this.link(`${devDir}/iommu_group`, `/sys/kernel/iommu_groups/${group}`);
      this.link(`/sys/kernel/iommu_groups/${group}/devices/${name}`, devDir);
    }
    if (vfio !== null) {
      this.file(`${devDir}/vfio-dev/vfio${vfio}/dev`, `250:${vfio}\n`);
      if (cdevNode) this.file(`/dev/vfio/devices/vfio${vfio}`);
    }
  }

  /**
   * An mdev as the kernel creates it: device dir under the parent, bus and
   * type links, driver, a fresh IOMMU group with its node (unless `groupNode`
   * is false) and a vfio cdev. Returns { group, vfio }.
   */
  addMdev(parent: string, type: string, uuid: string, opts: { groupNode?: boolean; iommuGroup?: boolean; vfio?: boolean } = {}): { group: number; vfio: number } {
    const pdir = this.#parentDir.get(parent)!;
    const dev = `${pdir}/${uuid}`;
    const group = 100 + this.#group++;
    const vfio = this.#vfio++;
    this.dir(dev);
    this.file(`${dev}/remove`);
    this.link(`${dev}/mdev_type`, `${pdir}/mdev_supported_types/${type}`);
    this.link(`${dev}/subsystem`, '/sys/bus/mdev');
    this.link(`${dev}/driver`, `/sys/bus/mdev/drivers/${parent}`);
    this.link(`/sys/bus/mdev/devices/${uuid}`, dev);
    this.link(`${pdir}/mdev_supported_types/${type}/devices/${uuid}`, dev);
    if (opts.iommuGroup === false) return { group: -1, vfio };
    this.addGroup(group, { name: 'vfio-noiommu', type: 'unknown', node: opts.groupNode !== false });
    this.#attach(dev, group, opts.vfio === false ? null : vfio, true);
    return { group, vfio };
  }

  /** A PCI device in IOMMU group `group`, optionally bound to `driver` with a vfio cdev. */
  addPci(addr: string, opts: { vendor: string; device: string; group: number; driver?: string; vfio?: number }): void {
    const dev = `/sys/devices/pci0000:00/${addr}`;
    this.file(`${dev}/vendor`, `${opts.vendor}\n`);
    this.file(`${dev}/device`, `${opts.device}\n`);
    this.link(`${dev}/subsystem`, '/sys/bus/pci');
    if (opts.driver) this.link(`${dev}/driver`, `/sys/bus/pci/drivers/${opts.driver}`);
    this.#attach(dev, opts.group, opts.vfio ?? null, opts.vfio !== undefined);
  }

  /** Makes /proc/<pid>/fd/<fd> point at `target` (an absolute path, as the kernel shows it). */
  holdOpen(pid: number, fd: number, target: string, comm = 'holder'): void {
    this.dir(`/proc/${pid}/fd`);
    this.file(`/proc/${pid}/comm`, `${comm}\n`);
    symlinkSync(target, this.p(`/proc/${pid}/fd/${fd}`));
  }

  /** Removes `abs` (a file, a symlink itself, or a directory with its contents); nothing if it is absent. */
  rm(abs: string): void {
    rmSync(this.p(abs), { recursive: true, force: true });
  }

  /** Replaces the file `abs` with a FIFO: a writer blocks in open() until someone reads, like a busy `remove`. */
  fifo(abs: string): void {
    rmSync(this.p(abs), { force: true });
    execFileSync('mkfifo', [this.p(abs)]);
  }

  readonly #timers = new Set<NodeJS.Timeout>();

  /**
   * The fake driver: every `intervalMs`, turns a UUID written to any type's
   * `create` into an mdev (via `onCreate`, default {@link addMdev}) and empties
   * the file. Returns the function that stops it.
   */
  driver(onCreate: (parent: string, type: string, uuid: string) => void = (p, t, u) => void this.addMdev(p, t, u), intervalMs = 5): () => void {
    const timer = setInterval(() => {
      for (const [parent, pdir] of this.#parentDir) {
        const types = `${pdir}/mdev_supported_types`;
        for (const t of this.#list(types)) {
          const create = `${types}/${t}/create`;
          const uuid = this.read(create).trim();
          if (!uuid) continue;
          writeFileSync(this.p(create), '');
          onCreate(parent, t, uuid);
        }
      }
    }, intervalMs);
    this.#timers.add(timer);
    return () => {
      clearInterval(timer);
      this.#timers.delete(timer);
    };
  }

  #list(abs: string): string[] {
    return existsSync(this.p(abs)) ? readdirSync(this.p(abs)) : [];
  }

  /** Stops the fake drivers, and deletes the tree. */
  cleanup(): void {
    for (const t of this.#timers) clearInterval(t);
    this.#timers.clear();
    rmSync(this.root, { recursive: true, force: true });
  }
}
