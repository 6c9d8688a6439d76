/**
 * Logs go to stderr so stdout stays clean for `--json` summaries and NDJSON output. On a terminal
 * they are short human lines; anywhere else (cron, CI) one JSON object per line, for log shippers.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

const rank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 };

export interface LoggerOptions {
  level?: LogLevel;
  format?: 'json' | 'human';
  write?: (line: string) => void;
  now?: () => number;
}

export function createLogger(options: LoggerOptions = {}, bound: LogFields = {}): Logger {
  const level = options.level ?? 'info';
  const format = options.format ?? 'json';
  const write = options.write ?? ((line: string) => process.stderr.write(line + '\n'));
  const now = options.now ?? Date.now;

  const emit = (at: Exclude<LogLevel, 'silent'>, message: string, fields?: LogFields): void => {
    if (rank[at] < rank[level]) return;
    const all = { ...bound, ...fields };
    if (format === 'json') {
      write(JSON.stringify({ time: new Date(now()).toISOString(), level: at, msg: message, ...all }));
      return;
    }
    const extras = Object.entries(all)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    const tag = at === 'info' ? '' : `${at}: `;
    write(`${tag}${message}${extras ? `  ${extras}` : ''}`);
  };

  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger(options, { ...bound, ...fields }),
  };
}

export const silentLogger: Logger = createLogger({ level: 'silent' });
