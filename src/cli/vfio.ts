#!/usr/bin/env node
/**
 * The `vfio` command line. Every command is one entry of {@link COMMANDS}:
 * its words, its positional arguments, the options it accepts and a `run`
 * function. Exit status: 0 success, 1 the operation failed (one line on
 * stderr with the errno code and the hint), 2 usage error.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import { parseArgs } from 'node:util';
import { VfioError } from '../errors.js';
import { MdevBus, type AutostartResult, type Mdev, type MdevDefinitionChanges, type MdevRecord, type MdevType } from '../mdev/bus.js';
import { mdevctlJson, parseDefinition, type MdevDefinition } from '../mdev/definitions.js';
import { deviceInfoJson } from './info.js';
import { isEntryPoint } from './entry.js';
import { openDevice } from '../vfio/open.js';
import { captureDisplay, type DisplayCapture } from '../vfio/display.js';
import { SysRoot, iommuGroups, type IommuGroup } from '../mdev/sysfs.js';
import { migrate, type Migration } from '../vfio/migration.js';
import { NvmeController } from '../drivers/nvme/driver.js';
import type { Device } from '../vfio/device.js';

/** Where a command writes. @internal */
export interface CliIo {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
}

/** What a command's `run` gets. @internal */
export interface CommandContext {
  /** The positional arguments after the command words, one per entry of `args`. */
  args: string[];
  /** The parsed options (names as in {@link OPTIONS}). */
  values: { [name: string]: string | boolean | undefined };
  /** The sysfs root (`--root`, default '/'). */
  sys: SysRoot;
  /** Writes to stdout. */
  print(text: string): void;
}

/** One CLI command. @internal */
export interface Command {
  /** The command words: 'ls', 'mdev create'. */
  name: string;
  /** Positional arguments, for usage: ['<type>']. All are required. */
  args: string[];
  /** The options it accepts besides --root and --help. */
  options: OptionName[];
  /** One line for `vfio --help`. */
  summary: string;
  run(ctx: CommandContext): void | Promise<void>;
}

/** One command-line option. @internal */
export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** The placeholder of its value in help texts ('DIR'). */
  value?: string;
  help: string;
}

const OPTION_SPECS = {
  root: { type: 'string', value: 'DIR', help: 'find /sys, /dev and /proc under DIR instead of / (tests)' },
  help: { type: 'boolean', short: 'h', help: 'show help' },
  json: { type: 'boolean', help: 'print JSON (a stable contract, see the README)' },
  parent: { type: 'string', value: 'P', help: 'the parent device (define: required; create: when several parents offer the type; others: when a UUID is defined on several parents)' },
  uuid: { type: 'string', value: 'U', help: 'the UUID to create or define (default: a fresh v4 UUID)' },
  type: { type: 'string', value: 'T', help: 'the mdev type of a definition' },
  auto: { type: 'boolean', help: 'start the defined device automatically when its parent appears' },
  manual: { type: 'boolean', help: 'start the defined device only on request (the default of define)' },
  jsonfile: { type: 'string', value: 'FILE', help: 'take the type, start mode and attributes from an mdevctl JSON file' },
  addattr: { type: 'string', value: 'NAME', help: 'add an attribute to the definition (with --value; at --index, else last)' },
  value: { type: 'string', value: 'V', help: 'the value of the attribute --addattr adds' },
  delattr: { type: 'boolean', help: 'delete the attribute at --index (else the last) from the definition' },
  index: { type: 'string', value: 'N', help: 'the attribute index --addattr and --delattr act on, from 0' },
  defined: { type: 'boolean', help: 'list the stored definitions (active or not) instead of the active devices' },
  timeout: { type: 'string', value: 'S', help: 'seconds to wait for the kernel' },
  backend: { type: 'string', value: 'B', help: 'group (container + group fd) or cdev (iommufd + device cdev); default: cdev for a cdev path, else group' },
  output: { type: 'string', short: 'o', value: 'FILE', help: 'the file to write (screenshot: default screenshot.png)' },
  precopy: { type: 'boolean', help: 'stream PRE_COPY data first, while the device still runs (where it offers PRE_COPY)' },
} satisfies Record<string, OptionSpec>;

/** The name of an option, without the dashes. @internal */
export type OptionName = keyof typeof OPTION_SPECS;

/** Every option any command takes; a name means the same everywhere. @internal */
export const OPTIONS: Record<OptionName, OptionSpec> = OPTION_SPECS;

/** A malformed command line: exit status 2. @internal */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: Command,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

const bus = (ctx: CommandContext): MdevBus => new MdevBus({ root: ctx.sys });

/** Aligned columns, two spaces apart; the last column is not padded. @internal */
export function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

const json = (value: unknown): string => `${JSON.stringify(value, null, 2)}\n`;
const dash = (v: string | number | null | undefined): string => (v === null || v === undefined || v === '' ? '-' : String(v));

function timeoutMs(ctx: CommandContext): number | undefined {
  const s = ctx.values.timeout;
  if (s === undefined) return undefined;
  const n = Number(s);
  if (typeof s !== 'string' || s.trim() === '' || !Number.isFinite(n) || n <= 0) {
    throw new UsageError(`--timeout takes a positive number of seconds, not ${JSON.stringify(s)}`);
  }
  return Math.round(n * 1000);
}

/** The `mdev types --json` contract. @internal */
export const typeJson = (t: MdevType) => ({
  parent: t.parent,
  type: t.id,
  name: t.name,
  description: t.description,
  deviceApi: t.deviceApi,
  availableInstances: t.availableInstances,
  devices: t.devices,
});

/** The `mdev list --json` (and `mdev create --json`) contract. @internal */
export const mdevJson = (d: Mdev) => ({
  uuid: d.uuid,
  parent: d.parent,
  type: d.type,
  iommuGroup: d.iommuGroup,
  vfioDev: d.vfioDev,
});

/**
 * mdevctl's `list --dumpjson` shape, for `mdev list --defined --json`,
 * `mdev define --json` and `mdev modify --json`: `[]` when there is nothing,
 * else `[{ "<parent>": [{ "<uuid>": { mdev_type, start, attrs } }, …], … }]`,
 * parents and UUIDs sorted. @internal
 */
export function mdevctlListJson(defs: readonly Pick<MdevDefinition, 'uuid' | 'parent' | 'type' | 'start' | 'attrs'>[]): unknown[] {
  const byParent = new Map<string, [string, unknown][]>();
  for (const d of defs) {
    if (!byParent.has(d.parent)) byParent.set(d.parent, []);
    byParent.get(d.parent)!.push([d.uuid, mdevctlJson(d)]);
  }
  if (byParent.size === 0) return [];
  const sorted = <T>(entries: [string, T][]): [string, T][] => entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  // fromEntries, not assignment: a parent or key named __proto__ stays a key.
  return [Object.fromEntries(sorted([...byParent]).map(([p, children]) => [p, sorted(children).map((c) => Object.fromEntries([c]))]))];
}

/** The `mdev autostart --json` contract. @internal */
export const autostartJson = (r: AutostartResult) => ({
  uuid: r.uuid,
  parent: r.parent,
  mdev_type: r.type,
  result: r.status,
  error: r.error === null ? null : { code: r.error.code, message: r.error.message, hint: r.error.hint ?? null },
});

/** `--index N`: a non-negative integer, or undefined. */
function indexOption(ctx: CommandContext): number | undefined {
  const s = ctx.values.index;
  if (s === undefined) return undefined;
  if (typeof s !== 'string' || !/^\d+$/.test(s)) throw new UsageError(`--index takes an attribute index (0, 1, …), not ${JSON.stringify(s)}`);
  return Number(s);
}

/** `--auto` / `--manual`, which exclude each other. */
function startOption(ctx: CommandContext): 'auto' | 'manual' | undefined {
  if (ctx.values.auto && ctx.values.manual) throw new UsageError('--auto and --manual exclude each other');
  return ctx.values.auto ? 'auto' : ctx.values.manual ? 'manual' : undefined;
}

/** The `ls --json` contract. @internal */
export const groupJson = (g: IommuGroup) => ({
  group: g.id,
  name: g.name,
  type: g.type,
  node: g.node,
  devices: g.devices.map((d) => ({
    name: d.name,
    bus: d.bus,
    driver: d.driver,
    pciId: d.pciId,
    mdevType: d.mdevType,
    parent: d.parent,
    vfioDev: d.vfioDev,
    cdev: d.cdevPath,
  })),
});

/** The backend `--backend` names, or the default for the device spec. */
function backendOption(ctx: CommandContext, spec: string): 'group' | 'cdev' {
  const backend = (ctx.values.backend as string | undefined) ?? (spec.startsWith('/dev/vfio/devices/') ? 'cdev' : 'group');
  if (backend !== 'group' && backend !== 'cdev') throw new UsageError(`--backend takes group or cdev, not ${JSON.stringify(backend)}`);
  return backend;
}

/** The `screenshot --json` contract. @internal */
export const screenshotJson = (device: string, backend: string, file: string, c: DisplayCapture, bytes: number): Record<string, unknown> => ({
  device,
  backend,
  file,
  bytes,
  width: c.width,
  height: c.height,
  stride: c.stride,
  format: c.format,
  source: c.source,
});

/** The device's migration interface, or a clear error for a device without one. */
function requireMigration(d: Device): Migration {
  const m = d.migration;
  if (m === null) {
    throw new VfioError({ code: 'EOPNOTSUPP', errno: constants.errno.EOPNOTSUPP, operation: 'migrate', message: `EOPNOTSUPP: ${d.name} (${d.driver ?? 'unknown driver'}) does not support migration (its VFIO_DEVICE_FEATURE MIGRATION does not answer)` });
  }
  return m;
}

/** The command table. @internal */
export const COMMANDS: Command[] = [
  {
    name: 'screenshot',
    args: ['<device>'],
    options: ['output', 'backend', 'json'],
    summary: 'a PNG of what a display device (mdpy, mbochs, …) shows now, from its gfx plane',
    run(ctx) {
      const spec = ctx.args[0]!;
      const backend = backendOption(ctx, spec);
      const file = (ctx.values.output as string | undefined) ?? 'screenshot.png';
      if (file === '') throw new UsageError('--output needs a file name');
      const opened = openDevice(spec, { backend, root: ctx.sys.path('/') });
      let capture: DisplayCapture;
      try {
        capture = captureDisplay(opened.device, { png: true });
      } finally {
        opened.close();
      }
      writeFileSync(file, capture.png!);
      if (ctx.values.json) return ctx.print(json(screenshotJson(opened.device.name, backend, file, capture, capture.png!.length)));
      ctx.print(`${file}: ${capture.width}x${capture.height} ${capture.format} (stride ${capture.stride}, read from the ${capture.source}), ${capture.png!.length} bytes\n`);
    },
  },
  {
    name: 'info',
    args: ['<device>'],
    options: ['backend', 'json'],
    summary: 'a device\'s info, regions (with capabilities) and IRQs, by mdev UUID, PCI address or cdev path',
    run(ctx) {
      const spec = ctx.args[0]!;
      const backend = backendOption(ctx, spec);
      const opened = openDevice(spec, { backend, root: ctx.sys.path('/') });
      let info;
      try {
        info = deviceInfoJson(opened.device);
      } finally {
        opened.close();
      }
      if (ctx.values.json) return ctx.print(json(info));
      const lines = [`${info.device} (${info.backend}): flags ${info.flagNames.join('|') || info.flags}, ${info.numRegions} regions, ${info.numIrqs} irqs`, ''];
      const regionRows = info.regions.map((r) =>
        'error' in r
          ? [String(r.index), '-', '-', '-', '-', r.error]
          : [String(r.index), r.name, `0x${BigInt(r.size).toString(16)}`, `0x${BigInt(r.offset).toString(16)}`, r.flagNames.join('|') || '-', r.caps.map((c) => String((c as { kind?: string }).kind ?? '')).join(',') || '-'],
      );
      lines.push(table(['REGION', 'NAME', 'SIZE', 'OFFSET', 'FLAGS', 'CAPS'], regionRows));
      const irqRows = info.irqs.map((i) => ('error' in i ? [String(i.index), '-', '-', i.error] : [String(i.index), i.name, String(i.count), i.flagNames.join('|') || '-']));
      lines.push(table(['IRQ', 'NAME', 'COUNT', 'FLAGS'], irqRows));
      lines.push(info.migration === null ? 'migration: none\n' : `migration: ${info.migration.flags.join('|')}, state ${info.migration.state}\n`);
      ctx.print(lines.join('\n'));
    },
  },
  {
    name: 'migrate save',
    args: ['<device>'],
    options: ['output', 'precopy', 'backend', 'json'],
    summary: 'save a device\'s migration state (VFIO migration v2) to a file; the device runs on afterwards',
    async run(ctx) {
      const spec = ctx.args[0]!;
      const file = ctx.values.output as string | undefined;
      if (file === undefined || file === '') throw new UsageError('--output FILE is needed: where to write the state');
      const backend = backendOption(ctx, spec);
      const opened = openDevice(spec, { backend, root: ctx.sys.path('/') });
      let out;
      try {
        const m = requireMigration(opened.device);
        const dataSize = m.dataSize();
        const bytes = await m.saveToBuffer({ precopy: ctx.values.precopy === true, then: 'RUNNING' });
        writeFileSync(file, bytes);
        out = { device: opened.device.name, backend, file, bytes: bytes.length, dataSize: dataSize.toString(), state: m.state };
      } finally {
        opened.close();
      }
      if (ctx.values.json) return ctx.print(json(out));
      ctx.print(`${file}: ${out.bytes} bytes of ${out.device}'s state (the kernel estimated ${out.dataSize}); the device is ${out.state}\n`);
    },
  },
  {
    name: 'migrate load',
    args: ['<device>', '<file>'],
    options: ['backend', 'json'],
    summary: 'load a saved migration state into a device and run it',
    async run(ctx) {
      const [spec, file] = ctx.args as [string, string];
      const data = readFileSync(file);
      const backend = backendOption(ctx, spec);
      const opened = openDevice(spec, { backend, root: ctx.sys.path('/') });
      let out;
      try {
        const m = requireMigration(opened.device);
        const r = await m.load(data, { resume: true });
        out = { device: opened.device.name, backend, file, bytes: r.bytes, state: m.state };
      } finally {
        opened.close();
      }
      if (ctx.values.json) return ctx.print(json(out));
      ctx.print(`${out.device}: loaded ${out.bytes} bytes from ${file}; the device is ${out.state}\n`);
    },
  },
  {
    name: 'migrate',
    args: ['<source>', '<target>'],
    options: ['precopy', 'backend', 'json'],
    summary: 'move a device\'s state into another (source left stopped, target running), reporting the downtime',
    async run(ctx) {
      const [srcSpec, dstSpec] = ctx.args as [string, string];
      const backend = backendOption(ctx, srcSpec);
      const root = ctx.sys.path('/');
      const src = openDevice(srcSpec, { backend, root });
      let out;
      try {
        const dst = openDevice(dstSpec, { backend, root });
        try {
          requireMigration(src.device);
          requireMigration(dst.device);
          const r = await migrate(src.device, dst.device, ctx.values.precopy === true ? { precopy: true } : {});
          out = { source: src.device.name, target: dst.device.name, backend, ...r };
        } finally {
          dst.close();
        }
      } finally {
        src.close();
      }
      if (ctx.values.json) return ctx.print(json(out));
      ctx.print(
        `${out.source} → ${out.target}: ${out.bytes} bytes (${out.precopyBytes} before stopping, ${out.precopyRounds} pre-copy round(s)), downtime ${out.downtimeMs.toFixed(3)} ms, total ${out.totalMs.toFixed(3)} ms; source ${out.sourceState}, target ${out.targetState}\n`,
      );
    },
  },
  {
    name: 'nvme identify',
    args: ['<pci-addr>'],
    options: ['backend', 'json'],
    summary: 'an NVMe controller\'s Identify Controller and active namespaces, through the userspace driver',
    async run(ctx) {
      const spec = ctx.args[0]!;
      const backend = backendOption(ctx, spec);
      const c = await NvmeController.open({ address: spec, backend, mode: 'poll', root: ctx.sys.path('/') });
      let out;
      try {
        const namespaces = [];
        for (const nsid of await c.namespaceIds()) {
          const ns = await c.identifyNamespace(nsid);
          namespaces.push({ nsid, nsze: ns.nsze.toString(), ncap: ns.ncap.toString(), nuse: ns.nuse.toString(), blockSize: ns.blockSize, flbas: ns.flbas, nlbaf: ns.nlbaf });
        }
        out = { device: c.address, backend, controller: c.identity, maxTransferBytes: c.maxTransferBytes, namespaces };
      } finally {
        await c.close();
      }
      if (ctx.values.json) return ctx.print(json(out));
      const id = out.controller;
      const lines = [
        `${out.device} (${backend}): ${id.mn} (sn ${id.sn}, fw ${id.fr}), vid 0x${id.vid.toString(16)}, ${id.nn} namespace(s), MDTS ${out.maxTransferBytes} B`,
        table(['NSID', 'BLOCKS', 'BLOCK SIZE', 'CAPACITY'], out.namespaces.map((n) => [String(n.nsid), n.nsze, String(n.blockSize), `${(Number(n.nsze) * n.blockSize) / 2 ** 20} MiB`])),
      ];
      ctx.print(`${lines.join('\n')}`);
    },
  },
  {
    name: 'ls',
    args: [],
    options: ['json'],
    summary: 'IOMMU groups, their devices (PCI and mdev), drivers and VFIO nodes',
    run(ctx) {
      const groups = iommuGroups(ctx.sys);
      if (ctx.values.json) return ctx.print(json(groups.map(groupJson)));
      const rows = groups.flatMap((g) =>
        (g.devices.length ? g.devices : [null]).map((d) => [
          String(g.id),
          dash(d?.name),
          dash(d?.bus),
          dash(d?.driver),
          dash(d?.pciId ?? d?.mdevType),
          dash(g.node),
          dash(d?.cdevPath),
        ]),
      );
      ctx.print(table(['GROUP', 'DEVICE', 'BUS', 'DRIVER', 'ID/TYPE', 'GROUP NODE', 'DEVICE NODE'], rows));
    },
  },
  {
    name: 'mdev types',
    args: [],
    options: ['parent', 'json'],
    summary: 'mdev parents and their types, with available instances',
    run(ctx) {
      const parent = ctx.values.parent as string | undefined;
      const types = bus(ctx).types(parent === undefined ? {} : { parent });
      if (ctx.values.json) return ctx.print(json(types.map(typeJson)));
      const rows = types.map((t) => [t.parent, t.id, t.name, String(t.availableInstances), String(t.devices.length), dash(t.description)]);
      ctx.print(table(['PARENT', 'TYPE', 'NAME', 'AVAILABLE', 'DEVICES', 'DESCRIPTION'], rows));
    },
  },
  {
    name: 'mdev list',
    args: [],
    options: ['defined', 'json'],
    summary: 'existing mdevs; with --defined, the stored definitions, active or not',
    run(ctx) {
      if (ctx.values.defined) {
        const recs: MdevRecord[] = bus(ctx).list({ defined: true });
        if (ctx.values.json) return ctx.print(json(mdevctlListJson(recs.map((r) => r.definition!))));
        return ctx.print(table(['UUID', 'PARENT', 'TYPE', 'START', 'ACTIVE'], recs.map((r) => [r.uuid, r.parent, dash(r.type), r.start, r.active ? 'yes' : 'no'])));
      }
      const devs = bus(ctx).list();
      if (ctx.values.json) return ctx.print(json(devs.map(mdevJson)));
      const rows = devs.map((d) => [d.uuid, d.parent, dash(d.type), dash(d.iommuGroup), dash(d.vfioDev)]);
      ctx.print(table(['UUID', 'PARENT', 'TYPE', 'GROUP', 'VFIO DEV'], rows));
    },
  },
  {
    name: 'mdev create',
    args: ['<type>'],
    options: ['parent', 'uuid', 'timeout', 'json'],
    summary: 'create an mdev and print its UUID',
    async run(ctx) {
      const ms = timeoutMs(ctx);
      const dev = await bus(ctx).create(ctx.args[0]!, {
        ...(ctx.values.parent === undefined ? {} : { parent: ctx.values.parent as string }),
        ...(ctx.values.uuid === undefined ? {} : { uuid: ctx.values.uuid as string }),
        ...(ms === undefined ? {} : { timeoutMs: ms }),
      });
      ctx.print(ctx.values.json ? json(mdevJson(dev)) : `${dev.uuid}\n`);
    },
  },
  {
    name: 'mdev remove',
    args: ['<uuid>'],
    options: ['timeout'],
    summary: 'remove an mdev (fails after the timeout while it is open)',
    async run(ctx) {
      const ms = timeoutMs(ctx);
      await bus(ctx).remove(ctx.args[0]!, ms === undefined ? {} : { timeoutMs: ms });
    },
  },
  {
    name: 'mdev define',
    args: [],
    options: ['parent', 'type', 'uuid', 'auto', 'manual', 'jsonfile', 'json'],
    summary: 'store a persistent definition in /etc/mdevctl.d (mdevctl\'s format) and print its UUID; nothing is started',
    run(ctx) {
      const start = startOption(ctx);
      const file = ctx.values.jsonfile as string | undefined;
      let spec: Parameters<MdevBus['define']>[0];
      if (file !== undefined) {
        if (ctx.values.type !== undefined || start !== undefined) throw new UsageError('--jsonfile gives the type and the start mode: --type, --auto and --manual go without it');
        if (ctx.values.parent === undefined) throw new UsageError('--jsonfile needs --parent');
        let text: string;
        try {
          text = readFileSync(file, 'utf8');
        } catch (err) {
          throw VfioError.from(err, { operation: 'mdev define', path: file });
        }
        // As strict as a stored file: errors name the file and the field.
        const d = parseDefinition(text, { path: file, parent: ctx.values.parent as string, uuid: '00000000-0000-0000-0000-000000000000' });
        spec = { parent: d.parent, type: d.type, start: d.start, attrs: d.attrs };
      } else {
        spec = { ...(ctx.values.parent === undefined ? {} : { parent: ctx.values.parent as string }), ...(ctx.values.type === undefined ? {} : { type: ctx.values.type as string }), ...(start ? { start } : {}) };
        if (ctx.values.uuid === undefined && (spec.parent === undefined || spec.type === undefined)) throw new UsageError('define needs --parent and --type (or --uuid of a running mdev)');
      }
      if (ctx.values.uuid !== undefined) spec.uuid = ctx.values.uuid as string;
      const def = bus(ctx).define(spec);
      ctx.print(ctx.values.json ? json(mdevctlListJson([def])) : `${def.uuid}\n`);
    },
  },
  {
    name: 'mdev undefine',
    args: ['<uuid>'],
    options: ['parent'],
    summary: 'delete a definition (every parent\'s, without --parent); a running device keeps running',
    run(ctx) {
      bus(ctx).undefine(ctx.args[0]!, ctx.values.parent === undefined ? {} : { parent: ctx.values.parent as string });
    },
  },
  {
    name: 'mdev modify',
    args: ['<uuid>'],
    options: ['parent', 'type', 'auto', 'manual', 'addattr', 'value', 'delattr', 'index', 'json'],
    summary: 'change a definition; a running device is unchanged until its next start',
    run(ctx) {
      const start = startOption(ctx);
      const index = indexOption(ctx);
      const changes: MdevDefinitionChanges = {};
      if (ctx.values.type !== undefined) changes.type = ctx.values.type as string;
      if (start) changes.start = start;
      if (ctx.values.addattr !== undefined) {
        if (ctx.values.delattr) throw new UsageError('--addattr and --delattr exclude each other');
        if (ctx.values.value === undefined) throw new UsageError('--addattr needs --value');
        changes.addAttr = { name: ctx.values.addattr as string, value: ctx.values.value as string, ...(index === undefined ? {} : { index }) };
      } else if (ctx.values.value !== undefined) {
        throw new UsageError('--value goes with --addattr');
      } else if (ctx.values.delattr) {
        changes.delAttr = index === undefined ? {} : { index };
      } else if (index !== undefined) {
        throw new UsageError('--index goes with --addattr or --delattr');
      }
      if (Object.keys(changes).length === 0) throw new UsageError('nothing to change: give --type, --auto, --manual, --addattr or --delattr');
      const b = bus(ctx);
      const def = b.modify(ctx.args[0]!, changes, ctx.values.parent === undefined ? {} : { parent: ctx.values.parent as string });
      if (ctx.values.json) return ctx.print(json(mdevctlListJson([def])));
      const running = b.find(def.uuid);
      if (running && running.parent === def.parent) ctx.print(`${def.uuid}: the device is running; the change applies at its next start\n`);
    },
  },
  {
    name: 'mdev start',
    args: ['<uuid>'],
    options: ['parent', 'timeout', 'json'],
    summary: 'start a defined device: create it and write its attributes in order (removed again if one fails)',
    async run(ctx) {
      const ms = timeoutMs(ctx);
      const dev = await bus(ctx).start(ctx.args[0]!, {
        ...(ctx.values.parent === undefined ? {} : { parent: ctx.values.parent as string }),
        ...(ms === undefined ? {} : { timeoutMs: ms }),
      });
      if (ctx.values.json) ctx.print(json(mdevJson(dev)));
    },
  },
  {
    name: 'mdev stop',
    args: ['<uuid>'],
    options: ['timeout'],
    summary: 'stop (remove) a device, keeping its definition',
    async run(ctx) {
      const ms = timeoutMs(ctx);
      await bus(ctx).stop(ctx.args[0]!, ms === undefined ? {} : { timeoutMs: ms });
    },
  },
  {
    name: 'mdev autostart',
    args: [],
    options: ['parent', 'timeout', 'json'],
    summary: 'start every auto definition whose parent is present (or --parent\'s) and report each',
    async run(ctx) {
      const ms = timeoutMs(ctx);
      const results = await bus(ctx).autostart(ctx.values.parent as string | undefined, ms === undefined ? {} : { timeoutMs: ms });
      if (ctx.values.json) ctx.print(json(results.map(autostartJson)));
      else {
        const what = (r: AutostartResult): string => (r.status === 'active' ? 'already active' : r.status === 'started' ? 'started' : `failed: ${r.error!.code}`);
        ctx.print(table(['UUID', 'PARENT', 'TYPE', 'RESULT'], results.map((r) => [r.uuid, r.parent, dash(r.type), what(r)])));
      }
      const failed = results.filter((r) => !r.ok);
      if (failed.length) throw new PartialFailure(failed.map((r) => r.error!));
    },
  },
];

/** Some of a command's operations failed: one stderr line each, exit status 1. @internal */
export class PartialFailure extends Error {
  constructor(readonly errors: VfioError[]) {
    super(`${errors.length} failed`);
    this.name = 'PartialFailure';
  }
}

const GLOBAL: OptionName[] = ['root', 'help'];

const flag = (n: OptionName): string => `--${n}${OPTIONS[n].value ? ` ${OPTIONS[n].value}` : ''}`;

function optionUsage(names: OptionName[]): string {
  return names.map((n) => `  ${`${OPTIONS[n].short ? `-${OPTIONS[n].short}, ` : ''}${flag(n)}`.padEnd(18)}  ${OPTIONS[n].help}`).join('\n');
}

const synopsis = (c: Command): string => ['vfio', c.name, ...c.args, ...c.options.map((n) => `[${flag(n)}]`)].join(' ');

/** The help text of one command, or of the whole CLI. @internal */
export function usage(command?: Command): string {
  if (command) {
    return `usage: ${synopsis(command)}\n\n${command.summary}\n\noptions:\n${optionUsage([...command.options, ...GLOBAL])}\n`;
  }
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'usage: vfio [--root DIR] <command> [options]',
    '',
    'commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'options:',
    optionUsage(Object.keys(OPTIONS) as OptionName[]),
    '',
    "Run 'vfio <command> --help' for a command's options. Exit status: 0 ok, 1 the operation failed, 2 usage error.",
    '',
  ].join('\n');
}

const parseOptions = (names: OptionName[]) =>
  Object.fromEntries(names.map((n) => [n, { type: OPTIONS[n].type, ...(OPTIONS[n].short ? { short: OPTIONS[n].short } : {}) }]));

/** Finds the command and parses its options; throws UsageError. Returns null for a bare `vfio --help`. @internal */
export function parseCommandLine(argv: string[]): { command: Command | null; args: string[]; values: CommandContext['values'] } {
  const all = Object.keys(OPTIONS) as OptionName[];
  // First pass, lenient: which words are the command?
  const loose = parseArgs({ args: argv, options: parseOptions(all), allowPositionals: true, strict: false });
  const words = loose.positionals;
  const command =
    COMMANDS.filter((c) => c.name.split(' ').every((w, i) => words[i] === w)).sort((a, b) => b.name.length - a.name.length)[0] ?? null;
  if (!command) {
    if (words.length === 0 && loose.values.help === true) return { command: null, args: [], values: loose.values };
    if (words.length === 0) throw new UsageError('no command given');
    const group = COMMANDS.filter((c) => c.name.startsWith(`${words[0]} `)).map((c) => c.name);
    if (group.length && words.length === 1) throw new UsageError(`'${words[0]}' needs a subcommand: ${group.join(', ')}`);
    throw new UsageError(`unknown command '${words.slice(0, group.length ? 2 : 1).join(' ')}'`);
  }
  // Second pass, strict: only this command's options.
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: parseOptions([...command.options, ...GLOBAL]),
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    // Node's messages go on with advice about '--' that does not apply here.
    throw new UsageError((err as Error).message.split('\n')[0]!.replace(/\. To specify a positional.*$/, ''), command);
  }
  const args = parsed.positionals.slice(command.name.split(' ').length);
  if (!parsed.values.help && args.length !== command.args.length) {
    throw new UsageError(
      args.length < command.args.length ? `missing ${command.args.slice(args.length).join(' ')}` : `unexpected argument '${args[command.args.length]}'`,
      command,
    );
  }
  return { command, args, values: parsed.values };
}

function usageError(io: CliIo, err: UsageError, command = err.command): number {
  const how = command ? `usage: ${synopsis(command)}` : `commands: ${COMMANDS.map((c) => c.name).join(', ')}`;
  io.stderr.write(`vfio: ${err.message}\n${how}\nRun 'vfio${command ? ` ${command.name}` : ''} --help' for help.\n`);
  return 2;
}

const oneLine = (s: string): string => s.replace(/\s*\n\s*/g, ' ').trim();

/** Runs the CLI with `argv` (without node and the script); resolves to the exit status. @internal */
export async function main(argv: string[], io: CliIo = process): Promise<number> {
  let parsed: ReturnType<typeof parseCommandLine>;
  try {
    parsed = parseCommandLine(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    return usageError(io, err);
  }
  const { command, args, values } = parsed;
  if (command === null || values.help) {
    io.stdout.write(usage(command ?? undefined));
    return 0;
  }
  try {
    const root = typeof values.root === 'string' ? values.root : '/';
    if (!existsSync(root)) throw new VfioError({ errno: constants.errno.ENOENT, path: root, message: `ENOENT: --root ${root} does not exist` });
    const sys = new SysRoot(root);
    await command.run({ args, values, sys, print: (t) => io.stdout.write(t) });
    return 0;
  } catch (err) {
    if (err instanceof UsageError) return usageError(io, err, command);
    const errors = err instanceof PartialFailure ? err.errors : [err instanceof VfioError ? err : VfioError.from(err, { operation: command.name })];
    for (const e of errors) io.stderr.write(`vfio: ${oneLine(e.message)}${e.hint ? ` (hint: ${oneLine(e.hint)})` : ''}\n`);
    return 1;
  }
}


if (isEntryPoint(import.meta.url)) process.exitCode = await main(process.argv.slice(2));
