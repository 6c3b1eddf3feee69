/**
 * The browser's local copy (as `nidaan/sync/client/store.py`, on IndexedDB): synced rows as
 * last pulled, the view (synced row + pending ops re-applied), the outbox, failed ops and
 * conflicts. Every local write puts its view row and its outbox op in one IndexedDB
 * transaction; the cursor is saved in the same transaction as the pulled rows. IndexedDB
 * serialises read-write transactions across tabs, so client sequence numbers stay gap-free
 * whichever tab writes.
 */
import { v7 as uuidv7 } from 'uuid';
import { SYNC_TABLES, type UserDb } from '../db/database';
import { rebase, type RowState } from './rebase';
import type {
	Change,
	ConflictRecord,
	FailedOp,
	JSONDict,
	LocalOp,
	OutboxOp,
	Row,
	SyncedRow
} from './model';

const now = () => new Date().toISOString();

/** The parent id a row is listed under, and the text a search matches. */
export function derive(entity: string, data: JSONDict): { ref: string; search: string } {
	const text = (v: unknown) => (v === null || v === undefined ? '' : String(v));
	switch (entity) {
		case 'patient': {
			const mobile = text(data.mobile ?? data.mobile_masked).replace(/\D/g, '');
			return {
				ref: '',
				search: [data.full_name, data.mrn, mobile, data.abha_address]
					.map(text)
					.join(' ')
					.toLowerCase()
			};
		}
		case 'order':
			return { ref: text(data.patient_id), search: text(data.order_number).toLowerCase() };
		case 'sample':
			return { ref: text(data.order_id), search: text(data.accession).toLowerCase() };
		case 'payment':
			return { ref: text(data.order_id), search: '' };
		case 'result':
			return { ref: text(data.order_test_id), search: '' };
		case 'conflict':
			return { ref: text(data.entityId), search: '' };
		default:
			return { ref: '', search: '' };
	}
}

export class LocalStore {
	constructor(readonly db: UserDb) {}

	/** One read-write transaction over the sync tables; nested calls join it. */
	tx<T>(body: () => Promise<T>): Promise<T> {
		return this.db.transaction('rw', SYNC_TABLES, body);
	}

	// -- meta ------------------------------------------------------------------------------

	async getMeta<T = string>(key: string): Promise<T | null> {
		const entry = await this.db.meta.get(key);
		return entry === undefined ? null : (entry.value as T);
	}

	async setMeta(key: string, value: unknown): Promise<void> {
		if (value === null || value === undefined) await this.db.meta.delete(key);
		else await this.db.meta.put({ key, value });
	}

	/** The device's client id, made once (the server binds it to this user). */
	async clientId(): Promise<string> {
		return this.tx(async () => {
			let id = await this.getMeta<string>('client_id');
			if (!id) {
				id = uuidv7();
				await this.setMeta('client_id', id);
			}
			return id;
		});
	}

	// -- local writes ----------------------------------------------------------------------

	async queue(
		ops: LocalOp[],
		hlcs: string[],
		schemaVersion: number,
		txGroup: string | null
	): Promise<OutboxOp[]> {
		if (hlcs.length !== ops.length) throw new Error('one HLC per op');
		return this.tx(async () => {
			let seq = (await this.getMeta<number>('next_client_seq')) ?? 1;
			const queued: OutboxOp[] = [];
			for (const [index, local] of ops.entries()) {
				let baseVersion = local.baseVersion ?? null;
				if (baseVersion === null && local.operation !== 'create') {
					baseVersion = (await this.db.synced.get([local.entity, local.entityId]))?.version ?? null;
				}
				const op: OutboxOp = {
					opId: uuidv7(),
					clientSeq: seq,
					entity: local.entity,
					entityId: String(local.entityId),
					operation: local.operation,
					data: structuredClone(local.data),
					baseVersion,
					hlc: hlcs[index],
					schemaVersion,
					txGroup,
					attempts: 0,
					createdAt: now()
				};
				await this.db.outbox.add(op);
				queued.push(op);
				seq += 1;
			}
			await this.setMeta('next_client_seq', seq);
			const touched = new Map(queued.map((op) => [`${op.entity}\u0000${op.entityId}`, op]));
			for (const op of touched.values()) await this.rebuild(op.entity, op.entityId);
			return queued;
		});
	}

	// -- outbox ----------------------------------------------------------------------------

	pending(): Promise<OutboxOp[]> {
		return this.db.outbox.orderBy('clientSeq').toArray();
	}

	pendingFor(entity: string, entityId: string): Promise<OutboxOp[]> {
		return this.db.outbox
			.where('[entity+entityId]')
			.equals([entity, entityId])
			.sortBy('clientSeq');
	}

	pendingCount(): Promise<number> {
		return this.db.outbox.count();
	}

	async getOp(opId: string): Promise<OutboxOp | undefined> {
		return this.db.outbox.where('opId').equals(opId).first();
	}

	async markAttempt(opIds: string[]): Promise<void> {
		await this.tx(async () => {
			for (const opId of opIds) {
				await this.db.outbox
					.where('opId')
					.equals(opId)
					.modify((op) => {
						op.attempts += 1;
					});
			}
		});
	}

	/** Remove an op the server has answered for good; the view is rebuilt without it. */
	async acknowledge(opId: string): Promise<OutboxOp | undefined> {
		return this.tx(async () => {
			const op = await this.getOp(opId);
			if (!op) return undefined;
			await this.db.outbox.delete(op.clientSeq);
			await this.rebuild(op.entity, op.entityId);
			return op;
		});
	}

	/** Move a REJECTED op to the failed list (kept for the user, never retried). */
	async fail(opId: string, reason: string): Promise<OutboxOp | undefined> {
		return this.tx(async () => {
			const op = await this.acknowledge(opId);
			if (!op) return undefined;
			await this.db.failed.put({ ...op, reason, failedAt: now() });
			return op;
		});
	}

	/** Give pending ops contiguous client seqs from `firstSeq` (after a server restore). */
	async renumber(firstSeq: number): Promise<void> {
		await this.tx(async () => {
			const ops = await this.pending();
			await this.db.outbox.clear();
			await this.db.outbox.bulkAdd(ops.map((op, i) => ({ ...op, clientSeq: firstSeq + i })));
			await this.setMeta('next_client_seq', firstSeq + ops.length);
		});
	}

	failed(): Promise<FailedOp[]> {
		return this.db.failed.orderBy('clientSeq').toArray();
	}

	// -- conflicts -------------------------------------------------------------------------

	async recordConflict(conflictId: string, opId: string | null = null, data: JSONDict = {}) {
		await this.tx(async () => {
			const existing = await this.db.conflicts.get(conflictId);
			const merged = { ...(existing?.data ?? {}), ...data };
			const status = String(merged.status ?? existing?.status ?? 'OPEN').toUpperCase();
			const record: ConflictRecord = {
				id: conflictId,
				entity: (merged.entity as string) ?? null,
				entityId: ((merged.entityId ?? merged.entity_id) as string) ?? null,
				field: (merged.field as string) ?? null,
				kind: (merged.kind as string) ?? null,
				status,
				opId: opId ?? existing?.opId ?? null,
				data: merged,
				seenAt: now()
			};
			await this.db.conflicts.put(record);
		});
	}

	conflicts(status: string | null = 'OPEN'): Promise<ConflictRecord[]> {
		const all = status
			? this.db.conflicts.where('status').equals(status.toUpperCase())
			: this.db.conflicts.toCollection();
		return all.sortBy('seenAt');
	}

	openConflictCount(): Promise<number> {
		return this.db.conflicts.where('status').equals('OPEN').count();
	}

	// -- pulls -----------------------------------------------------------------------------

	/** Write pulled rows, rebase pending ops on them, then save the cursor: one transaction. */
	async applyChanges(changes: Change[], cursor: string | null): Promise<void> {
		await this.tx(async () => {
			for (const change of changes) {
				let data = change.data;
				if (change.deleted && Object.keys(data).length === 0) {
					// A tombstone may come without the row: keep what we knew, marked deleted.
					const known = await this.db.synced.get([change.entity, change.entityId]);
					data = known?.data ?? { id: change.entityId };
				}
				const row: SyncedRow = {
					entity: change.entity,
					id: change.entityId,
					version: change.version,
					deleted: change.deleted ? 1 : 0,
					data,
					seq: change.seq
				};
				await this.db.synced.put(row);
				if (change.entity === 'conflict') await this.recordConflict(change.entityId, null, data);
				await this.rebuild(change.entity, change.entityId);
			}
			await this.setMeta('cursor', cursor);
		});
	}

	/** The server said `reset`: forget synced rows and the cursor, keep the outbox. */
	async resetSynced(): Promise<void> {
		await this.tx(async () => {
			await this.db.synced.clear();
			await this.db.rows.clear();
			await this.setMeta('cursor', null);
			const seen = new Set<string>();
			for (const op of await this.pending()) {
				const key = `${op.entity}\u0000${op.entityId}`;
				if (!seen.has(key)) {
					seen.add(key);
					await this.rebuild(op.entity, op.entityId);
				}
			}
		});
	}

	/** Recompute one view row: the synced row with its pending ops re-applied. */
	async rebuild(entity: string, entityId: string): Promise<void> {
		const synced = await this.db.synced.get([entity, entityId]);
		const base: RowState | null = synced
			? { version: synced.version, deleted: Boolean(synced.deleted), data: synced.data }
			: null;
		const ops = await this.pendingFor(entity, entityId);
		const state = rebase(base, ops);
		if (state === null) {
			await this.db.rows.delete([entity, entityId]);
			return;
		}
		await this.db.rows.put({
			entity,
			id: entityId,
			version: state.version,
			deleted: state.deleted ? 1 : 0,
			data: state.data,
			pending: ops.length,
			...derive(entity, state.data)
		});
	}

	// -- reads -----------------------------------------------------------------------------

	get(entity: string, id: string): Promise<Row | undefined> {
		return this.db.rows.get([entity, id]);
	}

	async rows(entity: string, includeDeleted = false): Promise<Row[]> {
		const rows = await this.db.rows.where('entity').equals(entity).toArray();
		return includeDeleted ? rows : rows.filter((r) => !r.deleted);
	}

	/** Rows listed under a parent: a patient's orders, an order's samples or payments. */
	children(entity: string, ref: string): Promise<Row[]> {
		return this.db.rows.where('[entity+ref]').equals([entity, ref]).toArray();
	}
}
