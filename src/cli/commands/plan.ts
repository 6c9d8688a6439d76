import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import type { JobConfig } from '../../config/project.ts';
import type { Destination } from '../../destinations/destination.ts';
import { ConveyError } from '../../errors.ts';
import { describeJobMapping } from '../../pipeline/checked-batches.ts';
import { planWindow, type PlanResult } from '../../pipeline/plan-window.ts';
import { parseRange } from '../../pipeline/range.ts';
import { ndjsonTransport, type Transport } from '../../pipeline/transport.ts';
import { incrementalWindow } from '../../pipeline/window.ts';
import type { Source } from '../../source/open.ts';
import type { Window } from '../../time/window.ts';
import type { Queryable } from '../../state/db.ts';
import { readWatermark } from '../../state/sql/watermarks.ts';
import { systemClock } from '../../time/clock.ts';
import { nonNegativeInteger, projectFrom, resolveJob, withProjectOption, withSource, withStateReadOnly, type CommonFlags } from '../context.ts';
import type { CliIO } from '../io.ts';

interface PlanFlags extends CommonFlags {
  from?: string;
  to?: string;
  tz?: string;
  out?: string;
  samples: number;
}

export function planCommand(io: CliIO): Command {
  return withProjectOption(
    new Command('plan')
      .description('Show what a run (or a range) would do, without sending or changing anything: for pull requests.')
      .argument('<job>', 'job name')
      .option('--from <date|time>', 'plan a range instead of the next run: first day or time (inclusive)')
      .option('--to <date|time>', 'end of the range (exclusive: --to 2026-04-01 stops at the end of March 31)')
      .option('--tz <zone>', "IANA zone in which dates are whole days (default: the job's timezone, else UTC)")
      .option('--out <file>', 'write every request it would send as NDJSON (method, url, body)')
      .option('--json', 'print { job, window, read, wouldSend, alreadySent, wouldReject, rejectsByReason, … }')
      .addOption(new Option('--samples <n>', 'sample requests to show').default(3).argParser(nonNegativeInteger('--samples')))
      .addHelpText('after', '\nExit code: 0 when the mapping works (rejected rows are listed, not fatal); 2 when it is broken\n(missing or unknown column, SQL error): plan can gate a pull request.'),
  ).action(async (name: string, flags: PlanFlags) => {
    const project = projectFrom(io, flags);
    const { job, resolved } = resolveJob(project, name);
    const result = await withStateReadOnly(io, project, `convey plan ${name}`, (store) =>
      withSource(job, `convey plan ${name}`, async (source) => {
        const window = flags.from || flags.to ? parseRange(flags.from, flags.to, flags.tz ?? job.timezone) : incrementalWindow(job, store ? await readWatermark(store.db, job.name) : undefined, systemClock.now());
        const out = flags.out ? ndjsonTransport(resolve(io.cwd, flags.out)) : undefined;
        try {
          return await planJob({ state: store?.db, source, destination: resolved.destination, job, signal: io.signal, ...(out ? { out } : {}) }, window, flags.samples);
        } finally {
          await out?.close();
        }
      }),
    );
    io.stdout.write(flags.json ? JSON.stringify(result) + '\n' : formatPlan(result, resolved.destination));
  });
}

/** Checks the mapping the way a run does, then counts what the window would do. */
export async function planJob(
  deps: { state: Queryable | undefined; source: Source; destination: Destination; job: JobConfig; signal: AbortSignal; out?: Transport },
  window: Window,
  samples: number,
): Promise<PlanResult> {
  const mapping = await describeJobMapping(deps.source, deps.job, deps.destination, window);
  const result = await planWindow({ ...deps, mapping, clock: systemClock }, window, { samples });
  // A signal stops the reading early and quietly: the counts so far are not the plan, and a
  // pull-request check or a reviewer must not take them for it.
  if (deps.signal.aborted) {
    throw new ConveyError('INTERRUPTED', `stopped by ${String(deps.signal.reason)} before the window was read to its end: no plan`, {
      hint: `Run convey plan ${deps.job.name} again.`,
    });
  }
  return result;
}

function formatPlan(p: PlanResult, destination: Destination): string {
  const n = (v: number): string => v.toLocaleString('en-US');
  const lines = [
    `convey plan ${p.job}: ${destination.label}`,
    `  window        ${p.window.start} → ${p.window.end}`,
    `  read          ${n(p.read)} rows`,
    `  would send    ${n(p.wouldSend)} in ${n(p.requests)} request(s)`,
    `  already sent  ${n(p.alreadySent)}`,
    `  would reject  ${n(p.wouldReject)}`,
  ];
  for (const [code, count] of Object.entries(p.rejectsByReason).sort((a, b) => b[1] - a[1])) {
    lines.push(`    ${code}: ${n(count)}`);
    for (const example of p.rejectExamples[code] ?? []) lines.push(`      ${example.conversionId ?? '(no conversion_id)'}: ${example.reason}`);
  }
  if (p.skipped) lines.push(`  skipped       ${n(p.skipped)}   (failed or pending: the run's retry step sends them)`);
  const open = p.openFromEarlierRuns;
  if (open.failed || open.deferred || open.inDoubt) {
    lines.push(`  sent first    ${n(open.failed)} failed, ${n(open.deferred)} deferred, ${n(open.inDoubt)} in doubt from earlier runs`);
  }
  if (p.samples.length) {
    lines.push('', 'Sample requests:');
    for (const request of p.samples) {
      lines.push(`  ${request.method} ${request.url}`);
      if (request.body) lines.push(indent(JSON.stringify(JSON.parse(request.body), null, 2).split('\n').slice(0, 40).join('\n'), 4));
    }
  }
  return lines.join('\n') + '\n';
}

const indent = (text: string, by: number): string => text.replace(/^/gm, ' '.repeat(by));
