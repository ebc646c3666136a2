/**
 * The NVMe specification layer (src/drivers/nvme/spec.ts) from byte fixtures:
 * registers, queue entries, status names and NvmeError, Identify pages and
 * PRP planning. Pure: no device, no system call.
 */
import { describe, expect, it } from 'vitest';
import { VfioError } from '../../src/errors.js';
import {
  ERR_NVME_BAD_IDENTIFY,
  ERR_NVME_STATUS,
  NVME_ADMIN_OPCODE,
  NVME_CC_SHN,
  NVME_CSTS_SHST,
  NVME_NVM_OPCODE,
  NVME_REG,
  NvmeError,
  cqePhase,
  decodeActiveNamespaces,
  decodeCap,
  decodeCc,
  decodeCqe,
  decodeCsts,
  decodeIdentifyController,
  decodeIdentifyNamespace,
  decodeVersion,
  doorbellOffsets,
  encodeAqa,
  encodeCc,
  encodeSqe,
  writeIoSqe,
  maxTransferBytes,
  opcodeName,
  planPrps,
  prpListPageCount,
  scName,
  sctName,
  statusName,
  type PrpListPage,
} from '../../src/drivers/nvme/spec.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('controller registers', () => {
  it('has the NVMe 1.4 register offsets', () => {
    expect(NVME_REG).toEqual({ CAP: 0x00, VS: 0x08, INTMS: 0x0c, INTMC: 0x10, CC: 0x14, CSTS: 0x1c, NSSR: 0x20, AQA: 0x24, ASQ: 0x28, ACQ: 0x30 });
  });

  it('decodes a QEMU-like CAP field by field', () => {
    // MQES 0x7ff, CQR 1, TO 0x0f, DSTRD 0, NSSRS 1, CSS 0xc1, MPSMIN 0, MPSMAX 4, CMBS 1:
    // low dword 0x0f0107ff; high dword 0x10 (NSSRS) | 0xc1 << 5 (CSS) | 4 << 20 (MPSMAX) | 1 << 25 (CMBS).
    const cap = 0x02401830_0f0107ffn;
    expect(decodeCap(cap)).toEqual({
      mqes: 2048,
      cqr: true,
      ams: 0,
      to: 7500,
      dstrd: 0,
      doorbellStride: 4,
      nssrs: true,
      css: 0xc1,
      bps: false,
      mpsmin: 4096,
      mpsmax: 65536,
      pmrs: false,
      cmbs: true,
    });
  });

  it('decodes the other CAP bits at their positions', () => {
    // MQES 0x3f, CQR 0, AMS 3, TO 0xff, DSTRD 2, NSSRS 0, CSS 0x01, BPS 1, MPSMIN 1, MPSMAX 15, PMRS 1, CMBS 0.
    const cap = 0x01f12022_ff06003fn;
    expect(decodeCap(cap)).toEqual({
      mqes: 64,
      cqr: false,
      ams: 3,
      to: 127500,
      dstrd: 2,
      doorbellStride: 16,
      nssrs: false,
      css: 0x01,
      bps: true,
      mpsmin: 8192,
      mpsmax: 2 ** 27,
      pmrs: true,
      cmbs: false,
    });
    const c = decodeCap(0x00000020_100007ffn);
    expect([c.mqes, c.to, c.css, c.dstrd, c.mpsmin, c.mpsmax]).toEqual([2048, 8000, 1, 0, 4096, 4096]);
    expect(() => decodeCap(-1n)).toThrow(RangeError);
    expect(() => decodeCap(1n << 64n)).toThrow(RangeError);
    expect(() => decodeCap(7 as unknown as bigint)).toThrow(TypeError);
  });

  it('computes doorbell offsets with the stride', () => {
    expect(doorbellOffsets(0, 0)).toEqual({ sq: 0x1000, cq: 0x1004 });
    expect(doorbellOffsets(1, 0)).toEqual({ sq: 0x1008, cq: 0x100c });
    expect(doorbellOffsets(3, 2)).toEqual({ sq: 0x1060, cq: 0x1070 });
    expect(doorbellOffsets(0xffff, 0)).toEqual({ sq: 0x1000 + 0x1fffe * 4, cq: 0x1000 + 0x1ffff * 4 });
    expect(() => doorbellOffsets(0x10000, 0)).toThrow(RangeError);
    expect(() => doorbellOffsets(1, 16)).toThrow(RangeError);
    expect(() => doorbellOffsets(-1, 0)).toThrow(RangeError);
  });

  it('encodes CC to the exact u32', () => {
    expect(encodeCc({ en: true, css: 0, mps: 4096, ams: 0, shn: 0, iosqes: 64, iocqes: 16 })).toBe(0x00460001);
    expect(encodeCc({ en: true })).toBe(0x00460001);
    expect(encodeCc({ en: false })).toBe(0x00460000);
    expect(encodeCc({ en: true, shn: NVME_CC_SHN.NORMAL })).toBe(0x00464001);
    expect(encodeCc({ en: true, shn: NVME_CC_SHN.ABRUPT })).toBe(0x00468001);
    expect(encodeCc({ en: true, mps: 65536 })).toBe(0x00460201);
    expect(encodeCc({ en: true, css: 7, ams: 1 })).toBe(0x00460871);
    expect(encodeCc({ en: true, mps: 2 ** 27, ams: 7, shn: 3, iosqes: 2 ** 15, iocqes: 2 ** 15, css: 7 })).toBe(0x00fffff1);
  });

  it('decodes CC as the inverse of encodeCc', () => {
    expect(decodeCc(0x00460001)).toEqual({ en: true, css: 0, mps: 4096, ams: 0, shn: 0, iosqes: 64, iocqes: 16 });
    const cc = { en: false, css: 6, mps: 16384, ams: 1, shn: 2, iosqes: 128, iocqes: 32 };
    expect(decodeCc(encodeCc(cc))).toEqual(cc);
  });

  it('refuses CC fields it cannot encode', () => {
    expect(() => encodeCc({ en: true, mps: 2048 })).toThrow(RangeError);
    expect(() => encodeCc({ en: true, mps: 12288 })).toThrow(/power of two/);
    expect(() => encodeCc({ en: true, iosqes: 65 })).toThrow(RangeError);
    expect(() => encodeCc({ en: true, iocqes: 2 ** 16 })).toThrow(RangeError);
    expect(() => encodeCc({ en: true, css: 8 })).toThrow(RangeError);
    expect(() => encodeCc({ en: true, shn: 4 })).toThrow(RangeError);
    expect(() => encodeCc({ en: 1 as unknown as boolean })).toThrow(TypeError);
  });

  it('decodes CSTS', () => {
    expect(decodeCsts(0)).toEqual({ rdy: false, cfs: false, shst: NVME_CSTS_SHST.NORMAL, nssro: false, pp: false });
    expect(decodeCsts(0x1)).toEqual({ rdy: true, cfs: false, shst: 0, nssro: false, pp: false });
    expect(decodeCsts(0x3)).toEqual({ rdy: true, cfs: true, shst: 0, nssro: false, pp: false });
    expect(decodeCsts(0x5).shst).toBe(NVME_CSTS_SHST.OCCURRING);
    expect(decodeCsts(0x9)).toEqual({ rdy: true, cfs: false, shst: NVME_CSTS_SHST.COMPLETE, nssro: false, pp: false });
    expect(decodeCsts(0x30)).toEqual({ rdy: false, cfs: false, shst: 0, nssro: true, pp: true });
    expect(decodeCsts(0xffffffff)).toEqual({ rdy: true, cfs: true, shst: 3, nssro: true, pp: true });
    expect(() => decodeCsts(2 ** 32)).toThrow(RangeError);
  });

  it('decodes VS and encodes AQA', () => {
    expect(decodeVersion(0x00010400)).toEqual({ major: 1, minor: 4, tertiary: 0 });
    expect(decodeVersion(0x00020001)).toEqual({ major: 2, minor: 0, tertiary: 1 });
    expect(encodeAqa(32, 32)).toBe(0x001f001f);
    expect(encodeAqa(2, 4096)).toBe(0x0fff0001);
    expect(() => encodeAqa(1, 32)).toThrow(RangeError);
    expect(() => encodeAqa(32, 4097)).toThrow(RangeError);
  });
});

describe('opcodes', () => {
  it('has the admin and NVM opcodes', () => {
    expect(NVME_ADMIN_OPCODE).toEqual({
      DELETE_SQ: 0x00, CREATE_SQ: 0x01, GET_LOG_PAGE: 0x02, DELETE_CQ: 0x04, CREATE_CQ: 0x05,
      IDENTIFY: 0x06, ABORT: 0x08, SET_FEATURES: 0x09, GET_FEATURES: 0x0a, ASYNC_EVENT: 0x0c,
    });
    expect(NVME_NVM_OPCODE).toEqual({ FLUSH: 0x00, WRITE: 0x01, READ: 0x02, WRITE_ZEROES: 0x08 });
  });

  it('names opcodes by command set', () => {
    expect(opcodeName(false, NVME_NVM_OPCODE.READ)).toBe('Read');
    expect(opcodeName(false, NVME_NVM_OPCODE.WRITE_ZEROES)).toBe('Write Zeroes');
    expect(opcodeName(true, NVME_ADMIN_OPCODE.IDENTIFY)).toBe('Identify');
    expect(opcodeName(true, 0x02)).toBe('Get Log Page');
    expect(opcodeName(true, 0x7f)).toBe('Admin 0x7f');
    expect(opcodeName(false, 0x03)).toBe('NVM 0x03');
    expect(() => opcodeName(false, 256)).toThrow(RangeError);
  });
});

describe('submission queue entries', () => {
  // Read: opcode 2, CID 0x1234, NSID 1, PRP1 0x1_2345_6000, PRP2 0x1_2345_7000, SLBA 0x1_0000_0010, 8 blocks.
  const READ = hex(`
    02003412 01000000 00000000 00000000
    0000000000000000
    0060452301000000
    0070452301000000
    10000000 01000000 07000000 00000000 00000000 00000000`);

  it('encodes a Read byte for byte, every byte of the slot and none outside it', () => {
    const q = Buffer.alloc(64 * 3, 0xff);
    encodeSqe(q, 64, {
      opcode: NVME_NVM_OPCODE.READ,
      cid: 0x1234,
      nsid: 1,
      prp1: 0x1_2345_6000n,
      prp2: 0x1_2345_7000n,
      cdw10: 0x10,
      cdw11: 0x1,
      cdw12: 8 - 1,
    });
    expect(READ.length).toBe(64);
    expect(q.subarray(64, 128).toString('hex')).toBe(READ.toString('hex'));
    expect(q.subarray(0, 64).every((b) => b === 0xff)).toBe(true);
    expect(q.subarray(128).every((b) => b === 0xff)).toBe(true);
  });

  it('encodes every field at its place', () => {
    const u = new Uint8Array(64);
    encodeSqe(u, 0, {
      opcode: 0xff, fuse: 1, psdt: 2, cid: 0xfffe, nsid: 0xffffffff, cdw2: 0x22222222, cdw3: 0x33333333,
      mptr: 0x0102030405060708n, prp1: 0xfedcba9876543210n, prp2: 0n,
      cdw10: 0xa, cdw11: 0xb, cdw12: 0xc, cdw13: 0xd, cdw14: 0xe, cdw15: 0xffffffff,
    });
    expect(Buffer.from(u).toString('hex')).toBe(
      hex(`
        ff81feff ffffffff 22222222 33333333
        0807060504030201
        1032547698badcfe
        0000000000000000
        0a000000 0b000000 0c000000 0d000000 0e000000 ffffffff`).toString('hex'),
    );
  });

  it('writeIoSqe (the I/O path\'s writer) writes the bytes encodeSqe writes, over stale bytes, with number PRPs up to 2^53', () => {
    let seed = 7;
    const r32 = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    const fast = new Uint8Array(64 * 4).fill(0xee);
    const checked = new Uint8Array(64 * 4);
    for (let k = 0; k < 200; k++) {
      const prp1 = (r32() % 2 ** 21) * 2 ** 32 + ((r32() & ~0xfff) >>> 0);
      const prp2 = k % 3 === 0 ? 0 : (r32() % 2 ** 21) * 2 ** 32 + ((r32() & ~0xfff) >>> 0);
      const f = { opcode: r32() & 0xff, cid: r32() & 0xffff, nsid: r32(), cdw10: r32(), cdw11: r32(), cdw12: r32() & 0xffff };
      const i = k % 4;
      writeIoSqe(new DataView(fast.buffer), i, f.opcode, f.cid, f.nsid, prp1, prp2, f.cdw10, f.cdw11, f.cdw12);
      encodeSqe(checked, i * 64, { ...f, prp1: BigInt(prp1), prp2: BigInt(prp2) });
      expect(Buffer.from(fast.subarray(i * 64, i * 64 + 64)).toString('hex'), `entry ${k}`).toBe(Buffer.from(checked.subarray(i * 64, i * 64 + 64)).toString('hex'));
    }
    writeIoSqe(new DataView(fast.buffer), 0, 2, 1, 1, 2 ** 53 - 4096, 0, 0, 0, 0);
    expect(new DataView(fast.buffer).getBigUint64(24, true)).toBe(2n ** 53n - 4096n);
    expect(() => writeIoSqe(new DataView(fast.buffer), 4, 2, 1, 1, 0, 0, 0, 0, 0)).toThrow(RangeError);
    expect(() => writeIoSqe(new DataView(fast.buffer), -1, 2, 1, 1, 0, 0, 0, 0, 0)).toThrow(RangeError);
  });

  it('refuses fields out of range and slots that do not fit', () => {
    const q = new Uint8Array(128);
    const ok = { opcode: 1, cid: 1, nsid: 1, prp1: 0n, prp2: 0n };
    expect(() => encodeSqe(q, 65, ok)).toThrow(RangeError);
    expect(() => encodeSqe(q, -1, ok)).toThrow(RangeError);
    expect(() => encodeSqe(q, 64, ok)).not.toThrow();
    expect(() => encodeSqe(q, 0, { ...ok, cid: 0x10000 })).toThrow(RangeError);
    expect(() => encodeSqe(q, 0, { ...ok, opcode: 256 })).toThrow(RangeError);
    expect(() => encodeSqe(q, 0, { ...ok, fuse: 4 })).toThrow(RangeError);
    expect(() => encodeSqe(q, 0, { ...ok, cdw10: 2 ** 32 })).toThrow(RangeError);
    expect(() => encodeSqe(q, 0, { ...ok, prp1: -1n })).toThrow(RangeError);
    expect(() => encodeSqe(q, 0, { ...ok, prp1: 1 << 12 } as unknown as typeof ok)).toThrow(TypeError);
    expect(() => encodeSqe([] as unknown as Uint8Array, 0, ok)).toThrow(TypeError);
  });
});

describe('completion queue entries and status', () => {
  // DW0 0x00010001, DW1 0, SQHD 5, SQID 1, CID 0x1234, phase 1, status SCT 0 SC 0x80 DNR (0x4080): DW3 high half 0x8101.
  const LBA_RANGE = hex('01000100 00000000 0500 0100 3412 0181');

  it('decodes a CQE with its phase and a failed status', () => {
    const q = Buffer.concat([Buffer.alloc(16), LBA_RANGE]);
    expect(cqePhase(q, 16)).toBe(1);
    expect(cqePhase(q, 0)).toBe(0);
    expect(decodeCqe(q, 16)).toEqual({
      dw0: 0x00010001, dw1: 0, sqhd: 5, sqid: 1, cid: 0x1234, phase: 1,
      status: 0x4080, sct: 0, sc: 0x80, crd: 0, dnr: true, more: false,
    });
  });

  it('decodes success, More, CRD and every status bit', () => {
    expect(decodeCqe(hex('00000000 00000000 0000 0000 0000 0100'), 0)).toMatchObject({ phase: 1, status: 0, sct: 0, sc: 0, dnr: false, more: false });
    // SCT 1 SC 0x02 with M, phase 0: status 0x2102 → 0x4204.
    expect(decodeCqe(hex('00000000 00000000 0000 0000 0700 0442'), 0)).toMatchObject({ cid: 7, phase: 0, status: 0x2102, sct: 1, sc: 2, dnr: false, more: true, crd: 0 });
    // CRD 2, SCT 7, SC 0xc0: status 0x17c0 → 0x2f80.
    expect(decodeCqe(hex('ffffffff eeeeeeee ffff ffff ffff 802f'), 0)).toMatchObject({ dw0: 0xffffffff, dw1: 0xeeeeeeee, sqhd: 0xffff, sqid: 0xffff, cid: 0xffff, sct: 7, sc: 0xc0, crd: 2, phase: 0 });
    expect(decodeCqe(hex('00000000 00000000 0000 0000 0000 ffff'), 0)).toMatchObject({ phase: 1, status: 0x7fff, sct: 7, sc: 0xff, crd: 3, dnr: true, more: true });
    expect(() => decodeCqe(new Uint8Array(16), 1)).toThrow(RangeError);
    expect(() => cqePhase(new Uint8Array(31), 16)).toThrow(RangeError);
  });

  it('names status codes, known and unknown', () => {
    expect(statusName(0, 0x00)).toBe('Generic/Successful Completion');
    expect(statusName(0, 0x02)).toBe('Generic/Invalid Field in Command');
    expect(statusName(0, 0x0b)).toBe('Generic/Invalid Namespace or Format');
    expect(statusName(0, 0x13)).toBe('Generic/PRP Offset Invalid');
    expect(statusName(0, 0x80)).toBe('Generic/LBA Out of Range');
    expect(statusName(0, 0x82)).toBe('Generic/Namespace Not Ready');
    expect(statusName(0, 0x9a)).toBe('Generic/0x9a');
    expect(statusName(1, 0x00)).toBe('Command Specific/Completion Queue Invalid');
    expect(statusName(1, 0x02)).toBe('Command Specific/Invalid Queue Size');
    expect(statusName(1, 0x08)).toBe('Command Specific/Invalid Interrupt Vector');
    expect(statusName(1, 0x09)).toBe('Command Specific/Invalid Log Page');
    expect(statusName(1, 0x0a)).toBe('Command Specific/Invalid Format');
    expect(statusName(1, 0x0c)).toBe('Command Specific/Invalid Queue Deletion');
    expect(statusName(1, 0x82)).toBe('Command Specific/Attempted Write to Read Only Range');
    expect(statusName(1, 0x04)).toBe('Command Specific/0x04');
    expect(statusName(2, 0x81)).toBe('Media/Unrecovered Read Error');
    expect(statusName(2, 0x86)).toBe('Media/Access Denied');
    expect(statusName(2, 0x00)).toBe('Media/0x00');
    expect(statusName(3, 0x71)).toBe('Path/Command Aborted By Host');
    expect(statusName(7, 0xc0)).toBe('Vendor Specific/0xc0');
    expect(statusName(5, 1)).toBe('SCT 5/0x01');
    expect(sctName(0)).toBe('Generic');
    expect(sctName(1)).toBe('Command Specific');
    expect(sctName(2)).toBe('Media');
    expect(sctName(3)).toBe('Path');
    expect(sctName(7)).toBe('Vendor Specific');
    expect(scName(0, 0x80)).toBe('LBA Out of Range');
    expect(() => sctName(8)).toThrow(RangeError);
    expect(() => statusName(0, 256)).toThrow(RangeError);
  });

  it('builds an NvmeError from a failed completion', () => {
    const e = NvmeError.fromCqe(decodeCqe(LBA_RANGE, 0), NVME_NVM_OPCODE.READ);
    expect(e).toBeInstanceOf(NvmeError);
    expect(e).toBeInstanceOf(VfioError);
    expect(e).toBeInstanceOf(Error);
    expect(e.message).toBe('ERR_NVME_STATUS: Read (opcode 0x02) on queue 1 failed: Generic/LBA Out of Range (SCT 0, SC 0x80, DNR)');
    expect(e.name).toBe('NvmeError');
    expect(e.code).toBe(ERR_NVME_STATUS);
    expect(e.errno).toBe(0);
    expect(e.operation).toBe('nvme Read');
    expect(e).toMatchObject({ sct: 0, sc: 0x80, sctName: 'Generic', scName: 'LBA Out of Range', dnr: true, more: false, crd: 0, opcode: 2, admin: false, cid: 0x1234, qid: 1 });
    expect(e.hint).toMatch(/NSZE/);
  });

  it('names admin commands on queue 0, and the More flag', () => {
    const e = NvmeError.fromCqe(decodeCqe(hex('00000000 00000000 0000 0000 0700 0442'), 0), NVME_ADMIN_OPCODE.CREATE_SQ);
    expect(e.message).toBe('ERR_NVME_STATUS: Create I/O Submission Queue (opcode 0x01) on queue 0 failed: Command Specific/Invalid Queue Size (SCT 1, SC 0x02, M)');
    expect(e).toMatchObject({ admin: true, qid: 0, cid: 7, more: true, dnr: false });
    const v = new NvmeError({ sct: 7, sc: 0xc1, dnr: true, more: true, opcode: 0x99, cid: 3, qid: 4 });
    expect(v.message).toBe('ERR_NVME_STATUS: NVM 0x99 (opcode 0x99) on queue 4 failed: Vendor Specific/0xc1 (SCT 7, SC 0xc1, DNR, M)');
    expect(v.scName).toBe('0xc1');
    expect(v.hint).toBeUndefined();
    expect(new NvmeError({ sct: 0, sc: 1, opcode: 0x06, cid: 0, qid: 2, admin: true }).message).toMatch(/^ERR_NVME_STATUS: Identify \(opcode 0x06\) on queue 2 failed: Generic\/Invalid Command Opcode \(SCT 0, SC 0x01\)$/);
  });
});

/** A 4096-byte page with [offset, bytes] writes. */
function page(writes: [number, Uint8Array | string][]): Buffer {
  const b = Buffer.alloc(4096);
  for (const [off, v] of writes) (typeof v === 'string' ? Buffer.from(v, 'latin1') : Buffer.from(v)).copy(b, off);
  return b;
}
const le = (v: number | bigint, width: number): Buffer => {
  const b = Buffer.alloc(width);
  if (width === 8) b.writeBigUInt64LE(BigInt(v));
  else b.writeUIntLE(Number(v), 0, width);
  return b;
};

describe('Identify', () => {
  it('decodes Identify Controller from a synthesized page', () => {
    const p = page([
      [0, le(0x1b36, 2)],
      [2, le(0x1af4, 2)],
      [4, 'deadbeef            '],
      [24, 'QEMU NVMe Ctrl                          '],
      [64, '8.2.0   '],
      [72, le(6, 1)],
      [73, hex('005452')],
      [76, le(0x0a, 1)],
      [77, le(7, 1)],
      [78, le(0x0041, 2)],
      [80, le(0x00010400, 4)],
      [256, le(0x010a, 2)],
      [258, le(3, 1)],
      [259, le(5, 1)],
      [260, le(0x0b, 1)],
      [261, le(0x0f, 1)],
      [262, le(0x3f, 1)],
      [263, le(2, 1)],
      [512, le(0x66, 1)],
      [513, le(0x44, 1)],
      [514, le(0x1234, 2)],
      [516, le(256, 4)],
      [520, le(0x015d, 2)],
      [522, le(1, 2)],
      [524, le(2, 1)],
      [525, le(7, 1)],
      [526, le(0xff, 2)],
      [528, le(0x7f, 2)],
      [536, le(0x00100001, 4)],
      [768, 'nqn.2019-08.org.qemu:deadbeef'],
    ]);
    expect(decodeIdentifyController(p)).toEqual({
      vid: 0x1b36, ssvid: 0x1af4, sn: 'deadbeef', mn: 'QEMU NVMe Ctrl', fr: '8.2.0', rab: 6, ieee: 0x525400,
      cmic: 0x0a, mdts: 7, cntlid: 0x41, ver: 0x00010400, oacs: 0x010a, acl: 3, aerl: 5, frmw: 0x0b, lpa: 0x0f,
      elpe: 0x3f, npss: 2, sqes: 0x66, cqes: 0x44, maxcmd: 0x1234, nn: 256, oncs: 0x015d, fuses: 1, fna: 2, vwc: 7,
      awun: 0xff, awupf: 0x7f, sgls: 0x00100001, subnqn: 'nqn.2019-08.org.qemu:deadbeef',
    });
  });

  it('reads strings that fill their field, and a subnqn with no NUL', () => {
    const p = page([[4, 'S'.repeat(20)], [24, 'M'.repeat(40)], [64, 'F'.repeat(8)], [768, 'n'.repeat(256)], [1024, 'X']]);
    const c = decodeIdentifyController(new Uint8Array(p.buffer, p.byteOffset, p.byteLength));
    expect([c.sn, c.mn, c.fr]).toEqual(['S'.repeat(20), 'M'.repeat(40), 'F'.repeat(8)]);
    expect(c.subnqn).toBe('n'.repeat(256));
    expect(() => decodeIdentifyController(new Uint8Array(4095))).toThrow(RangeError);
  });

  // QEMU's eight formats: 512 and 4096 bytes, each with 0, 8, 16 and 64 bytes of metadata.
  const LBAF = [[0, 9], [8, 9], [16, 9], [64, 9], [0, 12], [8, 12], [16, 12], [64, 12]] as const;
  const nsPage = (nlbaf: number, flbas: number, formats: readonly (readonly [number, number, number?])[] = LBAF): Buffer =>
    page([
      [0, le(0x100000n, 8)],
      [8, le(0xfffffn, 8)],
      [16, le(0x8000n, 8)],
      [24, le(0x14, 1)],
      [25, le(nlbaf, 1)],
      [26, le(flbas, 1)],
      [27, le(3, 1)],
      [28, le(0x1f, 1)],
      [29, le(1, 1)],
      [30, le(1, 1)],
      [104, hex('00112233445566778899aabbccddeeff')],
      [120, hex('0123456789abcdef')],
      ...formats.map(([ms, lbads, rp = 0], i): [number, Buffer] => [128 + 4 * i, le(ms | (lbads << 16) | (rp << 24), 4)]),
    ]);

  it('decodes Identify Namespace from a synthesized page', () => {
    const ns = decodeIdentifyNamespace(nsPage(7, 0x14, LBAF.map(([ms, lbads], i) => [ms, lbads, i % 4] as const)));
    expect(ns).toEqual({
      nsze: 0x100000n, ncap: 0xfffffn, nuse: 0x8000n, nsfeat: 0x14, nlbaf: 7, flbas: 0x14, mc: 3, dpc: 0x1f, dps: 1, nmic: 1,
      nguid: '00112233445566778899aabbccddeeff', eui64: '0123456789abcdef',
      lbaf: LBAF.map(([ms, lbads], i) => ({ ms, lbads, rp: i % 4 })),
      formatIndex: 4, blockSize: 4096, metadataSize: 0,
    });
    const n512 = decodeIdentifyNamespace(nsPage(7, 0x01));
    expect([n512.formatIndex, n512.blockSize, n512.metadataSize]).toEqual([1, 512, 8]);
  });

  it('takes the NVMe 2.0 high index bits (FLBAS 6:5) only above 16 formats', () => {
    const many = Array.from({ length: 20 }, (_, i) => [i, 9 + (i % 4)] as const);
    const ns = decodeIdentifyNamespace(nsPage(19, 0x21, many));
    expect(ns.lbaf).toHaveLength(20);
    expect([ns.formatIndex, ns.blockSize, ns.metadataSize]).toEqual([17, 1024, 17]);
    expect(decodeIdentifyNamespace(nsPage(7, 0x21)).formatIndex).toBe(1);
  });

  it('refuses an inactive (all-zero) namespace and a format that is not listed', () => {
    expect(() => decodeIdentifyNamespace(Buffer.alloc(4096))).toThrow(VfioError);
    try {
      decodeIdentifyNamespace(Buffer.alloc(4096));
    } catch (e) {
      expect((e as VfioError).code).toBe(ERR_NVME_BAD_IDENTIFY);
      expect((e as VfioError).message).toMatch(/inactive namespace/);
    }
    expect(() => decodeIdentifyNamespace(nsPage(7, 0x09))).toThrow(/selects LBA format 9, but only 8 are listed/);
    expect(() => decodeIdentifyNamespace(nsPage(64, 0x00))).toThrow(VfioError);
    expect(() => decodeIdentifyNamespace(Buffer.alloc(100))).toThrow(RangeError);
  });

  it('decodes the active namespace list up to the first 0', () => {
    const p = page([[0, Buffer.concat([1, 2, 5, 0, 7].map((n) => le(n, 4)))]]);
    expect(decodeActiveNamespaces(p)).toEqual([1, 2, 5]);
    expect(decodeActiveNamespaces(Buffer.alloc(4096))).toEqual([]);
    const full = Buffer.alloc(4096);
    for (let i = 0; i < 1024; i++) full.writeUInt32LE(i + 1, 4 * i);
    full.writeUInt32LE(0xffffffff, 4092);
    const ids = decodeActiveNamespaces(full);
    expect(ids).toHaveLength(1024);
    expect(ids.at(-1)).toBe(0xffffffff);
    expect(() => decodeActiveNamespaces(Buffer.alloc(4092))).toThrow(RangeError);
  });
});

describe('data transfer limits', () => {
  it('computes the MDTS limit in bytes', () => {
    expect(maxTransferBytes(0, 4096)).toBe(Infinity);
    expect(maxTransferBytes(5, 4096)).toBe(131072);
    expect(maxTransferBytes(7, 4096)).toBe(524288);
    expect(maxTransferBytes(2, 16384)).toBe(65536);
    expect(() => maxTransferBytes(5, 0)).toThrow(RangeError);
    expect(() => maxTransferBytes(256, 4096)).toThrow(RangeError);
  });
});

describe('PRP planning', () => {
  const PS = 4096;
  /** Non-contiguous, page-aligned IOVAs: page i at 0x1_0000_0000 + i × 0x3000. */
  const iova = (i: number): bigint => 0x1_0000_0000n + BigInt(i) * 0x3000n;
  const pages = (n: number): bigint[] => Array.from({ length: n }, (_, i) => iova(i));
  /** An allocator of list pages, prefilled with 0xaa so that the zeroed tail shows. */
  function lists(base = 0xf000_0000n): { alloc: (i: number) => PrpListPage; got: PrpListPage[] } {
    const got: PrpListPage[] = [];
    return {
      got,
      alloc: (i) => {
        const lp = { iova: base + BigInt(i) * 0x1000n, bytes: new Uint8Array(PS).fill(0xaa) };
        got.push(lp);
        return lp;
      },
    };
  }
  const entry = (b: Uint8Array, k: number): bigint => Buffer.from(b.buffer, b.byteOffset, b.byteLength).readBigUInt64LE(8 * k);

  it('one page with an offset: PRP2 is 0', () => {
    expect(planPrps(pages(2), 0x200, 0x800, PS)).toEqual({ prp1: iova(0) + 0x200n, prp2: 0n, pageCount: 1, listIovas: [], listPages: [] });
    // Up to the page's last byte is still one page; one more dword is two.
    expect(planPrps(pages(2), 0x200, 0xe00, PS).pageCount).toBe(1);
    expect(planPrps(pages(2), 0x200, 0xe04, PS)).toMatchObject({ prp2: iova(1), pageCount: 2 });
    // firstOffset past the first page selects the buffer's later pages.
    expect(planPrps(pages(3), PS + 0x10, 16, PS)).toMatchObject({ prp1: iova(1) + 0x10n, prp2: 0n, pageCount: 1 });
  });

  it('exactly two pages: PRP2 is the second page', () => {
    expect(planPrps(pages(2), 0, 2 * PS, PS)).toEqual({ prp1: iova(0), prp2: iova(1), pageCount: 2, listIovas: [], listPages: [] });
    expect(planPrps(pages(2), 0x800, PS, PS)).toEqual({ prp1: iova(0) + 0x800n, prp2: iova(1), pageCount: 2, listIovas: [], listPages: [] });
    // Two pages never call the allocator.
    expect(planPrps(iova, 0, 2 * PS, PS, () => { throw new Error('not needed'); }).prp2).toBe(iova(1));
  });

  it('three pages: PRP2 points to a list of the pages after the first', () => {
    const l = lists();
    const plan = planPrps(pages(3), 0x100, 2 * PS, PS, l.alloc);
    expect(plan).toEqual({ prp1: iova(0) + 0x100n, prp2: 0xf000_0000n, pageCount: 3, listIovas: [0xf000_0000n], listPages: [[iova(1), iova(2)]] });
    expect(l.got).toHaveLength(1);
    const b = Buffer.from(l.got[0]!.bytes);
    expect(b.subarray(0, 16).toString('hex')).toBe(hex('0030000001000000 0060000001000000').toString('hex'));
    expect(b.subarray(16).every((x) => x === 0)).toBe(true);
  });

  it('a larger memory page size', () => {
    const big = 16384;
    const at = (i: number): bigint => 0x40_0000n + BigInt(i) * BigInt(big);
    const bytes = new Uint8Array(big);
    const plan = planPrps(at, 0, 3 * big, big, () => ({ iova: 0x80_0000n, bytes }));
    expect(plan).toMatchObject({ prp1: at(0), prp2: 0x80_0000n, pageCount: 3, listPages: [[at(1), at(2)]] });
    expect(() => planPrps(at, 0, 3 * big, big, () => ({ iova: 0x80_1000n, bytes }))).toThrow(/not aligned to the 16384-byte page/);
  });

  it('600 pages: two list pages, the first chaining to the second', () => {
    const l = lists();
    const plan = planPrps(iova, 0, 600 * PS, PS, l.alloc);
    expect(plan.prp1).toBe(iova(0));
    expect(plan.prp2).toBe(0xf000_0000n);
    expect(plan.pageCount).toBe(600);
    expect(plan.listIovas).toEqual([0xf000_0000n, 0xf000_1000n]);
    expect(plan.listPages.map((p) => p.length)).toEqual([512, 88]);
    // List page 0: pages 1..511, then the chain pointer in its last slot.
    const [first, second] = l.got.map((g) => g.bytes);
    expect(entry(first!, 0)).toBe(iova(1));
    expect(entry(first!, 510)).toBe(iova(511));
    expect(entry(first!, 511)).toBe(0xf000_1000n);
    expect(plan.listPages[0]![511]).toBe(0xf000_1000n);
    // List page 1: pages 512..599, then zeros.
    expect(entry(second!, 0)).toBe(iova(512));
    expect(entry(second!, 87)).toBe(iova(599));
    expect(second!.subarray(88 * 8).every((x) => x === 0)).toBe(true);
    expect(plan.listPages.flat().filter((v) => v !== 0xf000_1000n)).toEqual(Array.from({ length: 599 }, (_, i) => iova(i + 1)));
  });

  it('chains only when a list page overflows', () => {
    expect([1, 2, 3, 513, 514, 1024, 1025].map((n) => prpListPageCount(n, PS))).toEqual([0, 0, 1, 1, 2, 2, 3]);
    // 513 pages: 512 entries fill one list page exactly, with no chain.
    const full = planPrps(iova, 0, 513 * PS, PS, lists().alloc);
    expect(full.listPages.map((p) => p.length)).toEqual([512]);
    expect(full.listPages[0]![511]).toBe(iova(512));
    // 514 pages: 511 + chain, then 2.
    const l = lists();
    const over = planPrps(iova, 0, 514 * PS, PS, l.alloc);
    expect(over.listPages).toEqual([[...Array.from({ length: 511 }, (_, i) => iova(i + 1)), 0xf000_1000n], [iova(512), iova(513)]]);
    // An offset that adds a page adds an entry.
    expect(planPrps(iova, 8, 513 * PS, PS, lists().alloc).listPages.map((p) => p.length)).toEqual([512, 2]);
    expect(() => prpListPageCount(0, PS)).toThrow(RangeError);
  });

  it('refuses bad arguments with clear messages', () => {
    const p3 = pages(3);
    expect(() => planPrps(p3, 0, PS, 2048)).toThrow(/pageSize must be a power of two from 4096/);
    expect(() => planPrps(p3, 0, PS, 6144)).toThrow(RangeError);
    expect(() => planPrps(p3, 0, 0, PS)).toThrow(/length must be a positive integer/);
    expect(() => planPrps(p3, 0, 1.5, PS)).toThrow(RangeError);
    expect(() => planPrps(p3, -4, 8, PS)).toThrow(/firstOffset must be a non-negative integer/);
    expect(() => planPrps(p3, 2, 8, PS)).toThrow(/dword-aligned/);
    expect(() => planPrps(p3, 0x100, 3 * PS, PS, lists().alloc)).toThrow(/needs pages 0\.\.3 of the buffer, but it has 3 pages/);
    expect(() => planPrps(p3, 3 * PS, 4, PS)).toThrow(RangeError);
    expect(() => planPrps([0x1234n], 0, 4, PS)).toThrow(/IOVA of page 0 \(0x1234\) is not aligned/);
    expect(() => planPrps([0n, -4096n], 0, 2 * PS, PS)).toThrow(RangeError);
    expect(() => planPrps([0n, 4096 as unknown as bigint], 0, 2 * PS, PS)).toThrow(TypeError);
    expect(() => planPrps(p3, 0, 3 * PS, PS)).toThrow(/needs a PRP list: pass allocListPage/);
    expect(() => planPrps(p3, 0, 3 * PS, PS, () => ({ iova: 0n, bytes: new Uint8Array(100) }))).toThrow(TypeError);
    expect(() => planPrps(p3, 0, 3 * PS, PS, () => ({ iova: 0x800n, bytes: new Uint8Array(PS) }))).toThrow(/PRP list page 0/);
    expect(() => planPrps('x' as unknown as bigint[], 0, 4, PS)).toThrow(TypeError);
  });
});
