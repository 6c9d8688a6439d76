import type { ChangeClass, ClassTally, Example } from './compare.ts';
import type { ChangeReport } from './review-change.ts';

/**
 * The `plan --compare` report as Markdown, for a pull-request comment and GITHUB_STEP_SUMMARY:
 * the verdict first, then one section per class, the worst consequence first. GitHub refuses a
 * comment over 65,536 characters, so the report stops adding detail before that and says so.
 */
export interface MarkdownOptions {
  /** Characters at most (default 64,000: under GitHub's comment limit, with room for a wrapper). */
  limit?: number;
  /** Tests run before the compare, when the job has them. */
  tests?: { passed: number; failed: number; failures: string[] };
}

/** The hidden line a workflow finds its own earlier comment by, to update it rather than add one. */
export const commentMarker = (job: string): string => `<!-- convey-plan:${job} -->`;

const DEFAULT_LIMIT = 64_000;

const MEANING: Record<ChangeClass, { title: string; text: string }> = {
  rekeyed: {
    title: '🔴 Re-keyed: would be sent a second time',
    text: 'main sent these conversions under another key (conversion_id, event or destination); this change gives the same visitor, time, event and revenue a new key, so the next run sends them again and Optimizely counts them twice. Keep the old key formula, or change it only for conversions after the window.',
  },
  'changed-sent': {
    title: 'Changed, but already sent: no effect in Optimizely',
    text: 'Optimizely keeps the first copy of an event: these new values will never reach it. A backfill with --resend would not change them either.',
  },
  'removed-sent': {
    title: 'Removed, already sent: stays in Optimizely',
    text: 'This change no longer produces these conversions, but they were sent: nothing removes them from Optimizely.',
  },
  removed: {
    title: 'Removed: main would send these, this change does not',
    text: 'Not sent yet. With this change the next run will not send them.',
  },
  changed: {
    title: 'Changed, not yet sent: go out with the new values',
    text: 'The next run sends these with the values below.',
  },
  added: {
    title: 'Added: sent by this change, not by main',
    text: 'New conversions the next run will send.',
  },
  'added-sent': {
    title: 'Added, already in the ledger: not sent again',
    text: 'This change produces conversions main does not, but they were sent before (by an earlier version of the job): nothing is sent.',
  },
  unchanged: { title: 'Unchanged', text: 'Sent (or already sent) exactly as main would.' },
};

const n = (v: number): string => v.toLocaleString('en-US');

export function compareMarkdown(r: ChangeReport, options: MarkdownOptions = {}): string {
  const limit = options.limit ?? DEFAULT_LIMIT;
  const head = [commentMarker(r.job), `### convey plan \`${r.job}\` against \`${r.ref}\`: ${headline(r)}`, '', context(r), ''];
  if (options.tests) head.push(testsLine(options.tests), '');
  if (r.failedOn.length) head.push(`**Fails the check:** ${r.failedOn.map((c) => `${c} (${n(r.classes[c].count)})`).join(', ')} (\`--fail-on\`).`, '');
  head.push('| what happens | conversions |', '|---|---:|');
  for (const [cls, tally] of classEntries(r)) head.push(`| ${MEANING[cls].title} | ${n(tally.count)} |`);
  head.push('');

  const sections: Array<{ full: string; short: string }> = [];
  for (const w of r.warnings) sections.push(same(`> ⚠️ ${cell(w)}\n`));
  if (r.unstable) sections.push(same(unstableSection(r.unstable)));
  for (const [cls, tally] of classEntries(r)) {
    if (cls === 'unchanged' || !tally.count) continue;
    sections.push({ full: classSection(cls, tally, true), short: classSection(cls, tally, false) });
  }
  if (r.rejects.length) sections.push({ full: rejectsSection(r, true), short: rejectsSection(r, false) });
  if (r.settings.length) sections.push(same(settingsSection(r)));

  let out = head.join('\n');
  const more = `\n_Report cut to fit a comment: run \`convey plan ${r.job} --compare ${r.ref} --json\` for all of it._\n`;
  let cut = false;
  for (const s of sections) {
    if (!cut && out.length + s.full.length + more.length <= limit) out += `\n${s.full}`;
    else if (!cut && out.length + s.short.length + more.length <= limit) {
      out += `\n${s.short}`;
      cut = true;
    } else cut = true;
  }
  if (cut) out += more;
  return out;
}

function same(text: string): { full: string; short: string } {
  return { full: text, short: text };
}

function classEntries(r: ChangeReport): Array<[ChangeClass, ClassTally]> {
  return (Object.entries(r.classes) as Array<[ChangeClass, ClassTally]>).filter(([cls, t]) => t.count > 0 || cls === 'unchanged' || cls === 'rekeyed');
}

function headline(r: ChangeReport): string {
  const c = r.classes;
  if (r.failedOn.length) {
    const worst = r.failedOn[0]!;
    return `❌ ${n(c[worst].count)} ${worst === 'rekeyed' ? 'conversions would be sent twice (re-keyed)' : `${worst}`}`;
  }
  const parts: string[] = [];
  if (c.changed.count) parts.push(`${n(c.changed.count)} go out with new values`);
  if (c.added.count) parts.push(`${n(c.added.count)} added`);
  if (c.removed.count) parts.push(`${n(c.removed.count)} no longer sent`);
  if (c['changed-sent'].count) parts.push(`${n(c['changed-sent'].count)} changes without effect (already sent)`);
  if (!parts.length) return '✅ no change to what is sent';
  return `✅ ${parts.join(', ')}; nothing sent twice`;
}

function context(r: ChangeReport): string {
  const lines = [`Window \`${r.window.start}\` → \`${r.window.end}\``];
  if (r.window.end <= r.window.start) lines[0] += ' (**empty**: the job has not started yet; pass --from and --to to compare a range)';
  if (r.sampleOf) lines[0] += ` (**a sample**: the end of \`${r.sampleOf.start}\` → \`${r.sampleOf.end}\`)`;
  lines.push(`${r.destination}`);
  lines.push(`read ${n(r.change.read)} rows (${r.reads === 1 ? 'one read of the source: same SQL on both sides' : `${r.reads} reads of the source`})`);
  if (!r.base.exists) lines.push(`**new job**: it does not exist at \`${r.ref}\`, so everything is added`);
  else if (r.base.broken) lines.push(`main's mapping does not run here (${cell(r.base.broken)}): compared against nothing`);
  else lines.push([r.base.sqlChanged ? 'SQL changed' : 'SQL unchanged', r.base.settingsChanged ? 'settings changed' : 'settings unchanged'].join(', '));
  if (r.base.destinationChanged) lines.push('**the destination changed**: conversions are keyed by destination, so every conversion is new to it');
  return lines.join(' · ');
}

function testsLine(t: NonNullable<MarkdownOptions['tests']>): string {
  if (!t.failed) return `Mapping tests: ✅ ${n(t.passed)} passed.`;
  return [`Mapping tests: ❌ ${n(t.failed)} failed, ${n(t.passed)} passed.`, '', '```', ...t.failures.slice(0, 20), '```'].join('\n');
}

function unstableSection(u: NonNullable<ChangeReport['unstable']>): string {
  if (!u.differing) return `Determinism: ✅ two reads of \`${u.window.start}\` → \`${u.window.end}\` gave the same conversions.\n`;
  return `#### ⚠️ Unstable mapping\n\nTwo reads of \`${u.window.start}\` → \`${u.window.end}\` by this change differ in ${n(u.differing)} conversions${u.fields.length ? ` (${u.fields.map((f) => `\`${f}\``).join(', ')})` : ''}: that is the mapping, not the edit. Part of the differences below may be this noise.\n`;
}

function classSection(cls: ChangeClass, t: ClassTally, withExamples: boolean): string {
  const lines = [`#### ${MEANING[cls].title}: ${n(t.count)}`, '', MEANING[cls].text, ''];
  if (t.fields) {
    lines.push('| field | conversions | examples (main → this change) |', '|---|---:|---|');
    for (const [field, f] of Object.entries(t.fields).sort((a, b) => b[1].count - a[1].count)) {
      const ex = withExamples ? f.examples.map((e) => `\`${cell(e.conversionId)}\`: ${value(e.before)} → ${value(e.after)}`).join('<br>') : '';
      lines.push(`| \`${field}\` | ${n(f.count)} | ${ex} |`);
    }
    lines.push('');
  } else if (withExamples && t.examples.length) {
    const rekey = cls === 'rekeyed';
    lines.push(rekey ? '| conversion | was sent as | event | visitor |' : '| conversion | event | visitor |', rekey ? '|---|---|---|---|' : '|---|---|---|');
    for (const e of t.examples) lines.push(exampleRow(e, rekey));
    if (t.count > t.examples.length) lines.push('', `_and ${n(t.count - t.examples.length)} more_`);
    lines.push('');
  }
  return lines.join('\n');
}

function exampleRow(e: Example, rekey: boolean): string {
  const cells = [`\`${cell(e.conversionId)}\``, ...(rekey ? [`\`${cell(e.was ?? '')}\``] : []), `\`${cell(e.event)}\``, `\`${cell(e.visitorId)}\``];
  return `| ${cells.join(' | ')} |`;
}

function rejectsSection(r: ChangeReport, withExamples: boolean): string {
  const lines = ['#### Rejects by reason', '', '| reason | main | this change | example |', '|---|---:|---:|---|'];
  for (const x of r.rejects) {
    const ex = withExamples && x.examples[0] ? `${x.examples[0].conversionId ? `\`${cell(x.examples[0].conversionId)}\`: ` : ''}${cell(x.examples[0].reason)}` : '';
    lines.push(`| \`${x.reason}\` | ${n(x.main)} | ${n(x.change)} | ${ex} |`);
  }
  return lines.join('\n') + '\n';
}

function settingsSection(r: ChangeReport): string {
  const lines = ['#### Settings', '', '| setting | main | this change |', '|---|---|---|'];
  for (const s of r.settings) lines.push(`| \`${s.key}\` | ${value(s.before === null ? null : JSON.stringify(s.before))} | ${value(s.after === null ? null : JSON.stringify(s.after))} |`);
  return lines.join('\n') + '\n';
}

function value(v: string | null): string {
  return v === null ? '_none_' : `\`${cell(v)}\``;
}

/** Text made safe for one table cell: no pipes, backticks or line breaks, at most 80 characters. */
function cell(text: string): string {
  const flat = text.replace(/[\r\n]+/g, ' ').replace(/\|/g, '\\|').replace(/`/g, "'");
  return flat.length > 80 ? `${flat.slice(0, 79)}…` : flat;
}
