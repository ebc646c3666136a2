/**
 * The NVM Express 1.4 base specification as far as a userspace NVMe driver
 * needs it: controller registers and their codecs (CAP, VS, CC, CSTS, AQA,
 * doorbells), the 64-byte submission and 16-byte completion queue entries,
 * status codes and their names, {@link NvmeError}, admin and NVM opcodes,
 * the Identify Controller, Identify Namespace and active namespace list data
 * structures, and PRP planning.
 *
 * Everything here is pure: no system call, no device access. Every multi-byte
 * field is little-endian, as the specification defines it; 64-bit addresses
 * and sizes are bigints.
 */
import { VfioError } from '../../errors.js';

// --- argument checks ----------------------------------------------------------

function uint(what: string, v: unknown, max: number): number {
  if (typeof v !== 'number') throw new TypeError(`${what} must be a number, got ${typeof v}`);
  if (!Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`${what} must be an integer in 0..0x${max.toString(16)}, got ${v}`);
  return v;
}

const U64_MAX = (1n << 64n) - 1n;

function u64(what: string, v: unknown): bigint {
  if (typeof v !== 'bigint') throw new TypeError(`${what} must be a bigint, got ${typeof v}`);
  if (v < 0n || v > U64_MAX) throw new RangeError(`${what} must be a u64, got 0x${v.toString(16)}`);
  return v;
}

function flag(what: string, v: unknown): boolean {
  if (v === undefined) return false;
  if (typeof v !== 'boolean') throw new TypeError(`${what} must be a boolean, got ${typeof v}`);
  return v;
}

/** log2 of a power of two in [2^minExp, 2^maxExp], or a RangeError naming `what`. */
function log2Of(what: string, v: unknown, minExp: number, maxExp: number): number {
  if (typeof v !== 'number') throw new TypeError(`${what} must be a number, got ${typeof v}`);
  for (let e = minExp; e <= maxExp; e++) if (v === 2 ** e) return e;
  throw new RangeError(`${what} must be a power of two from ${2 ** minExp} to ${2 ** maxExp}, got ${v}`);
}

function view(buf: unknown, what: string): DataView {
  if (!(buf instanceof Uint8Array)) throw new TypeError(`${what} must be a Uint8Array or Buffer`);
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

function span(buf: Uint8Array, offset: unknown, size: number, what: string): number {
  if (typeof offset !== 'number') throw new TypeError(`${what} offset must be a number, got ${typeof offset}`);
  if (!Number.isInteger(offset) || offset < 0 || offset + size > buf.byteLength) {
    throw new RangeError(`${what} needs ${size} bytes at offset ${offset}, but the buffer holds ${buf.byteLength}`);
  }
  return offset;
}

const hex2 = (n: number): string => `0x${n.toString(16).padStart(2, '0')}`;

// --- controller registers -----------------------------------------------------

/** Controller register offsets in BAR0 (NVMe 1.4 §3.1). CAP, ASQ and ACQ are 64-bit; the others 32-bit. */
export const NVME_REG = {
  /** Controller Capabilities (u64, read-only): see {@link decodeCap}. */
  CAP: 0x00,
  /** Version (u32): see {@link decodeVersion}. */
  VS: 0x08,
  /** Interrupt Mask Set (u32, pin-based and single-vector MSI only). */
  INTMS: 0x0c,
  /** Interrupt Mask Clear (u32). */
  INTMC: 0x10,
  /** Controller Configuration (u32): see {@link encodeCc}. */
  CC: 0x14,
  /** Controller Status (u32, read-only): see {@link decodeCsts}. */
  CSTS: 0x1c,
  /** NVM Subsystem Reset (u32): writing {@link NVME_NSSR_RESET} resets the subsystem when CAP.NSSRS is set. */
  NSSR: 0x20,
  /** Admin Queue Attributes (u32): see {@link encodeAqa}. */
  AQA: 0x24,
  /** Admin Submission Queue base address (u64, page-aligned). */
  ASQ: 0x28,
  /** Admin Completion Queue base address (u64, page-aligned). */
  ACQ: 0x30,
} as const;

/** Where the doorbell registers start in BAR0 (SQ 0 tail doorbell). */
export const NVME_DOORBELL_BASE = 0x1000;

/** The value written to {@link NVME_REG}.NSSR to reset the NVM subsystem: "NVMe" in ASCII. */
export const NVME_NSSR_RESET = 0x4e564d65;

/** The byte offsets in BAR0 of one queue pair's doorbells. */
export interface NvmeDoorbells {
  /** SQyTDBL: the submission queue tail doorbell. */
  sq: number;
  /** CQyHDBL: the completion queue head doorbell. */
  cq: number;
}

/**
 * The doorbell offsets of queue `qid`: with a stride of `4 << dstrd` bytes,
 * SQyTDBL is at 0x1000 + 2y × stride and CQyHDBL at 0x1000 + (2y + 1) × stride.
 *
 * @param qid - the queue identifier, 0 (admin) to 65535
 * @param dstrd - CAP.DSTRD as the register holds it (0..15), e.g. {@link NvmeCap.dstrd}
 * @throws RangeError for a qid or dstrd out of range
 */
export function doorbellOffsets(qid: number, dstrd: number): NvmeDoorbells {
  uint('qid', qid, 0xffff);
  uint('dstrd', dstrd, 15);
  const stride = 4 * 2 ** dstrd;
  return { sq: NVME_DOORBELL_BASE + 2 * qid * stride, cq: NVME_DOORBELL_BASE + (2 * qid + 1) * stride };
}

/** CAP decoded (NVMe 1.4 §3.1.1), with the encoded sizes and times converted to units. */
export interface NvmeCap {
  /** The most entries an I/O queue may have: MQES + 1 (MQES is 0-based). */
  mqes: number;
  /** Contiguous Queues Required: I/O queues must be physically (here: IOVA-) contiguous. */
  cqr: boolean;
  /** Arbitration Mechanisms Supported, bit mask: bit 0 weighted round robin with urgent, bit 1 vendor specific. */
  ams: number;
  /** Timeout: the worst-case time in milliseconds for CSTS.RDY to change after CC.EN does (TO × 500). */
  to: number;
  /** Doorbell Stride as encoded: doorbells are `4 << dstrd` bytes apart (see {@link doorbellOffsets}). */
  dstrd: number;
  /** The doorbell stride in bytes: `4 << dstrd`. */
  doorbellStride: number;
  /** NVM Subsystem Reset Supported (the NSSR register works). */
  nssrs: boolean;
  /** Command Sets Supported, bit mask: bit 0 the NVM command set, bit 7 no I/O command set. */
  css: number;
  /** Boot Partition Support. */
  bps: boolean;
  /** The smallest memory page size the controller supports, in bytes: 2^(12 + MPSMIN). */
  mpsmin: number;
  /** The largest memory page size the controller supports, in bytes: 2^(12 + MPSMAX). */
  mpsmax: number;
  /** Persistent Memory Region Supported. */
  pmrs: boolean;
  /** Controller Memory Buffer Supported. */
  cmbs: boolean;
}

/**
 * Decodes the CAP register (offset 0x00, 64 bits).
 *
 * @param cap - the register's value, as read with one 64-bit (or two 32-bit) reads
 * @throws TypeError/RangeError unless `cap` is a u64 bigint
 */
export function decodeCap(cap: bigint): NvmeCap {
  u64('cap', cap);
  const bits = (lo: number, width: number): number => Number((cap >> BigInt(lo)) & ((1n << BigInt(width)) - 1n));
  const dstrd = bits(32, 4);
  return {
    mqes: bits(0, 16) + 1,
    cqr: bits(16, 1) === 1,
    ams: bits(17, 2),
    to: bits(24, 8) * 500,
    dstrd,
    doorbellStride: 4 * 2 ** dstrd,
    nssrs: bits(36, 1) === 1,
    css: bits(37, 8),
    bps: bits(45, 1) === 1,
    mpsmin: 2 ** (12 + bits(48, 4)),
    mpsmax: 2 ** (12 + bits(52, 4)),
    pmrs: bits(56, 1) === 1,
    cmbs: bits(57, 1) === 1,
  };
}

/** The Version register decoded: NVMe 1.4.0 is `{ major: 1, minor: 4, tertiary: 0 }`. */
export interface NvmeVersion {
  /** MJR, bits 31:16. */
  major: number;
  /** MNR, bits 15:8. */
  minor: number;
  /** TER, bits 7:0. */
  tertiary: number;
}

/**
 * Decodes the VS register (offset 0x08), or Identify Controller's VER field, which has the same layout.
 *
 * @param vs - the u32 read
 */
export function decodeVersion(vs: number): NvmeVersion {
  uint('vs', vs, 0xffffffff);
  return { major: vs >>> 16, minor: (vs >>> 8) & 0xff, tertiary: vs & 0xff };
}

/** CC.SHN values: how the host asks for a shutdown. */
export const NVME_CC_SHN = {
  /** No notification; no effect. */
  NONE: 0,
  /** Normal shutdown notification. */
  NORMAL: 1,
  /** Abrupt shutdown notification. */
  ABRUPT: 2,
} as const;

/** CSTS.SHST values: where a shutdown is. */
export const NVME_CSTS_SHST = {
  /** Normal operation, no shutdown requested. */
  NORMAL: 0,
  /** Shutdown processing is occurring. */
  OCCURRING: 1,
  /** Shutdown processing is complete. */
  COMPLETE: 2,
} as const;

/** The fields of CC (NVMe 1.4 §3.1.5), with the sizes in bytes. Every member but `en` defaults to the usual value. */
export interface NvmeCc {
  /** Enable (bit 0). */
  en: boolean;
  /** I/O Command Set Selected (bits 6:4); 0 (default) is the NVM command set. */
  css?: number;
  /** Memory Page Size in bytes (bits 10:7 hold log2(mps) − 12); default 4096. */
  mps?: number;
  /** Arbitration Mechanism Selected (bits 13:11); 0 (default) is round robin. */
  ams?: number;
  /** Shutdown Notification (bits 15:14): one of {@link NVME_CC_SHN}; default 0. */
  shn?: number;
  /** I/O Submission Queue Entry Size in bytes (bits 19:16 hold log2); default 64. */
  iosqes?: number;
  /** I/O Completion Queue Entry Size in bytes (bits 23:20 hold log2); default 16. */
  iocqes?: number;
}

/**
 * Encodes the CC register (offset 0x14). `{ en: true }` with the defaults
 * (MPS 4096, IOSQES 64, IOCQES 16) is 0x00460001.
 *
 * @throws RangeError for a field out of range or a size that is not a power of
 *   two the field can encode (mps 4 KiB..128 MiB; entry sizes 1..32768 bytes)
 */
export function encodeCc(cc: NvmeCc): number {
  const en = flag('cc.en', cc.en);
  const css = uint('cc.css', cc.css ?? 0, 7);
  const mps = log2Of('cc.mps', cc.mps ?? 4096, 12, 27) - 12;
  const ams = uint('cc.ams', cc.ams ?? 0, 7);
  const shn = uint('cc.shn', cc.shn ?? 0, 3);
  const iosqes = log2Of('cc.iosqes', cc.iosqes ?? 64, 0, 15);
  const iocqes = log2Of('cc.iocqes', cc.iocqes ?? 16, 0, 15);
  return ((en ? 1 : 0) | (css << 4) | (mps << 7) | (ams << 11) | (shn << 14) | (iosqes << 16) | (iocqes << 20)) >>> 0;
}

/**
 * Decodes the CC register, the inverse of {@link encodeCc} (every member present).
 *
 * @param cc - the u32 read
 */
export function decodeCc(cc: number): Required<NvmeCc> {
  uint('cc', cc, 0xffffffff);
  return {
    en: (cc & 1) === 1,
    css: (cc >>> 4) & 7,
    mps: 2 ** (12 + ((cc >>> 7) & 0xf)),
    ams: (cc >>> 11) & 7,
    shn: (cc >>> 14) & 3,
    iosqes: 2 ** ((cc >>> 16) & 0xf),
    iocqes: 2 ** ((cc >>> 20) & 0xf),
  };
}

/** CSTS decoded (NVMe 1.4 §3.1.6). */
export interface NvmeCsts {
  /** Ready (bit 0): the controller processes commands. */
  rdy: boolean;
  /** Controller Fatal Status (bit 1): only a reset recovers. */
  cfs: boolean;
  /** Shutdown Status (bits 3:2): one of {@link NVME_CSTS_SHST}. */
  shst: number;
  /** NVM Subsystem Reset Occurred (bit 4). */
  nssro: boolean;
  /** Processing Paused (bit 5). */
  pp: boolean;
}

/**
 * Decodes the CSTS register (offset 0x1c). A read of 0xffffffff usually means
 * the device is gone (surprise removal); it decodes like any other value.
 *
 * @param csts - the u32 read
 */
export function decodeCsts(csts: number): NvmeCsts {
  uint('csts', csts, 0xffffffff);
  return {
    rdy: (csts & 1) !== 0,
    cfs: (csts & 2) !== 0,
    shst: (csts >>> 2) & 3,
    nssro: (csts & 0x10) !== 0,
    pp: (csts & 0x20) !== 0,
  };
}

/**
 * Encodes the AQA register (offset 0x24): the admin queues' sizes, stored 0-based.
 *
 * @param sqEntries - admin submission queue entries, 2..4096
 * @param cqEntries - admin completion queue entries, 2..4096
 * @throws RangeError for a size out of range
 */
export function encodeAqa(sqEntries: number, cqEntries: number): number {
  for (const [what, v] of [['sqEntries', sqEntries], ['cqEntries', cqEntries]] as const) {
    if (uint(what, v, 4096) < 2) throw new RangeError(`${what} must be 2..4096, got ${v}`);
  }
  return (((cqEntries - 1) << 16) | (sqEntries - 1)) >>> 0;
}

// --- opcodes ---------------------------------------------------------------------

/** Admin command opcodes (NVMe 1.4 §5). */
export const NVME_ADMIN_OPCODE = {
  /** Delete I/O Submission Queue. */
  DELETE_SQ: 0x00,
  /** Create I/O Submission Queue. */
  CREATE_SQ: 0x01,
  /** Get Log Page. */
  GET_LOG_PAGE: 0x02,
  /** Delete I/O Completion Queue. */
  DELETE_CQ: 0x04,
  /** Create I/O Completion Queue. */
  CREATE_CQ: 0x05,
  /** Identify: CDW10.CNS selects the data structure ({@link NVME_IDENTIFY_CNS}). */
  IDENTIFY: 0x06,
  /** Abort. */
  ABORT: 0x08,
  /** Set Features ({@link NVME_FEATURE}). */
  SET_FEATURES: 0x09,
  /** Get Features ({@link NVME_FEATURE}). */
  GET_FEATURES: 0x0a,
  /** Asynchronous Event Request. */
  ASYNC_EVENT: 0x0c,
} as const;

/** NVM command set I/O opcodes (NVMe 1.4 §6). */
export const NVME_NVM_OPCODE = {
  /** Flush the volatile write cache. */
  FLUSH: 0x00,
  /** Write: CDW10/11 the starting LBA, CDW12 bits 15:0 the number of blocks − 1. */
  WRITE: 0x01,
  /** Read: CDW10/11 the starting LBA, CDW12 bits 15:0 the number of blocks − 1. */
  READ: 0x02,
  /** Write Zeroes: as Write, without data. */
  WRITE_ZEROES: 0x08,
} as const;

const ADMIN_NAMES: Readonly<Record<number, string>> = {
  0x00: 'Delete I/O Submission Queue',
  0x01: 'Create I/O Submission Queue',
  0x02: 'Get Log Page',
  0x04: 'Delete I/O Completion Queue',
  0x05: 'Create I/O Completion Queue',
  0x06: 'Identify',
  0x08: 'Abort',
  0x09: 'Set Features',
  0x0a: 'Get Features',
  0x0c: 'Asynchronous Event Request',
  0x10: 'Firmware Commit',
  0x11: 'Firmware Image Download',
  0x14: 'Device Self-test',
  0x18: 'Keep Alive',
  0x80: 'Format NVM',
  0x84: 'Sanitize',
};

const NVM_NAMES: Readonly<Record<number, string>> = {
  0x00: 'Flush',
  0x01: 'Write',
  0x02: 'Read',
  0x04: 'Write Uncorrectable',
  0x05: 'Compare',
  0x08: 'Write Zeroes',
  0x09: 'Dataset Management',
};

/**
 * The specification's name of an opcode: `opcodeName(false, 2)` is 'Read',
 * `opcodeName(true, 6)` 'Identify'; an opcode without a name gives
 * 'Admin 0x7f' or 'NVM 0x7f'.
 *
 * @param admin - true for the admin command set (queue 0), false for the NVM I/O command set
 * @param op - the opcode, 0..255
 */
export function opcodeName(admin: boolean, op: number): string {
  uint('opcode', op, 0xff);
  return (admin ? ADMIN_NAMES : NVM_NAMES)[op] ?? `${admin ? 'Admin' : 'NVM'} ${hex2(op)}`;
}

/** Identify's CNS values (CDW10 bits 7:0) that a driver uses. */
export const NVME_IDENTIFY_CNS = {
  /** Identify Namespace of CDW1.NSID ({@link decodeIdentifyNamespace}). */
  NAMESPACE: 0x00,
  /** Identify Controller ({@link decodeIdentifyController}). */
  CONTROLLER: 0x01,
  /** The active namespace IDs above CDW1.NSID ({@link decodeActiveNamespaces}). */
  ACTIVE_NS_LIST: 0x02,
} as const;

/** The size of every Identify data structure, in bytes. */
export const NVME_IDENTIFY_SIZE = 4096;

/** Feature identifiers for Get/Set Features (CDW10 bits 7:0). */
export const NVME_FEATURE = {
  /** Arbitration. */
  ARBITRATION: 0x01,
  /** Power Management. */
  POWER_MANAGEMENT: 0x02,
  /** Temperature Threshold. */
  TEMPERATURE_THRESHOLD: 0x04,
  /** Error Recovery. */
  ERROR_RECOVERY: 0x05,
  /** Volatile Write Cache: bit 0 of CDW11 enables it. */
  VOLATILE_WRITE_CACHE: 0x06,
  /** Number of Queues: CDW11 bits 15:0 the SQs and 31:16 the CQs wanted, 0-based; DW0 of the completion has the numbers allocated. */
  NUMBER_OF_QUEUES: 0x07,
  /** Interrupt Coalescing. */
  INTERRUPT_COALESCING: 0x08,
  /** Interrupt Vector Configuration. */
  INTERRUPT_VECTOR_CONFIG: 0x09,
  /** Write Atomicity Normal. */
  WRITE_ATOMICITY: 0x0a,
  /** Asynchronous Event Configuration. */
  ASYNC_EVENT_CONFIG: 0x0b,
} as const;

// --- queue entries -------------------------------------------------------------

/** The size of a submission queue entry, in bytes. */
export const NVME_SQE_SIZE = 64;
/** The size of a completion queue entry, in bytes. */
export const NVME_CQE_SIZE = 16;

/** A submission queue entry's fields (NVMe 1.4 §4.2). Every dword not given is written as 0. */
export interface NvmeSqe {
  /** Opcode (CDW0 bits 7:0). */
  opcode: number;
  /** Fused operation (CDW0 bits 9:8): 0 normal, 1 first and 2 second of a fused pair. */
  fuse?: number;
  /** PRP or SGL for Data Transfer (CDW0 bits 15:14): 0 PRPs. */
  psdt?: number;
  /** Command Identifier (CDW0 bits 31:16), unique among the commands outstanding on the queue. */
  cid: number;
  /** Namespace Identifier (CDW1); 0 when the command uses none, 0xffffffff for all. */
  nsid: number;
  /** Command dword 2. */
  cdw2?: number;
  /** Command dword 3. */
  cdw3?: number;
  /** Metadata Pointer (CDW4-5). */
  mptr?: bigint;
  /** PRP Entry 1 (CDW6-7): the data's first byte, or a queue's base address. */
  prp1: bigint;
  /** PRP Entry 2 (CDW8-9): 0, the second page, or a PRP list ({@link planPrps}). */
  prp2: bigint;
  /** Command dword 10 (Read/Write: starting LBA, bits 31:0). */
  cdw10?: number;
  /** Command dword 11 (Read/Write: starting LBA, bits 63:32). */
  cdw11?: number;
  /** Command dword 12 (Read/Write: bits 15:0 the number of blocks − 1). */
  cdw12?: number;
  /** Command dword 13. */
  cdw13?: number;
  /** Command dword 14. */
  cdw14?: number;
  /** Command dword 15. */
  cdw15?: number;
}

/**
 * Writes one 64-byte submission queue entry at `offset`, every byte of it,
 * little-endian.
 *
 * @param buf - the submission queue (or any buffer)
 * @param offset - where the entry starts, typically slot × 64
 * @throws TypeError/RangeError for a field out of range or an entry that does not fit in `buf`
 */
export function encodeSqe(buf: Uint8Array, offset: number, e: NvmeSqe): void {
  const dv = view(buf, 'the submission queue');
  const o = span(buf, offset, NVME_SQE_SIZE, 'a submission queue entry');
  const dw0 = uint('opcode', e.opcode, 0xff) | (uint('fuse', e.fuse ?? 0, 3) << 8) | (uint('psdt', e.psdt ?? 0, 3) << 14) | (uint('cid', e.cid, 0xffff) << 16);
  const dws = [e.cdw10, e.cdw11, e.cdw12, e.cdw13, e.cdw14, e.cdw15].map((v, i) => uint(`cdw${10 + i}`, v ?? 0, 0xffffffff));
  const nsid = uint('nsid', e.nsid, 0xffffffff);
  const cdw2 = uint('cdw2', e.cdw2 ?? 0, 0xffffffff);
  const cdw3 = uint('cdw3', e.cdw3 ?? 0, 0xffffffff);
  const mptr = u64('mptr', e.mptr ?? 0n);
  const prp1 = u64('prp1', e.prp1);
  const prp2 = u64('prp2', e.prp2);
  dv.setUint32(o, dw0 >>> 0, true);
  dv.setUint32(o + 4, nsid, true);
  dv.setUint32(o + 8, cdw2, true);
  dv.setUint32(o + 12, cdw3, true);
  dv.setBigUint64(o + 16, mptr, true);
  dv.setBigUint64(o + 24, prp1, true);
  dv.setBigUint64(o + 32, prp2, true);
  for (let i = 0; i < 6; i++) dv.setUint32(o + 40 + 4 * i, dws[i]!, true);
}

const TWO32 = 4294967296;

/**
 * The I/O path's submission entry writer: one 64-byte entry at entry `index`
 * of the queue seen through `dv`, every byte of it, with the fields an NVM
 * read, write or flush uses (CDW2-3, MPTR and CDW13-15 zero). PRPs are safe
 * integers, not bigints, so nothing is allocated. Unlike {@link encodeSqe} it
 * checks only that the entry fits: the driver computes every field itself.
 *
 * @throws RangeError when the entry does not fit in `dv`
 */
export function writeIoSqe(dv: DataView, index: number, opcode: number, cid: number, nsid: number, prp1: number, prp2: number, cdw10: number, cdw11: number, cdw12: number): void {
  const o = index * NVME_SQE_SIZE;
  if (!(o >= 0 && o + NVME_SQE_SIZE <= dv.byteLength)) throw new RangeError(`submission queue entry ${index} does not fit in ${dv.byteLength} bytes`);
  dv.setUint32(o, (opcode & 0xff) | ((cid & 0xffff) << 16), true);
  dv.setUint32(o + 4, nsid, true);
  dv.setUint32(o + 8, 0, true);
  dv.setUint32(o + 12, 0, true);
  dv.setUint32(o + 16, 0, true);
  dv.setUint32(o + 20, 0, true);
  const lo1 = prp1 % TWO32;
  dv.setUint32(o + 24, lo1, true);
  dv.setUint32(o + 28, (prp1 - lo1) / TWO32, true);
  const lo2 = prp2 % TWO32;
  dv.setUint32(o + 32, lo2, true);
  dv.setUint32(o + 36, (prp2 - lo2) / TWO32, true);
  dv.setUint32(o + 40, cdw10, true);
  dv.setUint32(o + 44, cdw11, true);
  dv.setUint32(o + 48, cdw12, true);
  dv.setUint32(o + 52, 0, true);
  dv.setUint32(o + 56, 0, true);
  dv.setUint32(o + 60, 0, true);
}

/** A completion queue entry decoded (NVMe 1.4 §4.6). */
export interface NvmeCqe {
  /** Dword 0: command specific (Set Features Number of Queues: the queues allocated, …). */
  dw0: number;
  /** Dword 1: command specific. */
  dw1: number;
  /** SQ Head Pointer: how far the controller has consumed the submission queue. */
  sqhd: number;
  /** SQ Identifier: the queue the command was submitted to. */
  sqid: number;
  /** Command Identifier, as submitted. */
  cid: number;
  /** Phase Tag (DW3 bit 16): the entry is new when it differs from the value the slot had on the previous pass. */
  phase: 0 | 1;
  /** The 15-bit Status Field (DW3 bits 31:17): DNR bit 14, M bit 13, CRD bits 12:11, SCT bits 10:8, SC bits 7:0. */
  status: number;
  /** Status Code Type (0 generic, 1 command specific, 2 media, 3 path, 7 vendor). */
  sct: number;
  /** Status Code; SCT 0 with SC 0 is success. */
  sc: number;
  /** Command Retry Delay (0 none, 1..3 an index into Identify Controller's CRDT fields). */
  crd: number;
  /** Do Not Retry: the same command would fail again. */
  dnr: boolean;
  /** More: the Error Information log page has more on this failure. */
  more: boolean;
}

/**
 * The phase tag of the completion queue entry at `offset`, without decoding
 * the rest: what a poller checks before it decodes.
 *
 * @throws RangeError when the entry does not fit in `buf`
 */
export function cqePhase(buf: Uint8Array, offset: number): 0 | 1 {
  span(buf, offset, NVME_CQE_SIZE, 'a completion queue entry');
  return ((buf[offset + 14]! & 1) as 0 | 1);
}

/**
 * Decodes the 16-byte completion queue entry at `offset`.
 *
 * @param buf - the completion queue (or any buffer)
 * @param offset - where the entry starts, typically slot × 16
 * @throws RangeError when the entry does not fit in `buf`
 */
export function decodeCqe(buf: Uint8Array, offset: number): NvmeCqe {
  const dv = view(buf, 'the completion queue');
  const o = span(buf, offset, NVME_CQE_SIZE, 'a completion queue entry');
  const sf = dv.getUint16(o + 14, true);
  const status = sf >>> 1;
  return {
    dw0: dv.getUint32(o, true),
    dw1: dv.getUint32(o + 4, true),
    sqhd: dv.getUint16(o + 8, true),
    sqid: dv.getUint16(o + 10, true),
    cid: dv.getUint16(o + 12, true),
    phase: (sf & 1) as 0 | 1,
    status,
    sct: (status >>> 8) & 7,
    sc: status & 0xff,
    crd: (status >>> 11) & 3,
    dnr: (status & 0x4000) !== 0,
    more: (status & 0x2000) !== 0,
  };
}

// --- status codes ------------------------------------------------------------------

/** Status Code Types (the CQE's SCT). */
export const NVME_SCT = {
  /** Generic Command Status. */
  GENERIC: 0,
  /** Command Specific Status. */
  COMMAND_SPECIFIC: 1,
  /** Media and Data Integrity Errors. */
  MEDIA: 2,
  /** Path Related Status. */
  PATH: 3,
  /** Vendor Specific. */
  VENDOR: 7,
} as const;

/**
 * The names of the status codes of NVMe 1.4 (figures 128-131), by SCT then
 * SC. Command specific codes 0x80 and up are those of the NVM command set.
 * Vendor specific status (SCT 7) has no names.
 */
export const NVME_STATUS_NAMES: Readonly<Record<number, Readonly<Record<number, string>>>> = {
  0: {
    0x00: 'Successful Completion',
    0x01: 'Invalid Command Opcode',
    0x02: 'Invalid Field in Command',
    0x03: 'Command ID Conflict',
    0x04: 'Data Transfer Error',
    0x05: 'Commands Aborted due to Power Loss Notification',
    0x06: 'Internal Error',
    0x07: 'Command Abort Requested',
    0x08: 'Command Aborted due to SQ Deletion',
    0x09: 'Command Aborted due to Failed Fused Command',
    0x0a: 'Command Aborted due to Missing Fused Command',
    0x0b: 'Invalid Namespace or Format',
    0x0c: 'Command Sequence Error',
    0x0d: 'Invalid SGL Segment Descriptor',
    0x0e: 'Invalid Number of SGL Descriptors',
    0x0f: 'Data SGL Length Invalid',
    0x10: 'Metadata SGL Length Invalid',
    0x11: 'SGL Descriptor Type Invalid',
    0x12: 'Invalid Use of Controller Memory Buffer',
    0x13: 'PRP Offset Invalid',
    0x14: 'Atomic Write Unit Exceeded',
    0x15: 'Operation Denied',
    0x16: 'SGL Offset Invalid',
    0x18: 'Host Identifier Inconsistent Format',
    0x19: 'Keep Alive Timer Expired',
    0x1a: 'Keep Alive Timeout Invalid',
    0x1b: 'Command Aborted due to Preempt and Abort',
    0x1c: 'Sanitize Failed',
    0x1d: 'Sanitize In Progress',
    0x1e: 'SGL Data Block Granularity Invalid',
    0x1f: 'Command Not Supported for Queue in CMB',
    0x20: 'Namespace is Write Protected',
    0x21: 'Command Interrupted',
    0x22: 'Transient Transport Error',
    0x80: 'LBA Out of Range',
    0x81: 'Capacity Exceeded',
    0x82: 'Namespace Not Ready',
    0x83: 'Reservation Conflict',
    0x84: 'Format In Progress',
  },
  1: {
    0x00: 'Completion Queue Invalid',
    0x01: 'Invalid Queue Identifier',
    0x02: 'Invalid Queue Size',
    0x03: 'Abort Command Limit Exceeded',
    0x05: 'Asynchronous Event Request Limit Exceeded',
    0x06: 'Invalid Firmware Slot',
    0x07: 'Invalid Firmware Image',
    0x08: 'Invalid Interrupt Vector',
    0x09: 'Invalid Log Page',
    0x0a: 'Invalid Format',
    0x0b: 'Firmware Activation Requires Conventional Reset',
    0x0c: 'Invalid Queue Deletion',
    0x0d: 'Feature Identifier Not Saveable',
    0x0e: 'Feature Not Changeable',
    0x0f: 'Feature Not Namespace Specific',
    0x10: 'Firmware Activation Requires NVM Subsystem Reset',
    0x11: 'Firmware Activation Requires Controller Level Reset',
    0x12: 'Firmware Activation Requires Maximum Time Violation',
    0x13: 'Firmware Activation Prohibited',
    0x14: 'Overlapping Range',
    0x15: 'Namespace Insufficient Capacity',
    0x16: 'Namespace Identifier Unavailable',
    0x18: 'Namespace Already Attached',
    0x19: 'Namespace Is Private',
    0x1a: 'Namespace Not Attached',
    0x1b: 'Thin Provisioning Not Supported',
    0x1c: 'Controller List Invalid',
    0x1d: 'Device Self-test In Progress',
    0x1e: 'Boot Partition Write Prohibited',
    0x1f: 'Invalid Controller Identifier',
    0x20: 'Invalid Secondary Controller State',
    0x21: 'Invalid Number of Controller Resources',
    0x22: 'Invalid Resource Identifier',
    0x23: 'Sanitize Prohibited While Persistent Memory Region is Enabled',
    0x24: 'ANA Group Identifier Invalid',
    0x25: 'ANA Attach Failed',
    0x80: 'Conflicting Attributes',
    0x81: 'Invalid Protection Information',
    0x82: 'Attempted Write to Read Only Range',
  },
  2: {
    0x80: 'Write Fault',
    0x81: 'Unrecovered Read Error',
    0x82: 'End-to-end Guard Check Error',
    0x83: 'End-to-end Application Tag Check Error',
    0x84: 'End-to-end Reference Tag Check Error',
    0x85: 'Compare Failure',
    0x86: 'Access Denied',
    0x87: 'Deallocated or Unwritten Logical Block',
  },
  3: {
    0x00: 'Internal Path Error',
    0x01: 'Asymmetric Access Persistent Loss',
    0x02: 'Asymmetric Access Inaccessible',
    0x03: 'Asymmetric Access Transition',
    0x60: 'Controller Pathing Error',
    0x70: 'Host Pathing Error',
    0x71: 'Command Aborted By Host',
  },
  7: {},
};

const SCT_NAMES: Readonly<Record<number, string>> = {
  0: 'Generic',
  1: 'Command Specific',
  2: 'Media',
  3: 'Path',
  7: 'Vendor Specific',
};

/**
 * A Status Code Type's short name: 'Generic', 'Command Specific', 'Media',
 * 'Path', 'Vendor Specific'; the reserved types 4-6 give 'SCT 4' …
 *
 * @param sct - 0..7
 */
export function sctName(sct: number): string {
  uint('sct', sct, 7);
  return SCT_NAMES[sct] ?? `SCT ${sct}`;
}

/**
 * The name of a Status Code within its type, e.g. 'LBA Out of Range', or its
 * hex ('0x9a') when the specification gives it no name.
 *
 * @param sct - 0..7
 * @param sc - 0..255
 */
export function scName(sct: number, sc: number): string {
  uint('sct', sct, 7);
  uint('sc', sc, 0xff);
  return NVME_STATUS_NAMES[sct]?.[sc] ?? hex2(sc);
}

/**
 * A status as `type/code`: `statusName(0, 2)` is 'Generic/Invalid Field in
 * Command', `statusName(0, 0x9a)` 'Generic/0x9a'.
 *
 * @param sct - 0..7
 * @param sc - 0..255
 */
export function statusName(sct: number, sc: number): string {
  return `${sctName(sct)}/${scName(sct, sc)}`;
}

/** The `code` of every {@link NvmeError}. */
export const ERR_NVME_STATUS = 'ERR_NVME_STATUS';

/** Known causes of some statuses, for {@link NvmeError.hint}; keyed `sct:sc`. */
const STATUS_HINTS: Readonly<Record<string, string>> = {
  '0:1': 'the controller does not implement this opcode (check OACS/ONCS in Identify Controller)',
  '0:11': 'the namespace ID is not an active namespace (see the active namespace list, Identify CNS 2)',
  '0:19': 'PRP entries after the first must be page-aligned (offset 0 within the memory page CC.MPS sets), and the first dword-aligned',
  '0:128': 'the LBA range ends past the namespace size (NSZE in Identify Namespace)',
  '1:0': 'create the completion queue before a submission queue that uses it',
  '1:1': 'the queue ID is in use, 0, or above the number of queues granted by Set Features Number of Queues',
  '1:2': 'queue sizes are 2..CAP.MQES+1 entries',
  '1:8': 'the interrupt vector is above the number of MSI-X/MSI vectors enabled',
  '1:12': 'delete the submission queues that use a completion queue before the completion queue',
};

/** What {@link NvmeError}'s constructor takes. */
export interface NvmeErrorInit {
  /** Status Code Type. */
  sct: number;
  /** Status Code. */
  sc: number;
  /** Do Not Retry. */
  dnr?: boolean;
  /** More information in the Error Information log page. */
  more?: boolean;
  /** Command Retry Delay index (0..3). */
  crd?: number;
  /** The failed command's opcode. */
  opcode: number;
  /** The failed command's identifier. */
  cid: number;
  /** The submission queue it went to; 0 is the admin queue. */
  qid: number;
  /** Whether the opcode is an admin one; default: `qid === 0`. */
  admin?: boolean;
  /** The underlying error, kept as `Error.cause`. */
  cause?: unknown;
}

/**
 * A command that completed with a status other than success. Its `code` is
 * {@link ERR_NVME_STATUS} and its `errno` 0; its message names the command
 * and the status, e.g.
 * `ERR_NVME_STATUS: Read (opcode 0x02) on queue 1 failed: Generic/LBA Out of Range (SCT 0, SC 0x80, DNR)`.
 */
export class NvmeError extends VfioError {
  /** Status Code Type. */
  readonly sct: number;
  /** Status Code. */
  readonly sc: number;
  /** The SCT's name ({@link sctName}). */
  readonly sctName: string;
  /** The SC's name ({@link scName}), or its hex when it has none. */
  readonly scName: string;
  /** Do Not Retry: the same command would fail again. */
  readonly dnr: boolean;
  /** More: the Error Information log page has more. */
  readonly more: boolean;
  /** Command Retry Delay index (0 none). */
  readonly crd: number;
  /** The failed command's opcode. */
  readonly opcode: number;
  /** Whether `opcode` is an admin opcode. */
  readonly admin: boolean;
  /** The failed command's identifier. */
  readonly cid: number;
  /** The submission queue the command went to (0: admin). */
  readonly qid: number;

  /**
   * Builds the error and its message; the hint, where one is known, names the likely cause.
   *
   * @param init - the status and the command it belongs to
   */
  constructor(init: NvmeErrorInit) {
    const sct = uint('sct', init.sct, 7);
    const sc = uint('sc', init.sc, 0xff);
    const opcode = uint('opcode', init.opcode, 0xff);
    const qid = uint('qid', init.qid, 0xffff);
    const cid = uint('cid', init.cid, 0xffff);
    const admin = init.admin ?? qid === 0;
    const dnr = init.dnr ?? false;
    const more = init.more ?? false;
    const flags = [dnr ? 'DNR' : '', more ? 'M' : ''].filter(Boolean).map((f) => `, ${f}`).join('');
    const cmd = opcodeName(admin, opcode);
    const hint = STATUS_HINTS[`${sct}:${sc}`];
    super({
      code: ERR_NVME_STATUS,
      errno: 0,
      operation: `nvme ${cmd}`,
      message: `${ERR_NVME_STATUS}: ${cmd} (opcode ${hex2(opcode)}) on queue ${qid} failed: ${statusName(sct, sc)} (SCT ${sct}, SC ${hex2(sc)}${flags})`,
      ...(hint ? { hint } : {}),
      ...(init.cause === undefined ? {} : { cause: init.cause }),
    });
    this.name = 'NvmeError';
    this.sct = sct;
    this.sc = sc;
    this.sctName = sctName(sct);
    this.scName = scName(sct, sc);
    this.dnr = dnr;
    this.more = more;
    this.crd = init.crd ?? 0;
    this.opcode = opcode;
    this.admin = admin;
    this.cid = cid;
    this.qid = qid;
  }

  /**
   * The error for a failed completion: the queue and command identifier come
   * from the entry (SQID, CID), the opcode from the caller, which knows what it submitted.
   *
   * @param cqe - the decoded completion, with a non-success status
   * @param opcode - the opcode of the command the CID belonged to
   * @param admin - whether that opcode is an admin one; default: SQID 0
   */
  static fromCqe(cqe: NvmeCqe, opcode: number, admin?: boolean): NvmeError {
    return new NvmeError({ sct: cqe.sct, sc: cqe.sc, dnr: cqe.dnr, more: cqe.more, crd: cqe.crd, opcode, cid: cqe.cid, qid: cqe.sqid, ...(admin === undefined ? {} : { admin }) });
  }
}

// --- Identify data structures ------------------------------------------------------

function identifyPage(buf: unknown, what: string): DataView {
  const dv = view(buf, what);
  if (dv.byteLength < NVME_IDENTIFY_SIZE) throw new RangeError(`${what} must be ${NVME_IDENTIFY_SIZE} bytes, got ${dv.byteLength}`);
  return dv;
}

/** ASCII bytes, with the space (and NUL) padding removed. */
function ascii(buf: Uint8Array, off: number, len: number): string {
  let s = '';
  for (let i = off; i < off + len; i++) s += String.fromCharCode(buf[i]!);
  return s.replace(/\0+$/, '').trim();
}

function hexBytes(buf: Uint8Array, off: number, len: number): string {
  return Array.from(buf.subarray(off, off + len), (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * The fields of Identify Controller (CNS 1) a driver and a user look at,
 * named as nvme-cli's `nvme id-ctrl -o json` names them. Strings have their
 * padding removed; `ieee` is the OUI as the 24-bit little-endian integer nvme-cli prints.
 */
export interface NvmeIdentifyController {
  /** PCI Vendor ID (offset 0). */
  vid: number;
  /** PCI Subsystem Vendor ID (2). */
  ssvid: number;
  /** Serial Number (4, 20 ASCII bytes). */
  sn: string;
  /** Model Number (24, 40 ASCII bytes). */
  mn: string;
  /** Firmware Revision (64, 8 ASCII bytes). */
  fr: string;
  /** Recommended Arbitration Burst (72). */
  rab: number;
  /** IEEE OUI Identifier (73-75), little-endian. */
  ieee: number;
  /** Controller Multi-Path I/O and Namespace Sharing Capabilities (76). */
  cmic: number;
  /** Maximum Data Transfer Size (77): a power of two in units of CAP.MPSMIN; 0 is no limit ({@link maxTransferBytes}). */
  mdts: number;
  /** Controller ID (78). */
  cntlid: number;
  /** Version (80), laid out as the VS register ({@link decodeVersion}); 0 before NVMe 1.2. */
  ver: number;
  /** Optional Admin Command Support (256). */
  oacs: number;
  /** Abort Command Limit (258), 0-based. */
  acl: number;
  /** Asynchronous Event Request Limit (259), 0-based. */
  aerl: number;
  /** Firmware Updates (260). */
  frmw: number;
  /** Log Page Attributes (261). */
  lpa: number;
  /** Error Log Page Entries (262), 0-based. */
  elpe: number;
  /** Number of Power States Support (263), 0-based. */
  npss: number;
  /** Submission Queue Entry Size (512): bits 3:0 the required and 7:4 the maximum, as log2 of bytes. */
  sqes: number;
  /** Completion Queue Entry Size (513): bits 3:0 the required and 7:4 the maximum, as log2 of bytes. */
  cqes: number;
  /** Maximum Outstanding Commands (514; fabrics only, 0 on PCIe). */
  maxcmd: number;
  /** Number of Namespaces (516): the largest namespace ID. */
  nn: number;
  /** Optional NVM Command Support (520): bit 2 Dataset Management, bit 3 Write Zeroes, … */
  oncs: number;
  /** Fused Operation Support (522). */
  fuses: number;
  /** Format NVM Attributes (524). */
  fna: number;
  /** Volatile Write Cache (525): bit 0 present. */
  vwc: number;
  /** Atomic Write Unit Normal (526), 0-based, in logical blocks. */
  awun: number;
  /** Atomic Write Unit Power Fail (528), 0-based, in logical blocks. */
  awupf: number;
  /** SGL Support (536). */
  sgls: number;
  /** NVM Subsystem NVMe Qualified Name (768, 256 bytes, UTF-8, NUL-terminated). */
  subnqn: string;
}

/**
 * Decodes the Identify Controller data structure (Identify CNS 1).
 *
 * @param page - the 4096 bytes the controller wrote
 * @throws RangeError when `page` is shorter than 4096 bytes
 */
export function decodeIdentifyController(page: Uint8Array): NvmeIdentifyController {
  const dv = identifyPage(page, 'an Identify Controller page');
  const u8 = (o: number): number => dv.getUint8(o);
  const u16 = (o: number): number => dv.getUint16(o, true);
  const u32 = (o: number): number => dv.getUint32(o, true);
  const nqn = page.subarray(768, 1024);
  const end = nqn.indexOf(0);
  return {
    vid: u16(0),
    ssvid: u16(2),
    sn: ascii(page, 4, 20),
    mn: ascii(page, 24, 40),
    fr: ascii(page, 64, 8),
    rab: u8(72),
    ieee: u8(73) | (u8(74) << 8) | (u8(75) << 16),
    cmic: u8(76),
    mdts: u8(77),
    cntlid: u16(78),
    ver: u32(80),
    oacs: u16(256),
    acl: u8(258),
    aerl: u8(259),
    frmw: u8(260),
    lpa: u8(261),
    elpe: u8(262),
    npss: u8(263),
    sqes: u8(512),
    cqes: u8(513),
    maxcmd: u16(514),
    nn: u32(516),
    oncs: u16(520),
    fuses: u16(522),
    fna: u8(524),
    vwc: u8(525),
    awun: u16(526),
    awupf: u16(528),
    sgls: u32(536),
    subnqn: Buffer.from(nqn.buffer, nqn.byteOffset, end < 0 ? nqn.byteLength : end).toString('utf8'),
  };
}

/** One LBA Format of Identify Namespace. */
export interface NvmeLbaFormat {
  /** Metadata Size: bytes of metadata per logical block. */
  ms: number;
  /** LBA Data Size as log2: a block is 2^lbads bytes (9 is 512); 0 for a format not in use. */
  lbads: number;
  /** Relative Performance: 0 best .. 3 degraded. */
  rp: number;
}

/** The fields of Identify Namespace (CNS 0) a driver needs, named as nvme-cli names them. */
export interface NvmeIdentifyNamespace {
  /** Namespace Size in logical blocks (offset 0). */
  nsze: bigint;
  /** Namespace Capacity in logical blocks (8). */
  ncap: bigint;
  /** Namespace Utilization in logical blocks (16). */
  nuse: bigint;
  /** Namespace Features (24). */
  nsfeat: number;
  /** Number of LBA Formats (25), 0-based: `lbaf` has nlbaf + 1 entries. */
  nlbaf: number;
  /** Formatted LBA Size (26): bits 3:0 the format in use, bit 4 metadata at the end of the block. */
  flbas: number;
  /** Metadata Capabilities (27). */
  mc: number;
  /** End-to-end Data Protection Capabilities (28). */
  dpc: number;
  /** End-to-end Data Protection Type Settings (29). */
  dps: number;
  /** Namespace Multi-path I/O and Namespace Sharing Capabilities (30). */
  nmic: number;
  /** Namespace Globally Unique Identifier (104, 16 bytes) as 32 hex digits; all zeros when not given. */
  nguid: string;
  /** IEEE Extended Unique Identifier (120, 8 bytes) as 16 hex digits; all zeros when not given. */
  eui64: string;
  /** The LBA formats (128 + 4 × i), nlbaf + 1 of them. */
  lbaf: NvmeLbaFormat[];
  /** The index of the format in use: FLBAS bits 3:0 (and bits 6:5 above 16 formats, as NVMe 2.0 extends it). */
  formatIndex: number;
  /** The logical block size in use, in bytes: 2^lbads of `lbaf[formatIndex]`. */
  blockSize: number;
  /** The metadata bytes per block of the format in use. */
  metadataSize: number;
}

/** The `code` of the {@link VfioError} the Identify decoders throw for a data structure that contradicts itself. */
export const ERR_NVME_BAD_IDENTIFY = 'ERR_NVME_BAD_IDENTIFY';

function badIdentify(message: string): VfioError {
  return new VfioError({ code: ERR_NVME_BAD_IDENTIFY, operation: 'nvme Identify', message: `${ERR_NVME_BAD_IDENTIFY}: ${message}` });
}

/**
 * Decodes the Identify Namespace data structure (Identify CNS 0). An
 * inactive namespace reads as all zeros: its `nsze` is 0, and it is refused
 * here because it has no block size.
 *
 * @param page - the 4096 bytes the controller wrote
 * @throws RangeError when `page` is shorter than 4096 bytes
 * @throws {@link VfioError} {@link ERR_NVME_BAD_IDENTIFY} when the format in use
 *   is not among the formats listed, or its block size is below 512 bytes
 *   (including an inactive namespace's all-zero page) or above 2 GiB
 */
export function decodeIdentifyNamespace(page: Uint8Array): NvmeIdentifyNamespace {
  const dv = identifyPage(page, 'an Identify Namespace page');
  const nlbaf = dv.getUint8(25);
  const flbas = dv.getUint8(26);
  // NVMe 1.4 allows 16 formats (128..191); NVMe 2.0 up to 64 (to 383), with FLBAS bits 6:5 as the index's high bits.
  if (nlbaf > 63) throw badIdentify(`NLBAF ${nlbaf} lists more than the 64 LBA formats the page can hold`);
  const lbaf: NvmeLbaFormat[] = [];
  for (let i = 0; i <= nlbaf; i++) {
    const v = dv.getUint32(128 + 4 * i, true);
    lbaf.push({ ms: v & 0xffff, lbads: (v >>> 16) & 0xff, rp: (v >>> 24) & 3 });
  }
  const formatIndex = (flbas & 0xf) | (nlbaf >= 16 ? ((flbas >>> 5) & 3) << 4 : 0);
  const cur = lbaf[formatIndex];
  if (!cur) throw badIdentify(`FLBAS selects LBA format ${formatIndex}, but only ${nlbaf + 1} are listed`);
  if (cur.lbads < 9 || cur.lbads > 31) throw badIdentify(`the LBA format in use (${formatIndex}) has LBADS ${cur.lbads}: blocks must be 512 bytes (9) or larger${cur.lbads === 0 ? ' (an all-zero page is an inactive namespace)' : ''}`);
  return {
    nsze: dv.getBigUint64(0, true),
    ncap: dv.getBigUint64(8, true),
    nuse: dv.getBigUint64(16, true),
    nsfeat: dv.getUint8(24),
    nlbaf,
    flbas,
    mc: dv.getUint8(27),
    dpc: dv.getUint8(28),
    dps: dv.getUint8(29),
    nmic: dv.getUint8(30),
    nguid: hexBytes(page, 104, 16),
    eui64: hexBytes(page, 120, 8),
    lbaf,
    formatIndex,
    blockSize: 2 ** cur.lbads,
    metadataSize: cur.ms,
  };
}

/**
 * Decodes an active namespace ID list (Identify CNS 2): up to 1024 namespace
 * IDs in increasing order, the list ending at the first 0.
 *
 * @param page - the 4096 bytes the controller wrote
 * @throws RangeError when `page` is shorter than 4096 bytes
 */
export function decodeActiveNamespaces(page: Uint8Array): number[] {
  const dv = identifyPage(page, 'an active namespace list');
  const ids: number[] = [];
  for (let i = 0; i < 1024; i++) {
    const id = dv.getUint32(4 * i, true);
    if (id === 0) break;
    ids.push(id);
  }
  return ids;
}

// --- data transfer --------------------------------------------------------------

/**
 * The largest transfer one command may move, in bytes: 2^MDTS memory pages
 * of the minimum size. MDTS 0 means no limit (Infinity).
 *
 * @param mdts - Identify Controller's MDTS (0..255)
 * @param mpsmin - the minimum memory page size in bytes ({@link NvmeCap.mpsmin}, not the encoded field)
 * @throws RangeError for an mdts out of range or an mpsmin that is not a power of two from 4096 to 128 MiB
 */
export function maxTransferBytes(mdts: number, mpsmin: number): number {
  uint('mdts', mdts, 0xff);
  log2Of('mpsmin', mpsmin, 12, 27);
  return mdts === 0 ? Infinity : mpsmin * 2 ** mdts;
}

/** A page for a PRP list, as the allocator given to {@link planPrps} hands it out. */
export interface PrpListPage {
  /** Where the device sees the page: aligned to the memory page size. */
  iova: bigint;
  /** The page's bytes, as the CPU writes them: at least one memory page long. */
  bytes: Uint8Array;
}

/**
 * The data buffer's memory pages as the device sees them: the IOVA of page
 * i (each aligned to the memory page size), as an array or a function.
 */
export type PrpPageIovas = readonly bigint[] | ((page: number) => bigint);

/** What {@link planPrps} decided: the command's PRP1 and PRP2, and the lists it wrote. */
export interface PrpPlan {
  /** PRP Entry 1: the IOVA of the transfer's first byte. */
  prp1: bigint;
  /** PRP Entry 2: 0 (one page), the second page's IOVA (two pages), or the first PRP list page's IOVA. */
  prp2: bigint;
  /** How many memory pages the transfer touches. */
  pageCount: number;
  /** The IOVAs of the PRP list pages, in chain order (empty up to two pages). */
  listIovas: bigint[];
  /** The entries written to each list page, in order; the last entry of every page but the last is the pointer to the next. */
  listPages: bigint[][];
}

/**
 * How many PRP list pages a transfer touching `pageCount` memory pages needs:
 * 0 up to two pages; otherwise its pageCount − 1 entries, `pageSize / 8` a
 * page, where every page but the last gives its last entry to the chain pointer.
 *
 * @throws RangeError for a pageSize that is not a power of two ≥ 4096 or a pageCount < 1
 */
export function prpListPageCount(pageCount: number, pageSize: number): number {
  log2Of('pageSize', pageSize, 12, 27);
  if (typeof pageCount !== 'number' || !Number.isSafeInteger(pageCount) || pageCount < 1) throw new RangeError(`pageCount must be a positive integer, got ${String(pageCount)}`);
  if (pageCount <= 2) return 0;
  const per = pageSize / 8;
  const entries = pageCount - 1;
  return entries <= per ? 1 : Math.ceil((entries - 1) / (per - 1));
}

/**
 * Plans the PRPs of one transfer (NVMe 1.4 §4.3) and writes its PRP lists.
 *
 * The transfer is `length` bytes starting `firstOffset` bytes into a buffer
 * whose memory pages the device sees at `iovas`. PRP1 is the first byte's
 * IOVA (the only entry that may have an offset in its page, which must be
 * dword-aligned). If the transfer ends in that page, PRP2 is 0; if it ends in
 * the next, PRP2 is that page's IOVA; otherwise PRP2 points to a PRP list of
 * the IOVAs of every page after the first, which `allocListPage` provides:
 * `pageSize / 8` entries a list page, little-endian, where a full page that is
 * not the last gives its last entry to the IOVA of the next list page. The
 * unused rest of each list page is zeroed.
 *
 * The controller's MDTS is not checked here ({@link maxTransferBytes}).
 *
 * @param iovas - the buffer's page IOVAs, each aligned to `pageSize`; an array
 *   is checked to cover the transfer, a function is called once per page needed
 * @param firstOffset - where the transfer starts in the buffer, a multiple of 4
 * @param length - bytes to transfer, at least 1
 * @param pageSize - the memory page size CC.MPS sets: a power of two ≥ 4096
 * @param allocListPage - called with 0, 1, … for each list page needed (see
 *   {@link prpListPageCount}); required only for transfers over more than two pages
 * @throws RangeError for a bad pageSize, length or offset, a buffer with too
 *   few pages, or an IOVA (data or list page) that is not page-aligned or not a u64
 * @throws TypeError when a list is needed and no allocator is given, or the
 *   allocator returns something that is not a {@link PrpListPage} of at least pageSize bytes
 */
export function planPrps(
  iovas: PrpPageIovas,
  firstOffset: number,
  length: number,
  pageSize: number,
  allocListPage?: (index: number) => PrpListPage,
): PrpPlan {
  log2Of('pageSize', pageSize, 12, 27);
  if (typeof length !== 'number' || !Number.isSafeInteger(length) || length < 1) throw new RangeError(`length must be a positive integer, got ${String(length)}`);
  if (typeof firstOffset !== 'number' || !Number.isSafeInteger(firstOffset) || firstOffset < 0) throw new RangeError(`firstOffset must be a non-negative integer, got ${String(firstOffset)}`);
  if (firstOffset % 4 !== 0) throw new RangeError(`firstOffset must be dword-aligned (a multiple of 4) for PRP1, got ${firstOffset}`);
  if (!Array.isArray(iovas) && typeof iovas !== 'function') throw new TypeError('iovas must be an array of bigints or a function of the page index');
  const firstPage = Math.floor(firstOffset / pageSize);
  const inPage = firstOffset % pageSize;
  const pageCount = Math.ceil((inPage + length) / pageSize);
  if (Array.isArray(iovas) && firstPage + pageCount > iovas.length) {
    throw new RangeError(
      `the transfer (${length} bytes at offset ${firstOffset}) needs pages ${firstPage}..${firstPage + pageCount - 1} of the buffer, but it has ${iovas.length} page${iovas.length === 1 ? '' : 's'}`,
    );
  }
  const mask = BigInt(pageSize - 1);
  const aligned = (what: string, v: unknown): bigint => {
    const b = u64(what, v);
    if ((b & mask) !== 0n) throw new RangeError(`${what} (0x${b.toString(16)}) is not aligned to the ${pageSize}-byte page`);
    return b;
  };
  const get = iovas as (readonly bigint[]) | ((p: number) => bigint);
  const page = (i: number): bigint => {
    const p = firstPage + i;
    return aligned(`the IOVA of page ${p}`, typeof get === 'function' ? get(p) : get[p]);
  };

  const prp1 = page(0) + BigInt(inPage);
  if (pageCount === 1) return { prp1, prp2: 0n, pageCount, listIovas: [], listPages: [] };
  if (pageCount === 2) return { prp1, prp2: page(1), pageCount, listIovas: [], listPages: [] };

  if (typeof allocListPage !== 'function') throw new TypeError(`a transfer over ${pageCount} pages needs a PRP list: pass allocListPage`);
  const lists: PrpListPage[] = [];
  const nLists = prpListPageCount(pageCount, pageSize);
  for (let l = 0; l < nLists; l++) {
    const lp = allocListPage(l);
    if (!lp || !(lp.bytes instanceof Uint8Array) || lp.bytes.byteLength < pageSize) {
      throw new TypeError(`allocListPage(${l}) must return { iova, bytes } with at least ${pageSize} bytes`);
    }
    aligned(`the IOVA of PRP list page ${l}`, lp.iova);
    lists.push(lp);
  }
  const per = pageSize / 8;
  const listPages: bigint[][] = [];
  let next = 1;
  for (let l = 0; l < nLists; l++) {
    const lp = lists[l]!;
    const last = l === nLists - 1;
    const dv = new DataView(lp.bytes.buffer, lp.bytes.byteOffset, pageSize);
    const entries: bigint[] = [];
    const data = last ? pageCount - next : per - 1;
    for (let k = 0; k < data; k++) entries.push(page(next++));
    if (!last) entries.push(lists[l + 1]!.iova);
    entries.forEach((v, k) => dv.setBigUint64(8 * k, v, true));
    lp.bytes.fill(0, 8 * entries.length, pageSize);
    listPages.push(entries);
  }
  return { prp1, prp2: lists[0]!.iova, pageCount, listIovas: lists.map((lp) => lp.iova), listPages };
}
