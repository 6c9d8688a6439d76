import type { Knex } from 'knex';

/**
 * `backfills.runner_group`: the id a scheduler gives the runners it starts together for one
 * backfill (`convey backfill --group`, e.g. the CI run's id). A runner of the group that starts
 * after the others have finished the backfill finds it done and does nothing, instead of opening
 * a new backfill of the same range and reading (or, with --resend, sending) all of it again.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`alter table convey.backfills add column runner_group text`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`alter table convey.backfills drop column runner_group`);
}
