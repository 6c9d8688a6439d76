import type { Knex } from 'knex';
import * as state from './20261126_001_state.ts';
import * as runFailures from './20261204_002_run_failures.ts';
import * as scale from './20261204_003_scale.ts';
import * as monitoring from './20261204_004_monitoring.ts';
import * as backfillGroup from './20261205_005_backfill_group.ts';

/**
 * Every migration, in order. Listed here rather than found by reading the folder, so the same
 * list works from TypeScript sources and from the compiled dist/.
 */
export const migrations: Array<{ name: string } & Knex.Migration> = [
  { name: '20261126_001_state', up: state.up, down: state.down },
  { name: '20261204_002_run_failures', up: runFailures.up, down: runFailures.down },
  { name: '20261204_003_scale', up: scale.up, down: scale.down },
  { name: '20261204_004_monitoring', up: monitoring.up, down: monitoring.down },
  { name: '20261205_005_backfill_group', up: backfillGroup.up, down: backfillGroup.down },
];
