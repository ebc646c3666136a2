/**
 * PCI configuration space parsing: the header, the standard capability list
 * (from 0x34) and the PCI Express extended capability list (from 0x100).
 *
 * The input is whatever the config region returned: 256 or 4096 bytes from
 * vfio-pci, 255 (0xff) from the mdev samples. The 64-byte header must be
 * present; past it, bytes beyond the end of the buffer are treated as
 * absent and never read.
 *
 * Malformed capability lists (loops, pointers into the header, lists running
 * off the end) do not throw: the walk stops there, keeps what it decoded and
 * records why in `issues`. Config space comes from the device, and a broken
 * list should not hide the rest of it (lspci behaves the same way).
 */
import { VfioError } from '../errors.js';
import { asBuffer, bitNames, hex } from '../uapi/binary.js';

// ---- register offsets and bits (include/uapi/linux/pci_regs.h) ---------------------------

/** Byte offsets of the configuration header registers (include/uapi/linux/pci_regs.h). */
export const PCI_CONFIG = {
  /** Vendor ID (16 bits; 0xffff when no device answers). */
  VENDOR_ID: 0x00,
  /** Device ID (16 bits). */
  DEVICE_ID: 0x02,
  /** Command register (16 bits; see {@link PCI_COMMAND_BITS}). */
  COMMAND: 0x04,
  /** Status register (16 bits; see {@link PCI_STATUS_BITS}). */
  STATUS: 0x06,
  /** Revision ID (8 bits). */
  REVISION_ID: 0x08,
  /** Programming interface, the low byte of the class code. */
  CLASS_PROG: 0x09,
  /** Subclass and base class, the upper 16 bits of the class code. */
  CLASS_DEVICE: 0x0a,
  /** Cache line size in dwords (8 bits). */
  CACHE_LINE_SIZE: 0x0c,
  /** Latency timer in PCI clocks (8 bits). */
  LATENCY_TIMER: 0x0d,
  /** Header type (8 bits): the layout in bits 0–6, multi-function in bit 7. */
  HEADER_TYPE: 0x0e,
  /** Built-in self test (8 bits). */
  BIST: 0x0f,
  /** BAR0; BAR n is at 0x10 + 4n (6 on an endpoint, 2 on a bridge). */
  BASE_ADDRESS_0: 0x10,
  /** Subsystem vendor ID (16 bits; type-0 headers). */
  SUBSYSTEM_VENDOR_ID: 0x2c,
  /** Subsystem ID (16 bits; type-0 headers). */
  SUBSYSTEM_ID: 0x2e,
  /** Expansion ROM base address (32 bits; type-0 headers). */
  ROM_ADDRESS: 0x30,
  /** Pointer to the first standard capability (8 bits; valid when STATUS has CAP_LIST). */
  CAPABILITY_LIST: 0x34,
  /** Expansion ROM base address of a PCI-to-PCI bridge (type-1 headers). */
  ROM_ADDRESS1: 0x38,
  /** Interrupt line (8 bits): the IRQ the firmware routed INTx to. */
  INTERRUPT_LINE: 0x3c,
  /** Interrupt pin (8 bits): 0 none, 1–4 INTA–INTD. */
  INTERRUPT_PIN: 0x3d,
} as const;

/** Size of the standard header; capabilities live at 0x40..0xff. */
export const PCI_STD_HEADER_SIZEOF = 0x40;
/** Conventional config space size. */
export const PCI_CFG_SPACE_SIZE = 0x100;
/** PCI Express / PCI-X 2.0 config space size. */
export const PCI_CFG_SPACE_EXP_SIZE = 0x1000;

/** Command: respond to I/O space accesses. */
export const PCI_COMMAND_IO = 0x1;
/** Command: respond to memory space accesses. */
export const PCI_COMMAND_MEMORY = 0x2;
/** Command: bus mastering (DMA) enabled. */
export const PCI_COMMAND_MASTER = 0x4;
/** Command: respond to special cycles. */
export const PCI_COMMAND_SPECIAL = 0x8;
/** Command: memory write and invalidate. */
export const PCI_COMMAND_INVALIDATE = 0x10;
/** Command: VGA palette snooping. */
export const PCI_COMMAND_VGA_PALETTE = 0x20;
/** Command: parity error response. */
export const PCI_COMMAND_PARITY = 0x40;
/** Command: address/data stepping. */
export const PCI_COMMAND_WAIT = 0x80;
/** Command: SERR# enabled. */
export const PCI_COMMAND_SERR = 0x100;
/** Command: fast back-to-back writes. */
export const PCI_COMMAND_FAST_BACK = 0x200;
/** Command: INTx emulation disabled. */
export const PCI_COMMAND_INTX_DISABLE = 0x400;
/** Command register bit names. */
export const PCI_COMMAND_BITS = {
  /** {@link PCI_COMMAND_IO}: respond to I/O space accesses. */
  IO: PCI_COMMAND_IO,
  /** {@link PCI_COMMAND_MEMORY}: respond to memory space accesses. */
  MEMORY: PCI_COMMAND_MEMORY,
  /** {@link PCI_COMMAND_MASTER}: bus mastering (DMA) enabled. */
  MASTER: PCI_COMMAND_MASTER,
  /** {@link PCI_COMMAND_SPECIAL}: respond to special cycles. */
  SPECIAL: PCI_COMMAND_SPECIAL,
  /** {@link PCI_COMMAND_INVALIDATE}: memory write and invalidate. */
  INVALIDATE: PCI_COMMAND_INVALIDATE,
  /** {@link PCI_COMMAND_VGA_PALETTE}: VGA palette snooping. */
  VGA_PALETTE: PCI_COMMAND_VGA_PALETTE,
  /** {@link PCI_COMMAND_PARITY}: parity error response. */
  PARITY: PCI_COMMAND_PARITY,
  /** {@link PCI_COMMAND_WAIT}: address/data stepping. */
  WAIT: PCI_COMMAND_WAIT,
  /** {@link PCI_COMMAND_SERR}: SERR# enabled. */
  SERR: PCI_COMMAND_SERR,
  /** {@link PCI_COMMAND_FAST_BACK}: fast back-to-back writes. */
  FAST_BACK: PCI_COMMAND_FAST_BACK,
  /** {@link PCI_COMMAND_INTX_DISABLE}: INTx emulation disabled. */
  INTX_DISABLE: PCI_COMMAND_INTX_DISABLE,
} as const;

/** Status: the capability list at 0x34 is valid. */
export const PCI_STATUS_CAP_LIST = 0x10;
/** Status register bit names (the 2-bit DEVSEL timing field is left out). */
export const PCI_STATUS_BITS = {
  /** Immediate readiness. */
  IMM_READY: 0x01,
  /** An INTx interrupt is pending. */
  INTERRUPT: 0x08,
  /** The capability list at 0x34 is valid ({@link PCI_STATUS_CAP_LIST}). */
  CAP_LIST: PCI_STATUS_CAP_LIST,
  /** 66 MHz capable (conventional PCI). */
  '66MHZ': 0x20,
  /** User-definable features supported (obsolete). */
  UDF: 0x40,
  /** Fast back-to-back transactions capable. */
  FAST_BACK: 0x80,
  /** Master data parity error detected. */
  PARITY: 0x100,
  /** Signalled a target abort. */
  SIG_TARGET_ABORT: 0x800,
  /** Received a target abort (as master). */
  REC_TARGET_ABORT: 0x1000,
  /** Received a master abort (as master). */
  REC_MASTER_ABORT: 0x2000,
  /** Signalled SERR#. */
  SIG_SYSTEM_ERROR: 0x4000,
  /** Detected a parity error (even with parity error response disabled). */
  DETECTED_PARITY: 0x8000,
} as const;
const PCI_STATUS_DEVSEL_MASK = 0x600;

/** Header type 0: an endpoint (6 BARs). */
export const PCI_HEADER_TYPE_NORMAL = 0;
/** Header type 1: a PCI-to-PCI bridge (2 BARs). */
export const PCI_HEADER_TYPE_BRIDGE = 1;
/** Header type 2: a CardBus bridge. */
export const PCI_HEADER_TYPE_CARDBUS = 2;
const PCI_HEADER_TYPE_MASK = 0x7f;
const PCI_HEADER_TYPE_MFD = 0x80;

const PCI_BASE_ADDRESS_SPACE_IO = 0x1;
const PCI_BASE_ADDRESS_MEM_TYPE_MASK = 0x6;
const PCI_BASE_ADDRESS_MEM_TYPE_64 = 0x4;
const PCI_BASE_ADDRESS_MEM_TYPE_RESERVED = 0x6;
const PCI_BASE_ADDRESS_MEM_PREFETCH = 0x8;
const PCI_BASE_ADDRESS_IO_MASK = ~0x3;
const PCI_BASE_ADDRESS_MEM_MASK = ~0xf;

/** Capability id: Power Management. */
export const PCI_CAP_ID_PM = 0x01;
/** Capability id: MSI. */
export const PCI_CAP_ID_MSI = 0x05;
/** Capability id: vendor specific. */
export const PCI_CAP_ID_VNDR = 0x09;
/** Capability id: PCI Express. */
export const PCI_CAP_ID_EXP = 0x10;
/** Capability id: MSI-X. */
export const PCI_CAP_ID_MSIX = 0x11;

/** Standard capability id → name. */
export const PCI_CAP_NAMES: Readonly<Record<number, string>> = {
  0x01: 'PM',
  0x02: 'AGP',
  0x03: 'VPD',
  0x04: 'SlotID',
  0x05: 'MSI',
  0x06: 'CompactPCI-HotSwap',
  0x07: 'PCI-X',
  0x08: 'HyperTransport',
  0x09: 'Vendor',
  0x0a: 'Debug',
  0x0b: 'CompactPCI-CRC',
  0x0c: 'SHPC',
  0x0d: 'SSVID',
  0x0e: 'AGP3',
  0x0f: 'SecureDevice',
  0x10: 'PCIe',
  0x11: 'MSI-X',
  0x12: 'SATA',
  0x13: 'AdvancedFeatures',
  0x14: 'EnhancedAllocation',
  0x15: 'FPB',
};

/** Extended capability id → name. */
export const PCI_EXT_CAP_NAMES: Readonly<Record<number, string>> = {
  0x01: 'AER',
  0x02: 'VC',
  0x03: 'DSN',
  0x04: 'PowerBudget',
  0x05: 'RCLD',
  0x06: 'RCILC',
  0x07: 'RCEC',
  0x08: 'MFVC',
  0x09: 'VC9',
  0x0a: 'RCRB',
  0x0b: 'Vendor',
  0x0c: 'CAC',
  0x0d: 'ACS',
  0x0e: 'ARI',
  0x0f: 'ATS',
  0x10: 'SR-IOV',
  0x11: 'MR-IOV',
  0x12: 'Multicast',
  0x13: 'PRI',
  0x15: 'ResizableBAR',
  0x16: 'DPA',
  0x17: 'TPH',
  0x18: 'LTR',
  0x19: 'SecondaryPCIe',
  0x1a: 'PMUX',
  0x1b: 'PASID',
  0x1d: 'DPC',
  0x1e: 'L1SS',
  0x1f: 'PTM',
  0x23: 'DVSEC',
  0x25: 'DLF',
  0x26: 'PL16GT',
  0x2e: 'DOE',
};

/** Extended capability id: Device Serial Number. */
export const PCI_EXT_CAP_ID_DSN = 0x03;

/** PCI Express device/port types (PCI_EXP_FLAGS_TYPE). */
export const PCI_EXP_TYPE_NAMES: Readonly<Record<number, string>> = {
  0x0: 'Endpoint',
  0x1: 'LegacyEndpoint',
  0x4: 'RootPort',
  0x5: 'UpstreamPort',
  0x6: 'DownstreamPort',
  0x7: 'PCIeToPCIBridge',
  0x8: 'PCIToPCIeBridge',
  0x9: 'RCIntegratedEndpoint',
  0xa: 'RCEventCollector',
};

/** The name of a standard capability id, or 'CAP<hex>'. */
export function pciCapName(id: number): string {
  return PCI_CAP_NAMES[id] ?? `CAP${hex(id)}`;
}

/** The name of an extended capability id, or 'ECAP<hex>'. */
export function pciExtCapName(id: number): string {
  return PCI_EXT_CAP_NAMES[id] ?? `ECAP${hex(id)}`;
}

// ---- parsed shapes --------------------------------------------------------------------------

/** The class code: base class, subclass and programming interface. */
export interface PciClassCode {
  /** The base class (bits 23–16), e.g. 0x03 display controller. */
  baseClass: number;
  /** The subclass (bits 15–8). */
  subClass: number;
  /** The programming interface (bits 7–0). */
  progIf: number;
  /** The 24-bit value, e.g. 0x070002. */
  value: number;
}

/** One decoded BAR. A 64-bit memory BAR consumes the next slot, which gets no entry. */
export interface PciBar {
  /** BAR number (0-5). */
  index: number;
  /** I/O space, or a 32-bit or 64-bit memory BAR. */
  kind: 'io' | 'mem32' | 'mem64';
  /** Memory BARs: the prefetchable bit (always false for I/O). */
  prefetchable: boolean;
  /** The base address with the flag bits masked off. */
  address: bigint;
  /** The BAR register as read. */
  raw: number;
  /** The upper half of a 64-bit BAR (undefined when it is missing). */
  rawHigh?: number;
}

/** Fields every decoded standard capability has. */
export interface PciCapBase {
  /** The capability id, e.g. 0x05 MSI, 0x10 PCI Express, 0x11 MSI-X. */
  id: number;
  /** The id's name ('MSI', 'MSI-X', 'PCIe', …; see {@link pciCapName}). */
  name: string;
  /** Where the capability starts. */
  offset: number;
  /** The next pointer as read (0 ends the list). */
  next: number;
}

/** MSI (id 0x05). Register offsets are absolute config-space offsets. */
export interface PciMsiCap extends PciCapBase {
  /** Discriminant of {@link PciCapability}. */
  kind: 'msi';
  /** Message Control. */
  control: number;
  /** MSI Enable is set in Message Control. */
  enabled: boolean;
  /** Vectors the function can request (1, 2, 4, … 32). */
  multipleMessageCapable: number;
  /** Vectors enabled (1, 2, 4, … 32). */
  multipleMessageEnable: number;
  /** The function can generate 64-bit message addresses. */
  is64Bit: boolean;
  /** The function supports per-vector masking (Mask and Pending registers exist). */
  perVectorMask: boolean;
  /** The Message Address register. */
  addressOffset: number;
  /** The upper address dword (64-bit only). */
  upperAddressOffset: number | undefined;
  /** The Message Data register. */
  dataOffset: number;
  /** Mask bits (per-vector masking only). */
  maskOffset: number | undefined;
  /** Pending bits (per-vector masking only). */
  pendingOffset: number | undefined;
}

/** MSI-X (id 0x11). */
export interface PciMsixCap extends PciCapBase {
  /** Discriminant of {@link PciCapability}. */
  kind: 'msix';
  /** Message Control. */
  control: number;
  /** MSI-X Enable is set in Message Control. */
  enabled: boolean;
  /** Function Mask is set: every vector is masked. */
  functionMask: boolean;
  /** Number of table entries. */
  tableSize: number;
  /** The BAR (0–5) that holds the MSI-X table. */
  tableBir: number;
  /** Byte offset of the table within that BAR. */
  tableOffset: number;
  /** The BAR (0–5) that holds the Pending Bit Array. */
  pbaBir: number;
  /** Byte offset of the Pending Bit Array within that BAR. */
  pbaOffset: number;
}

/** PCI Express (id 0x10). */
export interface PciExpressCap extends PciCapBase {
  /** Discriminant of {@link PciCapability}. */
  kind: 'pcie';
  /** The PCI Express Capabilities register. */
  flags: number;
  /** The capability's version (1 or 2). */
  version: number;
  /** The device/port type (0 Endpoint, 4 Root Port, …; see `deviceTypeName`). */
  deviceType: number;
  /** 'Endpoint', 'RootPort', … or 'Type<n>'. */
  deviceTypeName: string;
  /** The port is connected to a slot. */
  slotImplemented: boolean;
  /** The MSI/MSI-X vector used for this capability's interrupts. */
  interruptMessageNumber: number;
}

/** Power Management (id 0x01). */
export interface PciPmCap extends PciCapBase {
  /** Discriminant of {@link PciCapability}. */
  kind: 'pm';
  /** Power Management Capabilities register. */
  pmc: number;
  /** The PM spec version in PMC (3 for PCI PM 1.2). */
  version: number;
  /** Power Management Control/Status register. */
  pmcsr: number;
  /** 0-3. */
  powerState: number;
  /** 'D0', 'D1', 'D2', 'D3hot'. */
  powerStateName: string;
}

/** Vendor-specific (id 0x09): kept raw. */
export interface PciVendorCap extends PciCapBase {
  /** Discriminant of {@link PciCapability}. */
  kind: 'vendor';
  /** The length byte (offset 2). */
  length: number;
  /** `length` bytes from the capability start, header included (cut at the end of the buffer). */
  raw: Buffer;
}

/** Any other capability, or a known one whose registers run past the end of the buffer. */
export interface PciOtherCap extends PciCapBase {
  /** Discriminant of {@link PciCapability}. */
  kind: 'other';
}

/** A standard capability. */
export type PciCapability = PciMsiCap | PciMsixCap | PciExpressCap | PciPmCap | PciVendorCap | PciOtherCap;

/** An extended capability (header only; DSN decoded). */
export interface PciExtCapability {
  /** The extended capability id (bits 15–0 of its header), e.g. 0x0001 AER, 0x0003 DSN. */
  id: number;
  /** The capability's version (bits 19–16). */
  version: number;
  /** The id's name ('AER', 'DSN', …; see {@link pciExtCapName}). */
  name: string;
  /** Where the capability starts (0x100 or above). */
  offset: number;
  /** The next pointer (bits 31–20; 0 ends the list). */
  next: number;
  /** The Device Serial Number (DSN only). */
  serialNumber?: bigint;
}

/** A parsed config space. */
export interface PciConfig {
  /** Bytes available. */
  length: number;
  /** Vendor ID (0x1234 for QEMU's edu). */
  vendorId: number;
  /** Device ID. */
  deviceId: number;
  /** The Command register. */
  command: number;
  /** 'IO', 'MEMORY', 'MASTER', … */
  commandNames: string[];
  /** The Status register. */
  status: number;
  /** 'CAP_LIST', 'INTERRUPT', … (DEVSEL timing in `devselTiming`). */
  statusNames: string[];
  /** 0 fast, 1 medium, 2 slow. */
  devselTiming: number;
  /** Revision ID. */
  revision: number;
  /** The class code, split. */
  classCode: PciClassCode;
  /** Cache line size in dwords. */
  cacheLineSize: number;
  /** Latency timer in PCI clocks. */
  latencyTimer: number;
  /** The layout (0 normal, 1 bridge, 2 CardBus), without the multi-function bit. */
  headerType: number;
  /** The header type's multi-function bit: the device has functions besides 0. */
  multiFunction: boolean;
  /** The BIST register. */
  bist: number;
  /** Decoded BARs: 6 slots for a type-0 header, 2 for a bridge, none otherwise. */
  bars: PciBar[];
  /** The raw BAR registers (6, 2 or 0). */
  rawBars: number[];
  /** Type-0 headers only. */
  subsystemVendorId: number | undefined;
  /** Type-0 headers only. */
  subsystemId: number | undefined;
  /** The expansion ROM register (0x30, or 0x38 on a bridge); undefined for CardBus. */
  romAddress: number | undefined;
  /** Status has CAP_LIST. */
  hasCapabilityList: boolean;
  /** The byte at 0x34 as read. */
  capabilitiesPointer: number;
  /** The Interrupt Line register (the IRQ the firmware routed INTx to). */
  interruptLine: number;
  /** 0 none, 1-4 INTA-INTD. */
  interruptPin: number;
  /** The standard capabilities, in list order. */
  capabilities: PciCapability[];
  /** The PCI Express extended capabilities, in list order ([] for 256 bytes or less). */
  extendedCapabilities: PciExtCapability[];
  /** Why a walk stopped early or a register was missing; [] for a clean config space. */
  issues: string[];
}

// ---- bounded readers ---------------------------------------------------------------------------

/** Reads that give undefined instead of reading past the end. */
class Bytes {
  constructor(readonly buf: Buffer) {}
  has(off: number, width: number): boolean {
    return off >= 0 && off + width <= this.buf.length;
  }
  u8(off: number): number | undefined {
    return this.has(off, 1) ? this.buf.readUInt8(off) : undefined;
  }
  u16(off: number): number | undefined {
    return this.has(off, 2) ? this.buf.readUInt16LE(off) : undefined;
  }
  u32(off: number): number | undefined {
    return this.has(off, 4) ? this.buf.readUInt32LE(off) : undefined;
  }
}

// ---- header ---------------------------------------------------------------------------------------

function decodeBars(b: Bytes, count: number, issues: string[]): { bars: PciBar[]; rawBars: number[] } {
  const rawBars = Array.from({ length: count }, (_, i) => b.buf.readUInt32LE(PCI_CONFIG.BASE_ADDRESS_0 + 4 * i));
  const bars: PciBar[] = [];
  for (let i = 0; i < count; i++) {
    const raw = rawBars[i] as number;
    if (raw & PCI_BASE_ADDRESS_SPACE_IO) {
      bars.push({ index: i, kind: 'io', prefetchable: false, address: BigInt((raw & PCI_BASE_ADDRESS_IO_MASK) >>> 0), raw });
      continue;
    }
    const type = raw & PCI_BASE_ADDRESS_MEM_TYPE_MASK;
    const prefetchable = (raw & PCI_BASE_ADDRESS_MEM_PREFETCH) !== 0;
    const low = BigInt((raw & PCI_BASE_ADDRESS_MEM_MASK) >>> 0);
    if (type === PCI_BASE_ADDRESS_MEM_TYPE_64) {
      const rawHigh = rawBars[i + 1];
      if (rawHigh === undefined) {
        issues.push(`BAR${i} is 64-bit but has no BAR${i + 1} for its upper half`);
        bars.push({ index: i, kind: 'mem64', prefetchable, address: low, raw });
      } else {
        bars.push({ index: i, kind: 'mem64', prefetchable, address: (BigInt(rawHigh) << 32n) | low, raw, rawHigh });
        i++;
      }
      continue;
    }
    if (type === PCI_BASE_ADDRESS_MEM_TYPE_RESERVED) issues.push(`BAR${i} has the reserved memory type 3`);
    bars.push({ index: i, kind: 'mem32', prefetchable, address: low, raw });
  }
  return { bars, rawBars };
}

// ---- standard capabilities -----------------------------------------------------------------------------

/** The TTL of the kernel's capability walk (drivers/pci/pci.c PCI_FIND_CAP_TTL). */
const PCI_FIND_CAP_TTL = 48;

const POWER_STATE_NAMES = ['D0', 'D1', 'D2', 'D3hot'] as const;

/** Decodes the body of one capability; undefined when its registers run past the end. */
function decodeCap(b: Bytes, base: PciCapBase): PciCapability | undefined {
  const o = base.offset;
  switch (base.id) {
    case PCI_CAP_ID_MSI: {
      const control = b.u16(o + 2);
      if (control === undefined) return undefined;
      const is64Bit = (control & 0x80) !== 0;
      const perVectorMask = (control & 0x100) !== 0;
      const dataOffset = o + (is64Bit ? 12 : 8);
      const maskOffset = perVectorMask ? dataOffset + 4 : undefined;
      const end = maskOffset !== undefined ? maskOffset + 8 : dataOffset + 2;
      if (!b.has(o, end - o)) return undefined;
      return {
        ...base,
        kind: 'msi',
        control,
        enabled: (control & 0x1) !== 0,
        multipleMessageCapable: 1 << ((control >> 1) & 0x7),
        multipleMessageEnable: 1 << ((control >> 4) & 0x7),
        is64Bit,
        perVectorMask,
        addressOffset: o + 4,
        upperAddressOffset: is64Bit ? o + 8 : undefined,
        dataOffset,
        maskOffset,
        pendingOffset: maskOffset !== undefined ? maskOffset + 4 : undefined,
      };
    }
    case PCI_CAP_ID_MSIX: {
      const control = b.u16(o + 2);
      const table = b.u32(o + 4);
      const pba = b.u32(o + 8);
      if (control === undefined || table === undefined || pba === undefined) return undefined;
      return {
        ...base,
        kind: 'msix',
        control,
        enabled: (control & 0x8000) !== 0,
        functionMask: (control & 0x4000) !== 0,
        tableSize: (control & 0x7ff) + 1,
        tableBir: table & 0x7,
        tableOffset: (table & ~0x7) >>> 0,
        pbaBir: pba & 0x7,
        pbaOffset: (pba & ~0x7) >>> 0,
      };
    }
    case PCI_CAP_ID_EXP: {
      const flags = b.u16(o + 2);
      if (flags === undefined) return undefined;
      const deviceType = (flags >> 4) & 0xf;
      return {
        ...base,
        kind: 'pcie',
        flags,
        version: flags & 0xf,
        deviceType,
        deviceTypeName: PCI_EXP_TYPE_NAMES[deviceType] ?? `Type${deviceType}`,
        slotImplemented: (flags & 0x100) !== 0,
        interruptMessageNumber: (flags >> 9) & 0x1f,
      };
    }
    case PCI_CAP_ID_PM: {
      const pmc = b.u16(o + 2);
      const pmcsr = b.u16(o + 4);
      if (pmc === undefined || pmcsr === undefined) return undefined;
      const powerState = pmcsr & 0x3;
      return {
        ...base,
        kind: 'pm',
        pmc,
        version: pmc & 0x7,
        pmcsr,
        powerState,
        powerStateName: POWER_STATE_NAMES[powerState] as string,
      };
    }
    case PCI_CAP_ID_VNDR: {
      const length = b.u8(o + 2);
      if (length === undefined) return undefined;
      return { ...base, kind: 'vendor', length, raw: Buffer.from(b.buf.subarray(o, Math.min(o + length, b.buf.length))) };
    }
    default:
      return { ...base, kind: 'other' };
  }
}

/**
 * Walks the standard capability list as the kernel does (pointer masked to a
 * dword, stop below 0x40, stop on id 0xff, at most 48 entries), plus: a
 * capability visited twice ends the walk (loop), and so does a header past
 * the end of the buffer. Each stop is recorded in `issues`.
 */
function walkCapabilities(b: Bytes, pointer: number, issues: string[]): PciCapability[] {
  const caps: PciCapability[] = [];
  const seen = new Set<number>();
  let pos = pointer & ~0x3;
  while (pos !== 0) {
    if (pos < PCI_STD_HEADER_SIZEOF) {
      issues.push(`capability pointer ${hex(pos)} points into the header; list ends`);
      break;
    }
    if (seen.has(pos)) {
      issues.push(`capability list loops back to ${hex(pos)}; list ends`);
      break;
    }
    if (caps.length >= PCI_FIND_CAP_TTL) {
      issues.push(`more than ${PCI_FIND_CAP_TTL} capabilities; list ends`);
      break;
    }
    const id = b.u8(pos);
    const nextRaw = b.u8(pos + 1);
    if (id === undefined || nextRaw === undefined) {
      issues.push(`capability at ${hex(pos)} lies past the end of the ${b.buf.length}-byte config space; list ends`);
      break;
    }
    if (id === 0xff) {
      issues.push(`capability at ${hex(pos)} reads 0xff; list ends`);
      break;
    }
    seen.add(pos);
    const base: PciCapBase = { id, name: pciCapName(id), offset: pos, next: nextRaw };
    const cap = decodeCap(b, base);
    if (cap === undefined) {
      issues.push(`${base.name} capability at ${hex(pos)} is cut off by the end of the config space`);
      caps.push({ ...base, kind: 'other' });
    } else {
      caps.push(cap);
    }
    pos = nextRaw & ~0x3;
  }
  return caps;
}

// ---- extended capabilities -------------------------------------------------------------------------------

/** The most extended capabilities that fit in 0x100..0xfff. */
const PCI_EXT_CAP_MAX = (PCI_CFG_SPACE_EXP_SIZE - PCI_CFG_SPACE_SIZE) / 4;

/**
 * Walks the extended capability list from 0x100: header dword = id (15:0),
 * version (19:16), next (31:20, dword-aligned). An all-zero or all-ones first
 * header means no list. Loops, pointers below 0x100 and headers past the end
 * stop the walk with an issue.
 */
function walkExtCapabilities(b: Bytes, issues: string[]): PciExtCapability[] {
  const caps: PciExtCapability[] = [];
  const first = b.u32(PCI_CFG_SPACE_SIZE);
  if (first === undefined || first === 0 || first === 0xffff_ffff) return caps;
  const seen = new Set<number>();
  let pos = PCI_CFG_SPACE_SIZE;
  while (pos !== 0) {
    if (pos < PCI_CFG_SPACE_SIZE) {
      issues.push(`extended capability pointer ${hex(pos)} is below 0x100; list ends`);
      break;
    }
    if (seen.has(pos)) {
      issues.push(`extended capability list loops back to ${hex(pos)}; list ends`);
      break;
    }
    if (caps.length >= PCI_EXT_CAP_MAX) {
      issues.push(`more than ${PCI_EXT_CAP_MAX} extended capabilities; list ends`);
      break;
    }
    const header = b.u32(pos);
    if (header === undefined) {
      issues.push(`extended capability at ${hex(pos)} lies past the end of the ${b.buf.length}-byte config space; list ends`);
      break;
    }
    seen.add(pos);
    const id = header & 0xffff;
    const next = (header >>> 20) & 0xffc;
    const cap: PciExtCapability = { id, version: (header >>> 16) & 0xf, name: pciExtCapName(id), offset: pos, next };
    if (id === PCI_EXT_CAP_ID_DSN) {
      const lo = b.u32(pos + 4);
      const hi = b.u32(pos + 8);
      if (lo !== undefined && hi !== undefined) cap.serialNumber = (BigInt(hi) << 32n) | BigInt(lo);
      else issues.push(`DSN at ${hex(pos)} is cut off by the end of the config space`);
    }
    caps.push(cap);
    pos = next;
  }
  return caps;
}

// ---- entry point ---------------------------------------------------------------------------------------------

/**
 * Parses a PCI configuration space. Needs at least the 64-byte header
 * (else VfioError `ERR_VFIO_BAD_PCI_CONFIG`); accepts 255 bytes (mdev
 * samples), 256 and 4096. The capability list is walked only when the
 * status register has CAP_LIST; the extended list only when the buffer
 * extends past 0x100. Malformed capability lists do not throw: see `issues`.
 *
 * @param buf - the config region's bytes, e.g. from {@link Device.pciConfigBytes}
 * @throws TypeError when `buf` is not a Uint8Array
 * @throws {@link VfioError} ERR_VFIO_BAD_PCI_CONFIG for fewer than 64 bytes
 */
export function parsePciConfig(buf: Buffer | Uint8Array): PciConfig {
  const b = new Bytes(asBuffer(buf, 'config space'));
  if (b.buf.length < PCI_STD_HEADER_SIZEOF) {
    throw new VfioError({
      code: 'ERR_VFIO_BAD_PCI_CONFIG',
      message: `ERR_VFIO_BAD_PCI_CONFIG: config space needs at least the ${PCI_STD_HEADER_SIZEOF}-byte header, got ${b.buf.length} bytes`,
    });
  }
  const r8 = (off: number): number => b.buf.readUInt8(off);
  const r16 = (off: number): number => b.buf.readUInt16LE(off);
  const issues: string[] = [];
  const command = r16(PCI_CONFIG.COMMAND);
  const status = r16(PCI_CONFIG.STATUS);
  const progIf = r8(PCI_CONFIG.CLASS_PROG);
  const subClass = r8(PCI_CONFIG.CLASS_DEVICE);
  const baseClass = r8(PCI_CONFIG.CLASS_DEVICE + 1);
  const headerTypeRaw = r8(PCI_CONFIG.HEADER_TYPE);
  const headerType = headerTypeRaw & PCI_HEADER_TYPE_MASK;
  const barCount = headerType === PCI_HEADER_TYPE_NORMAL ? 6 : headerType === PCI_HEADER_TYPE_BRIDGE ? 2 : 0;
  const { bars, rawBars } = decodeBars(b, barCount, issues);
  const normal = headerType === PCI_HEADER_TYPE_NORMAL;
  const romOffset = normal ? PCI_CONFIG.ROM_ADDRESS : headerType === PCI_HEADER_TYPE_BRIDGE ? PCI_CONFIG.ROM_ADDRESS1 : undefined;
  const hasCapabilityList = (status & PCI_STATUS_CAP_LIST) !== 0;
  const capabilitiesPointer = r8(PCI_CONFIG.CAPABILITY_LIST);
  return {
    length: b.buf.length,
    vendorId: r16(PCI_CONFIG.VENDOR_ID),
    deviceId: r16(PCI_CONFIG.DEVICE_ID),
    command,
    commandNames: bitNames(command, PCI_COMMAND_BITS),
    status,
    statusNames: bitNames(status & ~PCI_STATUS_DEVSEL_MASK, PCI_STATUS_BITS),
    devselTiming: (status & PCI_STATUS_DEVSEL_MASK) >> 9,
    revision: r8(PCI_CONFIG.REVISION_ID),
    classCode: { baseClass, subClass, progIf, value: (baseClass << 16) | (subClass << 8) | progIf },
    cacheLineSize: r8(PCI_CONFIG.CACHE_LINE_SIZE),
    latencyTimer: r8(PCI_CONFIG.LATENCY_TIMER),
    headerType,
    multiFunction: (headerTypeRaw & PCI_HEADER_TYPE_MFD) !== 0,
    bist: r8(PCI_CONFIG.BIST),
    bars,
    rawBars,
    subsystemVendorId: normal ? r16(PCI_CONFIG.SUBSYSTEM_VENDOR_ID) : undefined,
    subsystemId: normal ? r16(PCI_CONFIG.SUBSYSTEM_ID) : undefined,
    romAddress: romOffset === undefined ? undefined : b.buf.readUInt32LE(romOffset),
    hasCapabilityList,
    capabilitiesPointer,
    interruptLine: r8(PCI_CONFIG.INTERRUPT_LINE),
    interruptPin: r8(PCI_CONFIG.INTERRUPT_PIN),
    capabilities: hasCapabilityList ? walkCapabilities(b, capabilitiesPointer, issues) : [],
    extendedCapabilities: b.buf.length > PCI_CFG_SPACE_SIZE ? walkExtCapabilities(b, issues) : [],
    issues,
  };
}
