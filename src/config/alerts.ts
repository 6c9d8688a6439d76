import { ConveyError } from '../errors.ts';
import { parseFixedDuration } from '../time/instant.ts';

/**
 * The verdict's settings (`alerts` in a job's JSON), complete: the schema fills in every default
 * (schema/job.schema.json holds them, and README "Monitoring" says how they were chosen).
 */
export interface AlertSettings {
  enabled: boolean;
  /** Runs whose window ended within this many ms before this run's are the history. */
  historyMs: number;
  minRuns: number;
  rowsRead: { enabled: boolean; below: number; above: number; minRows: number };
  rejectedShare: { enabled: boolean; above: number; times: number; minRejects: number };
  newRejectReason: { enabled: boolean };
  watermarkLag: { enabled: boolean; times: number; maxMs?: number };
}

interface RawAlerts {
  enabled: boolean;
  history: string;
  minRuns: number;
  rowsRead: AlertSettings['rowsRead'];
  rejectedShare: AlertSettings['rejectedShare'];
  newRejectReason: AlertSettings['newRejectReason'];
  watermarkLag: { enabled: boolean; times: number; max?: string };
}

/** After the schema check: only the durations are left to read. */
export function resolveAlerts(raw: unknown, file: string): AlertSettings {
  const alerts = raw as RawAlerts;
  const ms = (text: string, key: string): number => {
    const micros = parseFixedDuration(text);
    if (micros === undefined || micros <= 0n) {
      throw new ConveyError('CONFIG_INVALID', `${file}: alerts.${key} "${text}" must be a positive ISO 8601 duration in days, hours, minutes or seconds, e.g. "P2D"`, {
        hint: `Fix ${file}; schema/job.schema.json describes every setting.`,
      });
    }
    return Number(micros / 1000n);
  };
  const { max, ...lag } = alerts.watermarkLag;
  return {
    enabled: alerts.enabled,
    historyMs: ms(alerts.history, 'history'),
    minRuns: alerts.minRuns,
    rowsRead: alerts.rowsRead,
    rejectedShare: alerts.rejectedShare,
    newRejectReason: alerts.newRejectReason,
    watermarkLag: { ...lag, ...(max === undefined ? {} : { maxMs: ms(max, 'watermarkLag.max') }) },
  };
}
