import test from 'ava';
import { CONVERSIONS_SQL, eventsJob, classicJob, insertRows, rows, withReceiver, type SummaryJson, projectWithRows } from './helpers/fixtures.ts';
import { waitFor } from './helpers/project.ts';

/**
 * kill -9 in the middle of a run: the next run sends every conversion that was not recorded as
 * sent, never resends one that was, and resends the ones in flight at the crash (for the Event
 * API with the same uuid and timestamp, so the receiver, like Optimizely, keeps one copy).
 */
test('a run killed with -9 mid-way is completed by the next run: nothing lost, nothing recorded as sent is sent again', async (t) => {
  const project = await projectWithRows(t, []);
  const total = 2000;
  await insertRows(project, rows(total));

  // Slow answers keep requests in flight, so the kill lands between "pending" and "sent".
  await withReceiver({ protocol: 'events', faults: { delayMs: 40 } }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, eventsJob(receiver, { batchSize: 25, rateLimit: { concurrency: 4, perSecond: 40 } }));
    const child = project.spawn(['run', 'orders', '--json']);
    await waitFor(() => (receiver.stats().acceptedRequests >= 12 ? true : undefined), 'the first run to send a dozen requests');
    child.child.kill('SIGKILL');
    t.is(await child.exited, null, 'killed, not exited');

    // Requests already inside the receiver when the client died are still answered: let them land.
    await new Promise((r) => setTimeout(r, 300));
    const { rows: before } = await project.db.stateSql(`select conversion_id, status from convey.conversions`);
    const sentBefore = new Set(before.filter((r: { status: string }) => r.status === 'sent').map((r: { conversion_id: string }) => r.conversion_id));
    const inDoubt = new Set(before.filter((r: { status: string }) => r.status === 'pending').map((r: { conversion_id: string }) => r.conversion_id));
    const pendingBefore = inDoubt.size;
    t.true(pendingBefore > 0, 'some conversions were in flight (pending) at the kill');
    t.true(sentBefore.size > 0, 'some conversions were recorded as sent before the kill');
    t.true(sentBefore.size < total, 'the kill landed before the end');
    const { rows: runs } = await project.db.stateSql(`select status from convey.runs`);
    t.deepEqual(runs.map((r: { status: string }) => r.status), ['running'], 'the killed run could not record its end');

    receiver.setFaults({});
    // In-doubt conversions that had in fact arrived: their resend must be recognised as the same event.
    const arrivedInDoubt = new Set(receiver.accepted().map(conversionOf).filter((id) => inDoubt.has(id)));

    const rerun = await project.cli(['run', 'orders', '--json']);
    t.is(rerun.code, 0, rerun.stderr);
    const summary = rerun.json<SummaryJson>();
    t.is(summary.resent, pendingBefore, 'the conversions in flight at the kill are resent, and counted apart');
    t.is(summary.failed, 0);

    // Every conversion arrived once as far as Optimizely is concerned: the resends of those that had
    // arrived carried the same (entity_id, uuid, timestamp) and were dropped as duplicates.
    const stats = receiver.stats();
    t.is(stats.unique, total);
    t.is(stats.duplicates, arrivedInDoubt.size);
    const { rows: after } = await project.db.stateSql(`select conversion_id, status from convey.conversions`);
    t.is(after.length, total);
    t.true(after.every((r: { status: string }) => r.status === 'sent'));
    const { rows: runsAfter } = await project.db.stateSql(`select status from convey.runs order by id`);
    t.deepEqual(runsAfter.map((r: { status: string }) => r.status), ['crashed', 'succeeded']);

    // Nothing recorded as sent before the kill reached the receiver again after it.
    const accepted = receiver.accepted();
    const sentUuids = new Set(accepted.filter((a) => sentBefore.has(conversionOf(a))).map((a) => a.uuid));
    for (const uuid of sentUuids) t.is(accepted.filter((a) => a.uuid === uuid).length, 1);
  });
});

/** The receiver records uuids; map each accepted event back to its conversion via its timestamp. */
function conversionOf(a: { timestamp: number }): string {
  const i = (a.timestamp - Date.parse('2026-03-01T00:00:00Z')) / 1000;
  return `c${String(i + 1).padStart(4, '0')}`;
}

test('a classic run killed with -9 is completed: nothing recorded as sent is sent again', async (t) => {
  const project = await projectWithRows(t, []);
  const total = 600;
  await insertRows(project, rows(total));

  await withReceiver({ protocol: 'classic', faults: { delayMs: 20 } }, async (receiver) => {
    project.writeJob('orders', CONVERSIONS_SQL, classicJob(receiver, { batchSize: 20, rateLimit: { concurrency: 4, perSecond: 150 } }));
    const child = project.spawn(['run', 'orders']);
    await waitFor(() => (receiver.stats().acceptedRequests >= 100 ? true : undefined), 'the first run to send 100 requests');
    child.child.kill('SIGKILL');
    await child.exited;

    const { rows: before } = await project.db.stateSql(`select conversion_id from convey.conversions where status = 'sent'`);
    const sentBefore = new Set(before.map((r: { conversion_id: string }) => r.conversion_id));
    const rerun = await project.cli(['run', 'orders', '--json']);
    t.is(rerun.code, 0, rerun.stderr);

    const byVisitor = new Map<string, number>();
    for (const a of receiver.accepted()) byVisitor.set(a.visitorId, (byVisitor.get(a.visitorId) ?? 0) + 1);
    t.is(byVisitor.size, total, 'every conversion arrived');
    for (const id of sentBefore) {
      const visitor = `v${Number(id.slice(1))}`;
      t.is(byVisitor.get(visitor), 1, `${id} was recorded as sent before the kill and must not be sent again`);
    }
  });
});
