// Wall-clock time per SQL statement inside a convey process, without pg_stat_statements (which
// needs a server restart to preload): load with `node --import ./bench/pg-timing.mjs bin/convey.js …`
// and, at exit, one line `pg-timing <json>` on stderr lists each statement (first words, with
// whitespace collapsed) with its count and total milliseconds from call to answer. Statements run
// on a connection one at a time, so the time includes waiting for the connection's earlier ones.

import { createRequire } from 'node:module';
import { join } from 'node:path';

const require = createRequire(join(process.cwd(), 'noop.js'));
let pg;
try {
  pg = require(require.resolve('pg', { paths: [process.env.BENCH_PG_FROM ?? process.cwd()] }));
} catch {
  pg = undefined;
}
const totals = new Map();
if (pg) {
  const original = pg.Client.prototype.query;
  pg.Client.prototype.query = function query(config, values, callback) {
    const text = typeof config === 'string' ? config : config?.text;
    const result = original.call(this, config, values, callback);
    if (typeof text !== 'string' || !result || typeof result.then !== 'function') return result;
    const started = performance.now();
    const key = text.replace(/\s+/g, ' ').trim().slice(0, 70);
    const done = () => {
      const t = totals.get(key) ?? { count: 0, ms: 0 };
      t.count++;
      t.ms += performance.now() - started;
      totals.set(key, t);
    };
    result.then(done, done);
    return result;
  };
  process.on('exit', () => {
    const list = [...totals.entries()].sort((a, b) => b[1].ms - a[1].ms).map(([sql, t]) => ({ sql, count: t.count, ms: Math.round(t.ms) }));
    process.stderr.write(`\npg-timing ${JSON.stringify(list)}\n`);
  });
}
