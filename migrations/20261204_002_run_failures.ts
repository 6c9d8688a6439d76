import type { Knex } from 'knex';

/**
 * Why a run's conversions failed, grouped by cause and endpoint (the run summary's `failures`), so
 * `convey status` can say it after the run: before this, the reason was only in each ledger row's
 * last_error. A JSON list, a few entries per failed run and none on success; never queried inside.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`alter table convey.runs add column failures jsonb not null default '[]'`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('alter table convey.runs drop column failures');
}
