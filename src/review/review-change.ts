import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { jobFromText, type JobConfig, type Project } from '../config/project.ts';
import { createDestination } from '../destinations/index.ts';
import { ConveyError, errorMessage, isConveyError } from '../errors.ts';
import { describeJobMapping } from '../pipeline/checked-batches.ts';
import type { Source } from '../source/open.ts';
import type { Clock } from '../time/clock.ts';
import type { Queryable } from '../state/db.ts';
import { addMicros, maxInstant, parseFixedDuration } from '../time/instant.ts';
import type { Window } from '../time/window.ts';
import { CHANGE_CLASSES, compareSides, type ChangeClass, type ClassTally, type Side, type SideSummary } from './compare.ts';
import { determinismWarnings } from './determinism.ts';
import { jobAtRef } from './git.ts';
import { withSpillDir } from './spill.ts';

/** `plan --compare`: everything a reviewer (and `--json`) gets. */
export interface ChangeReport {
  job: string;
  ref: string;
  destination: string;
  window: Window;
  /** Set when `--window` narrowed the window to a sample of its end. */
  sampleOf?: Window;
  base: { exists: boolean; broken?: string; sqlChanged: boolean; settingsChanged: boolean; destinationChanged: boolean };
  /** Settings as written (before ${VAR} is read), main → this change. */
  settings: Array<{ key: string; before: unknown; after: unknown }>;
  reads: number;
  classes: Record<ChangeClass, ClassTally>;
  main: SideSummary;
  change: SideSummary;
  rejects: Array<{ reason: string; main: number; change: number; examples: Array<{ conversionId: string | null; reason: string }> }>;
  warnings: string[];
  /** `--check-determinism`: the head read twice over a small window. */
  unstable?: { window: Window; differing: number; fields: string[] };
  /** Classes named by --fail-on that this change has: the exit code is 1 when any. */
  failedOn: ChangeClass[];
}

export interface ReviewDeps {
  project: Project;
  source: Source;
  state: Queryable | undefined;
  signal: AbortSignal;
  clock: Clock;
}

export interface ReviewOptions {
  ref: string;
  window: Window;
  /** ISO duration: compare only the end of the window, labelled a sample. */
  sample?: string;
  failOn: readonly ChangeClass[];
  mask: boolean;
  checkDeterminism: boolean;
}

export const DEFAULT_FAIL_ON: readonly ChangeClass[] = ['rekeyed'];
/** What `--check-determinism` reads twice when no `--window` is given: the last day of the window. */
const DETERMINISM_WINDOW = 'P1D';

export async function reviewChange(deps: ReviewDeps, head: JobConfig, options: ReviewOptions): Promise<ChangeReport> {
  const window = options.sample ? sampleWindow(options.window, options.sample, '--window') : options.window;
  const headDestination = createDestination(head.destination).destination;
  // The head must work: a broken mapping is exit 2, as for plan.
  const headSide: Side = { job: head, destination: headDestination, mapping: await describeJobMapping(deps.source, head, headDestination, window) };

  const atRef = await jobAtRef(deps.project.dir, options.ref, head.name);
  const headSettingsText = readFileSync(join(deps.project.dir, head.settingsFile), 'utf8');
  let base: Side | undefined;
  let broken: string | undefined;
  if (atRef) {
    try {
      const job = jobFromText(deps.project, head.name, atRef, `${options.ref}:`);
      const destination = createDestination(job.destination).destination;
      base = { job, destination, mapping: await describeJobMapping(deps.source, job, destination, window) };
    } catch (error) {
      // Main's mapping does not run here (a table since renamed, a setting since required): the
      // change is compared against nothing, and the report says why.
      if (!isConveyError(error, 'MAPPING_INVALID') && !isConveyError(error, 'CONFIG_INVALID')) throw error;
      broken = errorMessage(error);
      base = undefined;
    }
  }
  const settings = atRef ? settingsDiff(atRef.settings, headSettingsText) : [];
  const sqlChanged = !atRef || atRef.sql !== head.sql;

  const comparison = await withSpillDir((spillDir) => compareSides({ ...deps, spillDir, mask: options.mask }, base, headSide, window));
  interrupted(deps.signal, head.name);

  const warnings = determinismWarnings(head.sql, head.sqlFile);
  let unstable: ChangeReport['unstable'];
  if (options.checkDeterminism) {
    const small = options.sample ? window : sampleWindow(window, DETERMINISM_WINDOW, 'the determinism check');
    const twice = await withSpillDir((spillDir) => compareSides({ ...deps, spillDir, mask: options.mask }, headSide, headSide, small, { readTwice: true }));
    interrupted(deps.signal, head.name);
    const differing = CHANGE_CLASSES.filter((c) => c !== 'unchanged').reduce((n, c) => n + twice.classes[c].count, 0);
    const fields = new Set<string>();
    for (const c of ['changed', 'changed-sent'] as const) Object.keys(twice.classes[c].fields ?? {}).forEach((f) => fields.add(f));
    unstable = { window: small, differing, fields: [...fields] };
  }

  const reasons = new Set([...Object.keys(comparison.base.rejectsByReason), ...Object.keys(comparison.head.rejectsByReason)]);
  const rejects = [...reasons]
    .map((reason) => ({
      reason,
      main: comparison.base.rejectsByReason[reason] ?? 0,
      change: comparison.head.rejectsByReason[reason] ?? 0,
      examples: comparison.head.rejectExamples[reason] ?? comparison.base.rejectExamples[reason] ?? [],
    }))
    .sort((a, b) => b.change - b.main - (a.change - a.main) || a.reason.localeCompare(b.reason));

  return {
    job: head.name,
    ref: options.ref,
    destination: headSide.destination.label,
    window,
    ...(options.sample ? { sampleOf: options.window } : {}),
    base: {
      exists: Boolean(atRef),
      ...(broken ? { broken } : {}),
      sqlChanged,
      settingsChanged: settings.length > 0,
      destinationChanged: Boolean(base && base.destination.key !== headSide.destination.key),
    },
    settings,
    reads: comparison.reads,
    classes: comparison.classes,
    main: comparison.base,
    change: comparison.head,
    rejects,
    warnings,
    ...(unstable ? { unstable } : {}),
    failedOn: options.failOn.filter((c) => comparison.classes[c].count > 0),
  };
}

/** The last `duration` of `window` (never before its start). */
function sampleWindow(window: Window, duration: string, flag: string): Window {
  const micros = parseFixedDuration(duration);
  if (micros === undefined || micros <= 0n) {
    throw new ConveyError('USAGE', `${flag} ${JSON.stringify(duration)} must be an ISO 8601 duration in days, hours, minutes or seconds`, { hint: 'e.g. --window P1D (the last day of the window)' });
  }
  return { start: maxInstant(window.start, addMicros(window.end, -micros)), end: window.end };
}

function interrupted(signal: AbortSignal, job: string): void {
  if (signal.aborted) {
    throw new ConveyError('INTERRUPTED', `stopped by ${String(signal.reason)} before the window was read to its end: no comparison`, { hint: `Run convey plan ${job} --compare again.` });
  }
}

/** Settings as written, flattened to dotted keys; what differs between the two texts. */
function settingsDiff(before: string, after: string): ChangeReport['settings'] {
  const flat = (text: string): Map<string, unknown> => {
    const out = new Map<string, unknown>();
    const walk = (value: unknown, at: string): void => {
      if (value && typeof value === 'object' && !Array.isArray(value)) {
        for (const [k, v] of Object.entries(value)) if (at || (k !== '$schema' && k !== 'description')) walk(v, at ? `${at}.${k}` : k);
      } else out.set(at, value);
    };
    try {
      walk(JSON.parse(text.replace(/^\uFEFF/, '')), '');
    } catch {
      // Unreadable JSON was reported when the job was loaded.
    }
    return out;
  };
  const a = flat(before);
  const b = flat(after);
  const keys = [...new Set([...a.keys(), ...b.keys()])].sort();
  return keys.filter((k) => JSON.stringify(a.get(k)) !== JSON.stringify(b.get(k))).map((k) => ({ key: k, before: a.get(k) ?? null, after: b.get(k) ?? null }));
}
