import type { Rejection } from '../check/conversion.ts';
import type { ClassicDestinationConfig } from '../config/project.ts';
import { toEpochSeconds } from '../time/instant.ts';
import type { Destination, Encoded } from './destination.ts';

/** Columns the classic endpoint has no parameter for: sending them would drop data silently. */
const UNSUPPORTED = ['value', 'quantity', 'campaign_id', 'attributes', 'tags'];

/**
 * The classic offline-conversion endpoint from the seed document:
 * `GET https://{projectId}.log.optimizely.com/event?a=…&n=…&u=…&x{exp}={var}&v=…&g=…`, one request
 * per conversion. Parameters go in the seed's order (a, n, u, the x pairs, v, g), then the
 * additions (d, s{id}, time, src), so the seed's example row reproduces the seed's URL.
 */
export function optimizelyClassic(config: ClassicDestinationConfig, ledgerKey = `optimizely-classic:${config.projectId}`): Destination {
  const base = config.endpoint;
  const fixedHead = `a=${encodeURIComponent(config.projectId)}`;
  const accountParam = config.accountId ? `&d=${encodeURIComponent(config.accountId)}` : '';
  const fixedTail = `&src=${encodeURIComponent(config.src)}`;
  return {
    type: 'optimizely-classic',
    key: ledgerKey,
    label: `Optimizely classic endpoint, project ${config.projectId}, ${base}`,
    splittable: false,

    checkColumns(columns) {
      const problems: string[] = [];
      if (!columns.has('event_key')) problems.push('the classic endpoint needs event_key (the n parameter: the custom event name); add it to the SELECT');
      if (!columns.has('experiments') && !(columns.has('experiment_id') && columns.has('variation_id'))) {
        problems.push(
          'the classic endpoint needs the experiments a visitor was bucketed into: return experiments (a JSON object {"experimentId": "variationId"}) or experiment_id and variation_id',
        );
      }
      for (const column of UNSUPPORTED) {
        if (columns.has(column)) problems.push(`the classic endpoint has no parameter for ${column} (an Event API column); remove it or use optimizely-events`);
      }
      return problems;
    },

    refuse(c): Rejection | undefined {
      if (c.eventKey === undefined) return { code: 'missing_event_key', reason: 'event_key is empty: the classic call needs the event name (n)' };
      if (c.experiments.length === 0) {
        return { code: 'missing_experiments', reason: 'no experiment: every classic call must say which experiment and variation the visitor saw' };
      }
      return undefined;
    },

    event: (c) => c.eventKey ?? '',

    encode(c): Encoded {
      // Built as one string: this runs once per conversion, and a list of pairs joined at the
      // end cost about 1.7 KB of garbage each (README, "Benchmarks").
      let payload = `${fixedHead}&n=${encodeURIComponent(c.eventKey ?? '')}&u=${encodeURIComponent(c.visitorId)}`;
      for (const e of c.experiments) payload += `&x${e.experimentId}=${encodeURIComponent(e.variationIds.join('_'))}`;
      let goals = c.eventId;
      if (c.revenueCents !== undefined) {
        payload += `&v=${encodeURIComponent(c.revenueCents)}`;
        const goal = config.revenueGoalId;
        if (goal && goals !== goal) goals = goals === undefined ? goal : `${goals},${goal}`;
      }
      if (goals !== undefined) payload += `&g=${encodeURIComponent(goals)}`;
      payload += accountParam;
      for (const [segment, value] of c.segments) payload += `&s${segment}=${encodeURIComponent(value)}`;
      payload += `&time=${toEpochSeconds(c.occurredAt)}${fixedTail}`;
      return { event: c.eventKey ?? '', conversionId: c.conversionId, payload };
    },

    requests(items) {
      return items.map((item) => ({
        request: { method: 'GET', url: `${base}?${item.payload}`, headers: {} },
        items: [item],
      }));
    },
  };
}
