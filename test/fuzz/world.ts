/**
 * The objects one fuzzed run has made, by kind, with what the run knows of
 * their lifetimes: which object closes which (the library's own ordering:
 * container → groups → devices → views/interrupts/dma-bufs; iommufd → IOAS/HWPT
 * → attached devices), and whether each is open, closed, or unknown (after an
 * operation that may or may not have revoked it). The model only has to be
 * right about "closed": that is what the use-after-close oracle relies on.
 */
import { closeSync, openSync } from 'node:fs';
import type { FdWhich, Kind, Resolver } from './values.js';
import type { TargetInfo } from './targets.js';

export type LifeState = 'open' | 'closed' | 'unknown';

/** One object of the run. */
export interface Entry {
  readonly kind: Kind;
  readonly obj: any;
  /** A sequence number within the run, for reports. */
  readonly id: number;
  state: LifeState;
  parent: Entry | null;
  readonly children: Set<Entry>;
  /** For regions, views, interrupts and dma-bufs: the device they belong to. */
  device?: Entry;
  /** Free-form facts the ops keep (a view's region index, a pending op's name…). */
  note?: Record<string, unknown>;
}

/** An async operation started by one command and settled later. */
export interface Pending {
  op: string;
  cmdIndex: number;
  promise: Promise<unknown>;
  settled: boolean;
  /** The signal it waits on, if any: aborting makes rejection with its reason legitimate. */
  signal?: AbortSignal;
}

export class World {
  readonly target: TargetInfo;
  readonly #byKind = new Map<Kind, Entry[]>();
  #nextId = 0;
  /** Every AbortSignal made for this run. */
  readonly signals: AbortSignal[] = [];
  readonly pending: Pending[] = [];
  /** fds the run opened itself (to hand to adopt(), setIrqs() …), closed at the end. */
  readonly #fds = new Map<string, number>();
  /**
   * fds of the target's group and cdev nodes, closed right after the command
   * that got them: held longer, they would keep the library from opening the
   * target (a group opens once) for the rest of the run.
   */
  readonly #transient: number[] = [];
  /** mdevs created during the run (library or CLI), removed at the end. */
  readonly createdMdevs = new Set<string>();
  /** Temporary files the run may write (screenshots). */
  readonly tmpDir: string;

  constructor(target: TargetInfo, tmpDir: string) {
    this.target = target;
    this.tmpDir = tmpDir;
  }

  /** Registers a new object; `parent` closes it when closed itself. */
  add(kind: Kind, obj: unknown, parent: Entry | null = null, extra: Partial<Pick<Entry, 'device' | 'note'>> = {}): Entry {
    const e: Entry = { kind, obj, id: this.#nextId++, state: 'open', parent: null, children: new Set(), ...extra };
    if (parent) this.adopt(parent, e);
    let list = this.#byKind.get(kind);
    if (!list) this.#byKind.set(kind, (list = []));
    list.push(e);
    return e;
  }

  /** `parent` now closes `child` (moving it from its previous parent), as Resource.adopt does. */
  adopt(parent: Entry, child: Entry): void {
    if (child.parent === parent) return;
    child.parent?.children.delete(child);
    child.parent = parent;
    parent.children.add(child);
    // Closing a closed parent does nothing, so a child adopted by one stays as it is.
  }

  /** The entry for an object, if the run knows it. */
  entryOf(obj: unknown): Entry | undefined {
    for (const list of this.#byKind.values()) for (const e of list) if (e.obj === obj) return e;
    return undefined;
  }

  all(kind: Kind): readonly Entry[] {
    return this.#byKind.get(kind) ?? [];
  }

  /**
   * The `i`th most recent object of `kind` (0: the newest; modulo how many
   * there are), closed ones included: calls mostly land on what was just made.
   */
  pick(kind: Kind, i: number): Entry | undefined {
    const list = this.#byKind.get(kind);
    if (!list?.length) return undefined;
    return list[list.length - 1 - (Math.abs(i) % list.length)];
  }

  /** Closes `e` in the model, and everything it closes. */
  markClosed(e: Entry): void {
    if (e.state === 'closed') return;
    e.state = 'closed';
    for (const c of [...e.children]) this.markClosed(c);
  }

  /** Marks `e` and its descendants as unknown (unless already closed). */
  markUnknown(e: Entry): void {
    if (e.state === 'closed') return;
    e.state = 'unknown';
    for (const c of e.children) this.markUnknown(c);
  }

  // What materialize() asks for (see resolverOf) ----------------------------

  ref(kind: Kind, i: number): unknown {
    return this.pick(kind, i)?.obj;
  }

  dmaMemory(): ArrayBuffer | undefined {
    for (const e of this.all('buffer')) {
      try {
        if (!e.obj.freed) return e.obj.buffer as ArrayBuffer;
      } catch {
        /* freed meanwhile */
      }
    }
    return undefined;
  }

  /** An fd of the asked flavour; -1 when it cannot be had. */
  fd(which: FdWhich): number {
    const cached = this.#fds.get(which);
    if (cached !== undefined) return cached;
    const t = this.target;
    const openOwn = (path: string | null, transient = false): number => {
      if (!path) return -1;
      try {
        const fd = openSync(path, 'r+');
        if (transient) this.#transient.push(fd);
        else this.#fds.set(which, fd);
        return fd;
      } catch {
        return -1;
      }
    };
    switch (which) {
      case 'container':
        return openOwn('/dev/vfio/vfio');
      case 'group':
        return openOwn(t.groupPath, true);
      case 'device':
        return openOwn(t.cdevPath, true);
      case 'iommufd':
        return openOwn('/dev/iommu');
      case 'devnull':
        return openOwn('/dev/null');
      case 'eventfd': {
        const e = this.all('eventfd').find((x) => !x.obj.closed) ?? this.all('irqs').find((x) => !x.obj.closed);
        if (!e) return -1;
        return e.kind === 'eventfd' ? e.obj.fd : (e.obj.fds[0] ?? -1);
      }
      case 'dmabuf': {
        const e = this.all('dmabuf').find((x) => !x.obj.closed);
        return e ? e.obj.fd : -1;
      }
      case 'memfd': {
        const e = this.all('buffer').find((x) => !x.obj.freed && x.obj.memfd >= 0);
        return e ? e.obj.memfd : -1;
      }
      case 'stdin':
        return 0;
      case 'stdout':
        return 1;
      case 'closed': {
        const fd = openSync('/dev/null', 'r');
        closeSync(fd);
        return fd;
      }
      case 'minus1':
        return -1;
      case 'huge':
        return 1_000_000;
    }
  }

  /** Closes the group and cdev fds a command was given (adopt() dup'd what it kept). */
  closeTransientFds(): void {
    for (const fd of this.#transient.splice(0)) {
      try {
        closeSync(fd);
      } catch {
        /* closed already */
      }
    }
  }

  /** Closes the fds the run opened itself. */
  closeOwnFds(): void {
    this.closeTransientFds();
    for (const fd of this.#fds.values()) {
      try {
        closeSync(fd);
      } catch {
        /* already closed (adopted fds are dup'd, so this should not happen) */
      }
    }
    this.#fds.clear();
  }
}

/** The Resolver view of a world (materialize() takes one). */
export function resolverOf(w: World): Resolver {
  return {
    ref: (k, i) => w.ref(k, i),
    fd: (which) => w.fd(which),
    target: (field) => w.target.fields[field],
    dmaMemory: () => w.dmaMemory(),
    signals: w.signals,
  };
}
