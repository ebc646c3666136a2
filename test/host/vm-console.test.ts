import { describe, expect, it } from 'vitest';
import { ConsoleScanner } from '../../src/vm/console.js';

const boot = '[    0.000000] Linux version 6.12.117 (root@host)\r\n[    0.120000] DMAR: IOMMU enabled\r\nvfio-vm: ready\r\n';

describe('ConsoleScanner', () => {
  it('sees nothing fatal in a normal boot', () => {
    const s = new ConsoleScanner();
    expect(s.push(boot)).toBeNull();
    expect(s.tail(1)).toBe('');
    expect(s.tail(2)).toBe('vfio-vm: ready\n');
  });

  it('detects a panic split across chunks', () => {
    const s = new ConsoleScanner();
    s.push(boot + '[   12.3] Kernel pan');
    expect(s.verdict).toBeNull();
    const v = s.push('ic - not syncing: Attempted to kill init! exitcode=0x00000100\r\n');
    expect(v).toEqual({ kind: 'kernel panic', line: 'Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100' });
  });

  it('reports a panic line at once and completes it when the line arrives in pieces', () => {
    const s = new ConsoleScanner();
    expect(s.push(boot + '[    2.55] Kernel panic - not syncing: sysrq trigger')).toEqual({ kind: 'kernel panic', line: 'Kernel panic - not syncing: sysrq trigger' });
    s.push('ed cr');
    expect(s.push('ash\r\n[    2.56] CPU: 1 UID: 0 PID: 82 Comm: sh\r\n')?.line).toBe('Kernel panic - not syncing: sysrq triggered crash');
    // Once the line has ended, later text does not change it.
    s.push('Kernel panic - not syncing: something else\n');
    expect(s.verdict).toEqual({ kind: 'kernel panic', line: 'Kernel panic - not syncing: sysrq triggered crash' });
  });

  it('detects oopses, BUGs and GP faults, keeping the first', () => {
    const s = new ConsoleScanner();
    s.push('[ 5.1] BUG: kernel NULL pointer dereference, address: 0000000000000008\n');
    s.push('[ 5.2] Oops: 0000 [#1] SMP\n');
    expect(s.verdict).toEqual({ kind: 'kernel BUG', line: 'BUG: kernel NULL pointer dereference, address: 0000000000000008' });
    expect(new ConsoleScanner().push('general protection fault, probably for non-canonical address\n')?.kind).toBe('general protection fault');
  });

  it('counts WARN splats without calling them fatal', () => {
    const s = new ConsoleScanner();
    s.push('[ 1.0] WARNING: CPU: 1 PID: 77 at drivers/vfio/x.c:10 f+0x1/0x2\n[ 1.1] WARNING: CPU: 0 PID: 1 at y.c:2\n');
    expect(s.verdict).toBeNull();
    expect(s.warnings).toBe(2);
  });

  it('keeps a bounded tail', () => {
    const s = new ConsoleScanner(100);
    for (let i = 0; i < 100; i++) s.push(`line ${i}\n`);
    expect(s.tail(3)).toBe('line 98\nline 99\n');
  });
});
