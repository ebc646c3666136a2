import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildCpio } from '../../src/vm/cpio.js';

// The archive is checked by an independent reader: busybox's cpio, the same
// implementation family the guest uses (the kernel's own unpacker is stricter
// about nothing we write).
const busybox = '/bin/busybox';
let dir: string;
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function extract(archive: Buffer): string {
  dir = mkdtempSync(join(tmpdir(), 'cpio-test-'));
  writeFileSync(join(dir, 'a.cpio'), archive);
  const out = join(dir, 'out');
  const r = spawnSync('sh', ['-c', `mkdir out && cd out && ${busybox} cpio -i -d -m < ../a.cpio`], { cwd: dir, encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return out;
}

describe('buildCpio', () => {
  it('writes a newc archive that busybox cpio lists and extracts exactly', () => {
    const bin = Buffer.from([0, 1, 2, 255, 254, 10, 13]);
    const a = buildCpio([
      { type: 'dir', name: 'etc' },
      { type: 'file', name: 'etc/hello.txt', data: 'hello\n' },
      { type: 'file', name: 'init', data: bin, mode: 0o755 },
      { type: 'symlink', name: 'etc/link', target: 'hello.txt' },
      { type: 'file', name: 'odd-name-5', data: 'abc' },
    ]);
    expect(a.length % 4).toBe(0);
    expect(a.subarray(0, 6).toString()).toBe('070701');
    const out = extract(a);
    expect(readFileSync(join(out, 'etc/hello.txt'), 'utf8')).toBe('hello\n');
    expect(readFileSync(join(out, 'init')).equals(bin)).toBe(true);
    expect(statSync(join(out, 'init')).mode & 0o777).toBe(0o755);
    expect(readlinkSync(join(out, 'etc/link'))).toBe('hello.txt');
    expect(readFileSync(join(out, 'odd-name-5'), 'utf8')).toBe('abc');
    const list = spawnSync('sh', ['-c', `${busybox} cpio -t < a.cpio`], { cwd: dir, encoding: 'utf8' });
    expect(list.stdout.trim().split('\n')).toEqual(['etc', 'etc/hello.txt', 'init', 'etc/link', 'odd-name-5']);
  });

  it('is deterministic, so equal inputs give equal archives', () => {
    const e = [{ type: 'file' as const, name: 'x', data: 'y' }];
    expect(buildCpio(e).equals(buildCpio(e))).toBe(true);
  });

  it('rejects absolute and empty names', () => {
    expect(() => buildCpio([{ type: 'dir', name: '/abs' }])).toThrow(/relative/);
    expect(() => buildCpio([{ type: 'dir', name: '' }])).toThrow(/relative/);
  });

  it('encodes character devices with their numbers', () => {
    const a = buildCpio([{ type: 'chardev', name: 'dev/console', major: 5, minor: 1 }]);
    const header = a.subarray(0, 110).toString('ascii');
    // mode at field 2, rdevmajor/rdevminor at fields 10 and 11 (8 hex digits each after the magic)
    const field = (i: number): number => parseInt(header.slice(6 + 8 * i, 14 + 8 * i), 16);
    expect(field(1)).toBe(0o020600);
    expect(field(9)).toBe(5);
    expect(field(10)).toBe(1);
  });
});
