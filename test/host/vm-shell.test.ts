import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commandScript } from '../../src/vm/initramfs.js';
import { shExports, shJoin, shQuote } from '../../src/vm/shell.js';

const tricky = ['plain', 'two words', "it's", '$HOME', '`id`', 'a"b', 'back\\slash', 'new\nline', '', '*', '-n', 'ünïcödé'];

describe('shell quoting', () => {
  it('round-trips every word through /bin/sh unchanged', () => {
    const r = spawnSync('/bin/sh', ['-c', `for a in ${shJoin(tricky)}; do printf '%s\\0' "$a"; done`], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout.split('\0').slice(0, -1)).toEqual(tricky);
  });

  it('leaves safe words bare and refuses NUL', () => {
    expect(shQuote('/usr/bin/node')).toBe('/usr/bin/node');
    expect(() => shQuote('a\0b')).toThrow(TypeError);
  });

  it('exports variables, rejecting names the shell cannot take', () => {
    expect(shExports({ A: 'x y' })).toBe("export A='x y'\n");
    expect(() => shExports({ 'BAD-NAME': '1' })).toThrow(/not a valid/);
  });
});

describe('the guest command script', () => {
  it('sets the environment, enters the directory and execs the argv verbatim', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cmd-test-'));
    try {
      const script = commandScript({
        argv: ['/bin/sh', '-c', 'printf "%s|%s|%s|%s" "$PWD" "$FOO" "$1" "$2"; exit 7', 'argv0', "a 'quoted' arg", '$NOT_EXPANDED'],
        share: dir,
        cwd: dir,
        env: { FOO: 'bar baz' },
        modules: [],
        shareCache: 'loose',
      });
      writeFileSync(join(dir, 'cmd.sh'), script);
      const r = spawnSync('/bin/sh', [join(dir, 'cmd.sh')], { encoding: 'utf8', cwd: '/' });
      expect(r.status).toBe(7);
      expect(r.stdout).toBe(`${dir}|bar baz|a 'quoted' arg|$NOT_EXPANDED`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('exits 126 when the directory does not exist', () => {
    const script = commandScript({ argv: ['true'], share: '/nonexistent', cwd: '/nonexistent/x', env: {}, modules: [], shareCache: 'loose' });
    const r = spawnSync('/bin/sh', ['-c', script], { encoding: 'utf8' });
    expect(r.status).toBe(126);
  });
});
