import type { Db } from '../db.ts';

/**
 * The shared send schedule of a destination (the UNLOGGED table convey.rate_budgets, one row per
 * destination key), paced on the database's clock so that the machines' own clocks never matter.
 * See delivery/leased-budget.ts for how a runner uses it.
 *
 * The rate a lease is paced at is the job's (after headroom), lowered by the last AIMD cut and
 * climbing back by a share of it per second since that cut: the recovery every runner's own AIMD
 * would do (delivery/adaptive-rate.ts), done once, on the row, for all of them.
 */

export interface SharedPacing {
  /** Destination key: every job sending to it shares the row. */
  key: string;
  /** Requests per second the schedule runs at (the job's perSecond less the headroom). */
  perSecond: number;
  /** AIMD, as in delivery/adaptive-rate.ts: factor of a cut, share of the limit regained per quiet second, floor, one cut per window. */
  decreaseFactor: number;
  increaseFraction: number;
  floor: number;
  decreaseWindowMs: number;
}

/** Channel of the NOTIFY that tells every runner to pause. */
const PAUSE_CHANNEL = 'convey_rate_budget_pause';

/** The rate now, in SQL: $limit lowered by the last cut, regaining $step × $limit per whole second since. */
const rateNow = (limit: string, step: string): string =>
  `least(${limit}::float8, coalesce(b.cut_rate + ${limit}::float8 * ${step}::float8 * floor(extract(epoch from (n.t - b.cut_at))), ${limit}::float8))`;

/** The schedule of one destination, for delivery/leased-budget.ts. */
export async function sharedSchedule(db: Db, pacing: SharedPacing) {
  const { key } = pacing;
  // Made again whenever it is missing: the table is UNLOGGED, so a server crash empties it.
  const ensure = (): Promise<unknown> => db.query(`insert into convey.rate_budgets (key, tat) values ($1, clock_timestamp()) on conflict (key) do nothing`, [key]);
  await ensure();
  const listeners: Array<(ms: number) => void> = [];
  await db.listen(PAUSE_CHANNEL, (payload) => {
    const message = JSON.parse(payload) as { key: string; ms: number };
    if (message.key !== key) return;
    for (const listener of listeners) listener(message.ms);
  });
  return {
    async reserve(n: number): Promise<{ waitMs: number; slotMs: number }> {
      // One statement, one row lock: the lease starts where the last one ended, or now (or when a
      // pause ends), and moves `tat` past its n slots.
      const { rows } = await db.query<{ end_ms: number; rate: number }>(
        `update convey.rate_budgets b
            set tat = greatest(b.tat, n.t, coalesce(b.paused_until, n.t)) + $2::int * interval '1 second' / ${rateNow('$3', '$4')}
           from (select clock_timestamp() as t) n
          where b.key = $1
         returning extract(epoch from (b.tat - n.t)) * 1000 as end_ms, ${rateNow('$3', '$4')} as rate`,
        [key, n, pacing.perSecond, pacing.increaseFraction],
      );
      const row = rows[0];
      if (!row) {
        await ensure();
        throw new Error(`the rate budget row for ${key} was missing (made again)`);
      }
      const slotMs = 1000 / Number(row.rate);
      return { waitMs: Number(row.end_ms) - n * slotMs, slotMs };
    },
    async pause(ms: number): Promise<void> {
      await db.query(
        `with paused as (
           update convey.rate_budgets set paused_until = greatest(coalesce(paused_until, '-infinity'), clock_timestamp() + $2::float8 * interval '1 millisecond')
            where key = $1 returning key)
         select pg_notify($3, json_build_object('key', $1::text, 'ms', $2::float8)::text) from paused`,
        [key, ms, PAUSE_CHANNEL],
      );
    },
    async throttled(): Promise<void> {
      await db.query(
        `update convey.rate_budgets b
            set cut_rate = greatest($5::float8, ${rateNow('$2', '$3')} * $4::float8), cut_at = n.t
           from (select clock_timestamp() as t) n
          where b.key = $1 and (b.cut_at is null or b.cut_at < n.t - $6::float8 * interval '1 millisecond')`,
        [key, pacing.perSecond, pacing.increaseFraction, pacing.decreaseFactor, pacing.floor, pacing.decreaseWindowMs],
      );
    },
    onPause(listener: (ms: number) => void): void {
      listeners.push(listener);
    },
  };
}
