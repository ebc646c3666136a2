// Races another process over the same definitions (issue 17):
//   node --import tsx definitions-race.ts define <dir> <label> <go-file> <count>
//     defines UUIDs 0 … count-1 on parent 'mtty', each with this process's label
//     as type and attribute, and prints one JSON array: 'won' or the error code per UUID.
//   node --import tsx definitions-race.ts modify <dir> <uuid> <go-file> <count>
//     replaces the definition <dir>/mtty/<uuid> count times, alternating a short
//     and a long attribute list, and prints the number of replacements.
// Both say 'ready' on stderr, then wait for <go-file> to exist, so that two children start together.
import { existsSync } from 'node:fs';
import { MdevDefinitionStore } from '../../../src/mdev/definitions.js';

const [mode, dir, arg, go, count] = process.argv.slice(2);
if (!dir || !arg || !go || !count || (mode !== 'define' && mode !== 'modify')) {
  console.error('usage: definitions-race.ts define|modify <dir> <label|uuid> <go-file> <count>');
  process.exit(2);
}
const store = new MdevDefinitionStore(dir);
const sleeper = new Int32Array(new SharedArrayBuffer(4));
process.stderr.write('ready\n');
while (!existsSync(go)) Atomics.wait(sleeper, 0, 0, 1);

/** The UUID of round `i`. */
const raceUuid = (i: number): string => `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;

if (mode === 'define') {
  const out: string[] = [];
  for (let i = 0; i < Number(count); i++) {
    try {
      store.create({ uuid: raceUuid(i), parent: 'mtty', type: `type-${arg}`, start: 'manual', attrs: [{ name: 'who', value: arg }] });
      out.push('won');
    } catch (e) {
      out.push((e as { code?: string }).code ?? String(e));
    }
  }
  process.stdout.write(JSON.stringify(out));
} else {
  const short = [{ name: 'a', value: '1' }];
  const long = Array.from({ length: 200 }, (_, i) => ({ name: `attr${i}`, value: 'x'.repeat(50) }));
  let n = 0;
  for (; n < Number(count); n++) {
    const def = store.read('mtty', arg);
    if (!def) throw new Error(`${arg} is not defined`);
    store.replace(def, { type: def.type, start: def.start, attrs: n % 2 ? short : long });
  }
  process.stdout.write(String(n));
}
