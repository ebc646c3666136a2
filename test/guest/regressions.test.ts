/**
 * Defects the fuzzer found, each kept as the smallest reproducer (issue 13).
 * Each would kill or hang the process before its fix.
 */
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { openDevice } from '../../src/vfio/open.js';
import { eduAddress } from './fixtures.js';

const PCI_COMMAND = 4;
const MEMORY = 0x2;

describe.each(['group', 'cdev'] as const)('edu on %s', (backend) => {
  it('refuses to map a BAR while memory decoding is off instead of dying of SIGBUS on the first access', () => {
    const o = openDevice(eduAddress(), { backend });
    try {
      const config = o.device.region(7);
      const command = config.read16(PCI_COMMAND);
      const before = o.device.mmap(0, { length: 4096 });
      config.write16(PCI_COMMAND, command & ~MEMORY);
      // The view made before is revoked by the write; a new one is refused.
      expect(before.mapped).toBe(false);
      expect(() => o.device.mmap(0, { length: 4096 })).toThrow(expect.objectContaining({ code: 'ERR_VFIO_MEMORY_DISABLED', hint: expect.stringMatching(/PCI_COMMAND/) }));
      config.write16(PCI_COMMAND, command | MEMORY);
      const after = o.device.mmap(0, { length: 4096 });
      expect(after.read32(0)).toBe(0x010000ed);
    } finally {
      o.close();
    }
  });

  it('enableInterrupts checks the vectors against the IRQ before making eventfds (the 100k fuzz run asked for 2^31 and the child died)', () => {
    const o = openDevice(eduAddress(), { backend });
    try {
      const fdsBefore = readdirSync('/proc/self/fd').length;
      for (const [start, count] of [[0, 2 ** 31], [0, 2], [1, 1], [2 ** 32 - 1, 1]]) {
        expect(() => o.device.enableInterrupts(1, { start, count }), `${start}+${count}`).toThrow(RangeError);
      }
      expect(readdirSync('/proc/self/fd').length).toBe(fdsBefore);
      const irq = o.device.enableInterrupts(1, { count: 1 }); // edu's one MSI vector
      irq.close();
    } finally {
      o.close();
    }
  });

  it('an empty read or write of a region of a closed device is ERR_VFIO_CLOSED, not a success (the 100k fuzz run)', () => {
    const o = openDevice(eduAddress(), { backend });
    const bar = o.device.region(0);
    o.close();
    const closed = expect.objectContaining({ code: 'ERR_VFIO_CLOSED' });
    expect(() => bar.read(0, 0)).toThrow(closed);
    expect(() => bar.readInto(0, new Uint8Array(0))).toThrow(closed);
    expect(() => bar.write(0, new Uint8Array(0))).toThrow(closed);
    expect(() => bar.read32(0)).toThrow(closed);
  });

  it('refuses to map a BAR while the device is in low power instead of dying of SIGBUS (the 100k fuzz run: featureSet(3), mmap, read32)', () => {
    const o = openDevice(eduAddress(), { backend });
    try {
      const before = o.device.mmap(0, { length: 4096 });
      o.device.featureSet(3); // VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY
      expect(before.mapped).toBe(false);
      expect(() => before.read32(0)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
      expect(() => o.device.mmap(0, { length: 4096 })).toThrow(expect.objectContaining({ code: 'ERR_VFIO_MEMORY_DISABLED', hint: expect.stringMatching(/LOW_POWER_EXIT/) }));
      o.device.featureSet(5); // VFIO_DEVICE_FEATURE_LOW_POWER_EXIT
      const after = o.device.mmap(0, { length: 4096 });
      expect(after.read32(0)).toBe(0x010000ed);
    } finally {
      o.close();
    }
  });
});
