/**
 * PCI addresses in the kernel's `DDDD:BB:SS.F` form.
 */

/**
 * PCI_SLOT(devfn): the device number, bits 3-7.
 *
 * @param devfn - slot and function packed in one byte, as the kernel keeps them
 */
export function pciSlot(devfn: number): number {
  return (devfn >> 3) & 0x1f;
}

/**
 * PCI_FUNC(devfn): the function number, bits 0-2.
 *
 * @param devfn - slot and function packed in one byte, as the kernel keeps them
 */
export function pciFunction(devfn: number): number {
  return devfn & 0x7;
}

/**
 * Formats segment, bus and devfn as the kernel names a PCI device:
 * `formatPciAddress(0, 0, 0x18)` → `'0000:00:03.0'`.
 */
export function formatPciAddress(segment: number, bus: number, devfn: number): string {
  const h = (n: number, w: number): string => n.toString(16).padStart(w, '0');
  return `${h(segment & 0xffff, 4)}:${h(bus & 0xff, 2)}:${h(pciSlot(devfn), 2)}.${pciFunction(devfn)}`;
}

/**
 * A PCI address as sysfs names it (`'0000:00:03.0'`, lower case) from the full
 * form or the short one without the segment (`'00:03.0'`), any case; null for
 * anything else.
 */
export function normalizePciAddress(spec: string): string | null {
  if (typeof spec !== 'string') return null;
  const s = spec.trim().toLowerCase();
  if (/^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/.test(s)) return s;
  if (/^[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/.test(s)) return `0000:${s}`;
  return null;
}
