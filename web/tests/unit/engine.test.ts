import { beforeEach, describe, expect, it } from 'vitest';
import { UserDb } from '../../src/lib/db/database';
import { recordCollection, resolveDeferred } from '../../src/lib/sync/deferred';
import { SyncClient } from '../../src/lib/sync/engine';
import { LocalStore } from '../../src/lib/sync/store';
import { FakeServer } from './fake-server';

let n = 0;
function device(server: FakeServer, options = {}) {
	const store = new LocalStore(new UserDb(`u${++n}-${Math.random()}`));
	return new SyncClient(store, server, options);
}

describe('the browser sync client (same rules as the Python reference client)', () => {
	let server: FakeServer;
	beforeEach(() => {
		server = new FakeServer();
	});

	it('one user action is one transaction: gap-free client seqs and a shared tx group', async () => {
		const client = device(server);
		const [a, b] = await client.write([
			{ entity: 'order', operation: 'create', entityId: 'o1', data: { items: ['CBC'] } },
			{ entity: 'payment', operation: 'append', entityId: 'p1', data: { order_id: 'o1', amount: '300.00' } }
		]);
		expect([a.clientSeq, b.clientSeq]).toEqual([1, 2]);
		expect(a.txGroup).toBeTruthy();
		expect(a.txGroup).toBe(b.txGroup);
		const single = await client.update('order', 'o1', { priority: 'stat' });
		expect(single.clientSeq).toBe(3);
		expect(single.txGroup).toBeNull();
		// Concurrent writers (two tabs) still get 4, 5, 6 … with no gaps or repeats.
		await Promise.all(Array.from({ length: 20 }, (_, i) => client.create('patient', { full_name: `P${i}` })));
		const seqs = (await client.store.pending()).map((op) => op.clientSeq);
		expect(seqs).toEqual(Array.from({ length: 23 }, (_, i) => i + 1));
	});

	it('the view shows local intent at once and the server truth after a sync', async () => {
		const client = device(server);
		const id = await client.create('patient', { full_name: 'Asha', sex: 'female' });
		expect((await client.store.get('patient', id))?.pending).toBe(1);
		const report = await client.sync();
		expect(report.applied).toBe(1);
		const row = await client.store.get('patient', id);
		expect(row?.pending).toBe(0);
		expect(row?.data.mrn).toBe('MRN-1');
		expect(await client.store.pendingCount()).toBe(0);
	});

	it('a lost answer means the same ops go again and the server answers from its table', async () => {
		const client = device(server);
		await client.create('patient', { full_name: 'A' });
		await client.create('patient', { full_name: 'B' });
		server.dropNext = 1;
		await expect(client.sync()).rejects.toThrow('answer lost');
		expect(await client.store.pendingCount()).toBe(2); // kept until answered
		const report = await client.sync();
		expect(report.pushed).toBe(2);
		expect(server.rows.size).toBe(2); // applied once, however often sent
		expect(await client.store.pendingCount()).toBe(0);
		expect((await client.store.db.outbox.toArray()).length).toBe(0);
	});

	it('replays, reordered batches and repeated syncs converge to one copy of each row (random)', async () => {
		for (let run = 0; run < 15; run++) {
			const s = new FakeServer();
			const client = device(s, { maxBatchOps: 1 + Math.floor(Math.random() * 5) });
			const ids: string[] = [];
			for (let i = 0; i < 5 + Math.floor(Math.random() * 20); i++) {
				if (ids.length && Math.random() < 0.4) await client.update('patient', ids[Math.floor(Math.random() * ids.length)], { city: `C${i}` });
				else ids.push(await client.create('patient', { full_name: `P${i}` }));
				if (Math.random() < 0.3) {
					s.dropNext = Math.random() < 0.5 ? 1 : 0;
					await client.sync().catch(() => {});
				}
			}
			for (let attempt = 0; attempt < 10 && (await client.store.pendingCount()); attempt++) await client.sync().catch(() => {});
			expect(await client.store.pendingCount()).toBe(0);
			expect(s.rows.size).toBe(ids.length);
			for (const id of ids) expect((await client.store.get('patient', id))?.data).toEqual(s.rows.get(`patient/${id}`));
		}
	});

	it('REJECTED goes to the failed list and out of the view; CONFLICT is listed; neither is retried', async () => {
		const client = device(server);
		const bad = await client.create('patient', { full_name: 'Refused' });
		server.reject.add(bad);
		const good = await client.create('patient', { full_name: 'Fine' });
		await client.sync();
		server.conflictOn.add(good);
		await client.update('patient', good, { pregnant: true });
		const report = await client.sync();
		expect(report.conflicts).toBe(1);
		expect(await client.store.get('patient', bad)).toBeUndefined();
		const failed = await client.store.failed();
		expect(failed.map((f) => [f.entityId, f.reason])).toEqual([[bad, 'not allowed']]);
		const conflicts = await client.store.conflicts();
		expect(conflicts.map((c) => [c.id, c.entity, c.entityId])).toEqual([[`c-${good}`, 'patient', good]]);
		const calls = server.calls;
		await client.sync();
		expect(server.calls).toBe(calls + 1); // nothing left to send: one pull round
	});

	it('a GAP after a server restore renumbers the outbox from the server\'s point, same op ids', async () => {
		const client = device(server);
		for (let i = 0; i < 3; i++) await client.create('patient', { full_name: `P${i}` });
		await client.sync();
		const clientId = await client.store.clientId();
		server.forget(clientId, 2); // the backup had only the first op
		await client.create('patient', { full_name: 'After restore' }); // client seq 4; server expects 2
		await client.sync();
		expect(await client.store.pendingCount()).toBe(0);
		expect(server.rows.size).toBe(4);
	});

	it('reset drops the synced copy but keeps the outbox (and its view)', async () => {
		const client = device(server);
		const kept = await client.create('patient', { full_name: 'Synced' });
		await client.sync();
		const waiting = await client.create('patient', { full_name: 'Waiting' });
		await client.store.resetSynced();
		expect(await client.store.get('patient', kept)).toBeUndefined();
		expect((await client.store.get('patient', waiting))?.pending).toBe(1);
		expect(await client.store.getMeta('cursor')).toBeNull();
		await client.sync();
		expect((await client.store.get('patient', kept))?.data.full_name).toBe('Synced');
		expect((await client.store.get('patient', waiting))?.pending).toBe(0);
	});

	it('pulls page until hasMore is false; the cursor moves with the rows', async () => {
		const client = device(server, { pullLimit: 3 });
		for (let i = 0; i < 10; i++) server.labWrites('patient', `lab-${i}`, { full_name: `Lab ${i}` });
		const report = await client.sync();
		expect(report.pulled).toBe(10);
		expect(report.rounds).toBe(4);
		expect(await client.store.getMeta('cursor')).toBe('10');
		expect((await client.store.rows('patient')).length).toBe(10);
	});

	it('a collection recorded for an order placed offline waits for its samples', async () => {
		const client = device(server);
		const orderId = await client.create('order', { items: ['CBC'] });
		expect(await recordCollection(client, orderId, { collected_at: '2026-12-07T10:00:00+05:30', branch_id: 'b1' })).toBe('deferred');
		expect(await resolveDeferred(client)).toBe(0);
		// The server made the tube; the pull brings it.
		server.labWrites('sample', 's1', { order_id: orderId, status: 'ordered', accession: 'CC1-1' });
		await client.sync();
		expect(await resolveDeferred(client)).toBe(1);
		const [op] = (await client.store.pending()).filter((o) => o.entity === 'sample');
		expect(op.data).toEqual({ to: 'collected', collected_at: '2026-12-07T10:00:00+05:30', branch_id: 'b1' });
		expect((await client.store.get('sample', 's1'))?.data.status).toBe('collected');
		expect(await client.store.db.deferred.count()).toBe(0);
	});
});
