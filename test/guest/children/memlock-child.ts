/**
 * Run by dma-limits.test.ts in a process without CAP_IPC_LOCK and with a low
 * RLIMIT_MEMLOCK (setpriv + prlimit): maps edu DMA buffers on the type1 path
 * past the limit and prints what the library and the kernel then say, as JSON.
 */
import { readFileSync } from 'node:fs';
import { DmaLimitError, DmaMapper } from '../../../src/dma/mapper.js';
import { allocDmaBuffer } from '../../../src/dma/buffer.js';
import { findEdu } from '../../../src/drivers/edu.js';
import { openDevice } from '../../../src/vfio/open.js';

const KiB = 1024;
const vmLck = (): number => Number(/^VmLck:\s*(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]) * KiB;
const out: Record<string, unknown> = {};
const o = openDevice(findEdu(), { backend: 'group' });
try {
  const m = new DmaMapper(o.dma, { devices: [o.device] });
  const s = m.memlock();
  out.status = { pinning: m.pinning, limit: String(s.limit), ipcLock: s.ipcLock };
  const a = allocDmaBuffer(512 * KiB);
  const b = allocDmaBuffer(768 * KiB);
  const first = m.map(a);
  out.lockedAfterFirst = vmLck();
  try {
    m.map(b);
    out.second = 'mapped';
  } catch (e) {
    const err = e as DmaLimitError;
    out.second = { isLimitError: e instanceof DmaLimitError, code: err.code, requested: String(err.requested), locked: String(err.locked), limit: String(err.limit), hint: err.hint, message: err.message };
  }
  out.tableAfterRefusal = m.mappings().map((x) => ({ iova: String(x.iova), size: String(x.size) }));
  out.lockedAfterRefusal = vmLck();
  // b is not mapped, so it can go; a is, so it cannot.
  b.free();
  try {
    a.free();
    out.freeMapped = 'freed';
  } catch (e) {
    out.freeMapped = (e as { code?: string }).code;
  }
  m.unmap(first);
  out.lockedAfterUnmap = vmLck();
  const c = allocDmaBuffer(768 * KiB);
  const again = m.map(c);
  out.third = { size: String(again.size), locked: vmLck(), table: m.mappings().length };
  m.unmap(again);
  c.free();
  a.free();
  out.freedAfterUnmap = true;
} finally {
  o.close();
}
process.stdout.write(JSON.stringify(out) + '\n');
