// Summarises a V8 .cpuprofile (node --cpu-prof): self time by function and by package, so
// "where does the time go" is a table, not a flame graph to squint at.
//
//   node bench/profile-summary.mjs <file.cpuprofile> [top=30]

import { readFileSync } from 'node:fs';

/** Which bucket a frame's self time belongs to. */
export function category(url, functionName) {
  if (!url) {
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(idle)') return 'idle (waiting on I/O)';
    if (functionName === '(program)') return 'V8/native (program)';
    return `native ${functionName}`;
  }
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (pkg) return pkg[1];
  const own = /\/dist\/(?:src\/)?([^/]+)\//.exec(url);
  if (own) return `convey ${own[1]}/`;
  if (/\/dist\//.test(url)) return 'convey';
  if (url.startsWith('node:')) {
    const m = /^node:(internal\/)?([^/]+)/.exec(url);
    return `node:${m[2]}`;
  }
  return url;
}

export function summarise(profile) {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i];
    const dt = profile.timeDeltas[i] ?? 0;
    self.set(id, (self.get(id) ?? 0) + dt);
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const byFunction = new Map();
  const byCategory = new Map();
  for (const [id, us] of self) {
    const { callFrame } = nodes.get(id);
    const where = callFrame.url ? `${callFrame.url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${callFrame.lineNumber + 1}` : '';
    const key = `${callFrame.functionName || '(anonymous)'} ${where}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
    const cat = category(callFrame.url, callFrame.functionName);
    byCategory.set(cat, (byCategory.get(cat) ?? 0) + us);
  }
  // Inclusive time: each sample counts once for every distinct function on its stack.
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const label = (id) => {
    const { callFrame } = nodes.get(id);
    const where = callFrame.url ? `${callFrame.url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${callFrame.lineNumber + 1}` : '';
    return `${callFrame.functionName || '(anonymous)'} ${where}`;
  };
  const inclusive = new Map();
  for (const [id, us] of self) {
    const seen = new Set();
    for (let at = id; at !== undefined; at = parent.get(at)) seen.add(label(at));
    for (const key of seen) inclusive.set(key, (inclusive.get(key) ?? 0) + us);
  }
  const sorted = (m) => [...m.entries()].sort((a, b) => b[1] - a[1]);
  return { totalMs: total / 1000, byFunction: sorted(byFunction), byCategory: sorted(byCategory), inclusive: sorted(inclusive) };
}

export function printSummary(file, top = 30) {
  const s = summarise(JSON.parse(readFileSync(file, 'utf8')));
  const busy = s.totalMs - (s.byCategory.find(([c]) => c.startsWith('idle'))?.[1] ?? 0) / 1000;
  console.log(`\n${file}: ${(s.totalMs / 1000).toFixed(2)} s sampled, ${(busy / 1000).toFixed(2)} s busy (not idle)`);
  console.log('\nself time by package / convey folder:');
  for (const [cat, us] of s.byCategory.slice(0, 25)) {
    console.log(`  ${(us / 1000 / 1000).toFixed(2).padStart(7)} s  ${((us / 1000 / s.totalMs) * 100).toFixed(1).padStart(5)}%  ${((us / 1000 / busy) * 100).toFixed(1).padStart(5)}% of busy  ${cat}`);
  }
  console.log(`\ntop ${top} functions by self time:`);
  for (const [fn, us] of s.byFunction.slice(0, top)) {
    console.log(`  ${(us / 1000).toFixed(0).padStart(7)} ms  ${((us / 1000 / s.totalMs) * 100).toFixed(1).padStart(5)}%  ${fn}`);
  }
  console.log(`\nconvey functions by inclusive time (self + callees):`);
  for (const [fn, us] of s.inclusive.filter(([fn]) => fn.includes('dist/src/')).slice(0, top)) {
    console.log(`  ${(us / 1000).toFixed(0).padStart(7)} ms  ${((us / 1000 / s.totalMs) * 100).toFixed(1).padStart(5)}%  ${fn}`);
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop())) {
  const [file, top] = process.argv.slice(2);
  if (!file) {
    console.error('usage: node bench/profile-summary.mjs <file.cpuprofile> [top]');
    process.exit(2);
  }
  printSummary(file, Number(top ?? 30));
}
