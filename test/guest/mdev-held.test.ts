/**
 * The mdev API knows which devices this process holds open through the
 * library, and refuses to remove them (the kernel would block the write until
 * our own fds closed: a deadlock).
 */
import { describe, expect, it } from 'vitest';
import { MdevBus } from '../../src/mdev/bus.js';
import { heldCount } from '../../src/registry.js';
import { openDevice } from '../../src/vfio/open.js';
import { failure } from '../host/mdev-shared.js';

describe('removing a device this process holds open', () => {
  it.each(['group', 'cdev'] as const)('is refused with EBUSY on the %s path, and works once closed', async (backend) => {
    const bus = new MdevBus();
    const dev = await bus.create('mtty-1');
    const o = openDevice(dev.uuid, { backend });
    try {
      expect(heldCount(dev.uuid)).toBe(1);
      const err = await failure(() => bus.remove(dev.uuid, { timeoutMs: 2000 }));
      expect(err.code).toBe('EBUSY');
      expect(err.hint).toMatch(/close/i);
      expect(bus.find(dev.uuid)).not.toBeNull();
    } finally {
      o.close();
    }
    expect(heldCount(dev.uuid)).toBe(0);
    await bus.remove(dev.uuid);
    expect(bus.find(dev.uuid)).toBeNull();
  });
});
