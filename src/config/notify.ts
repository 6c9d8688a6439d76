import { hostname } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { ConveyError } from '../errors.ts';
import { conveyVersion } from '../package-root.ts';

/**
 * Where a run's outcome goes (src/notify/), resolved once from the job's `notify` settings and
 * the environment. A job setting wins over the environment, which turns a channel on for every
 * job. Nothing here is read again later: notifiers get these values, never process.env.
 */
export interface NotifyConfig {
  github?: GithubConfig;
  webhook?: WebhookConfig;
  heartbeat?: HeartbeatConfig;
  prometheus?: PrometheusConfig;
  otlp?: OtlpConfig;
}

export interface GithubConfig {
  /** GITHUB_STEP_SUMMARY: the file a step appends Markdown to. */
  stepSummary?: string;
  /** GITHUB_ACTIONS=true: `::error` / `::warning` lines become annotations. */
  annotations: boolean;
  /** GITHUB_WORKSPACE: annotation file paths are relative to it. */
  workspace?: string;
}

export interface WebhookConfig {
  url: string;
  format: 'slack' | 'json';
  stillFailingEvery: number;
  warnings: boolean;
}

export interface HeartbeatConfig {
  url: string;
  failWith: 'exit-code' | 'fail';
}

export interface PrometheusConfig {
  /** Absolute folder of node_exporter's textfile collector. */
  dir: string;
}

export interface OtlpConfig {
  /** The metrics endpoint, /v1/metrics included. */
  url: string;
  protocol: 'http/json' | 'http/protobuf';
  headers: Record<string, string>;
  timeoutMs: number;
  /** Resource attributes: service.name and OTEL_RESOURCE_ATTRIBUTES. */
  resource: Record<string, string>;
  /** Why these metrics cannot be sent (gRPC asked for): reported as this notifier's failure at each run, never failing it. */
  refused?: string;
}

interface RawChannel {
  enabled?: boolean;
  url?: string;
  format?: 'slack' | 'json';
  stillFailingEvery?: number;
  warnings?: boolean;
  failWith?: 'exit-code' | 'fail';
  dir?: string;
}

interface RawNotify {
  webhook?: RawChannel;
  heartbeat?: RawChannel;
  prometheus?: RawChannel;
}

/**
 * Two seconds on the spec's 10 s OTLP default would be tight for a collector across a region;
 * ten is what OpenTelemetry chose (OTEL_EXPORTER_OTLP_TIMEOUT) and what a webhook or a ping
 * gets too: long enough for a slow chat service, short enough that a dead one delays the end
 * of a nightly run by seconds, not minutes.
 */
export const NOTIFY_TIMEOUT_MS = 10_000;

/**
 * `raw` is the job's `notify` as written (before `${NAME}` was replaced), `settings` the same
 * after interpolation and the schema's check. A URL written literally in the job file is
 * refused: it is a secret, and the job file lives in a repository.
 */
export function resolveNotify(raw: unknown, settings: unknown, env: NodeJS.ProcessEnv, file: string, projectDir: string, job: string): NotifyConfig {
  const written = (raw ?? {}) as RawNotify;
  const job_ = (settings ?? {}) as RawNotify;
  const config: NotifyConfig = {};

  const github = githubFromEnv(env);
  if (github) config.github = github;

  const webhookUrl = channelUrl('webhook', written.webhook, job_.webhook, env.CONVEY_WEBHOOK_URL, 'CONVEY_WEBHOOK_URL', file);
  if (webhookUrl) {
    const envFormat = env.CONVEY_WEBHOOK_FORMAT;
    if (envFormat && envFormat !== 'slack' && envFormat !== 'json') {
      throw new ConveyError('CONFIG_INVALID', `CONVEY_WEBHOOK_FORMAT=${JSON.stringify(envFormat)} is not a webhook format`, { hint: 'Use slack (Slack-compatible incoming webhooks) or json, or unset it (json).' });
    }
    config.webhook = {
      url: webhookUrl,
      format: job_.webhook?.format ?? (envFormat as 'slack' | 'json' | undefined) ?? 'json',
      stillFailingEvery: job_.webhook?.stillFailingEvery ?? 3,
      warnings: job_.webhook?.warnings ?? true,
    };
  }

  const heartbeatUrl = channelUrl('heartbeat', written.heartbeat, job_.heartbeat, env.CONVEY_HEARTBEAT_URL?.replaceAll('{job}', job), 'CONVEY_HEARTBEAT_URL', file);
  if (heartbeatUrl) config.heartbeat = { url: heartbeatUrl.replace(/\/+$/, ''), failWith: job_.heartbeat?.failWith ?? 'exit-code' };

  const prometheus = job_.prometheus;
  const dir = prometheus?.enabled === false ? undefined : (prometheus?.dir ?? env.CONVEY_PROMETHEUS_DIR);
  if (dir) config.prometheus = { dir: isAbsolute(dir) ? dir : join(projectDir, dir) };
  else if (prometheus?.enabled === true) {
    throw new ConveyError('CONFIG_INVALID', `${file}: notify.prometheus is enabled but has no dir, and CONVEY_PROMETHEUS_DIR is not set`, {
      hint: 'Set notify.prometheus.dir to the textfile collector folder (node_exporter --collector.textfile.directory).',
    });
  }

  const otlp = otlpFromEnv(env);
  if (otlp) config.otlp = otlp;
  return config;
}

function githubFromEnv(env: NodeJS.ProcessEnv): GithubConfig | undefined {
  const annotations = env.GITHUB_ACTIONS === 'true';
  const stepSummary = env.GITHUB_STEP_SUMMARY || undefined;
  if (!annotations && !stepSummary) return undefined;
  return { annotations, ...(stepSummary ? { stepSummary } : {}), ...(env.GITHUB_WORKSPACE ? { workspace: env.GITHUB_WORKSPACE } : {}) };
}

/** A webhook or heartbeat URL: the job's (an environment reference), else the environment's. */
function channelUrl(name: string, written: RawChannel | undefined, setting: RawChannel | undefined, fromEnv: string | undefined, envName: string, file: string): string | undefined {
  if (setting?.enabled === false) return undefined;
  if (setting?.url !== undefined) {
    if (!written?.url?.includes('${')) {
      throw new ConveyError('CONFIG_INVALID', `${file}: notify.${name}.url is written in the file; it is a secret and must come from the environment`, {
        hint: `Write "url": "\${${envName}}" (or a name of your own) and set that variable where convey runs.`,
      });
    }
    return httpUrl(setting.url, `${file}: notify.${name}.url (${written.url})`);
  }
  if (fromEnv) return httpUrl(fromEnv, envName);
  if (setting?.enabled === true) {
    throw new ConveyError('CONFIG_INVALID', `${file}: notify.${name} is enabled but has no url, and ${envName} is not set`, {
      hint: `Set notify.${name}.url to "\${${envName}}" and the variable where convey runs.`,
    });
  }
  return undefined;
}

/** Never echoes the URL: it is a secret. */
function httpUrl(text: string, where: string): string {
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
    throw new ConveyError('CONFIG_INVALID', `${where} is not an http(s) URL`, { hint: 'Check the variable holds the whole URL, https:// included.' });
  }
  return text;
}

/**
 * The standard OpenTelemetry exporter variables, read here so the SDK never reads process.env:
 * https://opentelemetry.io/docs/specs/otel/protocol/exporter/. A metrics-specific variable wins
 * over the general one; the general endpoint gets /v1/metrics appended, the specific one is
 * used as it is.
 */
function otlpFromEnv(env: NodeJS.ProcessEnv): OtlpConfig | undefined {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return undefined;
  const specific = env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT;
  const general = env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (!specific && !general) return undefined;
  const url = specific ? httpUrl(specific, 'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT') : `${httpUrl(general!, 'OTEL_EXPORTER_OTLP_ENDPOINT').replace(/\/+$/, '')}/v1/metrics`;

  const protocolVar = env.OTEL_EXPORTER_OTLP_METRICS_PROTOCOL ? 'OTEL_EXPORTER_OTLP_METRICS_PROTOCOL' : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const asked = env[protocolVar] || 'http/protobuf';
  // A cluster that sets gRPC for every pod must not stop the night's conversions: the metrics are
  // not sent, and each run says why (a notifier's failure is logged, never the run's).
  const refused =
    asked === 'http/protobuf' || asked === 'http/json'
      ? undefined
      : `${protocolVar}=${JSON.stringify(asked)}: convey exports metrics over OTLP/HTTP only; set OTEL_EXPORTER_OTLP_METRICS_PROTOCOL=http/protobuf (or http/json) and OTEL_EXPORTER_OTLP_METRICS_ENDPOINT to the collector's HTTP port (4318)`;
  const protocol = refused ? 'http/protobuf' : (asked as OtlpConfig['protocol']);

  const headersVar = env.OTEL_EXPORTER_OTLP_METRICS_HEADERS ? 'OTEL_EXPORTER_OTLP_METRICS_HEADERS' : 'OTEL_EXPORTER_OTLP_HEADERS';
  const timeoutVar = env.OTEL_EXPORTER_OTLP_METRICS_TIMEOUT ? 'OTEL_EXPORTER_OTLP_METRICS_TIMEOUT' : 'OTEL_EXPORTER_OTLP_TIMEOUT';
  const timeoutText = env[timeoutVar];
  const timeoutMs = timeoutText ? Number(timeoutText) : NOTIFY_TIMEOUT_MS;
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) {
    throw new ConveyError('CONFIG_INVALID', `${timeoutVar}=${JSON.stringify(timeoutText)} is not a whole number of milliseconds`, { hint: `e.g. ${timeoutVar}=10000 (the default).` });
  }
  const resource = {
    'service.name': 'convey',
    'service.version': conveyVersion,
    'host.name': hostname(),
    ...keyValues(env.OTEL_RESOURCE_ATTRIBUTES, 'OTEL_RESOURCE_ATTRIBUTES'),
    ...(env.OTEL_SERVICE_NAME ? { 'service.name': env.OTEL_SERVICE_NAME } : {}),
  };
  return { url, protocol, headers: keyValues(env[headersVar], headersVar), timeoutMs, resource, ...(refused ? { refused } : {}) };
}

/** `key1=value1,key2=value2`, values percent-decoded (the W3C Baggage form the spec uses). */
function keyValues(text: string | undefined, name: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of (text ?? '').split(',')) {
    if (!pair.trim()) continue;
    const eq = pair.indexOf('=');
    let value: string | undefined;
    try {
      value = eq > 0 ? decodeURIComponent(pair.slice(eq + 1).trim()) : undefined;
    } catch {
      value = undefined;
    }
    if (value === undefined) {
      // The pair may hold a credential: name its position, not its text.
      throw new ConveyError('CONFIG_INVALID', `${name}: entry ${Object.keys(out).length + 1} is not key=value (percent-encoded)`, { hint: `e.g. ${name}=api-key=secret,tenant=acme` });
    }
    out[pair.slice(0, eq).trim()] = value;
  }
  return out;
}
