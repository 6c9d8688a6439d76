import type { Queryable } from '../db.ts';

/** What a channel last told people about a job's runs of one mode. */
export interface NotifiedState {
  /** 'ok', 'failing', or 'warning:<checks>'. */
  state: string;
  /** Failed runs in a row, this run included. */
  failures: number;
  /** When the current state began, epoch ms. */
  sinceMs: number;
}

/**
 * Records a finished run on the channel's memory and returns what it was before, in one
 * transaction (the row is locked, so two processes finishing the same job cannot both see the
 * old state). `next` gets the previous memory and returns the state to remember.
 */
export async function advanceNotifyState(
  tx: Queryable,
  key: { job: string; mode: string; channel: string },
  runId: number | null,
  nowMs: number,
  next: (previous: NotifiedState) => NotifiedState,
): Promise<{ previous: NotifiedState; current: NotifiedState }> {
  await tx.query(
    `insert into convey.notify_state (job, mode, channel, state, since) values ($1, $2, $3, 'ok', to_timestamp($4::float8 / 1000))
     on conflict do nothing`,
    [key.job, key.mode, key.channel, nowMs],
  );
  const { rows } = await tx.query<NotifiedState>(
    `select state, failures, (extract(epoch from since) * 1000)::float8 as "sinceMs"
       from convey.notify_state where job = $1 and mode = $2 and channel = $3 for update`,
    [key.job, key.mode, key.channel],
  );
  const previous = rows[0]!;
  const current = next(previous);
  await tx.query(
    `update convey.notify_state set state = $4, failures = $5, since = to_timestamp($6::float8 / 1000), run_id = $7, updated_at = now()
      where job = $1 and mode = $2 and channel = $3`,
    [key.job, key.mode, key.channel, current.state, current.failures, current.sinceMs, runId],
  );
  return { previous, current };
}

/**
 * A notification that could not be delivered: the remembered state goes back to what was last
 * told, so the next run sees the change again and sends it. Only if nothing moved it since.
 */
export async function restoreNotifiedState(q: Queryable, key: { job: string; mode: string; channel: string }, from: string, to: NotifiedState): Promise<void> {
  await q.query(
    `update convey.notify_state set state = $5, since = to_timestamp($6::float8 / 1000), updated_at = now()
      where job = $1 and mode = $2 and channel = $3 and state = $4`,
    [key.job, key.mode, key.channel, from, to.state, to.sinceMs],
  );
}
