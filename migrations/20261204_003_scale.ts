import type { Knex } from 'knex';

/**
 * Runners on several machines sharing the work (issue 14).
 *
 * - `backfill_takes`: which run is working on which chunk of a backfill, for `convey status`. The
 *   chunk itself is held by a row lock on `backfill_chunks` inside a transaction that lasts as long
 *   as the chunk (the database releases it when the runner's connection ends), and an uncommitted
 *   row is invisible to other sessions: so the taker says so here, committed, and `status` keeps
 *   only the takes of runs that are alive.
 * - `rate_budgets`: one row per destination key, the shared send schedule (GCRA on the database's
 *   clock): `tat` is the time at which the next free slot starts; a Retry-After pause and the last
 *   AIMD cut are kept beside it. UNLOGGED: no WAL for a row rewritten hundreds of times a second
 *   (about 0.5 ms a reservation, measured while researching the issue); after a server crash the
 *   table comes back empty, which only means the schedule starts again from now.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    create table convey.backfill_takes (
      backfill_id bigint not null references convey.backfills (id) on delete cascade,
      chunk_start timestamptz not null,
      run_id bigint not null,
      taken_at timestamptz not null default now(),
      primary key (backfill_id, chunk_start, run_id)
    );

    create unlogged table convey.rate_budgets (
      key text primary key,
      tat timestamptz not null,
      paused_until timestamptz,
      cut_rate double precision,
      cut_at timestamptz
    );
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    drop table convey.rate_budgets;
    drop table convey.backfill_takes;
  `);
}
