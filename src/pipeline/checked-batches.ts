import { checkRow } from '../check/check-row.ts';
import type { JobConfig } from '../config/project.ts';
import type { Destination, Encoded } from '../destinations/destination.ts';
import type { SourceRow } from '../source/driver.ts';
import { describeMapping, type DescribedMapping, type Mapping } from '../source/mapping.ts';
import { ConveyError } from '../errors.ts';
import type { Source } from '../source/open.ts';
import { readWindow, type ReadOptions } from '../source/read-window.ts';
import type { Window } from '../time/window.ts';
import { keyOf, type ClaimItem } from '../state/sql/ledger.ts';
import type { RejectInput } from '../state/sql/rejects.ts';
import type { Instant } from '../time/instant.ts';

/** A checked, encoded conversion, with the source row it came from (for a reject the endpoint causes later). */
export type Item = ClaimItem & Encoded & { row: SourceRow };

/** Up to `batchSize` checked conversions, with the rows rejected on the way. */
export interface CheckedBatch {
  /** Rows this batch accounts for (items + rejects). */
  read: number;
  items: Item[];
  rejects: RejectInput[];
  /** Cursor of the last row covered; undefined for rows outside any window. */
  highCursor: Instant | undefined;
}

/**
 * Rows with a NULL cursor belong to no window, so every run reads them again (a mapping that does
 * not filter on :window_start sees them all): at most this many are reported per read.
 */
const NULL_CURSOR_LIMIT = 1000;

export const mappingOf = (job: JobConfig): Mapping => ({ sql: job.sql, file: job.sqlFile, cursor: job.cursor });

/** Before anything is read or sent: the job's SQL must return what the destination needs. */
export async function describeJobMapping(source: Source, job: JobConfig, destination: Destination, window: Window): Promise<DescribedMapping> {
  const mapping = await describeMapping(source, mappingOf(job), window);
  const problems = destination.checkColumns(mapping.names);
  if (problems.length) {
    throw new ConveyError('MAPPING_INVALID', problems.map((p) => `${job.sqlFile}: ${p}`).join('\n'), {
      hint: `${destination.label} cannot send this mapping; fix the SELECT in ${job.sqlFile}.`,
    });
  }
  return mapping;
}

/**
 * Reads a window and turns its rows into batches of encoded conversions, checking every row on
 * the way. A row that cannot be sent becomes a reject with its reason; a key repeated within the
 * batch is a duplicate (repeats across batches are caught by the ledger, or by `plan`'s own set).
 */
export async function* checkedBatches(
  source: Source,
  mapping: DescribedMapping,
  job: JobConfig,
  destination: Destination,
  window: Window,
  options: Omit<ReadOptions, 'fetchRows'>,
): AsyncGenerator<CheckedBatch> {
  let batch = emptyBatch();
  let keys = new Set<string>();
  let nullCursors = 0;
  for await (const page of readWindow(source, mapping, window, { ...options, fetchRows: job.pageSize })) {
    for (const row of page) {
      if (row[job.cursor] === null) {
        if (++nullCursors > NULL_CURSOR_LIMIT) continue;
        batch.read++;
        batch.rejects.push(nullCursorReject(row, job.cursor));
        continue;
      }
      batch.read++;
      const checked = checkRow(row, job.cursor);
      if (!checked.ok) {
        batch.highCursor = checked.cursor ?? batch.highCursor;
        batch.rejects.push({ conversionId: checked.conversionId, cursor: checked.cursor, reasonCode: checked.rejection.code, reason: checked.rejection.reason, row });
      } else {
        batch.highCursor = checked.conversion.cursor;
        const conversion = checked.conversion;
        const refusal = destination.refuse(conversion);
        if (refusal) {
          batch.rejects.push({ conversionId: conversion.conversionId, cursor: conversion.cursor, reasonCode: refusal.code, reason: refusal.reason, row });
        } else {
          const encoded = destination.encode(conversion);
          const item: Item = { event: encoded.event, conversionId: encoded.conversionId, payload: encoded.payload, occurredAt: conversion.occurredAt, cursor: conversion.cursor, row };
          const key = keyOf(item);
          if (keys.has(key)) {
            batch.rejects.push(duplicateReject(item, row));
          } else {
            keys.add(key);
            batch.items.push(item);
          }
        }
      }
      if (batch.items.length >= job.batchSize) {
        yield batch;
        batch = emptyBatch();
        keys = new Set();
      }
    }
  }
  if (batch.read) yield batch;
}

/** A second row with the idempotency key of one already taken in this window. */
export function duplicateReject(item: Item, row: SourceRow): RejectInput {
  return {
    conversionId: item.conversionId,
    cursor: item.cursor,
    reasonCode: 'duplicate_conversion',
    reason: `conversion ${item.conversionId} (event ${item.event}) appears more than once in the window; only the first is sent`,
    row,
  };
}

function emptyBatch(): CheckedBatch {
  return { read: 0, items: [], rejects: [], highCursor: undefined };
}

function nullCursorReject(row: SourceRow, cursorColumn: string): RejectInput {
  const id = row.conversion_id;
  return {
    ...(id === null || id === undefined ? {} : { conversionId: String(id) }),
    reasonCode: 'missing_cursor',
    reason: `${cursorColumn} is empty: the row belongs to no window and can never be read`,
    row,
  };
}
