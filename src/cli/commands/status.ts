import { Command } from 'commander';
import { listJobNames } from '../../config/project.ts';
import { ConveyError, isConveyError } from '../../errors.ts';
import { didYouMean } from '../../config/did-you-mean.ts';
import type { Db } from '../../state/db.ts';
import { countOpen } from '../../state/sql/ledger.ts';
import { countOpenRejects } from '../../state/sql/rejects.ts';
import { lastRuns, liveRun, runJobs, type RunRecord } from '../../state/sql/runs.ts';
import { readWatermark } from '../../state/sql/watermarks.ts';
import { parseInstant, toEpochMillis } from '../../time/instant.ts';
import { projectFrom, withProjectOption, withStateReadOnly, type CommonFlags } from '../context.ts';
import type { CliIO } from '../io.ts';
import { formatDuration } from '../output.ts';

export interface JobStatus {
  job: string;
  watermark: string | null;
  /** Seconds between the watermark and now: how far behind the job is. */
  lagSeconds: number | null;
  running: { runId: number; mode: string; pid: number; host: string; startedAt: string | null } | null;
  /** Conversions that failed (or were deferred by a stop) and wait for the next run or `convey retry`. */
  failed: number;
  /** Conversions left pending by a run that died; the next run resends them. */
  inDoubt: number;
  /** Rejects not yet replayed or resolved. */
  rejects: number;
  lastRuns: Array<{
    runId: number;
    mode: string;
    status: string;
    startedAt: string | null;
    finishedAt: string | null;
    durationMs: number | null;
    window: { start: string | null; end: string | null };
    counts: Record<string, number>;
    error: string | null;
    note: string | null;
  }>;
}

const LAST_RUNS = 5;

export function statusCommand(io: CliIO): Command {
  return withProjectOption(
    new Command('status')
      .description('Per job: the watermark and lag, the last runs, failed conversions waiting, open rejects, and whether a run holds it now.')
      .argument('[job]', 'one job (default: every job in jobs/ and in the history)')
      .option('--json', 'print { jobs: [{ job, watermark, lagSeconds, running, failed, rejects, lastRuns }] }'),
  ).action(async (name: string | undefined, flags: CommonFlags) => {
    const project = projectFrom(io, flags);
    let jobs: JobStatus[];
    // Set when the embedded store was held: only the holder is known, from its lock file.
    let heldBy: string | undefined;
    try {
      jobs = await withStateReadOnly(io, project, 'convey status', async (store) => {
        const known = [...new Set([...listJobNames(project), ...(store ? await runJobs(store.db) : [])])].sort();
        // A mistyped name would otherwise read as a job that never ran, with exit 0.
        if (name && !known.includes(name)) throw unknownJob(name, known);
        const names = name ? [name] : known;
        return Promise.all(names.map((job) => (store ? jobStatus(store.db, job, Date.now()) : emptyStatus(job))));
      });
    } catch (error) {
      // The embedded store is held by a running convey: say who, from its lock file.
      if (!isConveyError(error, 'JOB_LOCKED')) throw error;
      const holder = (error.details?.holder ?? {}) as { job?: string; runId?: number; pid?: number; host?: string; startedAt?: string; command?: string };
      io.logger.warn(error.message, { hint: 'Details are available when that run has finished (the embedded store serves one process).' });
      heldBy = `pid ${holder.pid ?? '?'} on ${holder.host ?? '?'}`;
      const names = name ? [name] : listJobNames(project);
      jobs = names.map((job) => ({
        ...emptyStatus(job),
        running: holder.job === job ? { runId: holder.runId ?? 0, mode: holder.command ?? 'run', pid: holder.pid ?? 0, host: holder.host ?? '', startedAt: holder.startedAt ?? null } : null,
      }));
    }
    io.stdout.write(flags.json ? JSON.stringify({ jobs }) + '\n' : jobs.map((s) => formatStatus(s, heldBy)).join('\n'));
  });
}

function unknownJob(name: string, known: string[]): ConveyError {
  const guess = didYouMean(name, known);
  return new ConveyError('CONFIG_INVALID', `job "${name}" not found: not in jobs/ and never run`, {
    hint: guess ? `Did you mean "${guess}"?` : known.length ? `Known jobs: ${known.join(', ')}.` : 'No job is defined in jobs/ yet.',
  });
}

async function jobStatus(db: Db, job: string, now: number): Promise<JobStatus> {
  const [watermark, live, open, rejects, runs] = await Promise.all([readWatermark(db, job), liveRun(db, job), countOpen(db, job), countOpenRejects(db, job), lastRuns(db, job, LAST_RUNS)]);
  return {
    job,
    watermark: watermark ?? null,
    lagSeconds: watermark ? Math.round((now - toEpochMillis(watermark)) / 1000) : null,
    running: live ? { runId: live.id, mode: live.mode, pid: live.pid, host: live.host, startedAt: iso(live.startedAt) } : null,
    failed: open.failed + open.deferred,
    inDoubt: open.inDoubt,
    rejects,
    lastRuns: runs.map(runLine),
  };
}

function emptyStatus(job: string): JobStatus {
  return { job, watermark: null, lagSeconds: null, running: null, failed: 0, inDoubt: 0, rejects: 0, lastRuns: [] };
}

function runLine(r: RunRecord): JobStatus['lastRuns'][number] {
  const started = iso(r.startedAt);
  const finished = iso(r.finishedAt);
  return {
    runId: r.id,
    mode: r.mode,
    status: r.status,
    startedAt: started,
    finishedAt: finished,
    durationMs: started && finished ? Date.parse(finished) - Date.parse(started) : null,
    window: { start: iso(r.windowStart), end: iso(r.windowEnd) },
    counts: r.counts,
    error: r.error,
    note: r.note,
  };
}

const iso = (text: string | null): string | null => (text ? (parseInstant(text) ?? text) : null);

function formatStatus(s: JobStatus, heldBy: string | undefined): string {
  const running = `  running    ${s.running ? `run ${s.running.runId} (${s.running.mode}, pid ${s.running.pid} on ${s.running.host}, since ${s.running.startedAt})` : 'no'}`;
  if (heldBy) {
    // Nothing was read: "(none yet)" and "0 failed" would read as a job that never ran.
    return `${s.job}\n  watermark  unknown: the embedded store is held by ${heldBy} (run convey status when it has finished)\n${running}\n`;
  }
  const lines = [`${s.job}`];
  lines.push(`  watermark  ${s.watermark ?? '(none yet)'}${s.lagSeconds !== null ? `  (${formatDuration(s.lagSeconds * 1000)} behind now)` : ''}`);
  lines.push(running);
  lines.push(`  waiting    ${s.failed} failed${s.inDoubt ? `, ${s.inDoubt} in doubt` : ''} (sent first by the next run; convey retry ${s.job} sends them now)`);
  lines.push(`  rejects    ${s.rejects} open${s.rejects ? ` (convey rejects ${s.job})` : ''}`);
  if (s.lastRuns.length) lines.push('  last runs');
  for (const r of s.lastRuns) {
    const c = r.counts;
    const counts = r.mode === 'state' ? (r.note ?? '') : `read ${c.read ?? 0}, sent ${c.sent ?? 0}, already ${c.alreadySent ?? 0}, rejected ${c.rejected ?? 0}, failed ${c.failed ?? 0}`;
    lines.push(`    ${String(r.runId).padStart(4)} ${r.mode.padEnd(8)} ${r.status.padEnd(11)} ${r.startedAt ?? ''}  ${r.durationMs !== null ? formatDuration(r.durationMs).padEnd(9) : ''.padEnd(9)} ${counts}${r.error ? `  error: ${r.error.split('\n')[0]}` : ''}`);
  }
  return lines.join('\n') + '\n';
}
