/**
 * One contender of the mdev concurrency tests. Given a plan (JSON on argv:
 * a list of { type, uuid }), it loads the library, prints "ready", and on a
 * "go" line on stdin creates each in order, printing one JSON line of results
 * ({ uuid: 'ok' | errno code }); on a "remove" line it removes what it won and
 * prints one JSON line of those results, then exits.
 */
import { createInterface } from 'node:readline';
import { MdevBus } from 'vfio';

const plan = JSON.parse(process.argv[2]!) as { type: string; uuid: string }[];
const bus = new MdevBus();
const won: string[] = [];
const lines = createInterface({ input: process.stdin });
console.log('ready');
for await (const line of lines) {
  if (line === 'go') {
    const results: Record<string, string> = {};
    for (const { type, uuid } of plan) {
      try {
        await bus.create(type, { uuid, timeoutMs: 20_000 });
        results[uuid] = 'ok';
        won.push(uuid);
      } catch (e) {
        results[uuid] = (e as { code?: string }).code ?? String(e);
      }
    }
    console.log(JSON.stringify(results));
  } else if (line === 'remove') {
    const results: Record<string, string> = {};
    for (const uuid of won) {
      try {
        await bus.remove(uuid, { timeoutMs: 20_000 });
        results[uuid] = 'ok';
      } catch (e) {
        results[uuid] = (e as { code?: string }).code ?? String(e);
      }
    }
    console.log(JSON.stringify(results));
    lines.close();
  }
}
