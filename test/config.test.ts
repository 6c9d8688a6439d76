import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { interpolate } from '../src/config/interpolate.ts';
import { CONVERSIONS_SQL, eventsJob, projectWithRows, rows, withReceiver } from './helpers/fixtures.ts';

test('a default may itself read the environment, and a set variable is never followed by a stray brace', (t) => {
  const value = '${WAREHOUSE_URL:-${DATABASE_URL}}';
  t.is(interpolate(value, { WAREHOUSE_URL: 'postgres://w/db' }, 'f.json'), 'postgres://w/db');
  t.is(interpolate(value, { DATABASE_URL: 'postgres://d/db' }, 'f.json'), 'postgres://d/db');
  t.is(interpolate('${A:-${B:-x}}/${C:-y}', {}, 'f.json'), 'x/y');
  t.throws(() => interpolate({ c: value }, {}, 'config/default.json'), { message: 'config/default.json: c reads ${DATABASE_URL}, which is not set' });
  // What POSIX shells do: a default ends at the first brace that closes it.
  t.is(interpolate('${A:-x}y}', {}, 'f.json'), 'xy}');
  t.is(interpolate('${A:-a:-b}', {}, 'f.json'), 'a:-b');
});

test('a reference convey cannot read is an error naming the key, not text sent as it is', (t) => {
  for (const text of ['${A-x}', '${ A }', '${A', 'pre-${A:-x']) {
    const error = t.throws(() => interpolate({ sources: { w: { connection: text } } }, { A: 'a' }, 'config/default.json'), { message: /^config\/default\.json: sources\.w\.connection/ });
    t.regex(error?.message ?? '', /\$\{NAME\} or \$\{NAME:-default\}/, text);
  }
});

test('job files saved with a byte order mark (Windows editors) are read like any other', async (t) => {
  const project = await projectWithRows(t, rows(3));
  await withReceiver({ protocol: 'events' }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver));
    const bom = '\uFEFF';
    for (const file of ['orders.json', 'orders.sql']) {
      const path = join(project.dir, 'jobs', file);
      writeFileSync(path, bom + readFileSync(path, 'utf8'));
    }
    const configPath = join(project.dir, 'config', 'default.json');
    writeFileSync(configPath, bom + readFileSync(configPath, 'utf8'));
    const plan = await project.cli(['plan', 'orders', '--json']);
    t.is(plan.code, 0, plan.stderr);
    t.like(plan.json(), { read: 3, wouldSend: 3 });
  });
});
