import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { ConveyError } from '../errors.ts';
import { parseFixedDuration, parseInstant, type Instant } from '../time/instant.ts';
import { conveyVersion } from '../package-root.ts';
import { resolveAlerts, type AlertSettings } from './alerts.ts';
import { didYouMean } from './did-you-mean.ts';
import { interpolate } from './interpolate.ts';
import { resolveNotify, type NotifyConfig } from './notify.ts';
import { validateJobSettings, validateProjectConfig } from './schema-check.ts';

/**
 * The one place config is read and checked. Everything downstream receives these typed, complete
 * objects and never looks at files or the environment again.
 */

interface SourceBase {
  name: string;
  /** Where it was defined, for messages. */
  file: string;
  statementTimeoutMs?: number;
  /** How long a window's query may wait for the sender before the rest is read into a spool file. */
  spoolAfterMs: number;
}

export type SourceConfig =
  /** A PostgreSQL server: a URL or a node-postgres connection object. */
  | (SourceBase & { client: 'pg'; connection: string | Record<string, unknown>; poolMax?: number })
  /** Embedded PostgreSQL: the absolute folder of its database. */
  | (SourceBase & { client: 'pglite'; dataDir: string })
  /** DuckDB: a database file (absolute), or none for files queried in place; relative paths in the SQL are read from `projectDir`. */
  | (SourceBase & { client: 'duckdb'; path?: string; projectDir: string })
  /** MySQL 8 or MariaDB 10.6+: a mysql:// URL or a mysql2 connection object. */
  | (SourceBase & { client: 'mysql'; connection: string | Record<string, unknown>; poolMax?: number });

/** The spool's default: a minute of flow control is harmless to any source; hours are not. */
const SPOOL_AFTER_DEFAULT = 'PT30S';

export interface EventsDestinationConfig {
  type: 'optimizely-events';
  accountId: string;
  projectId?: string;
  endpoint: string;
  anonymizeIp: boolean;
  strict: boolean;
  maxBatchBytes: number;
}

export interface ClassicDestinationConfig {
  type: 'optimizely-classic';
  projectId: string;
  accountId?: string;
  /** With `{projectId}` already filled in. */
  endpoint: string;
  revenueGoalId?: string;
  src: string;
}

export interface FileDestinationConfig {
  type: 'file';
  /** Absolute path, or '-' for stdout. */
  path: string;
  protocol: EventsDestinationConfig | ClassicDestinationConfig;
}

export type DestinationConfig = EventsDestinationConfig | ClassicDestinationConfig | FileDestinationConfig;

export interface JobConfig {
  name: string;
  projectDir: string;
  sqlFile: string;
  settingsFile: string;
  sql: string;
  /** First 16 hex digits of the SQL's sha256: recorded with every run. */
  sqlHash: string;
  source: SourceConfig;
  destination: DestinationConfig;
  cursor: string;
  start: Instant;
  lookbackMicros: bigint;
  settleMicros: bigint;
  timezone: string;
  batchSize: number;
  pageSize: number;
  maxRejects?: number;
  rateLimit: { perSecond?: number; concurrency: number };
  /** Per request; `stopRunAfter` is the run's: requests in a row failing for a cause that will not pass (delivery/endpoint-breaker.ts). */
  retry: { maxAttempts?: number; baseDelayMs?: number; maxDelayMs?: number; stopRunAfter?: number };
  timeouts: { connectMs?: number; headersMs?: number; bodyMs?: number };
  /** Labels for `--select tag:…`. */
  tags: string[];
  /** The verdict's settings (src/verdict/). */
  alerts: AlertSettings;
  /** Where the outcome of a run goes (src/notify/): job settings and environment together. */
  notify: NotifyConfig;
}

export interface Project {
  dir: string;
  env: NodeJS.ProcessEnv;
  /** Files read, in overlay order, relative to dir. */
  configFiles: string[];
  /** Source definitions before interpolation: a job only needs the environment of its own source. */
  rawSources: Record<string, { file: string; value: unknown }>;
}

const JOB_NAME = /^[a-z0-9][a-z0-9_-]*$/;

export const EVENTS_ENDPOINT = 'https://logx.optimizely.com/v1/events';
export const EVENTS_ENDPOINT_EU = 'https://eu.logx.optimizely.com/v1/events';
export const CLASSIC_ENDPOINT = 'https://{projectId}.log.optimizely.com/event';

export function loadProject(dir: string, env: NodeJS.ProcessEnv): Project {
  const projectDir = resolve(dir);
  if (!existsSync(projectDir)) {
    throw new ConveyError('CONFIG_INVALID', `project folder ${projectDir} does not exist`, {
      hint: 'Pass --project <dir> pointing at the folder that holds config/ and jobs/.',
    });
  }
  const files = ['config/default.json'];
  const overlay = env.CONVEY_ENV;
  if (overlay) {
    if (!/^[A-Za-z0-9_-]+$/.test(overlay)) {
      throw new ConveyError('CONFIG_INVALID', `CONVEY_ENV="${overlay}" is not a config name`, {
        hint: 'Use letters, digits, - and _ only, e.g. CONVEY_ENV=production for config/production.json.',
      });
    }
    files.push(`config/${overlay}.json`);
  }
  const rawSources: Project['rawSources'] = {};
  const configFiles: string[] = [];
  for (const file of files) {
    const path = join(projectDir, file);
    if (!existsSync(path)) {
      if (file !== files[0]) {
        throw new ConveyError('CONFIG_INVALID', `CONVEY_ENV=${overlay} but ${file} does not exist`, {
          hint: `Create ${file} (it overlays config/default.json), or unset CONVEY_ENV.`,
        });
      }
      continue;
    }
    const parsed = readJson(path, file);
    refuseRedshift(parsed, file);
    // Checked before interpolation, so a missing variable in an unused source is not an error.
    const problems = validateProjectConfig(structuredClone(parsed));
    if (problems.length) throw invalid(file, problems);
    configFiles.push(file);
    const sources = (parsed as { sources?: Record<string, unknown> }).sources ?? {};
    for (const [name, value] of Object.entries(sources)) rawSources[name] = { file, value };
  }
  return { dir: projectDir, env, configFiles, rawSources };
}

export function listJobNames(project: Project): string[] {
  const jobsDir = join(project.dir, 'jobs');
  if (!existsSync(jobsDir)) return [];
  return readdirSync(jobsDir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -'.json'.length))
    .filter((name) => JOB_NAME.test(name) && existsSync(join(jobsDir, `${name}.sql`)))
    .sort();
}

export function loadJob(project: Project, name: string): JobConfig {
  if (!JOB_NAME.test(name)) {
    throw new ConveyError('CONFIG_INVALID', `"${name}" is not a job name`, {
      hint: 'A job is jobs/<name>.json plus jobs/<name>.sql; names use a-z, 0-9, - and _.',
    });
  }
  const settingsFile = `jobs/${name}.json`;
  const sqlFile = `jobs/${name}.sql`;
  const settingsPath = join(project.dir, settingsFile);
  const sqlPath = join(project.dir, sqlFile);
  if (!existsSync(settingsPath) || !existsSync(sqlPath)) {
    const known = listJobNames(project);
    const guess = didYouMean(name, known);
    const missing = !existsSync(settingsPath) ? settingsFile : sqlFile;
    throw new ConveyError('CONFIG_INVALID', `job "${name}" not found: ${missing} does not exist`, {
      hint: guess
        ? `Did you mean "${guess}"?`
        : known.length
          ? `Known jobs: ${known.join(', ')}.`
          : `Create ${settingsFile} and ${sqlFile} in ${project.dir}, or pass --project.`,
    });
  }
  return jobFromText(project, name, { settings: readText(settingsPath, settingsFile), sql: readText(sqlPath, sqlFile) });
}

/**
 * A job from the text of its two files, wherever they came from: the working tree, or another
 * commit (`plan --compare` reads the base with `git show`). `label` prefixes the file names in
 * messages (`main:jobs/orders.json`).
 */
export function jobFromText(project: Project, name: string, text: { settings: string; sql: string }, label = ''): JobConfig {
  const settingsFile = `${label}jobs/${name}.json`;
  const sqlFile = `${label}jobs/${name}.sql`;
  const written = parseJson(withoutBom(text.settings), settingsFile);
  const raw = interpolate(written, project.env, settingsFile);
  const problems = validateJobSettings(raw);
  if (problems.length) throw invalid(settingsFile, problems);
  const settings = raw as RawJobSettings;

  const sql = withoutBom(text.sql);
  if (!sql.trim()) {
    throw new ConveyError('CONFIG_INVALID', `${sqlFile} is empty`, {
      hint: 'Write a SELECT returning conversion_id, occurred_at, visitor_id and the event columns.',
    });
  }
  const start = parseInstant(settings.start);
  if (!start) throw invalid(settingsFile, [`start must be an ISO 8601 time, e.g. "2026-01-01T00:00:00Z"`]);
  const lookbackMicros = duration(settings.lookback, 'lookback', settingsFile);
  const settleMicros = duration(settings.settle, 'settle', settingsFile);
  if (!isValidZone(settings.timezone)) {
    throw invalid(settingsFile, [`timezone "${settings.timezone}" is not an IANA time zone (e.g. "Europe/Berlin", "UTC")`]);
  }

  return {
    name,
    projectDir: project.dir,
    sqlFile,
    settingsFile,
    sql,
    sqlHash: createHash('sha256').update(sql).digest('hex').slice(0, 16),
    source: resolveSource(project, settings.source, settingsFile),
    destination: resolveDestination(settings.destination, project.dir),
    cursor: settings.cursor,
    start,
    lookbackMicros,
    settleMicros,
    timezone: settings.timezone,
    batchSize: settings.batchSize,
    pageSize: settings.pageSize,
    ...(settings.maxRejects === undefined ? {} : { maxRejects: settings.maxRejects }),
    rateLimit: settings.rateLimit,
    retry: settings.retry,
    timeouts: settings.timeouts,
    tags: settings.tags,
    alerts: resolveAlerts(settings.alerts, settingsFile),
    notify: resolveNotify((written as { notify?: unknown }).notify, settings.notify, project.env, settingsFile, project.dir, name),
  };
}

interface RawJobSettings {
  source: string;
  destination: RawDestination;
  cursor: string;
  start: string;
  lookback: string;
  settle: string;
  timezone: string;
  batchSize: number;
  pageSize: number;
  maxRejects?: number;
  rateLimit: { perSecond?: number; concurrency: number };
  retry: JobConfig['retry'];
  timeouts: JobConfig['timeouts'];
  tags: string[];
  alerts: unknown;
  notify: unknown;
}

type RawDestination =
  | { type: 'optimizely-events'; accountId: string; projectId?: string; endpoint?: string; region: 'us' | 'eu'; anonymizeIp: boolean; strict: boolean; maxBatchBytes: number }
  | { type: 'optimizely-classic'; projectId: string; accountId?: string; endpoint?: string; revenueGoalId?: string; src?: string }
  | { type: 'file'; path: string; protocol: RawDestination };

function resolveDestination(raw: RawDestination, projectDir: string): DestinationConfig {
  switch (raw.type) {
    case 'optimizely-events':
      return {
        type: raw.type,
        accountId: raw.accountId,
        ...(raw.projectId ? { projectId: raw.projectId } : {}),
        endpoint: raw.endpoint ?? (raw.region === 'eu' ? EVENTS_ENDPOINT_EU : EVENTS_ENDPOINT),
        anonymizeIp: raw.anonymizeIp,
        strict: raw.strict,
        maxBatchBytes: raw.maxBatchBytes,
      };
    case 'optimizely-classic':
      return {
        type: raw.type,
        projectId: raw.projectId,
        ...(raw.accountId ? { accountId: raw.accountId } : {}),
        endpoint: (raw.endpoint ?? CLASSIC_ENDPOINT).replace('{projectId}', raw.projectId),
        ...(raw.revenueGoalId ? { revenueGoalId: raw.revenueGoalId } : {}),
        src: raw.src ?? `convey-${conveyVersion}`,
      };
    case 'file':
      return {
        type: 'file',
        path: raw.path === '-' ? '-' : resolve(projectDir, raw.path),
        protocol: resolveDestination(raw.protocol, projectDir) as EventsDestinationConfig | ClassicDestinationConfig,
      };
  }
}

export function resolveSource(project: Project, name: string, referencedFrom: string): SourceConfig {
  const entry = project.rawSources[name];
  if (!entry) {
    const known = Object.keys(project.rawSources);
    const guess = didYouMean(name, known);
    throw new ConveyError('CONFIG_INVALID', `${referencedFrom}: source "${name}" is not defined in ${project.configFiles.join(' or ') || 'config/default.json'}`, {
      hint: guess
        ? `Did you mean "${guess}"?`
        : `Add it under "sources" in config/default.json, e.g. "${name}": { "client": "pg", "connection": "\${WAREHOUSE_URL}" }.`,
    });
  }
  const value = interpolate(entry.value, project.env, entry.file, `sources.${name}`) as {
    client: string;
    connection: string | Record<string, unknown>;
    pool?: { max?: number };
    statementTimeoutMs?: number;
    spoolAfter?: string;
    dataDir: string;
    path?: string;
  };
  const inProject = (path: string): string => (isAbsolute(path) ? path : join(project.dir, path));
  const spoolAfter = value.spoolAfter ?? SPOOL_AFTER_DEFAULT;
  const spoolAfterMicros = parseFixedDuration(spoolAfter);
  if (spoolAfterMicros === undefined) {
    throw invalid(entry.file, [`sources.${name}.spoolAfter "${spoolAfter}" must be an ISO 8601 duration, e.g. "PT30S" (or "PT0S" to spool every window)`]);
  }
  const base = {
    name,
    file: entry.file,
    spoolAfterMs: Number(spoolAfterMicros / 1000n),
    ...(value.statementTimeoutMs ? { statementTimeoutMs: value.statementTimeoutMs } : {}),
  };
  const pool = value.pool?.max ? { poolMax: value.pool.max } : {};
  switch (value.client) {
    case 'pglite':
      return { ...base, client: 'pglite', dataDir: inProject(value.dataDir) };
    case 'duckdb':
      return { ...base, client: 'duckdb', projectDir: project.dir, ...(value.path ? { path: inProject(value.path) } : {}) };
    case 'mysql':
    case 'mariadb':
      return { ...base, client: 'mysql', connection: value.connection, ...pool };
    default:
      return { ...base, client: 'pg', connection: value.connection, ...pool };
  }
}

/**
 * knex's PostgreSQL client used to be offered for Redshift, untested: convey's SQL around a job
 * used PostgreSQL arrays, which Redshift lacks, and no Redshift ran in the tests. An engine is
 * claimed only where the contract suite has run on it.
 */
function refuseRedshift(parsed: unknown, file: string): void {
  const sources = (parsed as { sources?: Record<string, { client?: unknown }> } | null)?.sources ?? {};
  for (const [name, source] of Object.entries(sources)) {
    if (source?.client === 'redshift') {
      throw new ConveyError('CONFIG_INVALID', `${file}: sources.${name}.client "redshift" is not supported`, {
        hint: 'Export the window to Parquet (UNLOAD … FORMAT PARQUET) and read it with "client": "duckdb": README "Sources" shows the route end to end.',
      });
    }
  }
}

function duration(text: string, key: string, file: string): bigint {
  const micros = parseFixedDuration(text);
  if (micros === undefined) {
    throw invalid(file, [`${key} "${text}" must be an ISO 8601 duration in days, hours, minutes or seconds, e.g. "PT2H"`]);
  }
  return micros;
}

function isValidZone(zone: string): boolean {
  // The default needs no asking: Intl would map ICU's time zone data (6 MB resident) to say yes.
  if (zone === 'UTC') return true;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

function readJson(path: string, file: string): unknown {
  return parseJson(readText(path, file), file);
}

function readText(path: string, file: string): string {
  try {
    return withoutBom(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new ConveyError('CONFIG_INVALID', `${file} cannot be read: ${(error as Error).message}`, {
      hint: 'Check the file exists and is readable.',
    });
  }
}

function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ConveyError('CONFIG_INVALID', `${file} is not valid JSON: ${(error as Error).message}`, {
      hint: 'Fix the syntax (a trailing comma or a missing quote is the usual cause); an editor using the $schema in the file will point at it.',
    });
  }
}

/**
 * Editors on Windows save UTF-8 with a byte order mark. Invisible in the file, it made JSON.parse
 * fail on "Unexpected token" and PostgreSQL on "syntax error at or near": it is not content.
 */
const withoutBom = (text: string): string => (text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);

function invalid(file: string, problems: string[]): ConveyError {
  return new ConveyError('CONFIG_INVALID', problems.map((p) => `${file}: ${p}`).join('\n'), {
    hint: `Fix ${file}; schema/${file.includes('jobs/') ? 'job' : 'config'}.schema.json describes every setting.`,
    details: { file, problems },
  });
}
