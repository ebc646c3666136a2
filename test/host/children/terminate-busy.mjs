// Worker threads that are inside the addon, throwing, when worker.terminate()
// lands (issue 13, defect d). Before the fix, node-addon-api could not throw
// into the terminating environment and threw a C++ exception out of the
// callback instead: "terminate called after throwing an instance of
// 'Napi::Error'", SIGABRT of the whole process.
//   node terminate-busy.mjs <addon.node> <mode> <rounds>
// Prints "survived N" and exits 0 when every round ended with the process alive.
import { Worker } from 'node:worker_threads';

const [addon, mode, rounds = '50'] = process.argv.slice(2);
const body = {
  // The error paths of the addon: errno (through initialize()'s error class), TypeError, closed.
  errno: `for (;;) { try { n.open('/nonexistent/vfio-terminate', 'test'); } catch {} }`,
  type: `for (;;) { try { n.open(1, 'test'); } catch {} }`,
  closed: `const e = n.eventfd(); e.close(); for (;;) { try { e.signal(1n); } catch {} }`,
  // eventfd callbacks delivered from the worker's loop, busy or throwing, while it ends.
  listener: `const e = n.eventfd(); e.start(() => { e.signal(1n); const t = Date.now(); while (Date.now() - t < 2) {} }); e.signal(1n);`,
  'listener-throws': `const e = n.eventfd(); e.start(() => { e.signal(1n); throw new Error('listener'); }); e.signal(1n);`,
}[mode];
if (!addon || !body) {
  console.error(`usage: terminate-busy.mjs <addon.node> <${['errno', 'type', 'closed', 'listener', 'listener-throws'].join('|')}> [rounds]`);
  process.exit(2);
}
const code = `
  const { parentPort } = require('node:worker_threads');
  const n = require(${JSON.stringify(addon)});
  class E extends Error {
    constructor(init) { super(init.syscall ?? 'closed'); Object.assign(this, init); }
    static closed(what, path) { return new E({ code: 'ERR_VFIO_CLOSED', what, path }); }
  }
  n.initialize(E);
  parentPort.postMessage('go');
  ${body}`;
let survived = 0;
for (let i = 0; i < Number(rounds); i++) {
  const w = new Worker(code, { eval: true });
  w.on('error', () => {}); // 'listener-throws' ends the worker with its error; the process must live on
  await new Promise((r) => w.once('message', r));
  await new Promise((r) => setTimeout(r, (i % 10) * 2));
  await w.terminate();
  survived++;
}
console.log(`survived ${survived}`);
