import { appendFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { GithubConfig } from '../config/notify.ts';
import { describeCause } from '../delivery/failure.ts';
import { failuresOf, headline, n, outcomeOf, titleOf, warningsOf } from './report.ts';
import type { FinishedRun, Notifier, NotifyDeps, PlanOutcome } from './notifier.ts';

/**
 * GitHub Actions: a Markdown summary of each run and plan on the job page (GITHUB_STEP_SUMMARY),
 * and `::error` / `::warning` annotations. Annotations go to stderr: the runner reads workflow
 * commands from both streams of a step (actions/runner, ScriptHandler: one OutputManager per
 * stream), and stdout carries `--json` summaries that a workflow pipes into a file.
 */
export function githubActionsNotifier(config: GithubConfig, deps: NotifyDeps): Notifier {
  const summary = async (markdown: string): Promise<void> => {
    // GitHub shows at most 1 MiB per step; a run's summary is a few KB.
    if (config.stepSummary) await appendFile(config.stepSummary, markdown.length > MAX_SUMMARY_CHARS ? `${markdown.slice(0, MAX_SUMMARY_CHARS)}\n\n(cut)\n` : markdown);
  };
  const annotate = (lines: string[]): void => {
    if (config.annotations && lines.length) deps.stderr.write(lines.join('\n') + '\n');
  };
  return {
    name: 'github-actions',
    async runFinished(run) {
      annotate(runAnnotations(run));
      await summary(runMarkdown(run));
    },
    async planned(plan) {
      if (plan.error) {
        const file = config.workspace ? relative(config.workspace, join(plan.projectDir, plan.sqlFile)) : plan.sqlFile;
        annotate([command('error', { file, title: `convey plan ${plan.job}` }, `${plan.error.message}${plan.error.hint ? `\n${plan.error.hint}` : ''}`)]);
      }
      await summary(planMarkdown(plan));
    },
  };
}

const MAX_SUMMARY_CHARS = 512 * 1024;

/**
 * A workflow command line. Data escapes %, CR and LF; property values also `:` and `,`
 * (the escaping of @actions/core's command.ts).
 */
export function command(kind: 'error' | 'warning' | 'notice', properties: Record<string, string>, message: string): string {
  const data = (text: string): string => text.replaceAll('%', '%25').replaceAll('\r', '%0D').replaceAll('\n', '%0A');
  const property = (text: string): string => data(text).replaceAll(':', '%3A').replaceAll(',', '%2C');
  const props = Object.entries(properties).map(([k, v]) => `${k}=${property(v)}`).join(',');
  return `::${kind}${props ? ` ${props}` : ''}::${data(message)}`;
}

export function runAnnotations(run: FinishedRun): string[] {
  const outcome = outcomeOf(run);
  const lines: string[] = [];
  if (outcome === 'failed') {
    lines.push(command('error', { title: titleOf(run) }, [headline(run), run.error?.hint].filter(Boolean).join('\n')));
  } else if (outcome === 'held' || outcome === 'interrupted') {
    lines.push(command('warning', { title: titleOf(run) }, headline(run) ?? 'stopped before the end of its window; the next run continues'));
  }
  for (const warning of warningsOf(run)) lines.push(command('warning', { title: `${run.command}: ${warning.check}` }, warning.message));
  return lines;
}

const ICON = { succeeded: '✅', warnings: '⚠️', failed: '❌', interrupted: '⏹️', held: '⏸️' } as const;

/** A table cell: no pipes or line breaks. */
const cell = (text: string): string => text.replaceAll('|', '\\|').replaceAll('\n', ' ');

export function runMarkdown(run: FinishedRun): string {
  const lines = [`### ${ICON[outcomeOf(run)]} ${titleOf(run)}`, ''];
  const first = headline(run);
  if (first) lines.push(`**${cell(first)}**`, '');
  if (run.error?.hint) lines.push(run.error.hint, '');
  const s = run.summary;
  if (s) {
    lines.push('| read | sent | already sent | rejected | failed | requests | duration |', '|---:|---:|---:|---:|---:|---:|---:|');
    lines.push(`| ${n(s.read)} | ${n(s.sent)} | ${n(s.alreadySent)} | ${n(s.rejected)} | ${n(s.failed)} | ${n(s.requests)} | ${(s.durationMs / 1000).toFixed(1)} s |`, '');
    const facts = [`run ${s.runId}`];
    if (s.window) facts.push(`window ${s.window.start} → ${s.window.end}`);
    if (s.watermark.after) facts.push(`watermark ${s.watermark.after}`);
    if (s.baseline) facts.push(s.baseline.needed ? `compared with ${s.baseline.runs} earlier runs (${s.baseline.needed} needed for a verdict)` : `compared with ${s.baseline.comparable} of ${s.baseline.runs} earlier runs`);
    lines.push(facts.join(' · '), '');
  }
  const failures = failuresOf(s);
  if (failures.length) {
    lines.push('| what failed | conversions | endpoint | answer | first seen | last seen | what to do |', '|---|---:|---|---|---|---|---|');
    for (const f of failures) lines.push(`| ${cell(describeCause(f))} | ${n(f.conversions)} | ${cell(f.endpoint)} | ${cell(f.message)} | ${f.firstSeen} | ${f.lastSeen} | ${cell(f.action)} |`);
    lines.push('');
  }
  const warnings = warningsOf(run);
  if (warnings.length) {
    lines.push('Warnings:', '');
    for (const w of warnings) lines.push(`- \`${w.check}\`: ${w.message}`);
    lines.push('');
  }
  return lines.join('\n') + '\n';
}

export function planMarkdown(outcome: PlanOutcome): string {
  const p = outcome.plan;
  if (!p) return `### ❌ convey plan ${outcome.job}: the mapping is broken\n\n\`\`\`\n${outcome.error?.message ?? ''}\n\`\`\`\n\n${outcome.error?.hint ?? ''}\n\n`;
  const lines = [`### convey plan ${p.job}: ${outcome.destination}`, '', `Window ${p.window.start} → ${p.window.end}`, ''];
  lines.push('| read | would send | requests | already sent | would reject |', '|---:|---:|---:|---:|---:|');
  lines.push(`| ${n(p.read)} | ${n(p.wouldSend)} | ${n(p.requests)} | ${n(p.alreadySent)} | ${n(p.wouldReject)} |`, '');
  const reasons = Object.entries(p.rejectsByReason).sort((a, b) => b[1] - a[1]);
  if (reasons.length) {
    lines.push('| reject reason | rows | example |', '|---|---:|---|');
    for (const [code, count] of reasons) {
      const example = p.rejectExamples[code]?.[0];
      lines.push(`| \`${code}\` | ${n(count)} | ${example ? cell(`${example.conversionId ?? '(no conversion_id)'}: ${example.reason}`) : ''} |`);
    }
    lines.push('');
  }
  return lines.join('\n') + '\n';
}

