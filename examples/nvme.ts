/**
 * The userspace NVMe driver, end to end: identify the controller, write a
 * pattern and read it back, then measure 4 KiB random-read IOPS at queue
 * depth 1 and 32, in polling and in interrupt mode.
 *
 *   npx tsx examples/nvme.ts [pci-address]     (as root, with the controller on vfio-pci;
 *                                               in the test bed: npm run vm -- npx tsx examples/nvme.ts)
 */
import { NvmeController, type NvmeMode } from 'vfio';

const address = process.argv[2];

async function iops(mode: NvmeMode, qd: number, seconds = 2): Promise<number> {
  const c = await NvmeController.open({ ...(address ? { address } : {}), mode, queueDepth: Math.max(qd + 1, 4) });
  try {
    const ns = await c.namespace(1);
    const per = 4096 / ns.blockSize;
    const span = Number(ns.blocks) / per;
    let done = 0;
    const end = Date.now() + seconds * 1000;
    const worker = async (): Promise<void> => {
      const buf = new Uint8Array(4096); // each worker reads into its own buffer: nothing is allocated per read
      while (Date.now() < end) {
        await ns.read(BigInt(Math.floor(Math.random() * span) * per), per, buf);
        done++;
      }
    };
    await Promise.all(Array.from({ length: qd }, worker));
    return done / seconds;
  } finally {
    await c.close();
  }
}

const c = await NvmeController.open({ ...(address ? { address } : {}), mode: 'poll' });
try {
  const id = c.identity;
  console.log(`${c.address}: ${id.mn} (sn ${id.sn}, fw ${id.fr}), MDTS ${c.maxTransferBytes} bytes`);
  const ns = await c.namespace(1);
  console.log(`namespace 1: ${ns.blocks} blocks of ${ns.blockSize} bytes`);
  const data = Buffer.alloc(8 * ns.blockSize);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
  await ns.write(100n, data);
  const back = Buffer.from(await ns.read(100n, 8));
  console.log(`wrote and read back ${data.length} bytes at LBA 100: ${back.equals(data) ? 'identical' : 'DIFFERENT'}`);
} finally {
  await c.close();
}
for (const mode of ['poll', 'irq'] as const) {
  for (const qd of [1, 32]) console.log(`4 KiB random reads, ${mode}, QD${qd}: ${Math.round(await iops(mode, qd))} IOPS`);
}
