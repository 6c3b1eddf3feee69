/**
 * A small in-memory model of the server side of `syncPendingOperations` for unit tests of the
 * browser engine: idempotency by (clientId, opId), clientSeq order with GAP answers, APPEND
 * creates as DUPLICATE on replay, a change log the client pulls from. The real server is
 * exercised by the browser tests; this one lets a test drop answers, restore, reset, reject.
 */
import type { JSONDict } from '../../src/lib/sync/model';
import type { SyncResponse } from '../../src/lib/sync/protocol';

interface Change { seq: number; entity: string; entityId: string; data: JSONDict }

export class FakeServer {
	rows = new Map<string, JSONDict>();
	log: Change[] = [];
	applied = new Map<string, { status: string; reason?: string; conflictId?: string }>();
	lastSeq = new Map<string, number>();
	calls = 0;
	/** Answers to lose after the server committed (a dropped response). */
	dropNext = 0;
	reject = new Set<string>(); // entity ids whose ops are REJECTED
	conflictOn = new Set<string>(); // entity ids whose updates are CONFLICT
	resetNext = false;

	#seq = 0;

	async sync(v: JSONDict): Promise<SyncResponse> {
		this.calls += 1;
		const clientId = String(v.clientId);
		const results: JSONDict[] = [];
		let gap: number | null = null;
		for (const op of v.ops as JSONDict[]) {
			const key = `${clientId}/${op.opId}`;
			const known = this.applied.get(key);
			if (known) {
				results.push({ opId: op.opId, ...known, conflictIds: [] });
				continue;
			}
			const expected = (this.lastSeq.get(clientId) ?? 0) + 1;
			if (gap !== null || Number(op.clientSeq) > expected) {
				gap ??= expected;
				results.push({ opId: op.opId, status: 'GAP', expectedSeq: gap, conflictIds: [] });
				continue;
			}
			if (Number(op.clientSeq) < expected) {
				results.push({ opId: op.opId, status: 'DUPLICATE', conflictIds: [] });
				continue;
			}
			const outcome = this.#apply(op);
			this.applied.set(key, outcome);
			this.lastSeq.set(clientId, Number(op.clientSeq));
			results.push({ opId: op.opId, ...outcome, conflictIds: [] });
		}
		if (this.dropNext > 0) {
			this.dropNext -= 1;
			throw new Error('answer lost');
		}
		const reset = this.resetNext;
		this.resetNext = false;
		const cursor = v.cursor ? Number(v.cursor) : 0;
		const limit = Number(v.pullLimit ?? 500);
		const pending = reset ? [] : this.log.filter((c) => c.seq > cursor);
		const latest = new Map<string, Change>();
		for (const c of pending) latest.set(`${c.entity}/${c.entityId}`, c);
		const changes = [...latest.values()].sort((a, b) => a.seq - b.seq).slice(0, limit);
		const last = changes.at(-1)?.seq ?? cursor;
		return {
			results: results as never,
			changes: changes.map((c) => ({ seq: c.seq, entity: c.entity, entityId: c.entityId, deleted: false, version: c.seq, data: c.data })),
			cursor: reset ? null : String(last),
			hasMore: changes.length < latest.size,
			serverTimeMs: Date.now(),
			serverHlc: `${String(Date.now()).padStart(15, '0')}-00000-server`,
			reset,
			upgradeRequired: false,
			conflicts: [],
			clockSuspect: false
		};
	}

	#apply(op: JSONDict): { status: string; reason?: string; conflictId?: string } {
		const id = String(op.entityId);
		if (this.reject.has(id)) return { status: 'REJECTED', reason: 'not allowed' };
		const key = `${op.entity}/${id}`;
		if (op.operation === 'create' || op.operation === 'append') {
			if (this.rows.has(key)) return { status: 'DUPLICATE' };
			this.#write(String(op.entity), id, { id, ...(op.data as JSONDict), mrn: `MRN-${this.rows.size + 1}` });
			return { status: 'APPLIED' };
		}
		if (op.operation === 'update') {
			if (this.conflictOn.has(id)) return { status: 'CONFLICT', conflictId: `c-${id}` };
			this.#write(String(op.entity), id, { ...(this.rows.get(key) ?? { id }), ...(op.data as JSONDict) });
			return { status: 'APPLIED' };
		}
		return { status: 'REJECTED', reason: `unsupported ${op.operation}` };
	}

	#write(entity: string, id: string, data: JSONDict) {
		this.rows.set(`${entity}/${id}`, data);
		this.log.push({ seq: ++this.#seq, entity, entityId: id, data });
	}

	/** A change made at the lab (REST) that devices pull. */
	labWrites(entity: string, id: string, data: JSONDict) {
		this.#write(entity, id, { ...(this.rows.get(`${entity}/${id}`) ?? { id }), ...data });
	}

	/** The server restored from a backup that lost this client's last `n` ops. */
	forget(clientId: string, n: number) {
		this.lastSeq.set(clientId, Math.max(0, (this.lastSeq.get(clientId) ?? 0) - n));
		const keys = [...this.applied.keys()].filter((k) => k.startsWith(`${clientId}/`));
		for (const key of keys.slice(-n)) this.applied.delete(key);
	}
}
