import { describeDuration } from '../time/describe.ts';
import type { FailureGroup } from '../pipeline/failures.ts';
import type { BackfillProgress } from '../state/sql/backfills.ts';
import { formatDuration, formatFailures } from './output.ts';
import type { RunWarning } from '../verdict/warning.ts';

/**
 * What `convey status` knows of a job (its --json entry), and the two ways it is shown: one line
 * per job for many jobs, and the detail of one. Kept apart from the command so the same cells
 * can be rendered elsewhere (a Markdown table, a notification).
 */
export interface JobStatus {
  job: string;
  /**
   * At a glance: `ok` (the last run succeeded), `failing`, `crashed`, `interrupted` (the last run's
   * outcome), `running` (a run holds it now), `never run`, or `unknown` (the embedded store is
   * held by a run, so nothing could be read).
   */
  state: 'ok' | 'failing' | 'crashed' | 'interrupted' | 'running' | 'never run' | 'unknown';
  watermark: string | null;
  /** Seconds between the watermark and now: how far behind the job is. */
  lagSeconds: number | null;
  running: { runId: number; mode: string; pid: number; host: string; startedAt: string | null } | null;
  /** The last finished run (a `state` change is not a run). */
  lastRun: { runId: number; mode: string; status: string; startedAt: string | null; finishedAt: string | null } | null;
  /** Failed or crashed runs since the last success: how many, and when the first started. */
  failingSince: { runId: number; startedAt: string | null; runs: number } | null;
  /** Conversions that failed (or were deferred by a stop) and wait for the next run or `convey retry`. */
  failed: number;
  /** Conversions left pending by a run that died; the next run resends them. */
  inDoubt: number;
  /** Rejects not yet replayed or resolved. */
  rejects: number;
  /** The last finished run's verdict warnings (src/verdict/); [] when it got none. */
  warnings: RunWarning[];
  /** Why the last failed (or crashed) run failed: its causes, or the error that stopped it. */
  lastFailure: {
    runId: number;
    mode: string;
    finishedAt: string | null;
    headline: string | null;
    error: string | null;
    failures: FailureGroup[];
  } | null;
  /** Unfinished backfills: chunks done, in progress (by which run, on which host), waiting. */
  backfills: BackfillProgress[];
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

/** "3 h 10 min", "2 d 4 h": coarse on purpose, for a column read at a glance; never negative (a clock a little ahead is "0 s"). */
export const formatAge = (ms: number): string => describeDuration(Math.max(0, ms));

const ago = (iso: string | null, now: number): string => (iso ? `${formatAge(now - Date.parse(iso))} ago` : '');

export const STATUS_COLUMNS = ['job', 'state', 'last run', 'lag', 'failing since', 'rejects', 'warnings'] as const;

/** One job's line, as text cells (the same for the terminal table and any other rendering). */
export function statusCells(s: JobStatus, now: number): Record<(typeof STATUS_COLUMNS)[number], string> {
  const lastRun = s.running
    ? `#${s.running.runId} ${s.running.mode} started ${ago(s.running.startedAt, now)}`
    : s.lastRun
      ? `#${s.lastRun.runId} ${s.lastRun.mode} ${s.lastRun.status} ${ago(s.lastRun.finishedAt ?? s.lastRun.startedAt, now)}`
      : '-';
  const failing = s.failingSince ? `${ago(s.failingSince.startedAt, now)} (${s.failingSince.runs} run${s.failingSince.runs === 1 ? '' : 's'})` : '-';
  // The checks' codes fit a table cell; `convey status <job>` has each warning's sentence.
  const warnings = s.warnings.length ? [...new Set(s.warnings.map((w) => w.check))].join(', ') : '-';
  const unknown = s.state === 'unknown';
  return {
    job: s.job,
    state: s.state,
    'last run': lastRun,
    lag: unknown ? '?' : s.lagSeconds === null ? '-' : formatAge(s.lagSeconds * 1000),
    'failing since': unknown ? '?' : failing,
    rejects: unknown ? '?' : String(s.rejects),
    warnings: unknown ? '?' : warnings,
  };
}

/** `convey status` for several jobs: a header and one aligned line per job. */
export function formatStatusTable(jobs: readonly JobStatus[], now: number): string {
  const rows = [Object.fromEntries(STATUS_COLUMNS.map((c) => [c, c.toUpperCase()])), ...jobs.map((s) => statusCells(s, now))];
  const widths = STATUS_COLUMNS.map((c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => STATUS_COLUMNS.map((c, i) => (i === STATUS_COLUMNS.length - 1 ? r[c]! : r[c]!.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}

/** `convey status <job>`: everything known, and why the last failed run failed. */
export function formatStatusDetail(s: JobStatus, now: number, heldBy?: string): string {
  const running = `  running    ${s.running ? `run ${s.running.runId} (${s.running.mode}, pid ${s.running.pid} on ${s.running.host}, since ${s.running.startedAt})` : 'no'}`;
  if (heldBy) {
    // Nothing was read: "(none yet)" and "0 failed" would read as a job that never ran.
    return `${s.job}\n  watermark  unknown: the embedded store is held by ${heldBy} (run convey status when it has finished)\n${running}\n`;
  }
  const lines = [`${s.job}`];
  const since = s.failingSince ? ` since ${s.failingSince.startedAt} (${s.failingSince.runs} failed run${s.failingSince.runs === 1 ? '' : 's'} in a row, from run ${s.failingSince.runId})` : '';
  lines.push(`  state      ${s.state}${since}`);
  lines.push(`  watermark  ${s.watermark ?? '(none yet)'}${s.lagSeconds !== null ? `  (${formatDuration(s.lagSeconds * 1000)} behind now)` : ''}`);
  lines.push(running);
  lines.push(`  waiting    ${s.failed} failed${s.inDoubt ? `, ${s.inDoubt} in doubt` : ''} (sent first by the next run; convey retry ${s.job} sends them now)`);
  lines.push(`  rejects    ${s.rejects} open${s.rejects ? ` (convey rejects ${s.job})` : ''}`);
  for (const b of s.backfills) lines.push(`  backfill   ${formatBackfill(b)}`);
  if (s.warnings.length) lines.push(`  warnings   ${s.warnings.map((w) => `${w.check}: ${w.message}`).join('\n             ')}`);
  const f = s.lastFailure;
  if (f) {
    lines.push(`  last failure  run ${f.runId} (${f.mode}), ${f.finishedAt ?? 'not finished'}${f.finishedAt ? ` (${ago(f.finishedAt, now)})` : ''}`);
    if (f.headline) lines.push(`    ${f.headline}`);
    if (f.error) lines.push(`    error: ${f.error.split('\n')[0]}`);
    lines.push(...formatFailures(f.failures, '    '));
  }
  if (s.lastRuns.length) lines.push('  last runs');
  for (const r of s.lastRuns) {
    const c = r.counts;
    const counts = r.mode === 'state' ? (r.note ?? '') : `read ${c.read ?? 0}, sent ${c.sent ?? 0}, already ${c.alreadySent ?? 0}, rejected ${c.rejected ?? 0}, failed ${c.failed ?? 0}`;
    lines.push(`    ${String(r.runId).padStart(4)} ${r.mode.padEnd(8)} ${r.status.padEnd(11)} ${r.startedAt ?? ''}  ${r.durationMs !== null ? formatDuration(r.durationMs).padEnd(9) : ''.padEnd(9)} ${counts}${r.error ? `  error: ${r.error.split('\n')[0]}` : ''}`);
  }
  return lines.join('\n') + '\n';
}

/** `#4 2026-03-01 → 2026-05-01: 20 of 61 chunks done, 3 in progress (host-a ×2, host-b), 38 waiting` */
export function formatBackfill(b: BackfillProgress): string {
  const hosts = new Map<string, number>();
  for (const p of b.inProgress) hosts.set(p.host, (hosts.get(p.host) ?? 0) + 1);
  const where = [...hosts].map(([host, n]) => (n > 1 ? `${host} ×${n}` : host)).join(', ');
  const progress = b.inProgress.length ? `, ${b.inProgress.length} in progress (${where})` : '';
  return `#${b.id}${b.resend ? ' --resend' : ''} ${b.range.start} → ${b.range.end}: ${b.done} of ${b.total} chunks done${progress}, ${b.waiting} waiting`;
}
