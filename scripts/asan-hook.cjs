'use strict';
/*
 * Preloaded (NODE_OPTIONS=--require) into every node process of
 * `npm run test:asan` (scripts/asan.ts), so that LeakSanitizer also checks
 * vitest's forked workers, which run the test files:
 *
 * - vitest stops a fork with SIGTERM, which kills it before any exit handler
 *   (LeakSanitizer's check is one), and SIGKILLs it 500 ms later. In a fork,
 *   SIGTERM here instead lets the process end by itself: Node tears the
 *   environment down (finalizers, cleanup hooks: the addon's own teardown
 *   runs), then LeakSanitizer checks at exit.
 * - In vitest's main process, that SIGKILL waits VFIO_ASAN_GRACE_MS (default
 *   120 s: a leak check under TCG takes seconds), and when it does strike,
 *   a note in VFIO_ASAN_LOG_DIR says so (the run then fails: that fork's leaks
 *   went unchecked, and something kept it alive after its tests).
 *
 * Any other process is left alone.
 */
(() => {
  const argv1 = process.argv[1] || '';
  const FORK = /vitest[\\/]dist[\\/]workers[\\/]forks\.js$/;
  if (FORK.test(argv1)) {
    process.once('SIGTERM', () => {
      // Nothing is left to run: let go of the IPC channel and stdio so the loop ends.
      if (process.connected) process.disconnect();
      for (const h of process._getActiveHandles()) if (typeof h.unref === 'function') h.unref();
    });
    return;
  }
  if (!/vitest/.test(argv1)) return;
  const { ChildProcess } = require('node:child_process');
  const { writeFileSync } = require('node:fs');
  const { join } = require('node:path');
  const grace = Number(process.env.VFIO_ASAN_GRACE_MS) || 120000;
  const kill = ChildProcess.prototype.kill;
  ChildProcess.prototype.kill = function (signal) {
    if ((signal === 'SIGKILL' || signal === 9) && (this.spawnargs || []).some((a) => FORK.test(a)) && this.exitCode === null && this.signalCode === null) {
      const timer = setTimeout(() => {
        if (this.exitCode !== null || this.signalCode !== null) return;
        const dir = process.env.VFIO_ASAN_LOG_DIR;
        if (dir) {
          try {
            writeFileSync(join(dir, `killed.${this.pid}`), `vitest fork ${this.pid} did not exit within ${grace} ms of SIGTERM and was killed with SIGKILL: its leak check never ran (something kept its event loop alive)\n`);
          } catch {}
        }
        kill.call(this, 'SIGKILL');
      }, grace);
      this.once('exit', () => clearTimeout(timer));
      return true;
    }
    return kill.call(this, signal);
  };
})();
