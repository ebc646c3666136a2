/**
 * A userspace NVMe driver over this package's public API only: openDevice()
 * on either backend, BAR0 mapped (registers and doorbells through the
 * MappedRegion register path), DMA memory through a DmaMapper, and MSI-X
 * through SET_IRQS with one eventfd per I/O queue. The specification layer
 * (registers, queue entries, status codes, Identify, PRPs) is ./spec.ts.
 *
 * Queue memory and per-command bounce slots are allocated and mapped once, so
 * the I/O path makes no DMA map call. Completions are matched by command id.
 * Nothing blocks the event loop: waits for the controller are timers, polling
 * mode polls on setImmediate turns, interrupt mode wakes on the eventfds.
 */
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { findPciFunction } from '../../pci/bind.js';
import { boundDriver } from '../../vfio/quirks.js';
import { VfioError } from '../../errors.js';
import { allocDmaBuffer, type DmaBuffer } from '../../dma/buffer.js';
import { DmaMapper, type DmaMapping } from '../../dma/mapper.js';
import { PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY, PCI_CONFIG } from '../../pci/config.js';
import { VFIO_IRQ_INFO_NORESIZE, VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_MSIX_IRQ_INDEX } from '../../uapi/constants.js';
import type { DeviceEventInfo } from '../../vfio/device.js';
import { createEventFd } from '../../vfio/interrupts.js';
import { openDevice, type BackendChoice, type OpenedDevice } from '../../vfio/open.js';
import type { MappedRegion } from '../../vfio/region.js';
import type { NativeEventFd } from '../../native.js';
import {
  NVME_ADMIN_OPCODE,
  NVME_CQE_SIZE,
  NVME_FEATURE,
  NVME_IDENTIFY_CNS,
  NVME_IDENTIFY_SIZE,
  NVME_NVM_OPCODE,
  NVME_REG,
  NVME_SQE_SIZE,
  NvmeError,
  cqePhase,
  decodeActiveNamespaces,
  decodeCap,
  decodeCqe,
  decodeCsts,
  decodeIdentifyController,
  decodeIdentifyNamespace,
  doorbellOffsets,
  encodeAqa,
  encodeCc,
  encodeSqe,
  maxTransferBytes,
  planPrps,
  prpListPageCount,
  writeIoSqe,
  type NvmeCap,
  type NvmeCqe,
  type NvmeIdentifyController,
  type NvmeIdentifyNamespace,
  type NvmeSqe,
} from './spec.js';

const PAGE = 4096;
/** QEMU's NVMe controller: Red Hat's 1b36:0010. */
export const NVME_QEMU_ID: NvmePciId = { vendor: 0x1b36, device: 0x0010 };

/** A PCI vendor and device ID. */
export interface NvmePciId {
  /** The vendor ID (0x1b36: Red Hat, for QEMU's devices). */
  readonly vendor: number;
  /** The device ID (0x0010: QEMU NVM Express Controller). */
  readonly device: number;
}

/** How I/O completions are noticed: polling the completion queues, or MSI-X (one vector per I/O queue). */
export type NvmeMode = 'poll' | 'irq';

/** Options of {@link NvmeController.open}. */
export interface NvmeOpenOptions {
  /** The controller's PCI address; default the first NVMe-class function bound to vfio-pci. */
  address?: string;
  /** 'group', 'cdev' or 'auto' (default). */
  backend?: BackendChoice;
  /** 'poll' (default) or 'irq'. */
  mode?: NvmeMode;
  /** I/O queue pairs to create (default 1). */
  ioQueues?: number;
  /** Entries per I/O queue (default 64; at most CAP.MQES+1). Up to depth − 1 commands are in flight per queue. */
  queueDepth?: number;
  /** Bytes of each command's preallocated bounce slot (default 128 KiB, at most MDTS); larger commands map a buffer of their own. */
  slotBytes?: number;
  /** Milliseconds before a command is failed with ERR_NVME_TIMEOUT (default 5000). */
  timeoutMs?: number;
  /**
   * How MSI-X vectors are added in 'irq' mode: 'auto' (default) adds each on
   * its own where the kernel offers dynamic MSI-X (no NORESIZE), else disables
   * MSI-X and enables it again with all of them; 'reenable' always does the
   * latter (the path for kernels and devices without dynamic MSI-X).
   */
  msix?: 'auto' | 'reenable';
  /**
   * What to do when the device signals a PCI error (the ERR IRQ, AER: PCIe
   * functions only): 'reset' (default) resets the controller, rejecting what is
   * in flight with ERR_NVME_RESET; 'report' only emits 'pci-error'.
   */
  onPciError?: 'reset' | 'report';
  /** Root of /sys and /dev, for tests. */
  root?: string;
}

/** What the kernel says of MSI-X on this device, and how the driver enabled its vectors. */
export interface NvmeMsixReport {
  /** Vectors the device has (GET_IRQ_INFO count). */
  count: number;
  /** VFIO_IRQ_INFO_NORESIZE: vectors cannot be added while MSI-X is enabled. */
  noresize: boolean;
  /** 'dynamic': vectors added one by one as queues were created; 'reenable': disabled and enabled again with all of them; null: polling mode. */
  how: 'dynamic' | 'reenable' | null;
}

/** Options of one admin command ({@link NvmeController.admin}). */
export interface NvmeCommandOptions {
  /** Milliseconds before it fails with ERR_NVME_TIMEOUT; default the controller's `timeoutMs`; `Infinity` for none (an Asynchronous Event Request waits for an event). */
  timeoutMs?: number;
}

/** What a 'pci-error' listener of {@link NvmeController} gets. */
export interface NvmePciErrorEvent {
  /** Signals of the ERR IRQ since the last delivery. */
  count: number;
  /** CSTS as read when the signal arrived (0xffffffff when the function no longer answers). */
  csts: number;
  /** The reset under way ('reset' policy), settled when the controller is up again or failed; null under 'report'. */
  recovery: Promise<void> | null;
}

/** The events of {@link NvmeController}, for its EventEmitter typing. */
export interface NvmeControllerEvents {
  /** The device signalled a PCI error through VFIO's ERR IRQ. */
  'pci-error': [NvmePciErrorEvent];
}

interface Pending {
  /**
   * Runs in the completion path of a successful command, before its id (and
   * bounce slot) is reused: copies a read out. What it returns is what the
   * command resolves with; without it, the completion entry.
   */
  done: ((cqe: NvmeCqe) => unknown) | undefined;
  resolve: (value: any) => void;
  reject: (e: unknown) => void;
  opcode: number;
  /** performance.now() after which the watchdog fails it; Infinity for never. */
  deadline: number;
}

/** One submission/completion queue pair, its memory mapped once. */
class QueuePair {
  readonly qid: number;
  readonly depth: number;
  readonly sqMem: DmaBuffer;
  readonly cqMem: DmaBuffer;
  readonly sq: Uint8Array;
  readonly sqView: DataView;
  readonly cq: Uint8Array;
  sqMap!: DmaMapping;
  cqMap!: DmaMapping;
  readonly sqDb: number;
  readonly cqDb: number;
  tail = 0;
  head = 0;
  phase: 0 | 1 = 1;
  /** Command ids (= bounce slot indexes) free to use. */
  readonly free: number[] = [];
  readonly pending = new Map<number, Pending>();
  /** Ids whose commands timed out: reserved until their completion arrives or the controller resets. */
  readonly lost = new Set<number>();
  /** Submissions waiting for a free id (back-pressure); rejected on reset and close. */
  readonly waiting: { go: () => void; reject: (e: unknown) => void }[] = [];
  eventfd: NativeEventFd | null = null;

  constructor(qid: number, depth: number, dstrd: number) {
    this.qid = qid;
    this.depth = depth;
    const round = (n: number): number => Math.ceil(n / PAGE) * PAGE;
    this.sqMem = allocDmaBuffer(round(depth * NVME_SQE_SIZE));
    this.cqMem = allocDmaBuffer(round(depth * NVME_CQE_SIZE));
    this.sq = new Uint8Array(this.sqMem.buffer);
    this.sqView = new DataView(this.sqMem.buffer);
    this.cq = new Uint8Array(this.cqMem.buffer);
    const db = doorbellOffsets(qid, dstrd);
    this.sqDb = db.sq;
    this.cqDb = db.cq;
    // One command slot short of the queue: a full ring is indistinguishable from an empty one.
    for (let i = depth - 2; i >= 0; i--) this.free.push(i);
  }

  reset(): void {
    this.tail = 0;
    this.head = 0;
    this.phase = 1;
    this.sq.fill(0);
    this.cq.fill(0);
  }
}

/**
 * A bounce slot per command id of a queue: DMA memory mapped once, with the
 * PRP list pages that describe the whole slot, written once. A command of
 * any length up to the slot's points at the same list: the controller reads
 * only the entries its transfer needs.
 */
class Slots {
  readonly mem: DmaBuffer;
  readonly map: DmaMapping;
  readonly lists: DmaBuffer;
  readonly listMap: DmaMapping;
  readonly bytes: Uint8Array;
  /** PRP list pages per slot (0 when a slot is at most two pages). */
  readonly listPages: number;
  readonly #base: number;
  readonly #listBase: number;
  constructor(
    mapper: DmaMapper,
    readonly count: number,
    readonly slotBytes: number,
  ) {
    const pages = slotBytes / PAGE;
    this.listPages = pages > 2 ? prpListPageCount(pages, PAGE) : 0;
    this.mem = allocDmaBuffer(count * slotBytes);
    this.lists = allocDmaBuffer(Math.max(1, count * this.listPages) * PAGE);
    this.map = mapper.map(this.mem);
    this.listMap = mapper.map(this.lists);
    this.bytes = new Uint8Array(this.mem.buffer);
    // IOVAs are below 2^53 (the IOMMU's address width is at most 57 bits, the mapper's spaces far below): plain numbers on the I/O path.
    this.#base = Number(this.map.iova);
    this.#listBase = Number(this.listMap.iova);
    const listBytes = new Uint8Array(this.lists.buffer);
    for (let i = 0; i < count && this.listPages > 0; i++) {
      const first = i * this.listPages;
      planPrps((p) => this.iova(i, p), 0, slotBytes, PAGE, (l) => ({
        iova: this.listMap.iova + BigInt((first + l) * PAGE),
        bytes: listBytes.subarray((first + l) * PAGE, (first + l + 1) * PAGE),
      }));
    }
  }
  /** PRP1 of a transfer through slot i: its first page. */
  prp1(i: number): number {
    return this.#base + i * this.slotBytes;
  }
  /** PRP2 of a `pages`-page transfer through slot i: none, the second page, or the slot's list. */
  prp2(i: number, pages: number): number {
    if (pages === 1) return 0;
    if (pages === 2) return this.#base + i * this.slotBytes + PAGE;
    return this.#listBase + i * this.listPages * PAGE;
  }
  /** Slot i's bytes, and the IOVA of its page p. */
  view(i: number, length: number): Uint8Array {
    return this.bytes.subarray(i * this.slotBytes, i * this.slotBytes + length);
  }
  iova(i: number, page: number): bigint {
    return this.map.iova + BigInt(i * this.slotBytes + page * PAGE);
  }
}

const err = (code: string, message: string, operation: string, hint?: string): VfioError =>
  new VfioError({ code, errno: 0, operation, message: `${code}: ${message}`, ...(hint ? { hint } : {}) });

/**
 * A controller driven from JavaScript: admin queue, Identify, I/O queue pairs
 * with PRP lists, polling or MSI-X completion, typed NVMe status errors,
 * timeouts, and reset.
 *
 * Events: 'pci-error' ({@link NvmePciErrorEvent}) when the device signals a
 * PCI error through VFIO's ERR IRQ (wired on PCIe functions; see `errorIrq`).
 *
 * @example
 * ```ts
 * const nvme = await NvmeController.open({ mode: 'poll' });
 * const ns = await nvme.namespace(1);
 * await ns.write(0n, Buffer.alloc(ns.blockSize, 0xab));
 * console.log((await ns.read(0n, 1))[0]);   // 0xab
 * await nvme.close();
 * ```
 */
export class NvmeController extends EventEmitter<NvmeControllerEvents> {
  /** The opened device and its DMA space (closed by `close()`). */
  readonly opened: OpenedDevice;
  /** The DMA mapper over the device's space: queues and bounce slots are mapped once through it. */
  readonly mapper: DmaMapper;
  /** BAR0: registers and doorbells. */
  readonly regs: MappedRegion;
  /** The Controller Capabilities register, decoded. */
  readonly cap: NvmeCap;
  /** How I/O completions are noticed. */
  readonly mode: NvmeMode;
  /** Milliseconds before a command fails with ERR_NVME_TIMEOUT. */
  readonly timeoutMs: number;
  /** Entries per I/O queue. */
  readonly queueDepth: number;
  /** I/O queue pairs. */
  readonly ioQueueCount: number;
  /** Bytes each I/O command may move through its preallocated slot. */
  readonly slotBytes: number;
  /** What a PCI error (ERR IRQ) does. */
  readonly onPciError: 'reset' | 'report';
  /** Whether the device's ERR IRQ is wired to 'pci-error' (vfio-pci offers it on PCIe functions only). */
  errorIrq = false;
  /** Commands that timed out since the controller was opened. */
  timeouts = 0;
  /** How MSI-X was set up (null fields in polling mode). */
  msix: NvmeMsixReport = { count: 0, noresize: false, how: null };
  #admin: QueuePair;
  #adminSlots: Slots;
  #io: QueuePair[] = [];
  #ioSlots: Slots[] = [];
  #id: NvmeIdentifyController | null = null;
  #maxTransfer = Infinity;
  #next = 0;
  #polling = false;
  #closed = false;
  #resetting: Promise<void> | null = null;
  #watchdog: NodeJS.Timeout | null = null;
  #msixChoice: 'auto' | 'reenable';
  #tick = 0;

  private constructor(opened: OpenedDevice, mapper: DmaMapper, regs: MappedRegion, o: Required<Omit<NvmeOpenOptions, 'address' | 'backend' | 'root'>>) {
    super();
    this.onPciError = o.onPciError;
    this.#msixChoice = o.msix;
    this.opened = opened;
    this.mapper = mapper;
    this.regs = regs;
    this.cap = decodeCap(regs.read64(NVME_REG.CAP));
    this.mode = o.mode;
    this.timeoutMs = o.timeoutMs;
    this.queueDepth = Math.min(o.queueDepth, this.cap.mqes);
    this.ioQueueCount = o.ioQueues;
    this.slotBytes = o.slotBytes;
    this.#admin = new QueuePair(0, Math.min(32, this.cap.mqes), this.cap.dstrd);
    this.#adminSlots = new Slots(mapper, this.#admin.depth, PAGE);
  }

  /**
   * Opens the controller, resets and enables it, identifies it, and creates
   * the I/O queues (with MSI-X vectors in 'irq' mode).
   *
   * @throws {@link VfioError} ENODEV without an NVMe controller on vfio-pci; ERR_NVME_TIMEOUT when CSTS.RDY does not follow CC.EN within CAP.TO; {@link NvmeError} for a refused admin command
   */
  static async open(options: NvmeOpenOptions = {}): Promise<NvmeController> {
    const mode = options.mode ?? 'poll';
    if (mode !== 'poll' && mode !== 'irq') throw new TypeError(`mode must be 'poll' or 'irq', got ${String(mode)}`);
    const ioQueues = options.ioQueues ?? 1;
    if (!Number.isInteger(ioQueues) || ioQueues < 1 || ioQueues > 64) throw new RangeError(`ioQueues must be 1..64, got ${String(ioQueues)}`);
    const queueDepth = options.queueDepth ?? 64;
    if (!Number.isInteger(queueDepth) || queueDepth < 2 || queueDepth > 4096) throw new RangeError(`queueDepth must be 2..4096, got ${String(queueDepth)}`);
    const slotBytes = options.slotBytes ?? 128 * 1024;
    if (!Number.isInteger(slotBytes) || slotBytes < PAGE || slotBytes % PAGE !== 0 || slotBytes > 8 * 1024 * 1024) throw new RangeError(`slotBytes must be a multiple of 4096 up to 8 MiB, got ${String(slotBytes)}`);
    const timeoutMs = options.timeoutMs ?? 5000;
    if (!(timeoutMs > 0)) throw new RangeError(`timeoutMs must be positive, got ${String(timeoutMs)}`);
    const onPciError = options.onPciError ?? 'reset';
    const msix = options.msix ?? 'auto';
    if (msix !== 'auto' && msix !== 'reenable') throw new TypeError(`msix must be 'auto' or 'reenable', got ${String(msix)}`);
    if (onPciError !== 'reset' && onPciError !== 'report') throw new TypeError(`onPciError must be 'reset' or 'report', got ${String(onPciError)}`);
    const address = options.address ?? findNvme(options.root ?? '/');
    const opened = openDevice(address, { backend: options.backend ?? 'auto', ...(options.root ? { root: options.root } : {}) });
    let c: NvmeController | undefined;
    try {
      const mapper = new DmaMapper(opened.dma, { devices: [opened.device] });
      const regs = opened.device.mmap(VFIO_PCI_BAR0_REGION_INDEX, { length: 0x2000 });
      const cfg = opened.device.region(VFIO_PCI_CONFIG_REGION_INDEX);
      cfg.write16(PCI_CONFIG.COMMAND, cfg.read16(PCI_CONFIG.COMMAND) | PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY);
      c = new NvmeController(opened, mapper, regs, { mode, ioQueues, queueDepth, slotBytes, timeoutMs, onPciError, msix });
      c.#wireErrorIrq();
      await c.#bringUp();
      return c;
    } catch (e) {
      if (c) await c.close().catch(() => {});
      else opened.close();
      throw e;
    }
  }

  /** The device's PCI address. */
  get address(): string {
    return this.opened.device.name;
  }

  /** Identify Controller, as read when the controller came up. */
  get identity(): NvmeIdentifyController {
    if (!this.#id) throw err('ERR_VFIO_CLOSED', 'the controller is not up', 'nvme identify');
    return this.#id;
  }

  /** The most one command may transfer (MDTS), in bytes. */
  get maxTransferBytes(): number {
    return this.#maxTransfer;
  }

  /** Listens on the ERR IRQ where the device offers it (PCIe); conventional PCI has none. */
  #wireErrorIrq(): void {
    try {
      this.opened.device.on('error-irq', (e) => this.#pciError(e));
      this.errorIrq = true;
    } catch (e) {
      if (!(e instanceof VfioError) || e.code !== 'ERR_VFIO_IRQ_NOT_OFFERED') throw e;
    }
  }

  #pciError(e: DeviceEventInfo): void {
    if (this.#closed) return;
    let csts = 0xffffffff;
    try {
      csts = this.regs.read32(NVME_REG.CSTS);
    } catch {
      // the mapping may be gone
    }
    const recovery = this.onPciError === 'reset' ? this.reset() : null;
    // A listener that ignores the recovery must not leave it unhandled.
    recovery?.catch(() => {});
    this.emit('pci-error', { count: e.count, csts, recovery });
  }

  // ---- bring-up ----------------------------------------------------------------------------

  async #waitReady(ready: boolean, what: string): Promise<void> {
    const deadline = Date.now() + Math.max(this.cap.to, 500);
    for (;;) {
      const csts = decodeCsts(this.regs.read32(NVME_REG.CSTS));
      if (csts.cfs && ready) throw err('ERR_NVME_FATAL', `the controller reports a fatal status (CSTS.CFS) while ${what}`, 'nvme enable');
      if (csts.rdy === ready) return;
      if (Date.now() > deadline) throw err('ERR_NVME_TIMEOUT', `CSTS.RDY did not become ${ready ? 1 : 0} within CAP.TO (${this.cap.to} ms) while ${what}`, 'nvme enable');
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  async #disable(): Promise<void> {
    const cc = this.regs.read32(NVME_REG.CC);
    if (cc & 1) this.regs.write32(NVME_REG.CC, cc & ~1);
    await this.#waitReady(false, 'disabling');
  }

  async #bringUp(): Promise<void> {
    await this.#disable();
    const a = this.#admin;
    a.reset();
    if (!a.sqMap) {
      a.sqMap = this.mapper.map(a.sqMem);
      a.cqMap = this.mapper.map(a.cqMem);
    }
    this.regs.write32(NVME_REG.AQA, encodeAqa(a.depth, a.depth));
    this.#write64(NVME_REG.ASQ, a.sqMap.iova);
    this.#write64(NVME_REG.ACQ, a.cqMap.iova);
    this.regs.write32(NVME_REG.CC, encodeCc({ en: true, mps: PAGE, iosqes: NVME_SQE_SIZE, iocqes: NVME_CQE_SIZE }));
    await this.#waitReady(true, 'enabling');
    this.#id = decodeIdentifyController(await this.#identify(NVME_IDENTIFY_CNS.CONTROLLER, 0));
    this.#maxTransfer = maxTransferBytes(this.#id.mdts, this.cap.mpsmin);
    if (this.slotBytes > this.#maxTransfer) throw new RangeError(`slotBytes ${this.slotBytes} exceeds the controller's MDTS (${this.#maxTransfer} bytes)`);
    // Number of Queues: ask for ours, and take what the controller grants.
    const n = this.ioQueueCount - 1;
    const r = await this.#adminNow({ opcode: NVME_ADMIN_OPCODE.SET_FEATURES, nsid: 0, cdw10: NVME_FEATURE.NUMBER_OF_QUEUES, cdw11: (n << 16) | n });
    const granted = Math.min((r.dw0 & 0xffff) + 1, (r.dw0 >>> 16) + 1);
    if (granted < this.ioQueueCount) throw err('ERR_NVME_QUEUES', `the controller grants ${granted} I/O queue pair(s), ${this.ioQueueCount} asked`, 'nvme set features');
    await this.#createIoQueues();
  }

  #write64(off: number, v: bigint): void {
    this.regs.write32(off, Number(v & 0xffffffffn));
    this.regs.write32(off + 4, Number(v >> 32n));
  }

  async #createIoQueues(): Promise<void> {
    const fresh = this.#io.length === 0;
    if (this.mode === 'irq' && fresh) this.#setupMsix();
    for (let i = 0; i < this.ioQueueCount; i++) {
      const qid = i + 1;
      if (fresh) {
        const q = new QueuePair(qid, this.queueDepth, this.cap.dstrd);
        q.sqMap = this.mapper.map(q.sqMem);
        q.cqMap = this.mapper.map(q.cqMem);
        this.#io.push(q);
        this.#ioSlots.push(new Slots(this.mapper, q.depth, this.slotBytes));
      }
      const q = this.#io[i]!;
      q.reset();
      const irq = this.mode === 'irq';
      if (irq && !q.eventfd) this.#enableVector(q);
      await this.#adminNow({ opcode: NVME_ADMIN_OPCODE.CREATE_CQ, nsid: 0, prp1: q.cqMap.iova, cdw10: ((q.depth - 1) << 16) | qid, cdw11: ((irq ? qid : 0) << 16) | (irq ? 2 : 0) | 1 });
      await this.#adminNow({ opcode: NVME_ADMIN_OPCODE.CREATE_SQ, nsid: 0, prp1: q.sqMap.iova, cdw10: ((q.depth - 1) << 16) | qid, cdw11: (qid << 16) | 1 });
    }
  }

  /**
   * MSI-X, one vector per I/O queue (vector = qid; the admin queue is polled).
   * Where the kernel offers dynamic MSI-X (no NORESIZE), each queue's vector is
   * added on its own, without disabling the ones enabled; where it does not,
   * MSI-X is disabled and enabled again with all the vectors so far.
   */
  #setupMsix(): void {
    const info = this.opened.device.irqInfo(VFIO_PCI_MSIX_IRQ_INDEX);
    const noresize = (info.flags & VFIO_IRQ_INFO_NORESIZE) !== 0;
    if (info.count < this.ioQueueCount + 1) throw err('ERR_NVME_MSIX', `the device has ${info.count} MSI-X vectors, ${this.ioQueueCount + 1} are needed`, 'nvme msi-x');
    this.msix = { count: info.count, noresize, how: noresize || this.#msixChoice === 'reenable' ? 'reenable' : 'dynamic' };
  }

  /** Gives queue q its eventfd and enables its vector (before its CQ is created). */
  #enableVector(q: QueuePair): void {
    const dev = this.opened.device;
    const e = createEventFd();
    e.start((error) => {
      if (error === null) this.#drain(q);
    });
    e.unref();
    q.eventfd = e;
    if (this.msix.how === 'dynamic') {
      dev.setIrqs({ index: VFIO_PCI_MSIX_IRQ_INDEX, action: 'trigger', start: q.qid, count: 1, data: { eventfds: [e.fd] } });
    } else {
      const fds = [-1, ...this.#io.filter((x) => x.eventfd).map((x) => x.eventfd!.fd)];
      if (q.qid > 1) dev.setIrqs({ index: VFIO_PCI_MSIX_IRQ_INDEX, action: 'trigger', start: 0, count: 0 });
      dev.setIrqs({ index: VFIO_PCI_MSIX_IRQ_INDEX, action: 'trigger', start: 0, count: fds.length, data: { eventfds: fds } });
    }
  }

  // ---- commands ----------------------------------------------------------------------------

  /**
   * Submits an admin command and resolves with its completion (polled).
   *
   * @throws {@link NvmeError} for a non-zero status; ERR_NVME_TIMEOUT
   */
  async admin(sqe: Omit<NvmeSqe, 'cid' | 'prp1' | 'prp2'> & { prp1?: bigint; prp2?: bigint }, options: NvmeCommandOptions = {}): Promise<NvmeCqe> {
    const t = options.timeoutMs ?? this.timeoutMs;
    if (!(t > 0)) throw new RangeError(`timeoutMs must be positive, got ${String(t)}`);
    await this.#ready();
    return this.#adminNow(sqe, t);
  }

  /** An admin command now, even while the controller is being brought up (which is what uses it). */
  #adminNow(sqe: Omit<NvmeSqe, 'cid' | 'prp1' | 'prp2'> & { prp1?: bigint; prp2?: bigint }, timeoutMs = this.timeoutMs): Promise<NvmeCqe> {
    return this.#submit(this.#admin, { prp1: 0n, prp2: 0n, ...sqe }, timeoutMs);
  }

  /**
   * Commands submitted while a reset is under way wait for it: the queues are
   * being made afresh. When the reset failed, they fail with its error.
   */
  async #ready(): Promise<void> {
    if (this.#closed) throw err('ERR_VFIO_CLOSED', `${this.address} is closed`, 'nvme submit');
    while (this.#resetting) await this.#resetting;
  }

  /** Any command, through the checked encoder; resolves with its completion entry, rejects with an NvmeError for a non-zero status. */
  #submit(q: QueuePair, sqe: Omit<NvmeSqe, 'cid'>, timeoutMs = this.timeoutMs): Promise<NvmeCqe> {
    return this.#post(q, sqe.opcode, (cid) => encodeSqe(q.sq, q.tail * NVME_SQE_SIZE, { ...sqe, cid }), undefined, timeoutMs);
  }

  /**
   * Every command goes through here. When a command id is free (else once one
   * is: back-pressure), `write(cid)` writes the entry at the tail, and it is
   * rung. Resolves with what `done` returns on success (else the completion
   * entry); `done` runs before the id, and so its bounce slot, is reused.
   */
  #post<T = NvmeCqe>(q: QueuePair, opcode: number, write: (cid: number) => void, done: ((cqe: NvmeCqe) => T) | undefined, timeoutMs = this.timeoutMs): Promise<T> {
    if (this.#closed) return Promise.reject(err('ERR_VFIO_CLOSED', `${this.address} is closed`, 'nvme submit'));
    return new Promise<T>((resolve, reject) => {
      const go = (): void => {
        const cid = q.free.pop()!;
        write(cid);
        this.#ring(q, cid, { done, resolve, reject, opcode, deadline: performance.now() + timeoutMs }, timeoutMs);
      };
      if (q.free.length > 0) go();
      else q.waiting.push({ go, reject });
    });
  }

  /** The entry at the tail is written: records it as pending, rings the SQ doorbell, and makes sure its completion is looked for and its deadline watched. */
  #ring(q: QueuePair, cid: number, p: Pending, timeoutMs: number): void {
    q.pending.set(cid, p);
    q.tail = q.tail + 1 === q.depth ? 0 : q.tail + 1;
    this.regs.write32(q.sqDb, q.tail);
    if (q.qid === 0 || this.mode === 'poll') this.#schedulePoll();
    if (this.#watchdog === null || timeoutMs < this.#tick * 4) this.#watch(timeoutMs);
  }

  /**
   * One interval timer watches every deadline (a timer per command costs more
   * than the command on a fast path). Its period is a quarter of the shortest
   * timeout in use, 5..250 ms; it stops when nothing is pending, and holds the
   * process open while something is (an interrupt's eventfd does not).
   */
  #watch(timeoutMs: number): void {
    const tick = Math.max(5, Math.min(250, Math.floor(timeoutMs / 4)));
    if (this.#watchdog !== null) {
      if (this.#tick <= tick) return;
      clearInterval(this.#watchdog);
    }
    this.#tick = tick;
    this.#watchdog = setInterval(() => this.#scan(), tick);
  }

  #scan(): void {
    const now = performance.now();
    for (const q of [this.#admin, ...this.#io]) {
      for (const [cid, p] of q.pending) if (p.deadline <= now) this.#timeout(q, cid);
    }
    if (!this.#admin.pending.size && this.#io.every((q) => q.pending.size === 0)) this.#unwatch();
  }

  #unwatch(): void {
    if (this.#watchdog !== null) clearInterval(this.#watchdog);
    this.#watchdog = null;
    this.#tick = 0;
  }

  /**
   * A command did not complete in time. It is rejected with ERR_NVME_TIMEOUT
   * and its id (and bounce slot, which the controller may still write) stays
   * reserved until its completion turns up or the controller is reset. Then,
   * as the kernel's driver does: an I/O command is aborted (Abort), and the
   * controller is reset when the Abort fails or times out, when an admin
   * command timed out, or when CSTS.CFS reports a fatal status.
   */
  #timeout(q: QueuePair, cid: number): void {
    const p = q.pending.get(cid);
    if (!p) return;
    q.pending.delete(cid);
    q.lost.add(cid);
    this.timeouts++;
    const csts = decodeCsts(this.regs.read32(NVME_REG.CSTS));
    const resetting = csts.cfs || q.qid === 0;
    p.reject(
      err(
        'ERR_NVME_TIMEOUT',
        `command ${cid} (opcode 0x${p.opcode.toString(16)}) on ${q.qid === 0 ? 'the admin queue' : `queue ${q.qid}`} did not complete in time${csts.cfs ? '; the controller reports a fatal status (CSTS.CFS)' : ''}`,
        'nvme command',
        resetting ? 'the driver resets the controller: commands in flight fail with ERR_NVME_RESET' : 'the driver aborts the command (Abort), and resets the controller if that fails',
      ),
    );
    const reset = (): void => void this.reset().catch(() => {});
    if (resetting) return reset();
    this.#adminNow({ opcode: NVME_ADMIN_OPCODE.ABORT, nsid: 0, cdw10: q.qid | (cid << 16) }).then(
      // dw0 bit 0 set: not aborted. The command may still complete; its id stays reserved until then.
      () => undefined,
      (e: unknown) => {
        if (!(e instanceof VfioError && (e.code === 'ERR_NVME_RESET' || e.code === 'ERR_VFIO_CLOSED'))) reset();
      },
    );
  }

  #schedulePoll(): void {
    if (this.#polling) return;
    this.#polling = true;
    setImmediate(() => this.#pollTurn());
  }

  #pollTurn(): void {
    this.#polling = false;
    if (this.#closed) return;
    let pending = this.#drain(this.#admin);
    if (this.mode === 'poll') for (const q of this.#io) pending += this.#drain(q);
    if (pending > 0) this.#schedulePoll();
  }

  /** Consumes the completions present in q's CQ; returns how many commands are still pending there. */
  #drain(q: QueuePair): number {
    if (this.#closed) return 0;
    let n = 0;
    while (cqePhase(q.cq, q.head * NVME_CQE_SIZE) === q.phase) {
      const cqe = decodeCqe(q.cq, q.head * NVME_CQE_SIZE);
      q.head = (q.head + 1) % q.depth;
      if (q.head === 0) q.phase = q.phase === 1 ? 0 : 1;
      n++;
      const p = q.pending.get(cqe.cid);
      if (p) {
        q.pending.delete(cqe.cid);
        if (cqe.sct !== 0 || cqe.sc !== 0) {
          this.#release(q, cqe.cid);
          p.reject(NvmeError.fromCqe(cqe, p.opcode, q.qid === 0));
        } else {
          // Before the id is released (a waiting submission may take its slot at once).
          const value = p.done ? p.done(cqe) : cqe;
          this.#release(q, cqe.cid);
          p.resolve(value);
        }
      } else if (q.lost.delete(cqe.cid)) {
        this.#release(q, cqe.cid); // a late completion of a timed-out command: its id is free again
      }
    }
    if (n > 0) this.regs.write32(q.cqDb, q.head);
    return q.pending.size;
  }

  /** Frees a command id and lets the first submission waiting for one go. */
  #release(q: QueuePair, cid: number): void {
    q.free.push(cid);
    q.waiting.shift()?.go();
  }

  /** Identify Controller (CNS 1). */
  async identifyController(): Promise<NvmeIdentifyController> {
    await this.#ready();
    return decodeIdentifyController(await this.#identify(NVME_IDENTIFY_CNS.CONTROLLER, 0));
  }

  /** Identify Namespace (CNS 0). */
  async identifyNamespace(nsid: number): Promise<NvmeIdentifyNamespace> {
    await this.#ready();
    return decodeIdentifyNamespace(await this.#identify(NVME_IDENTIFY_CNS.NAMESPACE, nsid));
  }

  /** The active namespace IDs (CNS 2). */
  async namespaceIds(): Promise<number[]> {
    await this.#ready();
    return decodeActiveNamespaces(await this.#identify(NVME_IDENTIFY_CNS.ACTIVE_NS_LIST, 0));
  }

  /** An Identify data structure, through the admin slot of the command's id. */
  #identify(cns: number, nsid: number): Promise<Uint8Array> {
    const s = this.#adminSlots;
    return this.#post(
      this.#admin,
      NVME_ADMIN_OPCODE.IDENTIFY,
      (cid) => encodeSqe(this.#admin.sq, this.#admin.tail * NVME_SQE_SIZE, { opcode: NVME_ADMIN_OPCODE.IDENTIFY, cid, nsid, prp1: s.iova(cid, 0), prp2: 0n, cdw10: cns }),
      (cqe) => s.view(cqe.cid, NVME_IDENTIFY_SIZE).slice(),
    );
  }

  /** The namespace `nsid`, identified. */
  async namespace(nsid = 1): Promise<NvmeNamespace> {
    const id = await this.identifyNamespace(nsid);
    return new NvmeNamespace(this, nsid, id);
  }

  // ---- I/O ----------------------------------------------------------------------------------

  /**
   * @internal One NVM command through a bounce slot (or a buffer of its own
   * past the slot size). `slba` is a safe integer or a bigint. A read lands
   * in `into` when given (at least the transfer's length), else in a new array.
   */
  io(opcode: number, nsid: number, slba: bigint | number, blocks: number, blockSize: number, data: Uint8Array | null, into?: Uint8Array): Promise<Uint8Array | null> {
    if (this.#closed) return Promise.reject(err('ERR_VFIO_CLOSED', `${this.address} is closed`, 'nvme io'));
    if (this.#resetting) return this.#ready().then(() => this.io(opcode, nsid, slba, blocks, blockSize, data, into));
    const qi = this.#next++ % this.#io.length;
    const q = this.#io[qi]!;
    const slots = this.#ioSlots[qi]!;
    const bytes = blocks * blockSize;
    let cdw10: number;
    let cdw11: number;
    if (typeof slba === 'number') {
      cdw10 = slba % 4294967296;
      cdw11 = (slba - cdw10) / 4294967296;
    } else {
      cdw10 = Number(slba & 0xffffffffn);
      cdw11 = Number(slba >> 32n);
    }
    const cdw12 = blocks > 0 ? blocks - 1 : 0;
    if (bytes === 0) return this.#submit(q, { opcode, nsid, prp1: 0n, prp2: 0n }).then(() => null);
    if (bytes > this.#maxTransfer) return Promise.reject(new RangeError(`${bytes} bytes exceed the controller's maximum transfer (MDTS: ${this.#maxTransfer} bytes): split the command`));
    if (bytes > slots.slotBytes) return this.#ioOwnBuffer(q, opcode, nsid, bytes, cdw10, cdw11, cdw12, data, into);
    // The fast path: the slot's memory and PRP list were mapped and written once; the command id is the slot.
    const pages = Math.ceil(bytes / PAGE);
    const write = (slot: number): void => {
      if (data) slots.bytes.set(data.length === bytes ? data : data.subarray(0, bytes), slot * slots.slotBytes);
      writeIoSqe(q.sqView, q.tail, opcode, slot, nsid, slots.prp1(slot), slots.prp2(slot, pages), cdw10, cdw11, cdw12);
    };
    const done = data
      ? () => null
      : into
        ? (cqe: NvmeCqe) => {
            into.set(slots.view(cqe.cid, bytes));
            return into;
          }
        : (cqe: NvmeCqe) => slots.view(cqe.cid, bytes).slice();
    return this.#post<Uint8Array | null>(q, opcode, write, done);
  }

  /** Past the slot size: a buffer and list pages of its own, mapped for this command. */
  async #ioOwnBuffer(q: QueuePair, opcode: number, nsid: number, bytes: number, cdw10: number, cdw11: number, cdw12: number, data: Uint8Array | null, into?: Uint8Array): Promise<Uint8Array | null> {
    const buf = allocDmaBuffer(Math.ceil(bytes / PAGE) * PAGE);
    const pages = Math.ceil(bytes / PAGE);
    const lists = allocDmaBuffer(Math.max(1, prpListPageCount(pages, PAGE)) * PAGE);
    const m = this.mapper.map(buf);
    const lm = this.mapper.map(lists);
    try {
      const view = new Uint8Array(buf.buffer);
      if (data) view.set(data.subarray(0, bytes));
      const lb = new Uint8Array(lists.buffer);
      const plan = planPrps((p) => m.iova + BigInt(p * PAGE), 0, bytes, PAGE, (i) => ({ iova: lm.iova + BigInt(i * PAGE), bytes: lb.subarray(i * PAGE, (i + 1) * PAGE) }));
      await this.#submit(q, { opcode, nsid, prp1: plan.prp1, prp2: plan.prp2, cdw10, cdw11, cdw12 });
      if (data) return null;
      if (!into) return view.slice(0, bytes);
      into.set(view.subarray(0, bytes));
      return into;
    } finally {
      // After close() the space is gone and unmapAll() took these: free them regardless.
      for (const x of [m, lm]) {
        try {
          this.mapper.unmap(x);
        } catch {
          // already unmapped by close()
        }
      }
      buf.free();
      lists.free();
    }
  }

  /** Commands in flight on the I/O queues. */
  get inFlight(): number {
    return this.#io.reduce((n, q) => n + q.pending.size, 0);
  }

  #failAll(e: () => unknown): void {
    for (const q of [this.#admin, ...this.#io]) {
      for (const [cid, p] of q.pending) {
        q.free.push(cid);
        p.reject(e());
      }
      q.pending.clear();
      for (const cid of q.lost) q.free.push(cid);
      q.lost.clear();
      for (const w of q.waiting.splice(0)) w.reject(e());
    }
  }

  /**
   * Resets the controller (CC.EN 0, then up again with fresh queues). Every
   * command in flight is rejected with ERR_NVME_RESET, never left hanging.
   */
  reset(): Promise<void> {
    if (this.#closed) return Promise.reject(err('ERR_VFIO_CLOSED', `${this.address} is closed`, 'nvme reset'));
    this.#resetting ??= (async () => {
      try {
        this.#failAll(() => err('ERR_NVME_RESET', 'the controller was reset while the command was in flight', 'nvme command'));
        await this.#bringUp();
      } finally {
        this.#resetting = null;
      }
    })();
    return this.#resetting;
  }

  /**
   * Disables the controller and closes the device. Every command in flight is
   * rejected with ERR_VFIO_CLOSED; the DMA memory is unmapped and freed.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      const cc = this.regs.read32(NVME_REG.CC);
      if (cc & 1) this.regs.write32(NVME_REG.CC, cc & ~1);
    } catch {
      // the device may be gone
    }
    this.#closed = true;
    this.#unwatch();
    this.#failAll(() => err('ERR_VFIO_CLOSED', `${this.address} was closed while the command was in flight`, 'nvme command'));
    for (const q of this.#io) q.eventfd?.close();
    try {
      this.mapper.unmapAll();
    } catch {
      // the space goes with the device
    }
    this.opened.close();
    for (const q of [this.#admin, ...this.#io]) {
      q.sqMem.free();
      q.cqMem.free();
    }
    for (const s of [this.#adminSlots, ...this.#ioSlots]) {
      s.mem.free();
      s.lists.free();
    }
  }
}

/** A namespace of an {@link NvmeController}: block I/O by LBA. */
export class NvmeNamespace {
  /** Bytes per logical block. */
  readonly blockSize: number;
  /** Logical blocks (NSZE). */
  readonly blocks: bigint;

  /** @internal */
  constructor(
    /** The controller. */
    readonly controller: NvmeController,
    /** The namespace ID. */
    readonly nsid: number,
    /** Identify Namespace, decoded. */
    readonly identity: NvmeIdentifyNamespace,
  ) {
    this.blockSize = identity.blockSize;
    this.blocks = identity.nsze;
  }

  /** The LBA as the I/O path takes it (a safe integer stays a number), after the checks. */
  #check(lba: bigint | number, blocks: number): bigint | number {
    if (typeof lba === 'number') {
      if (!Number.isSafeInteger(lba) || lba < 0) throw new RangeError(`lba must be a non-negative safe integer or a bigint, got ${String(lba)}`);
    } else if (typeof lba !== 'bigint' || lba < 0n || lba >= 1n << 64n) {
      throw new RangeError(`lba must be an unsigned 64-bit number, got ${String(lba)}`);
    }
    if (!Number.isInteger(blocks) || blocks < 1 || blocks > 65536) throw new RangeError(`blocks must be 1..65536, got ${String(blocks)}`);
    return lba;
  }

  /**
   * Reads `blocks` blocks at `lba`. Resolves with their bytes: in `into` when
   * given (its first blocks × blockSize bytes; nothing is allocated per read),
   * else in a new array.
   *
   * @throws {@link NvmeError} (e.g. LBA Out of Range); RangeError when `into` is too small
   */
  read(lba: bigint | number, blocks: number, into?: Uint8Array): Promise<Uint8Array> {
    let l: bigint | number;
    try {
      l = this.#check(lba, blocks);
      if (into !== undefined) {
        if (!(into instanceof Uint8Array)) throw new TypeError('into must be a Uint8Array or Buffer');
        if (into.length < blocks * this.blockSize) throw new RangeError(`into holds ${into.length} bytes; ${blocks} blocks of ${this.blockSize} need ${blocks * this.blockSize}`);
      }
    } catch (e) {
      return Promise.reject(e);
    }
    return this.controller.io(NVME_NVM_OPCODE.READ, this.nsid, l, blocks, this.blockSize, null, into) as Promise<Uint8Array>;
  }

  /** Writes `data` (a whole number of blocks) at `lba`. */
  write(lba: bigint | number, data: Uint8Array): Promise<void> {
    let l: bigint | number;
    try {
      if (!(data instanceof Uint8Array)) throw new TypeError('data must be a Uint8Array or Buffer');
      if (data.length === 0 || data.length % this.blockSize !== 0) throw new RangeError(`data must be a non-zero multiple of the block size (${this.blockSize}), got ${data.length} bytes`);
      l = this.#check(lba, data.length / this.blockSize);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.controller.io(NVME_NVM_OPCODE.WRITE, this.nsid, l, data.length / this.blockSize, this.blockSize, data) as Promise<unknown> as Promise<void>;
  }

  /** Flush (the volatile write cache to media). */
  async flush(): Promise<void> {
    await this.controller.io(NVME_NVM_OPCODE.FLUSH, this.nsid, 0n, 0, this.blockSize, null);
  }
}

/**
 * The PCI address of the first NVMe controller (class 0x010802) bound to
 * vfio-pci, from sysfs.
 *
 * @throws {@link VfioError} ENODEV when there is none
 */
export function findNvme(root = '/'): string {
  const found = findPciFunction((a, attr) => attr('class') === '0x010802' && boundDriver(a, root) === 'vfio-pci', root, 'find nvme');
  if (found) return found;
  throw new VfioError({ code: 'ENODEV', errno: 19, operation: 'find nvme', path: join(root, 'sys/bus/pci/devices'), message: 'ENODEV: no NVMe controller (class 0x010802) bound to vfio-pci', hint: 'bind it: echo vfio-pci > /sys/bus/pci/devices/<addr>/driver_override; echo <addr> > /sys/bus/pci/drivers_probe' });
}
