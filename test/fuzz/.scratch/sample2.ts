import fc from 'fast-check';
import { sequenceArb } from '../ops/index.ts';
import { SPECS } from '../targets.ts';
const spec = SPECS['vfio-pci'];
const s = fc.sample(sequenceArb(spec, 40, false), { seed: 1, numRuns: 400 });
let n = 0; for (const q of s) n += q.cmds.length;
const ops = new Map<string, number>();
for (const q of s) for (const c of q.cmds) ops.set(c.op, (ops.get(c.op) ?? 0) + 1);
console.log('cmds', n, [...ops].sort((a, b) => b[1] - a[1]).slice(0, 20).map(([k, v]) => `${k}:${v}`).join(' '));
// sequences with region.write16 on a slot and later mmap + view read
let hits = 0;
for (const q of s) { const i = q.cmds.findIndex((c) => c.op === 'region.write16'); if (i >= 0 && q.cmds.slice(i).some((c) => c.op === 'device.mmap') && q.cmds.slice(i).some((c) => c.op.startsWith('view.read'))) hits++; }
console.log('write16 then mmap then view.read in', hits, 'of', s.length);
