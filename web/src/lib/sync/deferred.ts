/**
 * Work recorded against rows the server has not sent yet. An order placed offline has no
 * samples (the server makes them, with their accession numbers); a collection recorded for it
 * waits here and becomes `sample` transitions, with the time it really happened, as soon as
 * the pull brings the samples.
 */
import type { SyncClient } from './engine';
import type { LocalOp } from './model';

export async function recordCollection(
	client: SyncClient,
	orderId: string,
	data: { collected_at: string; branch_id: string | null }
): Promise<'queued' | 'deferred'> {
	const store = client.store;
	const samples = (await store.children('sample', orderId)).filter((s) => !s.deleted);
	if (samples.length) {
		const ops: LocalOp[] = samples
			.filter((s) => s.data.status === 'ordered')
			.map((s) => ({
				entity: 'sample',
				operation: 'transition',
				entityId: s.id,
				data: { to: 'collected', ...data }
			}));
		await client.write(ops);
		return 'queued';
	}
	await store.db.deferred.add({
		kind: 'collect',
		orderId,
		data,
		createdAt: new Date().toISOString()
	});
	return 'deferred';
}

/** Turn waiting collections into sample transitions where the samples have arrived. */
export async function resolveDeferred(client: SyncClient): Promise<number> {
	const store = client.store;
	let queued = 0;
	for (const item of await store.db.deferred.toArray()) {
		const samples = (await store.children('sample', item.orderId)).filter((s) => !s.deleted);
		if (!samples.length) continue;
		await store.tx(async () => {
			const ops: LocalOp[] = samples
				.filter((s) => s.data.status === 'ordered')
				.map((s) => ({
					entity: 'sample',
					operation: 'transition',
					entityId: s.id,
					data: { to: 'collected', ...item.data }
				}));
			if (ops.length) await client.write(ops);
			await store.db.deferred.delete(item.id!);
			queued += ops.length;
		});
	}
	return queued;
}
