/**
 * The `vfio info --json` contract: a device's info, every region (with its
 * decoded capability chain) and every IRQ index, the same on both backends
 * except for `backend`. 64-bit sizes and offsets are decimal strings.
 */
import type { Device, IndexResult } from '../vfio/device.js';
import type { IrqInfo, RegionInfo } from '../uapi/vfio.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** bigint → decimal string, Buffer → hex, recursively; everything else as JSON has it. */
function plain(v: unknown): Json {
  if (typeof v === 'bigint') return v.toString();
  if (Buffer.isBuffer(v)) return v.toString('hex');
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => [k, plain(x)]));
  return v as Json;
}

/** One region in `vfio info --json`: 64-bit size and offset as decimal strings, capabilities as decoded. @internal */
export interface RegionJson {
  index: number;
  name: string;
  flags: number;
  flagNames: string[];
  size: string;
  offset: string;
  caps: Json[];
}
/** One IRQ index in `vfio info --json`. @internal */
export interface IrqJson {
  index: number;
  name: string;
  count: number;
  flags: number;
  flagNames: string[];
}
/** A region or IRQ index the kernel refused, with its error code ('EINVAL'). @internal */
export type IndexError = { index: number; error: string };

/** The whole `vfio info --json` output. @internal */
export interface DeviceInfoJson {
  device: string;
  backend: 'group' | 'cdev';
  flags: number;
  flagNames: string[];
  numRegions: number;
  numIrqs: number;
  regions: (RegionJson | IndexError)[];
  irqs: (IrqJson | IndexError)[];
  /** Migration v2: the MIGRATION feature's flags and the current state; null when the device has none. */
  migration: { flags: string[]; state: string } | null;
}

const regionJson = (r: IndexResult<RegionInfo>): RegionJson | IndexError =>
  'error' in r
    ? { index: r.index, error: r.error }
    : {
        index: r.index,
        name: r.name,
        flags: r.flags,
        flagNames: r.flagNames,
        size: r.size.toString(),
        offset: r.offset.toString(),
        // { id, version, kind, …decoded fields } in chain order
        caps: r.caps.map((c) => plain(c)),
      };

const irqJson = (i: IndexResult<IrqInfo>): IrqJson | IndexError =>
  'error' in i ? { index: i.index, error: i.error } : { index: i.index, name: i.name, count: i.count, flags: i.flags, flagNames: i.flagNames };

/** A device's info, regions and IRQs as `vfio info --json` prints them. @internal */
export function deviceInfoJson(device: Device): DeviceInfoJson {
  const info = device.info();
  return {
    device: device.name,
    backend: device.backend,
    flags: info.flags,
    flagNames: info.flagNames,
    numRegions: info.numRegions,
    numIrqs: info.numIrqs,
    regions: device.regions().map(regionJson),
    irqs: device.irqs().map(irqJson),
    migration: device.migration === null ? null : { flags: device.migration.flags.names, state: device.migration.state },
  };
}
