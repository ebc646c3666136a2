/**
 * A userspace driver for QEMU's `edu` PCI device (1234:11e8), written against
 * this package's public pieces only: openDevice() on either backend, a mapped
 * BAR0, PCI config, the interrupt API (MSI or INTx) and a DmaMapper whose IOVAs
 * stay below edu's 28-bit DMA mask. Register map: QEMU docs/specs/edu.rst.
 */
import { join } from 'node:path';
import { findPciFunction } from '../pci/bind.js';
import type { MappedRegion } from '../vfio/region.js';
import { allocDmaBuffer } from '../dma/buffer.js';
import { DmaMapper, type DmaMapperOptions, type DmaMapping } from '../dma/mapper.js';
import { VfioError } from '../errors.js';
import type { Interrupts } from '../vfio/interrupts.js';
import { openDevice, type BackendChoice, type OpenedDevice } from '../vfio/open.js';
import { PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY, PCI_CONFIG } from '../pci/config.js';
import { VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_INTX_IRQ_INDEX, VFIO_PCI_MSI_IRQ_INDEX } from '../uapi/constants.js';

/** edu's BAR0 registers. Below 0x80 only 4-byte accesses work; the DMA registers take 8. */
export const EDU_REG = {
  /** Identification, read-only: 0xRRrr00edu, major RR and minor rr ({@link EDU_ID} for edu 1.0). */
  ID: 0x00,
  /** Liveness check: reads back the bitwise inverse of what was written. */
  LIVENESS: 0x04,
  /** Factorial: writing n starts computing n! (u32, wrapping); read it back when done. */
  FACTORIAL: 0x08,
  /** Status: bit 0 computing (read-only), bit 7 raise an interrupt when the factorial is done. */
  STATUS: 0x20,
  /** Interrupt status, read-only: 0x001 factorial done, 0x100 DMA done. */
  IRQ_STATUS: 0x24,
  /** Raise an interrupt: the value written is ORed into IRQ_STATUS. */
  IRQ_RAISE: 0x60,
  /** Acknowledge an interrupt: the value written is cleared from IRQ_STATUS (and the line lowered when it reaches 0). */
  IRQ_ACK: 0x64,
  /** DMA source address (8 bytes). */
  DMA_SRC: 0x80,
  /** DMA destination address (8 bytes). */
  DMA_DST: 0x88,
  /** DMA transfer count in bytes (8 bytes). */
  DMA_COUNT: 0x90,
  /** DMA command (8 bytes): bit 0 start (set while running), bit 1 edu → RAM (clear: RAM → edu), bit 2 interrupt when done. */
  DMA_CMD: 0x98,
} as const;

/** edu's PCI vendor ID (QEMU's 0x1234). @internal */
export const EDU_VENDOR = 0x1234;
/** edu's PCI device ID. @internal */
export const EDU_DEVICE = 0x11e8;
/** The ID register: major 1, minor 0. */
export const EDU_ID = 0x010000ed;
/** STATUS: a factorial is being computed (read-only). @internal */
export const EDU_STATUS_COMPUTING = 0x01;
/** STATUS: raise an interrupt when the factorial is done. @internal */
export const EDU_STATUS_IRQFACT = 0x80;
/** IRQ_STATUS bit raised by a finished factorial. @internal */
export const EDU_IRQ_FACTORIAL = 0x001;
/** IRQ_STATUS bit raised by a finished DMA transfer. @internal */
export const EDU_IRQ_DMA = 0x100;
/** DMA_CMD bit: start the transfer (reads as set while it runs). @internal */
export const EDU_DMA_START = 0x1;
/** DMA_CMD bit: direction; set, from edu's buffer to RAM; clear, from RAM to edu. @internal */
export const EDU_DMA_TO_RAM = 0x2;
/** DMA_CMD bit: raise an interrupt (IRQ_STATUS 0x100) when the transfer is done. @internal */
export const EDU_DMA_IRQ = 0x4;
/** edu's internal DMA buffer: 4096 bytes at device address 0x40000. @internal */
export const EDU_DMA_BUFFER = 0x40000n;
/** The size of edu's internal DMA buffer, in bytes. @internal */
export const EDU_DMA_BUFFER_SIZE = 4096;
/**
 * The most one transfer may move: edu in QEMU up to 7.2 checks the range with
 * `end < buffer end` (hw/misc/edu.c edu_check_range, fixed in later QEMU), and an
 * out-of-range transfer is a hw_error() that aborts the whole VM — so a transfer
 * must end before the buffer's last byte: offset + count ≤ 4095.
 */
export const EDU_DMA_MAX = EDU_DMA_BUFFER_SIZE - 1;
/** edu masks DMA addresses to 28 bits: every IOVA it is given must lie below this. */
export const EDU_DMA_LIMIT = 0x10000000n;

/** How edu signals completion: MSI (IRQ index 1) or legacy INTx (index 0, automasked: unmasked after each). */
export type EduIrqMode = 'msi' | 'intx';

/** Options of {@link EduDriver.open}. */
export interface EduOpenOptions {
  /** The PCI address; default: the first 1234:11e8 device in /sys/bus/pci/devices. */
  address?: string;
  /** 'group' (type1 container), 'cdev' (iommufd) or 'auto'. */
  backend?: BackendChoice;
  /** Passed on to the DmaMapper (its `limit` is always edu's 28-bit mask). */
  mapper?: Omit<DmaMapperOptions, 'limit' | 'devices'>;
}

/** How {@link EduDriver.factorial} and the DMA methods wait for edu's completion interrupt. */
export interface EduWaitOptions {
  /** How completion is signalled (default 'msi'). */
  irq?: EduIrqMode;
  /** Milliseconds to wait for the interrupt (default 10 000). */
  timeoutMs?: number;
}

/** What a DMA round trip did. */
export interface EduRoundTrip {
  /** Buffer A's mapping (RAM → edu). */
  source: DmaMapping;
  /** Buffer B's mapping (edu → RAM). */
  destination: DmaMapping;
  /** IRQ_STATUS seen at each completion. */
  irqStatus: [number, number];
  /** A copy of what arrived in buffer B. */
  result: Uint8Array;
}

/**
 * The PCI address of the first edu device (1234:11e8), from sysfs.
 *
 * @param root - where `/sys` is found; default `/`
 * @throws {@link VfioError} ENODEV when there is none (start QEMU with `-device edu`)
 */
export function findEdu(root = '/'): string {
  const found = findPciFunction((_, attr) => Number(attr('vendor')) === EDU_VENDOR && Number(attr('device')) === EDU_DEVICE, root, 'find edu');
  if (!found) throw new VfioError({ code: 'ENODEV', errno: 19, operation: 'find edu', path: join(root, 'sys/bus/pci/devices'), message: 'ENODEV: no edu device (1234:11e8) on the PCI bus', hint: 'start QEMU with -device edu' });
  return found;
}

/**
 * u32 n!, as edu computes it (wrapping modulo 2^32): what
 * {@link EduDriver.factorial} should return.
 */
export function eduFactorial(n: number): number {
  let r = 1;
  for (let i = 2; i <= n; i++) r = Math.imul(r, i) >>> 0;
  return r >>> 0;
}

/**
 * A userspace driver for QEMU's `edu` PCI device, written against this
 * package's public API only: a worked example of the whole stack (open on
 * either backend, a mapped BAR, PCI config, MSI or INTx interrupts, and DMA
 * through a {@link DmaMapper} whose IOVAs stay below edu's 28-bit mask).
 *
 * @example
 * ```ts
 * using edu = EduDriver.open({ backend: 'cdev' });
 * console.log(await edu.factorial(10));                 // 3628800, signalled by MSI
 * await edu.dmaRoundTrip(new TextEncoder().encode('hi'));
 * ```
 */
export class EduDriver {
  /** The opened device and its DMA space (closed by `close()`). */
  readonly opened: OpenedDevice;
  /** The DMA mapper over the device's space, limited to IOVAs below {@link EDU_DMA_LIMIT}. */
  readonly mapper: DmaMapper;
  /** BAR0's first page, mapped: every register lives there. */
  readonly regs: MappedRegion;
  #irq: Interrupts | null = null;
  #mode: EduIrqMode | null = null;
  #closed = false;

  private constructor(opened: OpenedDevice, mapper: DmaMapper, regs: MappedRegion) {
    this.opened = opened;
    this.mapper = mapper;
    this.regs = regs;
  }

  /**
   * Opens edu on the backend asked for, maps BAR0, checks the ID register and
   * enables bus mastering (vfio-pci clears it at open).
   *
   * @throws {@link VfioError} ENODEV when there is no edu, or the device's ID
   *   register is not edu's; the errors of {@link openDevice}
   */
  static open(options: EduOpenOptions = {}): EduDriver {
    const opened = openDevice(options.address ?? findEdu(), { backend: options.backend ?? 'auto' });
    try {
      const mapper = new DmaMapper(opened.dma, { ...options.mapper, limit: EDU_DMA_LIMIT, devices: [opened.device] });
      const regs = opened.device.mmap(VFIO_PCI_BAR0_REGION_INDEX, { length: 4096 });
      const edu = new EduDriver(opened, mapper, regs);
      const id = edu.id();
      if (id !== EDU_ID) {
        throw new VfioError({ code: 'ENODEV', errno: 19, operation: 'edu probe', path: opened.device.name, message: `ENODEV: ${opened.device.name} answers ID 0x${id.toString(16)}, not edu's 0x${EDU_ID.toString(16)}` });
      }
      edu.enableBusMaster();
      return edu;
    } catch (e) {
      opened.close();
      throw e;
    }
  }

  /** Which path the device was opened on. */
  get backend(): 'group' | 'cdev' {
    return this.opened.backend;
  }

  /** The VFIO device. */
  get device(): OpenedDevice['device'] {
    return this.opened.device;
  }

  /** The interrupts currently enabled, or null. */
  get interrupts(): Interrupts | null {
    return this.#irq;
  }

  /** The ID register (0x010000ed for edu 1.0). */
  id(): number {
    return this.regs.read32(EDU_REG.ID);
  }

  /** Writes `value` to the liveness register and returns what it reads back (edu answers ~value). */
  liveness(value: number): number {
    this.regs.write32(EDU_REG.LIVENESS, value >>> 0);
    return this.regs.read32(EDU_REG.LIVENESS);
  }

  /** Sets Bus Master (and Memory Space) in PCI_COMMAND; returns the command register now. */
  enableBusMaster(): number {
    const cfg = this.device.region(VFIO_PCI_CONFIG_REGION_INDEX);
    const cmd = cfg.read16(PCI_CONFIG.COMMAND);
    const want = cmd | PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY;
    if (want !== cmd) cfg.write16(PCI_CONFIG.COMMAND, want);
    return cfg.read16(PCI_CONFIG.COMMAND);
  }

  /**
   * Switches the interrupt mode: MSI (index 1) or INTx (index 0). vfio-pci
   * allows one of them at a time, so the other is disabled first.
   *
   * @returns the enabled interrupts (the same object when the mode is unchanged)
   * @throws TypeError for another mode
   */
  useInterrupts(mode: EduIrqMode): Interrupts {
    if (mode !== 'msi' && mode !== 'intx') throw new TypeError(`irq must be 'msi' or 'intx', got ${String(mode)}`);
    if (this.#irq && this.#mode === mode) return this.#irq;
    this.#irq?.close();
    this.#irq = null;
    this.#irq = this.device.enableInterrupts(mode === 'msi' ? VFIO_PCI_MSI_IRQ_INDEX : VFIO_PCI_INTX_IRQ_INDEX);
    this.#mode = mode;
    return this.#irq;
  }

  /**
   * Runs `start` and waits for the interrupt it causes; then checks that edu's
   * IRQ_STATUS has `bits`, acknowledges them (and unmasks INTx, which vfio-pci
   * masked when it fired). Returns IRQ_STATUS as seen.
   */
  async #interrupting(bits: number, o: EduWaitOptions, start: () => void): Promise<number> {
    const mode = o.irq ?? 'msi';
    const irq = this.useInterrupts(mode);
    const timeoutMs = o.timeoutMs ?? 10_000;
    const got = irq.next({ signal: AbortSignal.timeout(timeoutMs) });
    start();
    try {
      await got;
    } catch (e) {
      const status = this.regs.read32(EDU_REG.IRQ_STATUS);
      throw new VfioError({
        code: 'ETIMEDOUT',
        errno: 110,
        operation: 'edu interrupt',
        path: this.device.name,
        message: `ETIMEDOUT: no ${mode} interrupt within ${timeoutMs} ms (IRQ_STATUS 0x${status.toString(16)})`,
        cause: e,
      });
    }
    const status = this.regs.read32(EDU_REG.IRQ_STATUS);
    this.regs.write32(EDU_REG.IRQ_ACK, status);
    if (mode === 'intx') this.device.unmask(VFIO_PCI_INTX_IRQ_INDEX);
    if ((status & bits) !== bits) {
      throw new VfioError({ code: 'EIO', errno: 5, operation: 'edu interrupt', path: this.device.name, message: `EIO: interrupt with IRQ_STATUS 0x${status.toString(16)}, expected bits 0x${bits.toString(16)}` });
    }
    return status;
  }

  /**
   * n! in u32, computed by edu; completion is an interrupt (MSI or INTx).
   *
   * @param n - a u32
   * @throws RangeError when `n` is not a u32
   * @throws {@link VfioError} EBUSY while edu is still computing; ETIMEDOUT when
   *   no interrupt arrives in time; EIO when IRQ_STATUS lacks the factorial bit
   */
  async factorial(n: number, o: EduWaitOptions = {}): Promise<number> {
    if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`n must be a u32, got ${n}`);
    if (this.regs.read32(EDU_REG.STATUS) & EDU_STATUS_COMPUTING) throw new VfioError({ code: 'EBUSY', errno: 16, operation: 'edu factorial', message: 'EBUSY: edu is still computing' });
    this.regs.write32(EDU_REG.STATUS, EDU_STATUS_IRQFACT);
    try {
      await this.#interrupting(EDU_IRQ_FACTORIAL, o, () => this.regs.write32(EDU_REG.FACTORIAL, n));
    } finally {
      this.regs.write32(EDU_REG.STATUS, 0);
    }
    return this.regs.read32(EDU_REG.FACTORIAL);
  }

  /**
   * One DMA transfer of `count` bytes between `iova` and edu's buffer at
   * 0x40000 + `deviceOffset`, completed by an interrupt. Returns IRQ_STATUS.
   *
   * @param direction - 'to-device' (RAM → edu) or 'to-ram' (edu → RAM)
   * @param iova - where the device sees the RAM side, e.g. a {@link DmaMapping}'s `iova`
   * @throws RangeError when the transfer would leave edu's buffer (see
   *   {@link EDU_DMA_MAX}) or pass its 28-bit DMA mask
   * @throws {@link VfioError} EBUSY while a transfer runs; ETIMEDOUT without
   *   the interrupt; EIO when the interrupt came but the transfer did not finish
   */
  async dma(direction: 'to-device' | 'to-ram', iova: bigint, count: number, o: EduWaitOptions & { deviceOffset?: number } = {}): Promise<number> {
    const devOff = o.deviceOffset ?? 0;
    if (!Number.isInteger(count) || count <= 0 || !Number.isInteger(devOff) || devOff < 0 || devOff + count > EDU_DMA_MAX) {
      // Checked here because edu answers an out-of-range transfer by aborting QEMU (see EDU_DMA_MAX).
      throw new RangeError(`a transfer must lie within edu's buffer and end before its last byte (offset + count ≤ ${EDU_DMA_MAX}): ${count} bytes at offset ${devOff} do not`);
    }
    if (iova < 0n || iova + BigInt(count) > EDU_DMA_LIMIT) throw new RangeError(`IOVA 0x${iova.toString(16)} (+${count}) is past edu's 28-bit DMA mask`);
    if (this.regs.read32(EDU_REG.DMA_CMD) & EDU_DMA_START) throw new VfioError({ code: 'EBUSY', errno: 16, operation: 'edu dma', message: 'EBUSY: a DMA transfer is running' });
    const dev = EDU_DMA_BUFFER + BigInt(devOff);
    const toRam = direction === 'to-ram';
    this.regs.write64(EDU_REG.DMA_SRC, toRam ? dev : iova);
    this.regs.write64(EDU_REG.DMA_DST, toRam ? iova : dev);
    this.regs.write64(EDU_REG.DMA_COUNT, BigInt(count));
    const status = await this.#interrupting(EDU_IRQ_DMA, o, () => this.regs.write64(EDU_REG.DMA_CMD, BigInt(EDU_DMA_START | EDU_DMA_IRQ | (toRam ? EDU_DMA_TO_RAM : 0))));
    if (this.regs.read32(EDU_REG.DMA_CMD) & EDU_DMA_START) throw new VfioError({ code: 'EIO', errno: 5, operation: 'edu dma', message: 'EIO: DMA interrupt while the transfer is still running' });
    return status;
  }

  /**
   * Buffer A (holding `data`) → edu's buffer → buffer B, each leg completed by
   * an interrupt. Both buffers are mapped through the DmaMapper (A read-only,
   * B write-only for the device), then unmapped and freed. Throws EIO if B
   * differs from A.
   *
   * @param data - 1 to {@link EDU_DMA_MAX} bytes
   * @throws RangeError for an empty or too long `data`
   */
  async dmaRoundTrip(data: Uint8Array, o: EduWaitOptions = {}): Promise<EduRoundTrip> {
    if (data.length === 0 || data.length > EDU_DMA_MAX) throw new RangeError(`a round trip moves 1..${EDU_DMA_MAX} bytes (see EDU_DMA_MAX), got ${data.length}`);
    const a = allocDmaBuffer(4096);
    const b = allocDmaBuffer(4096);
    const maps: DmaMapping[] = [];
    try {
      new Uint8Array(a.buffer).set(data);
      const source = this.mapper.map(a, { write: false });
      maps.push(source);
      const destination = this.mapper.map(b, { read: false });
      maps.push(destination);
      const s1 = await this.dma('to-device', source.iova, data.length, o);
      const s2 = await this.dma('to-ram', destination.iova, data.length, o);
      const result = new Uint8Array(b.buffer, 0, data.length).slice();
      const bad = result.findIndex((v, i) => v !== data[i]);
      if (bad >= 0) {
        throw new VfioError({ code: 'EIO', errno: 5, operation: 'edu dma round trip', message: `EIO: byte ${bad} came back as 0x${result[bad]!.toString(16)}, sent 0x${data[bad]!.toString(16)}` });
      }
      return { source, destination, irqStatus: [s1, s2], result };
    } finally {
      for (const m of maps.reverse()) this.mapper.unmap(m);
      a.free();
      b.free();
    }
  }

  /** Disables interrupts, unmaps every DMA mapping and closes the device. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#irq?.close();
      this.regs.unmap();
      if (!this.opened.device.closed) this.mapper.unmapAll();
    } finally {
      this.opened.close();
    }
  }

  /** Same as `close()`, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
