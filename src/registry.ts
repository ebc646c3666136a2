/**
 * Which devices this process holds open through the library, keyed by the
 * device's sysfs name (an mdev UUID in lower case, or a PCI address). The mdev
 * API refuses to remove a device listed here: the kernel would block the
 * `remove` write until the fds close, and those fds are ours.
 */

const held = new Map<string, number>();

const norm = (name: string): string => name.toLowerCase();

/**
 * Records one more open handle on `name`; returns the function that releases it (idempotent).
 *
 * @internal
 */
export function holdDevice(name: string): () => void {
  const key = norm(name);
  held.set(key, (held.get(key) ?? 0) + 1);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    const n = (held.get(key) ?? 1) - 1;
    if (n <= 0) held.delete(key);
    else held.set(key, n);
  };
}

/**
 * How many device handles this process holds open through this package on one
 * device. {@link MdevBus.remove} refuses (EBUSY) to remove an mdev while this
 * is not zero, since the kernel would block the remove until they close.
 *
 * @param name - the device's sysfs name: an mdev UUID (any case) or a PCI address
 * @returns the number of open {@link Device}s (0 when none)
 */
export function heldCount(name: string): number {
  return held.get(norm(name)) ?? 0;
}
