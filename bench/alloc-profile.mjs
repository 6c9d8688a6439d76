// Allocation by function inside a convey process, young garbage included: load with
// `node --import ./bench/alloc-profile.mjs bin/convey.js …`. V8's sampling heap profiler samples
// one allocation every 32 KB on average (each sample stands for the bytes around it) and, with the
// two flags below, keeps the samples of objects collected since, which is most of what a run
// allocates. At exit it writes BENCH_ALLOC_OUT (default /tmp/convey-alloc.json): total bytes and
// the top functions by bytes allocated in their own frames. bench/profile.mjs reads it.

import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';

const session = new Session();
session.connect();
const post = (method, params) =>
  new Promise((resolve, reject) => session.post(method, params, (error, result) => (error ? reject(error) : resolve(result))));

await post('HeapProfiler.enable');
await post('HeapProfiler.startSampling', { samplingInterval: 32768, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });

let written = false;
const finish = () => {
  if (written) return;
  written = true;
  // The inspector answers synchronously inside post() when called from the main thread at exit.
  session.post('HeapProfiler.stopSampling', (error, result) => {
    if (error) return;
    const self = new Map();
    let total = 0;
    const walk = (node) => {
      const size = node.selfSize;
      if (size) {
        const { functionName, url, lineNumber } = node.callFrame;
        const key = `${functionName || '(anonymous)'} ${url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${lineNumber + 1}`;
        self.set(key, (self.get(key) ?? 0) + size);
        total += size;
      }
      for (const child of node.children) walk(child);
    };
    walk(result.profile.head);
    const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 40).map(([fn, bytes]) => ({ fn, bytes }));
    writeFileSync(process.env.BENCH_ALLOC_OUT ?? '/tmp/convey-alloc.json', JSON.stringify({ total, top }));
  });
};
process.on('exit', finish);
