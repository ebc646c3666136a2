/**
 * Holds one of everything the library can hold, then ends without closing any
 * of it, in the way asked, in the main thread or in a worker thread:
 * edu on cdev/iommufd with a BAR mapping, a mapped DMA buffer, MSI enabled and
 * an interrupt wait pending; an mtty on its group with MSI; a mapped mdpy
 * framebuffer; a watched eventfd.
 *
 *   node --import tsx hold-all.ts <mtty uuid> <mdpy uuid> <where: main|worker> <how>
 *   how (main):   exit (process.exit(3)) | throw (uncaught exception) | sigterm (waits for SIGTERM)
 *   how (worker): terminate (worker.terminate()) | exit (process.exit(3) in the worker) | throw
 * Prints "held" once everything is held; for a worker, "worker exit N" and then "survived".
 */
import { readdirSync, readlinkSync } from 'node:fs';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

interface Job {
  mtty: string;
  mdpy: string;
  where: 'main' | 'worker';
  how: string;
}

async function holdEverything(job: Job, say: (m: string) => void): Promise<void> {
  const v = await import('vfio');
  const edu = v.openDevice(v.findEdu(), { backend: 'cdev' });
  const bar = edu.device.mmap(0, { length: 4096 });
  const buf = v.allocDmaBuffer(4096);
  edu.dma.map(buf, { iova: 0x100000n, read: true, write: true });
  const eduIrq = edu.device.enableInterrupts(1);
  eduIrq.next().catch(() => undefined);
  const tty = v.openDevice(job.mtty, { backend: 'group' });
  tty.device.info();
  tty.device.enableInterrupts(1);
  const fbDev = v.openDevice(job.mdpy, { backend: 'group' });
  const fb = fbDev.device.mmap(0);
  const ev = v.createEventFd();
  ev.start(() => undefined);
  bar.read32(0);
  new Uint8Array(fb.buffer)[0] = 1;
  new Uint8Array(buf.buffer)[0] = 2;
  say('held');
  if (job.how === 'exit') process.exit(3);
  if (job.how === 'throw') throw new Error('thrown while holding everything');
  setInterval(() => undefined, 1000); // sigterm, terminate: wait to be ended
}

/** This process's fds that a device, a mapping, a DMA buffer or an eventfd could hold, as "fd -> target". */
function openFds(): string[] {
  return readdirSync('/proc/self/fd')
    .map((fd) => {
      try {
        return `${fd} -> ${readlinkSync(`/proc/self/fd/${fd}`)}`;
      } catch {
        return '';
      }
    })
    .filter((l) => /-> (\/dev\/(vfio|iommu)|anon_inode:\[eventfd\]|\/memfd:|anon_inode:(\[?vfio|dmabuf))/.test(l));
}

if (isMainThread) {
  const [mtty, mdpy, where, how] = process.argv.slice(2) as [string, string, 'main' | 'worker', string];
  const job: Job = { mtty, mdpy, where, how };
  if (where === 'main') {
    await holdEverything(job, (m) => console.log(m));
  } else {
    const self = new URL(import.meta.url).href;
    // The main thread's own fds (libuv's eventfds among them) are not the worker's.
    const baseline = new Set(openFds());
    const w = new Worker(`import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(self)}); });`, { eval: true, workerData: job });
    w.on('error', (e) => console.log(`worker error: ${(e as Error).message}`));
    w.on('message', (m) => {
      console.log(m);
      if (how === 'terminate') void w.terminate();
    });
    w.on('exit', (c) => {
      console.log(`worker exit ${c}`);
      // What the worker held must be closed now, by the addon's cleanup hook.
      const held = openFds().filter((f) => !baseline.has(f));
      console.log(`device fds left: ${held.length}${held.length ? ` (${held.join(', ')})` : ''}`);
      setTimeout(() => console.log('survived'), 200);
    });
  }
} else {
  await holdEverything(workerData as Job, (m) => parentPort!.postMessage(m));
}
