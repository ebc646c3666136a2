import { OPS } from '../ops/index.ts';
const groups = new Map<string, number>();
let total = 0;
for (const o of OPS) {
  const w = o.weight ?? 1;
  total += w;
  const g = o.on ?? o.name.split(/[.(]/)[0]!;
  groups.set(g, (groups.get(g) ?? 0) + w);
}
console.log('ops', OPS.length, 'total weight', total.toFixed(1));
console.log([...groups].sort((a, b) => b[1] - a[1]).map(([g, w]) => `${g}:${(100 * w / total).toFixed(1)}%`).join(' '));
