/**
 * The whole operation table, and the generators of commands and sequences
 * built from it. A command is JSON (an op name, a receiver index, argument
 * descriptors), so sequences can be recorded, replayed and shrunk anywhere.
 */
import fc from 'fast-check';
import type { TargetSpec } from '../targets.js';
import { target, type Val } from '../values.js';
import { DEVICE_OPS } from './device.js';
import { DMA_OPS } from './dma.js';
import { MISC_OPS } from './misc.js';
import type { OpDef } from './types.js';

export const OPS: OpDef[] = [...DEVICE_OPS, ...DMA_OPS, ...MISC_OPS];
export const OP_BY_NAME = new Map(OPS.map((o) => [o.name, o]));
if (OP_BY_NAME.size !== OPS.length) throw new Error('duplicate op names in the fuzzer table');

/** One call: the op, which object of its receiver kind (modulo how many there are), the arguments. */
export interface Cmd {
  op: string;
  on?: number;
  args: Val[];
}

/** How a sequence is run: on the child's main thread, or in a worker that is terminated after `terminateAt` commands. */
export interface Sequence {
  mode: 'main' | 'worker';
  /** Worker mode: the worker is terminated (holding what it holds) once this many commands have run. */
  terminateAt?: number;
  /**
   * Worker mode: terminate it while it is still running (as soon as it starts
   * command `terminateAt`), instead of once it has stopped and reported.
   */
  busy?: boolean;
  cmds: Cmd[];
}

/** Weights per op, adjusted to the target: display ops matter on displays, edu ops on edu. */
function weightOn(op: OpDef, spec: TargetSpec): number {
  const w = op.weight ?? 1;
  if (/^(edu\.|EduDriver)/.test(op.name)) return spec.driver === 'vfio-pci' ? w : w * 0.1;
  if (/Gfx|captureDisplay|dmabuf\./.test(op.name)) return spec.driver === 'mdpy' || spec.driver === 'mbochs' ? w : w * 0.3;
  return w;
}

export function commandArb(spec: TargetSpec, only?: (op: OpDef) => boolean): fc.Arbitrary<Cmd> {
  const ops = OPS.filter((o) => !only || only(o));
  return fc.oneof(
    ...ops.map((op) => ({
      weight: Math.max(1, Math.round(10 * weightOn(op, spec))),
      arbitrary: fc.tuple(op.args(spec), fc.nat({ max: 3 })).map(([args, on]): Cmd => (op.on ? { op: op.name, on, args } : { op: op.name, args })),
    })),
  );
}

/** The usual opening: the target on the run's backend, as a user would open it. */
export const OPEN_TARGET: Cmd = { op: 'openDevice', args: [target('name'), { t: 'obj', v: { backend: target('backend') } }] };

/**
 * What a sequence concentrates on. Calls interact through the objects they
 * share, so a sequence drawn from one area (the device and its regions,
 * views and interrupts; the DMA spaces; the rest) meets the interesting
 * interleavings far more often than one drawn from the whole table.
 */
export const FOCUS: Record<string, (op: OpDef) => boolean> = {
  any: () => true,
  device: (op) => /^(openDevice|opened\.|device\.|region\.|view\.|irqs\.|dmabuf\.|group\.openDevice|captureDisplay|tick|pending\.|edu\.|EduDriver)/.test(op.name),
  dma: (op) => /^(openDevice|opened\.|Container|container\.|Group|group\.|IommuFd|iommufd\.|ioas\.|hwpt\.|allocDmaBuffer|buffer\.|new DmaMapper|mapper\.|new IovaAllocator|iova\.|device\.(bind|attach|detach|close))/.test(op.name),
  rest: (op) => /^(uapi\.|cli|new MdevBus|bus\.|createEventFd|eventfd\.|tick|resolveDevice|findEdu|boundDriver|cdevDeviceName|heldCount|openDevice)/.test(op.name),
};

/**
 * A sequence: usually the target opened first, then `maxCommands` or fewer
 * commands, all from one focus (or from anywhere). Worker sequences get a
 * point at which the worker is terminated.
 */
export function sequenceArb(spec: TargetSpec, maxCommands: number, worker: boolean): fc.Arbitrary<Sequence> {
  const focused = (f: (op: OpDef) => boolean): fc.Arbitrary<Cmd[]> =>
    // The opening is there 9 times in 10; it shrinks away (towards 0) when it is not needed.
    fc
      .tuple(fc.integer({ min: 0, max: 9 }), fc.array(commandArb(spec, f), { minLength: 0, maxLength: maxCommands, size: 'max' }))
      .map(([open, rest]) => (open > 0 ? [OPEN_TARGET, ...rest] : rest));
  const cmds = fc.oneof(
    { weight: 3, arbitrary: focused(FOCUS.device!) },
    { weight: 2, arbitrary: focused(FOCUS.any!) },
    { weight: 2, arbitrary: focused(FOCUS.dma!) },
    { weight: 1, arbitrary: focused(FOCUS.rest!) },
  );
  if (!worker) return cmds.map((c): Sequence => ({ mode: 'main', cmds: c }));
  return fc.tuple(cmds, fc.nat({ max: 1000 }), fc.boolean()).map(([c, k, busy]): Sequence => ({ mode: 'worker', terminateAt: c.length ? 1 + (k % c.length) : 0, ...(busy ? { busy } : {}), cmds: c }));
}
