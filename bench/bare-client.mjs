// The machine's limit for classic sends: a bare undici Pool, nothing else (no database, no
// ledger, no retries, no rate), sending `count` GETs shaped like convey's classic calls at a fixed
// concurrency. Run as its own process, like convey, so both pay for one event loop each.
//
//   node bench/bare-client.mjs <origin> <count> <concurrency>
//
// Prints one JSON line: { requests, ok, ms } (ms from the first request to the last answer).

import { Pool } from 'undici';
import { EXPERIMENTS_JSON, FIRST_AT, SPAN_DAYS, VISITORS } from './lib.mjs';

const [origin, countArg, concurrencyArg] = process.argv.slice(2);
const count = Number(countArg);
const concurrency = Number(concurrencyArg);
if (!origin || !(count > 0) || !(concurrency > 0)) {
  console.error('usage: node bench/bare-client.mjs <origin> <count> <concurrency>');
  process.exit(2);
}

// The same rows as seedConversions, encoded the way optimizely-classic encodes them.
const [[experimentId, variationId]] = Object.entries(JSON.parse(EXPERIMENTS_JSON));
const first = Date.parse(FIRST_AT);
const stepMs = (SPAN_DAYS * 86_400_000) / count;
const paths = new Array(count);
for (let i = 0; i < count; i++) {
  const g = i + 1;
  const refund = g % 4 === 0;
  const time = Math.floor((first + (g - 1) * stepMs) / 1000);
  const revenue = g % 10 === 0 ? '' : `&v=${1000 + (g % 50_000)}`;
  paths[i] =
    `/event?a=1234567&n=${refund ? 'phone_refund' : 'phone_order'}&u=visitor-${g % VISITORS}` +
    `&x${experimentId}=${variationId}${revenue}&g=${refund ? '20002' : '20001'}&time=${time}&src=convey-0.1.0`;
}

const pool = new Pool(origin, { connections: concurrency, pipelining: 1 });
let next = 0;
let ok = 0;
const started = performance.now();
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (next < count) {
      const path = paths[next++];
      const { statusCode, body } = await pool.request({ path, method: 'GET' });
      await body.dump();
      if (statusCode === 200) ok++;
    }
  }),
);
const ms = performance.now() - started;
await pool.close();
console.log(JSON.stringify({ requests: count, ok, ms }));
