/**
 * Issue 13, defect (d): worker.terminate() while the worker is inside the
 * addon (throwing an errno, a TypeError or ERR_VFIO_CLOSED, or running an
 * eventfd listener) aborted the whole process: node-addon-api could not throw
 * into the terminating environment and let a C++ exception escape instead.
 * Fixed at the cause by NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS (binding.gyp,
 * CMakeLists.txt). Each mode runs in its own child process, so an abort is an
 * exit status here and not the end of the test run.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { addonCandidates, native } from '../../src/native.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const child = fileURLToPath(new URL('./children/terminate-busy.mjs', import.meta.url));

describe('worker.terminate() while a worker is inside the addon', () => {
  native(); // the same addon the rest of the suite loads
  const addon = addonCandidates(root).find((p) => existsSync(p))!;

  it.each(['errno', 'type', 'closed', 'listener', 'listener-throws'])('%s: 40 workers terminated mid-call, the process lives', (mode) => {
    const r = spawnSync(process.execPath, [child, addon, mode, '40'], { encoding: 'utf8', timeout: 60_000 });
    expect({ status: r.status, signal: r.signal, stdout: r.stdout.trim(), stderr: r.stderr.slice(-600) }).toEqual({ status: 0, signal: null, stdout: 'survived 40', stderr: '' });
  }, 70_000);
});
