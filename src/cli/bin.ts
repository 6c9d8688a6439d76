import { capYoungGeneration, keepWasmOnBaseline, limitHeapGrowth } from './heap.ts';
import { main } from './main.ts';

limitHeapGrowth();
capYoungGeneration();
keepWasmOnBaseline();
const code = await main(process.argv.slice(2));
process.exitCode = code;
// Every command closes its pools and sockets, so the process ends by itself. If a dependency
// keeps a handle open by mistake, this (unreferenced) timer still ends it with the right code.
setTimeout(() => process.exit(code), 10_000).unref();
