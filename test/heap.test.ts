import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test from 'ava';
import { YOUNG_GENERATION_BYTES } from '../src/cli/heap.ts';

const heapModule = fileURLToPath(new URL('../src/cli/heap.ts', import.meta.url));

/**
 * The largest young generation a node process reaches while it allocates as a run does (a stream
 * of short-lived objects, some kept a while), with convey's cap or without it.
 */
async function youngGenerationPeak(capped: boolean): Promise<number> {
  const script = `
    import { getHeapSpaceStatistics } from 'node:v8';
    ${capped ? `const { capYoungGeneration } = await import(${JSON.stringify(heapModule)}); capYoungGeneration();` : ''}
    let peak = 0;
    let kept = [];
    for (let i = 0; i < 4_000_000; i++) {
      const row = { id: 'c' + i, at: i * 1000, payload: 'x'.repeat(i % 50) + i };
      if (i % 4 === 0) kept.push(row);
      if (kept.length > 60_000) kept = [];
      if (i % 20_000 === 0) {
        // Let the GC observer run, as the event loop does between a run's batches.
        await new Promise((resolve) => setImmediate(resolve));
        peak = Math.max(peak, getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size);
      }
    }
    process.stdout.write(String(peak));`;
  const { stdout } = await promisify(execFile)(process.execPath, ['--import=tsx', '--input-type=module', '-e', script], { timeout: 60_000 });
  return Number(stdout);
}

test('the young generation stops growing at the cap, where V8 alone grows it further', async (t) => {
  const [uncapped, capped] = await Promise.all([youngGenerationPeak(false), youngGenerationPeak(true)]);
  t.true(uncapped > 1.5 * YOUNG_GENERATION_BYTES, `without the cap V8 grew it to ${uncapped} bytes (this test needs it to pass the cap to mean anything)`);
  // Node 20's and 22's V8 double it, to exactly the cap; Node 24's grows it in smaller steps, and
  // the step that reaches the cap may pass it (19.75–20.25 MiB, where V8 alone takes it to 128).
  t.true(capped <= 1.5 * YOUNG_GENERATION_BYTES, `with the cap: ${capped} bytes, cap ${YOUNG_GENERATION_BYTES}`);
});

/**
 * V8's peak malloc (compiler zones among it) in a node process that makes 50 HTTP requests through
 * undici, as the delivery engine does, with convey's wasm setting or without it.
 */
async function peakMallocOfRequests(baseline: boolean): Promise<number> {
  const script = `
    import { createServer } from 'node:http';
    import { getHeapStatistics } from 'node:v8';
    import { Agent, request } from 'undici';
    ${baseline ? `const { keepWasmOnBaseline } = await import(${JSON.stringify(heapModule)}); keepWasmOnBaseline();` : ''}
    const server = createServer((req, res) => { req.resume(); req.on('end', () => res.end('{}')); });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    const agent = new Agent();
    for (let i = 0; i < 50; i++) {
      const answer = await request('http://127.0.0.1:' + server.address().port + '/', { dispatcher: agent, method: 'POST', body: 'x'.repeat(1000) });
      await answer.body.text();
    }
    // The tier-up compiles on a background thread: give it time to happen.
    await new Promise((resolve) => setTimeout(resolve, 500));
    await agent.close();
    server.close();
    process.stdout.write(String(getHeapStatistics().peak_malloced_memory));`;
  const { stdout } = await promisify(execFile)(process.execPath, ['--import=tsx', '--input-type=module', '-e', script], { timeout: 60_000 });
  return Number(stdout);
}

test("undici's HTTP parser stays on the baseline wasm compiler, without the 35–40 MB TurboFan compilation", async (t) => {
  const [tieredUp, baseline] = await Promise.all([peakMallocOfRequests(false), peakMallocOfRequests(true)]);
  const MB = 2 ** 20;
  t.log(`peak malloc with the setting ${baseline} bytes, without ${tieredUp}`);
  t.true(tieredUp > 20 * MB, `without the setting V8's peak malloc was ${tieredUp} bytes (this test needs the tier-up to happen to mean anything)`);
  // The setting removes the tier-up's compilation, whose size depends on Node's V8 (measured: 36 MB
  // on Node 20, 16 on 22, 22 on 24); what remains is the same in both processes (tsx, undici's JS).
  t.true(tieredUp - baseline > 10 * MB, `with the setting: ${baseline} bytes; without: ${tieredUp}`);
});
