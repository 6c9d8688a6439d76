import type { Writable } from 'node:stream';
import { describeCause } from '../delivery/failure.ts';
import type { Logger } from '../log.ts';
import type { RunCounts } from '../pipeline/counts.ts';
import type { FailureGroup } from '../pipeline/failures.ts';
import type { RunSummary } from '../pipeline/run-job.ts';
import type { SpoolStats } from '../source/spool.ts';

const n = (value: number): string => value.toLocaleString('en-US');

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/**
 * The summary an on-call engineer reads in the morning: every count, nothing rounded away, and
 * why conversions failed. A failure retrying cannot fix is the first line.
 */
export function formatSummary(s: RunSummary): string {
  const lines = s.headline ? [s.headline] : [];
  lines.push(`convey ${s.mode} ${s.job} (run ${s.runId}): ${s.status} in ${formatDuration(s.durationMs)}`);
  if (s.window) lines.push(`  window        ${s.window.start} → ${s.window.end}`);
  lines.push(`  read          ${n(s.read)} rows`);
  lines.push(`  sent          ${n(s.sent)}`);
  lines.push(`  already sent  ${n(s.alreadySent)}`);
  lines.push(`  rejected      ${n(s.rejected)}${s.rejected ? `   (convey rejects ${s.job})` : ''}`);
  lines.push(`  failed        ${n(s.failed)}${s.failed ? '   (sent first by the next run; convey retry to send now)' : ''}`);
  if (s.deferred) lines.push(`  deferred      ${n(s.deferred)}   (stopped before sending; sent first by the next run)`);
  if (s.skipped) lines.push(`  skipped       ${n(s.skipped)}   (held by another run, or handled by this run's retry step)`);
  if (s.retried || s.resent) {
    lines.push(`  from earlier  ${n(s.retried)} failed before and retried, ${n(s.resent)} resent after an interruption (included above)`);
  }
  lines.push(`  requests      ${n(s.requests)}`);
  const delivery = s.delivery as { configuredRate?: number | null; effectiveRate?: number | null; minEffectiveRate?: number | null; rateDecreases?: number; status429?: number } | undefined;
  if (delivery?.rateDecreases) {
    lines.push(`  rate          ${delivery.configuredRate}/s configured, lowered ${delivery.rateDecreases} times by 429s to ${delivery.minEffectiveRate}/s, ${delivery.effectiveRate}/s at the end`);
  }
  if (s.watermark.before !== s.watermark.after || s.watermark.after) {
    lines.push(`  watermark     ${s.watermark.before ?? '(none)'} → ${s.watermark.after ?? '(none)'}`);
  }
  if (s.failures.length) lines.push('  why failed    by cause, most conversions first', ...formatFailures(s.failures, '    '));
  lines.push(...formatVerdict(s));
  return lines.join('\n') + '\n';
}

/** Failure groups, three lines each: how many, what and where, when; the answer; what to do. */
export function formatFailures(groups: readonly FailureGroup[], indent: string): string[] {
  return groups.flatMap((g) => [
    `${indent}${n(g.conversions)} × ${g.cause}${g.retryable ? '' : ' (not retryable)'} at ${g.endpoint}, ${g.firstSeen === g.lastSeen ? g.firstSeen : `${g.firstSeen} → ${g.lastSeen}`}`,
    `${indent}  ${g.message || '(empty answer)'}`.split('\n')[0]!,
    `${indent}  ${g.action}`,
  ]);
}

/**
 * The log's account of a run's failures, on stderr beside the summary on stdout: the headline
 * first, then one line per cause with its fields (for a log shipper, in JSON lines).
 */
export function logFailures(logger: Logger, s: RunSummary): void {
  if (s.headline) logger.error(s.headline, { runId: s.runId, cause: s.stopped?.cause ?? s.failures.find((g) => !g.retryable)?.cause });
  for (const g of s.failures) {
    const fields = { runId: s.runId, cause: g.cause, endpoint: g.endpoint, conversions: g.conversions, firstSeen: g.firstSeen, lastSeen: g.lastSeen, message: g.message, action: g.action };
    const text = `${n(g.conversions)} conversion${g.conversions === 1 ? '' : 's'} failed: ${describeCause(g)}${g.retryable ? '' : ' (not retryable)'}`;
    if (g.retryable) logger.warn(text, fields);
    else logger.error(text, fields);
  }
}

/** The verdict against the job's history: each warning on its line, or why there is none. */
function formatVerdict(s: RunSummary): string[] {
  const b = s.baseline;
  if (!b) return [];
  if (b.needed) return [`  verdict       none yet (${b.runs} earlier successful run${b.runs === 1 ? '' : 's'} of this mode, ${b.needed} needed)`];
  if (!s.warnings.length) return [`  verdict       as usual (compared with ${b.comparable} of ${b.runs} earlier runs)`];
  return [`  warnings      ${s.warnings.length} (compared with ${b.comparable} of ${b.runs} earlier runs; --fail-on turns them into exit 5)`, ...s.warnings.map((w) => `    ${w.check.padEnd(18)} ${w.message}`)];
}

/**
 * A live progress line on a terminal (never when output is a pipe or a file): sent, rate, errors,
 * and an ETA once the source has handed over the whole window (the spool counts it: no second
 * query, which on a warehouse would be a second billed scan).
 */
export class ProgressLine {
  private last = 0;
  private readonly started = performance.now();
  private shown = false;

  constructor(
    private readonly out: Writable & { isTTY?: boolean; columns?: number },
    private label: string,
    private readonly read?: SpoolStats,
  ) {}

  setLabel(label: string): void {
    this.label = label;
  }

  update(counts: RunCounts): void {
    const total = this.read?.readComplete ? this.read.rowsRead : undefined;
    const now = performance.now();
    if (now - this.last < 200) return;
    this.last = now;
    const seconds = (now - this.started) / 1000;
    const done = counts.read;
    const rate = seconds > 0 ? counts.sent / seconds : 0;
    let eta = '';
    if (total && done > 0 && done < total) {
      eta = `, ETA ${formatDuration(((total - done) / done) * seconds * 1000)}`;
    }
    const of = total ? `/${n(total)}` : '';
    const text = `${this.label}: read ${n(done)}${of}, sent ${n(counts.sent)} (${n(Math.round(rate))}/s), already ${n(counts.alreadySent)}, rejected ${n(counts.rejected)}, failed ${n(counts.failed)}${eta}`;
    this.out.write(`\r${text.slice(0, (this.out.columns ?? 120) - 1)}\x1b[K`);
    this.shown = true;
  }

  done(): void {
    if (this.shown) this.out.write('\r\x1b[K');
  }
}
