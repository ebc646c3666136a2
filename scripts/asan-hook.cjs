'use strict';
/*
 * Preloaded (NODE_OPTIONS=--require) into every node process of
 * `npm run test:asan` (scripts/asan.ts), so that LeakSanitizer also checks
 * vitest's forked workers, which run the test files. LeakSanitizer checks at
 * exit, after Node has torn the environment down (finalizers, cleanup hooks:
 * the addon's own teardown), which takes seconds under TCG; vitest instead
 * stops a fork with SIGTERM, which kills it before that or in the middle of
 * it, SIGKILLs it 500 ms later, and does not wait for it to end.
 *
 * - In vitest's main process, stopping a fork closes its IPC channel instead
 *   of signalling it; a SIGKILL waits VFIO_ASAN_GRACE_MS (default 120 s); and
 *   the process does not end before its forks have (in the guest, the VM
 *   powers off as soon as the command ends). A fork still alive at the
 *   deadline is killed, with a note in VFIO_ASAN_LOG_DIR (the run then
 *   fails: its leaks went unchecked, and something kept it alive).
 * - In a fork, losing the channel (or SIGTERM) lets go of stdio and every
 *   other handle, so the process ends by itself and is leak-checked.
 *
 * Any other process is left alone.
 */
(() => {
  const argv1 = process.argv[1] || '';
  const FORK = /vitest[\\/]dist[\\/]workers[\\/]forks\.js$/;
  const fs = require('node:fs');
  const { join } = require('node:path');
  const dir = process.env.VFIO_ASAN_LOG_DIR;
  const note = (name, text) => {
    if (!dir) return;
    try {
      fs.writeFileSync(join(dir, name), text);
    } catch {}
  };

  if (FORK.test(argv1)) {
    // Proof for scripts/asan.ts that this fork reached its exit, where the leak check runs.
    process.once('exit', () => note(`fork-exit.${process.pid}`, ''));
    let ending = false;
    const end = () => {
      if (ending) return;
      ending = true;
      // Nothing is left to run: let go of the IPC channel and stdio so the loop ends.
      if (process.connected) process.disconnect();
      for (const h of process._getActiveHandles()) if (typeof h.unref === 'function') h.unref();
    };
    process.on('SIGTERM', end);
    process.on('disconnect', end);
    return;
  }
  if (!/vitest/.test(argv1)) return;

  const { ChildProcess } = require('node:child_process');
  const grace = Number(process.env.VFIO_ASAN_GRACE_MS) || 120000;
  const forks = new Set();
  const isFork = (cp) => (cp.spawnargs || []).some((a) => FORK.test(a));
  const alive = (cp) => cp.exitCode === null && cp.signalCode === null;
  /** Gone or a zombie: it has exited, its leak check with it. */
  const ended = (pid) => {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      return /^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
    } catch {
      return true;
    }
  };
  const killed = (pid) => {
    note(`killed.${pid}`, `vitest fork ${pid} did not exit within ${grace} ms of being stopped and was killed with SIGKILL: its leak check never ran (something kept its event loop alive)\n`);
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  };
  const stop = (cp) => {
    if (cp.connected) cp.disconnect();
  };

  const spawn = ChildProcess.prototype.spawn;
  ChildProcess.prototype.spawn = function (...args) {
    const r = spawn.apply(this, args);
    if (this.pid && isFork(this)) forks.add(this);
    return r;
  };
  const kill = ChildProcess.prototype.kill;
  ChildProcess.prototype.kill = function (signal) {
    if (!isFork(this) || !alive(this)) return kill.call(this, signal);
    if (signal === 'SIGKILL' || signal === 9) {
      const timer = setTimeout(() => alive(this) && killed(this.pid), grace);
      this.once('exit', () => clearTimeout(timer));
    } else {
      stop(this);
    }
    return true;
  };

  process.on('exit', () => {
    const deadline = Date.now() + grace;
    const nap = new Int32Array(new SharedArrayBuffer(4));
    for (const cp of forks) {
      if (ended(cp.pid)) continue;
      stop(cp);
      while (!ended(cp.pid) && Date.now() < deadline) Atomics.wait(nap, 0, 0, 20);
      if (!ended(cp.pid)) killed(cp.pid);
    }
  });
})();
