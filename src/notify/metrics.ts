import type { LastRun } from '../state/sql/history.ts';
import type { FinishedRun } from './notifier.ts';
import { outcomeOf } from './report.ts';

/**
 * The figures a metrics backend gets after each run, per job: the last run of each mode (counts,
 * duration, status, warnings), the last success, and the watermark's lag. The same set goes to
 * the Prometheus text file and to OTLP. Names follow OpenTelemetry (dotted, with a unit); the
 * Prometheus names are derived the way OpenTelemetry's Prometheus compatibility does it
 * (convey.watermark.lag in s → convey_watermark_lag_seconds). The job is the `convey_job` label:
 * `job` is the scrape job's own label and would be renamed exported_job.
 */
export interface MetricFamily {
  name: string;
  unit: 's' | '{status}' | '{conversion}' | '{request}' | '{warning}';
  help: string;
  samples: Array<{ labels: Record<string, string>; value: number }>;
}

const STATUSES = ['succeeded', 'failed', 'interrupted', 'crashed'] as const;
const OUTCOMES: Array<[label: string, count: string]> = [
  ['read', 'read'], ['sent', 'sent'], ['already_sent', 'alreadySent'], ['rejected', 'rejected'], ['failed', 'failed'],
  ['deferred', 'deferred'], ['skipped', 'skipped'], ['retried', 'retried'], ['resent', 'resent'],
];

export function runMetrics(run: FinishedRun, nowMs: number): MetricFamily[] {
  const lastRuns = withThisRun(run);
  const job = { convey_job: run.job };
  const perMode = (value: (r: LastRun) => number | null): MetricFamily['samples'] =>
    lastRuns.flatMap((r) => {
      const v = value(r);
      return v === null ? [] : [{ labels: { ...job, mode: r.mode }, value: v }];
    });
  const families: MetricFamily[] = [
    { name: 'convey.last_run.timestamp', unit: 's', help: 'When the last run of this mode finished (Unix time).', samples: perMode((r) => r.finishedAtMs / 1000) },
    { name: 'convey.last_run.duration', unit: 's', help: 'How long the last run of this mode took.', samples: perMode((r) => (r.finishedAtMs - r.startedAtMs) / 1000) },
    {
      name: 'convey.last_run.status',
      unit: '{status}',
      help: 'How the last run of this mode ended: 1 for its status, 0 for the others.',
      samples: lastRuns.flatMap((r) => STATUSES.map((status) => ({ labels: { ...job, mode: r.mode, status }, value: r.status === status ? 1 : 0 }))),
    },
    {
      name: 'convey.last_run.conversions',
      unit: '{conversion}',
      help: 'Conversions of the last run of this mode, by what happened to them (read = sent + already_sent + rejected + failed + deferred + skipped, less retried and resent).',
      samples: lastRuns.flatMap((r) => OUTCOMES.map(([outcome, key]) => ({ labels: { ...job, mode: r.mode, outcome }, value: r.counts[key] ?? 0 }))),
    },
    { name: 'convey.last_run.requests', unit: '{request}', help: 'HTTP requests of the last run of this mode, retries included.', samples: perMode((r) => r.counts.requests ?? 0) },
    { name: 'convey.last_run.warnings', unit: '{warning}', help: "Warnings of the last run of this mode against the job's history.", samples: perMode((r) => r.warnings) },
    { name: 'convey.last_success.timestamp', unit: 's', help: 'When the last successful run of this mode finished (Unix time).', samples: perMode((r) => (r.lastSuccessMs === null ? null : r.lastSuccessMs / 1000)) },
  ];
  const watermark = run.history?.watermarkMs ?? null;
  if (watermark !== null) {
    families.push(
      { name: 'convey.watermark.timestamp', unit: 's', help: 'Where the job has read up to (Unix time).', samples: [{ labels: job, value: watermark / 1000 }] },
      { name: 'convey.watermark.lag', unit: 's', help: 'How far the watermark is behind now, when the metrics were written.', samples: [{ labels: job, value: (nowMs - watermark) / 1000 }] },
    );
  }
  return families;
}

/**
 * The runs to report: the history read after the run, and this run itself when it stopped before
 * it was recorded (the source unreachable): a failed run, not the last one that got recorded.
 */
function withThisRun(run: FinishedRun): LastRun[] {
  const recorded = run.history?.lastRuns ?? [];
  if (run.runId !== null && recorded.some((r) => r.id === run.runId)) return recorded;
  const outcome = outcomeOf(run);
  if (outcome === 'held') return recorded;
  const counts = run.summary ? ({ ...run.summary } as unknown as Record<string, number>) : {};
  const previous = recorded.find((r) => r.mode === run.mode);
  const self: LastRun = {
    id: run.runId ?? 0,
    mode: run.mode,
    status: outcome === 'interrupted' ? 'interrupted' : outcome === 'failed' ? 'failed' : 'succeeded',
    startedAtMs: run.startedAtMs,
    finishedAtMs: run.finishedAtMs,
    counts,
    warnings: run.summary?.warnings.length ?? 0,
    lastSuccessMs: outcome === 'succeeded' || outcome === 'warnings' ? run.finishedAtMs : (previous?.lastSuccessMs ?? null),
  };
  return [...recorded.filter((r) => r.mode !== run.mode), self];
}

/** OpenTelemetry's Prometheus name: dots to underscores, the unit as a suffix (none for {annotations}). */
export function prometheusName(family: MetricFamily): string {
  const base = family.name.replaceAll('.', '_');
  return family.unit === 's' ? `${base}_seconds` : base;
}
