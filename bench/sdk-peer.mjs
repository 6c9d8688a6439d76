// The peer convey is compared with on the Event API: the script a team would write around
// Optimizely's own JavaScript SDK (@optimizely/optimizely-sdk, pinned at 6.6.1 in
// devDependencies) to upload the same conversions. It reads the rows from PostgreSQL with
// pg-cursor, calls track() for each with the SDK's batch event processor (1,000 events per
// request, flushed every 100 ms), yields to the event loop every 100 calls so the processor can
// send as it goes, and posts each batch with an undici dispatcher to `receiverUrl` (the SDK's own
// URL is logx.optimizely.com; the benchmark points it at the local receiver).
//
// What it does not do, and convey does: the SDK stamps each event "now" and a random uuid (a
// conversion cannot be backdated, and a resend is a second conversion), it keeps no record of
// what it sent (a crash or a rerun sends everything again), it drops a batch after two retries,
// and it checks nothing in the rows.
//
//   node bench/sdk-peer.mjs <sourceUrl> <table> <receiverUrl>
//
// Prints one JSON line: { tracked, dispatched, failed, ms } (ms from the first row read to the last
// answer).

import { createBatchEventProcessor, createInstance, createStaticProjectConfigManager } from '@optimizely/optimizely-sdk';
import pg from 'pg';
import Cursor from 'pg-cursor';
import { request } from 'undici';

const [sourceUrl, table, receiverUrl] = process.argv.slice(2);
if (!sourceUrl || !/^[a-z_][a-z0-9_]*$/.test(table ?? '') || !receiverUrl) {
  console.error('usage: node bench/sdk-peer.mjs <sourceUrl> <table> <receiverUrl>');
  process.exit(2);
}

// The least a datafile needs for track(): the account, the project and the events' keys and ids.
const datafile = {
  version: '4',
  revision: '1',
  accountId: '1234567',
  projectId: '1234567',
  anonymizeIP: true,
  botFiltering: false,
  events: [
    { key: 'phone_order', id: '20001', experimentIds: [] },
    { key: 'phone_refund', id: '20002', experimentIds: [] },
  ],
  experiments: [],
  featureFlags: [],
  rollouts: [],
  groups: [],
  attributes: [],
  audiences: [],
  typedAudiences: [],
  integrations: [],
};

let dispatched = 0;
let failed = 0;
const eventDispatcher = {
  async dispatchEvent(event) {
    const { statusCode, body } = await request(receiverUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(event.params),
    });
    await body.dump();
    if (statusCode >= 200 && statusCode < 300) dispatched += event.params.visitors.length;
    else failed += event.params.visitors.length;
    return { statusCode };
  },
};

const client = createInstance({
  projectConfigManager: createStaticProjectConfigManager({ datafile: JSON.stringify(datafile) }),
  eventProcessor: createBatchEventProcessor({ eventDispatcher, batchSize: 1000, flushInterval: 100 }),
});
await client.onReady();

const db = new pg.Client({ connectionString: sourceUrl });
await db.connect();
const started = performance.now();
const cursor = db.query(new Cursor(`select id, visitor, event_key, revenue from ${table}`));
let tracked = 0;
for (;;) {
  const rows = await cursor.read(1000);
  if (!rows.length) break;
  for (const row of rows) {
    client.track(row.event_key, row.visitor, undefined, row.revenue === null ? undefined : { revenue: row.revenue });
    if (++tracked % 100 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
}
await cursor.close();
await db.end();
// close() flushes what is queued and waits for every batch in flight.
await client.close();
const ms = performance.now() - started;
console.log(JSON.stringify({ tracked, dispatched, failed, ms }));
