import type { TestProject } from './project.ts';

const DAY = 86_400_000;

export interface PastRun {
  /** The run's window is the day that ended this many days before `now`. */
  daysAgo: number;
  read: number;
  rejected?: number;
  /** How far its watermark was behind when it started (default: a day and ten minutes, a nightly run). */
  lagAtStartMs?: number;
}

/**
 * Writes a job's run history straight into the state store, as a nightly job would have left
 * it: each run read the day before it, started ten minutes after that day ended (the lag at its
 * start is a day and ten minutes), took a minute, and moved the watermark to its window's end.
 * Then sets the job's watermark to `watermarkMs`, so the next run reads [watermarkMs, now).
 */
export async function writeHistory(project: TestProject, job: string, now: number, runs: readonly PastRun[], watermarkMs: number): Promise<number[]> {
  const migrate = await project.cli(['migrate']);
  if (migrate.code !== 0) throw new Error(migrate.stderr);
  const iso = (ms: number): string => new Date(ms).toISOString();
  const rows = runs.map((r) => {
    const end = now - r.daysAgo * DAY;
    const started = end + 10 * 60_000;
    return {
      windowStart: iso(end - DAY),
      windowEnd: iso(end),
      started: iso(started),
      finished: iso(started + 60_000),
      before: iso(started - (r.lagAtStartMs ?? DAY + 10 * 60_000)),
      counts: JSON.stringify({ read: r.read, sent: r.read - (r.rejected ?? 0), rejected: r.rejected ?? 0, alreadySent: 0, failed: 0, deferred: 0, skipped: 0, retried: 0, resent: 0, requests: 1 }),
    };
  });
  const { rows: inserted } = await project.db.stateSql(
    `insert into convey.runs (job, mode, status, started_at, finished_at, window_start, window_end, watermark_before, watermark_after, counts, convey_version, host, pid, warnings)
     select $1, 'run', 'succeeded', t.started, t.finished, t.ws, t.we, t.before, t.we, t.counts, 'test', 'fixture', 0, '[]'
       from unnest($2::timestamptz[], $3::timestamptz[], $4::timestamptz[], $5::timestamptz[], $6::timestamptz[], $7::jsonb[])
            as t(started, finished, ws, we, before, counts)
      order by t.started
     returning id::int as id`,
    [job, rows.map((r) => r.started), rows.map((r) => r.finished), rows.map((r) => r.windowStart), rows.map((r) => r.windowEnd), rows.map((r) => r.before), rows.map((r) => r.counts)],
  );
  const ids = inserted.map((r: { id: number }) => r.id);
  await project.db.stateSql(`insert into convey.watermarks (job, value, run_id) values ($1, $2, $3)`, [job, iso(watermarkMs), ids.at(-1)]);
  return ids;
}

/** `n` rows spread evenly over [fromMs, toMs), ids prefixed. */
export function rowsBetween(n: number, fromMs: number, toMs: number, prefix = 'r'): Array<{ id: string; at: string; visitor: string; event_id: string; event_key: string; revenue: number; experiments: string }> {
  return Array.from({ length: n }, (_, i) => ({
    id: `${prefix}${String(i + 1).padStart(5, '0')}`,
    at: new Date(fromMs + Math.floor(((i + 0.5) * (toMs - fromMs)) / n)).toISOString(),
    visitor: `v${i + 1}`,
    event_id: '111',
    event_key: 'purchase',
    revenue: 100 + i,
    experiments: '{"987654321": "1111111"}',
  }));
}
