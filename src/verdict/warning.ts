/**
 * What the verdict can say about a run, one code per check. The codes are stable: they are stored
 * with the run, named by `--fail-on`, and used as annotation titles and metric labels.
 */
export const WARNING_CHECKS = ['low_volume', 'high_volume', 'rejected_share', 'new_reject_reason', 'watermark_lag'] as const;

export type WarningCheck = (typeof WARNING_CHECKS)[number];

export interface RunWarning {
  check: WarningCheck;
  /** One line for a person: what was seen and what was usual. */
  message: string;
  /** The figure this run had (rows per window, a share, seconds of lag, rows with the new reason). */
  observed: number;
  /** What comparable runs had (their median), when the check compares with history. */
  usual?: number;
  /** Beyond this the figure is unusual. */
  threshold?: number;
  /** new_reject_reason: the reason codes never seen before in this job. */
  reasons?: string[];
}

/** What the run was compared with, for the summary: how many runs, and how they were chosen. */
export interface Baseline {
  /** Successful runs of the same mode within the history window. */
  runs: number;
  /** Of those, the ones the figures were compared with. */
  comparable: number;
  /** 'week': runs at the same time of the week; 'day': at the same time of day; 'all': every run. */
  matched: 'week' | 'day' | 'all';
  /** Set when there were too few runs to judge: the checks that need history were skipped. */
  needed?: number;
}

export interface Verdict {
  warnings: RunWarning[];
  baseline: Baseline | null;
}

export const isWarningCheck = (text: string): text is WarningCheck => (WARNING_CHECKS as readonly string[]).includes(text);
