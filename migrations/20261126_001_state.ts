import type { Knex } from 'knex';

/**
 * The state schema: runs (the audit trail), watermarks, the ledger of conversions and the batches
 * that carry them, rejects, and backfills. Everything lives in the `convey` schema so it can share
 * a database with other tools.
 *
 * The ledger writes one row per conversion, once: a conversion is claimed by inserting its row
 * (the primary key is the idempotency key, so the insert is the guard against a double send, for
 * any number of workers), and its outcome is then recorded on its *batch*, one row per few hundred
 * conversions. Marking each conversion sent row by row doubled the ledger's cost (measured: 1M
 * conversions claimed and marked per row took 16 s on the 2-core CI machine; claimed per row and
 * marked per batch, 11 s). Only the exceptions (failed, deferred) are written on the row itself.
 * The `convey.conversions` view gives every conversion its effective status.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    create table convey.runs (
      id bigserial primary key,
      job text not null,
      mode text not null check (mode in ('run', 'backfill', 'retry', 'replay', 'state')),
      status text not null check (status in ('running', 'succeeded', 'failed', 'interrupted', 'crashed')),
      started_at timestamptz not null default now(),
      finished_at timestamptz,
      window_start timestamptz,
      window_end timestamptz,
      watermark_before timestamptz,
      watermark_after timestamptz,
      counts jsonb not null default '{}',
      sql_hash text,
      convey_version text not null,
      host text not null,
      pid integer not null,
      actor text,
      note text,
      error text
    );
    create index runs_by_job on convey.runs (job, id desc);

    create table convey.watermarks (
      job text primary key,
      value timestamptz not null,
      updated_at timestamptz not null default now(),
      run_id bigint not null references convey.runs (id)
    );

    create table convey.batches (
      id bigserial primary key,
      run_id bigint not null references convey.runs (id),
      job text not null,
      destination text not null,
      origin text not null check (origin in ('source', 'retry', 'in-doubt', 'resend')),
      status text not null check (status in ('pending', 'done', 'abandoned')),
      size integer not null,
      created_at timestamptz not null default now(),
      finished_at timestamptz
    );
    create index batches_pending on convey.batches (job) where status = 'pending';
    create index batches_by_run on convey.batches (run_id);

    create table convey.ledger (
      destination text not null,
      event text not null,
      conversion_id text not null,
      job text not null,
      -- No foreign key to batches: a batch is only ever inserted in the transaction that inserts
      -- its ledger rows, and never deleted. Checking one on every claimed row cost 4 s of
      -- PostgreSQL CPU per million conversions (a fifth of the state store's work).
      batch_id bigint not null,
      -- null: as its batch says (pending, then sent). 'failed': retries ran out. 'deferred': claimed
      -- but never sent because the run stopped. Both are sent first by the job's next run.
      outcome text check (outcome in ('failed', 'deferred')),
      occurred_at timestamptz not null,
      cursor_value timestamptz not null,
      -- What goes on the wire for this conversion (Event API: the visitor JSON; classic: the URL),
      -- so failed and in-doubt conversions are resent without reading the source again.
      payload text not null,
      attempts integer not null default 0,
      last_error text,
      first_claimed_at timestamptz not null default now(),
      constraint ledger_idempotency_key primary key (destination, event, conversion_id)
    );
    create index ledger_by_batch on convey.ledger (batch_id);
    create index ledger_open on convey.ledger (job) where outcome is not null;

    create view convey.conversions as
      select l.destination, l.event, l.conversion_id, l.job,
             coalesce(l.outcome, case b.status when 'done' then 'sent' else 'pending' end) as status,
             case when l.outcome is null and b.status = 'done' then b.finished_at end as sent_at,
             l.occurred_at, l.cursor_value, l.attempts, l.last_error, l.batch_id, b.run_id, l.payload
        from convey.ledger l join convey.batches b on b.id = l.batch_id;

    create table convey.rejects (
      id bigserial primary key,
      job text not null,
      run_id bigint not null references convey.runs (id),
      conversion_id text,
      cursor_value timestamptz,
      reason_code text not null,
      reason text not null,
      row jsonb not null,
      times_seen integer not null default 1,
      created_at timestamptz not null default now(),
      last_seen_at timestamptz not null default now(),
      resolved_at timestamptz,
      resolved_by_run bigint references convey.runs (id)
    );
    -- A row rejected again by a later run (the lookback re-reads it) updates its reject, not a copy.
    create unique index rejects_open_key on convey.rejects (job, conversion_id, reason_code)
      where resolved_at is null and conversion_id is not null;
    create index rejects_open on convey.rejects (job, id) where resolved_at is null;

    create table convey.backfills (
      id bigserial primary key,
      job text not null,
      range_start timestamptz not null,
      range_end timestamptz not null,
      chunk_micros bigint not null,
      resend boolean not null,
      status text not null check (status in ('running', 'done')),
      created_at timestamptz not null default now(),
      finished_at timestamptz
    );
    create unique index backfills_open on convey.backfills (job, range_start, range_end, resend)
      where status <> 'done';

    create table convey.backfill_chunks (
      backfill_id bigint not null references convey.backfills (id) on delete cascade,
      chunk_start timestamptz not null,
      chunk_end timestamptz not null,
      run_id bigint references convey.runs (id),
      done_at timestamptz,
      counts jsonb,
      primary key (backfill_id, chunk_start)
    );
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    drop table convey.backfill_chunks;
    drop table convey.backfills;
    drop table convey.rejects;
    drop view convey.conversions;
    drop table convey.ledger;
    drop table convey.batches;
    drop table convey.watermarks;
    drop table convey.runs;
  `);
}
