import { Command } from 'commander';
import { listJobNames } from '../../config/project.ts';
import { ConveyError, isConveyError } from '../../errors.ts';
import { didYouMean } from '../../config/did-you-mean.ts';
import type { Db } from '../../state/db.ts';
import { countOpen } from '../../state/sql/ledger.ts';
import { openBackfillProgress } from '../../state/sql/backfills.ts';
import { selectJobs } from '../../config/select.ts';
import { countOpenRejects } from '../../state/sql/rejects.ts';
import { failureHeadline, type FailureGroup } from '../../pipeline/failures.ts';
import { failingStreak, lastFailedRun, lastFinishedRun, lastRuns, liveRun, runJobs, type RunRecord, type RunStatus } from '../../state/sql/runs.ts';
import { readWatermark } from '../../state/sql/watermarks.ts';
import { parseInstant, toEpochMillis } from '../../time/instant.ts';
import { projectFrom, selectionFrom, withProjectOption, withSelectionOptions, withStateReadOnly, type CommonFlags, type SelectionFlags } from '../context.ts';
import type { CliIO } from '../io.ts';
import { formatStatusDetail, formatStatusTable, type JobStatus } from '../status-view.ts';

const LAST_RUNS = 5;

export function statusCommand(io: CliIO): Command {
  return withProjectOption(
    withSelectionOptions(new Command('status'))
      .description('One line per job (state, last run, lag, failing since, open rejects, warnings); with one job, the detail: watermark, waiting failures, backfill chunks, why the last failed run failed, the last runs.')
      .argument('[jobs...]', 'jobs to show, by name or glob (default: every job in jobs/ and in the history; or --select, --exclude); one job shows its detail')
      .option('--json', 'print { jobs: [{ job, state, watermark, lagSeconds, lastRun, failingSince, failed, rejects, warnings, lastFailure, backfills, lastRuns, … }] }'),
  ).action(async (args: string[], flags: CommonFlags & SelectionFlags) => {
    const project = projectFrom(io, flags);
    const now = Date.now();
    // A pattern or a selection: the jobs of jobs/ it selects. Names: also jobs only in the history.
    const { many, selection } = selectionFrom(args, flags);
    const patterned = flags.select !== undefined || flags.exclude !== undefined || flags.all === true || args.some((a) => /[*?[]|^tag:/.test(a));
    const names = patterned && many ? selectJobs(project, selection) : args;
    let jobs: JobStatus[];
    // Set when the embedded store was held: only the holder is known, from its lock file.
    let heldBy: string | undefined;
    try {
      jobs = await withStateReadOnly(io, project, 'convey status', async (store) => {
        const known = [...new Set([...listJobNames(project), ...(store ? await runJobs(store.db) : [])])].sort();
        // A mistyped name would otherwise read as a job that never ran, with exit 0.
        for (const name of names) if (!known.includes(name)) throw unknownJob(name, known);
        const selected = names.length || patterned ? [...new Set(names)] : known;
        return Promise.all(selected.map((job) => (store ? jobStatus(store.db, job, now) : emptyStatus(job))));
      });
    } catch (error) {
      // The embedded store is held by a running convey: say who, from its lock file.
      if (!isConveyError(error, 'JOB_LOCKED')) throw error;
      const holder = (error.details?.holder ?? {}) as { job?: string; runId?: number; pid?: number; host?: string; startedAt?: string; command?: string };
      io.logger.warn(error.message, { hint: 'Details are available when that run has finished (the embedded store serves one process).' });
      heldBy = `pid ${holder.pid ?? '?'} on ${holder.host ?? '?'}`;
      jobs = (names.length || patterned ? names : listJobNames(project)).map((job) => ({
        ...emptyStatus(job),
        state: holder.job === job ? 'running' : 'unknown',
        running: holder.job === job ? { runId: holder.runId ?? 0, mode: holder.command ?? 'run', pid: holder.pid ?? 0, host: holder.host ?? '', startedAt: holder.startedAt ?? null } : null,
      }));
    }
    if (flags.json) io.stdout.write(JSON.stringify({ jobs }) + '\n');
    else if (names.length === 1 && !patterned) io.stdout.write(formatStatusDetail(jobs[0]!, now, heldBy));
    else io.stdout.write(formatStatusTable(jobs, now));
  });
}

function unknownJob(name: string, known: string[]): ConveyError {
  const guess = didYouMean(name, known);
  return new ConveyError('CONFIG_INVALID', `job "${name}" not found: not in jobs/ and never run`, {
    hint: guess ? `Did you mean "${guess}"?` : known.length ? `Known jobs: ${known.join(', ')}.` : 'No job is defined in jobs/ yet.',
  });
}

async function jobStatus(db: Db, job: string, now: number): Promise<JobStatus> {
  const [watermark, live, open, rejects, runs, last, streak, failedRun, backfills] = await Promise.all([
    readWatermark(db, job),
    liveRun(db, job),
    countOpen(db, job),
    countOpenRejects(db, job),
    lastRuns(db, job, LAST_RUNS),
    lastFinishedRun(db, job),
    failingStreak(db, job),
    lastFailedRun(db, job),
    openBackfillProgress(db, job),
  ]);
  return {
    job,
    state: live ? 'running' : !last ? 'never run' : STATE_OF[last.status],
    watermark: watermark ?? null,
    lagSeconds: watermark ? Math.round((now - toEpochMillis(watermark)) / 1000) : null,
    running: live ? { runId: live.id, mode: live.mode, pid: live.pid, host: live.host, startedAt: iso(live.startedAt) } : null,
    lastRun: last ? { runId: last.id, mode: last.mode, status: last.status, startedAt: iso(last.startedAt), finishedAt: iso(last.finishedAt) } : null,
    failingSince: streak.runs && streak.firstRunId !== null ? { runId: streak.firstRunId, startedAt: iso(streak.since), runs: streak.runs } : null,
    failed: open.failed + open.deferred,
    inDoubt: open.inDoubt,
    rejects,
    warnings: last?.warnings ?? [],
    lastFailure: failedRun ? failureOf(failedRun) : null,
    backfills,
    lastRuns: runs.map(runLine),
  };
}

const STATE_OF: Record<RunStatus, JobStatus['state']> = {
  succeeded: 'ok',
  failed: 'failing',
  crashed: 'crashed',
  interrupted: 'interrupted',
  running: 'running',
};

function failureOf(run: RunRecord): NonNullable<JobStatus['lastFailure']> {
  // Stored by the run from its summary (state/sql/runs.ts keeps it as plain JSON).
  const failures = run.failures as unknown as FailureGroup[];
  return {
    runId: run.id,
    mode: run.mode,
    finishedAt: iso(run.finishedAt),
    headline: (run.status === 'failed' && failureHeadline(failures)) || null,
    error: run.error,
    failures,
  };
}

function emptyStatus(job: string): JobStatus {
  return {
    job,
    state: 'never run',
    watermark: null,
    lagSeconds: null,
    running: null,
    lastRun: null,
    failingSince: null,
    failed: 0,
    inDoubt: 0,
    rejects: 0,
    warnings: [],
    lastFailure: null,
    backfills: [],
    lastRuns: [],
  };
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
