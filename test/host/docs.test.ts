import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TYPEDOC = join(dirname(createRequire(import.meta.url).resolve('typedoc/package.json')), 'bin', 'typedoc');

// typedoc.json validates that every export reachable from the entry points
// (`vfio`, `vfio/vm`) is documented, that no link or README path is broken, and
// treats any warning as an error: a new undocumented export fails here.
describe('API docs', () => {
  it('typedoc builds the API docs with no error and no warning (--emit none: nothing is written)', async () => {
    let status = 0;
    let output: string;
    try {
      const r = await promisify(execFile)(process.execPath, [TYPEDOC, '--options', 'typedoc.json', '--emit', 'none'], {
        cwd: REPO,
        env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
        maxBuffer: 64 * 1024 * 1024,
      });
      output = r.stdout + r.stderr;
    } catch (e) {
      const err = e as { code?: number; stdout?: string; stderr?: string; message: string };
      status = typeof err.code === 'number' ? err.code : -1;
      output = `${err.stdout ?? ''}${err.stderr ?? ''}` || err.message;
    }
    // eslint-disable-next-line no-control-regex
    const text = output.replace(/\x1b\[[0-9;]*m/g, '');
    const problems = text.split('\n').filter((l) => /\[(warning|error)\]/.test(l));
    expect(problems, text).toEqual([]);
    expect(status, text).toBe(0);
  }, 300_000);
});
