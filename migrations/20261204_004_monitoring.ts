import type { Knex } from 'knex';

/**
 * What monitoring needs to remember between processes:
 * - `runs.warnings`: the verdict of each run against the job's history (src/verdict/), so
 *   `convey status` and the metrics can show it after the run's process is gone. Null for runs
 *   that got no verdict (older runs, interrupted runs, modes without one).
 * - `notify_state`: per job, mode and channel, the state last notified (ok, warning:<checks>,
 *   failing) and the count of failed runs in a row, so a webhook is sent on a change of state and
 *   not every night, whichever process or machine runs the job next.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    alter table convey.runs add column warnings jsonb;

    create table convey.notify_state (
      job text not null,
      mode text not null,
      channel text not null,
      state text not null,
      -- Failed runs in a row, counted by every run that finished (not only those that notified).
      failures integer not null default 0,
      -- When the job entered the state notified last (a failing streak's first failure).
      since timestamptz not null default now(),
      run_id bigint,
      updated_at timestamptz not null default now(),
      primary key (job, mode, channel)
    );
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    drop table convey.notify_state;
    alter table convey.runs drop column warnings;
  `);
}
