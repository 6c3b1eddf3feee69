/**
 * `SyncClient`: local writes into the outbox, and push/pull rounds against the server — the
 * browser twin of `nidaan/sync/client/engine.py`, with the same merge and replay rules.
 *
 * One `sync()` loops `syncPendingOperations` round trips until the outbox is empty (or
 * blocked) and the pull has no more pages. Every step that changes the local copy is one
 * IndexedDB transaction, so a tab closed between two steps leaves a state the next `sync()`
 * continues from: unacknowledged ops are sent again and the server answers them from its
 * idempotency table.
 */
import { v7 as uuidv7 } from 'uuid';
import { nextBatch, MAX_BATCH_BYTES, MAX_BATCH_OPS } from './batching';
import { ServerError, UpgradeRequired } from './errors';
import { Clock, formatHlc, parseHlc } from './hlc';
import { toInput, type JSONDict, type LocalOp, type OpResult, type Operation, type OutboxOp } from './model';
import { PROTOCOL_VERSION, SCHEMA_VERSION, type SyncResponse } from './protocol';
import type { LocalStore } from './store';

const MAX_GAP_ROUNDS = 3;
const MAX_ROUNDS = 10_000; // a guard against a server that always says hasMore

export interface SyncTransport {
	sync(variables: JSONDict): Promise<SyncResponse>;
}

export interface SyncReport {
	rounds: number;
	pushed: number;
	applied: number;
	duplicates: number;
	rejected: number;
	conflicts: number;
	gaps: number;
	pulled: number;
	resets: number;
	durationMs: number;
}

export interface ClientOptions {
	branchId?: string | null;
	protocolVersion?: number;
	schemaVersion?: number;
	pullLimit?: number;
	maxBatchOps?: number;
	maxBatchBytes?: number;
	physical?: () => number;
}

export class SyncClient {
	readonly protocolVersion: number;
	readonly schemaVersion: number;
	readonly pullLimit: number;
	readonly maxBatchOps: number;
	readonly maxBatchBytes: number;
	#clock: Clock | null = null;
	#physical: () => number;
	#running: Promise<SyncReport> | null = null;
	#listeners: (() => void)[] = [];

	constructor(
		readonly store: LocalStore,
		readonly transport: SyncTransport,
		options: ClientOptions = {}
	) {
		this.protocolVersion = options.protocolVersion ?? PROTOCOL_VERSION;
		this.schemaVersion = options.schemaVersion ?? SCHEMA_VERSION;
		this.pullLimit = options.pullLimit ?? 500;
		this.maxBatchOps = options.maxBatchOps ?? MAX_BATCH_OPS;
		this.maxBatchBytes = options.maxBatchBytes ?? MAX_BATCH_BYTES;
		this.#physical = options.physical ?? (() => Date.now());
	}

	get syncing(): boolean {
		return this.#running !== null;
	}

	/** Call `listener` after each committed local write (the scheduler's debounce). */
	onLocalWrite(listener: () => void): void {
		this.#listeners.push(listener);
	}

	/** The clock, restored from the store; re-read per write since another tab may tick. */
	async #clockNow(): Promise<Clock> {
		const clientId = await this.store.clientId();
		const last = await this.store.getMeta<string>('last_hlc');
		const clock = new Clock(clientId, last ? parseHlc(last) : null, this.#physical);
		clock.offsetMs = Number((await this.store.getMeta('clock_offset_ms')) ?? 0);
		this.#clock = clock;
		return clock;
	}

	// -- local writes ----------------------------------------------------------------------

	/** Queue `ops` in one local transaction; several ops form one tx group (all or none). */
	async write(ops: LocalOp[]): Promise<OutboxOp[]> {
		if (!ops.length) return [];
		const txGroup = ops.length > 1 ? uuidv7() : null;
		const queued = await this.store.tx(async () => {
			const clock = await this.#clockNow();
			const hlcs = ops.map(() => formatHlc(clock.tick()));
			const result = await this.store.queue(ops, hlcs, this.schemaVersion, txGroup);
			await this.store.setMeta('last_hlc', formatHlc(clock.last));
			return result;
		});
		for (const listener of this.#listeners) listener();
		return queued;
	}

	async create(entity: string, data: JSONDict, entityId: string = uuidv7()): Promise<string> {
		await this.write([{ entity, operation: 'create', entityId, data }]);
		return entityId;
	}

	async append(entity: string, data: JSONDict, entityId: string = uuidv7()): Promise<string> {
		await this.write([{ entity, operation: 'append', entityId, data }]);
		return entityId;
	}

	async update(entity: string, entityId: string, changes: JSONDict, baseVersion?: number | null) {
		return (await this.write([{ entity, operation: 'update', entityId, data: changes, baseVersion }]))[0];
	}

	async transition(entity: string, entityId: string, to: string, extra: JSONDict = {}) {
		return (
			await this.write([{ entity, operation: 'transition', entityId, data: { to, ...extra } }])
		)[0];
	}

	/** An entity's own operation (e.g. `bind_label` on a home visit). */
	async operate(entity: string, entityId: string, operation: Operation, data: JSONDict) {
		return (await this.write([{ entity, operation, entityId, data }]))[0];
	}

	// -- sync ------------------------------------------------------------------------------

	/** Push every pending op and pull until up to date; one run at a time per tab. */
	sync(): Promise<SyncReport> {
		if (!this.#running) {
			this.#running = this.#sync().finally(() => {
				this.#running = null;
			});
		}
		return this.#running;
	}

	async #sync(): Promise<SyncReport> {
		const started = performance.now();
		const report: SyncReport = {
			rounds: 0,
			pushed: 0,
			applied: 0,
			duplicates: 0,
			rejected: 0,
			conflicts: 0,
			gaps: 0,
			pulled: 0,
			resets: 0,
			durationMs: 0
		};
		let gapRounds = 0;
		const clientId = await this.store.clientId();
		while (report.rounds < MAX_ROUNDS) {
			const batch = nextBatch(await this.store.pending(), this.maxBatchOps, this.maxBatchBytes);
			await this.store.markAttempt(batch.map((op) => op.opId));
			const sentAt = this.#physical();
			const response = await this.transport.sync(await this.#variables(clientId, batch));
			const receivedAt = this.#physical();
			report.rounds += 1;
			report.pushed += batch.length;
			if (response.upgradeRequired) {
				await this.store.setMeta('upgrade_required', `${this.protocolVersion}/${this.schemaVersion}`);
				throw new UpgradeRequired(
					`the server does not accept protocol ${this.protocolVersion} / schema ${this.schemaVersion}`
				);
			}
			const gap = await this.#absorb(batch, response, report, sentAt, receivedAt);
			const answered = new Set(response.results.map((r) => r.opId)).size;
			if (answered < batch.length && gap === null) {
				// The server stopped mid-batch (docs/sync.md): retry the rest with backoff.
				throw new ServerError(
					`the server answered ${answered} of ${batch.length} ops; the rest will be retried`
				);
			}
			if (gap !== null && ++gapRounds > MAX_GAP_ROUNDS) {
				throw new ServerError(`the server keeps expecting client seq ${gap}`);
			}
			if (response.reset) continue;
			if (!response.hasMore && !(batch.length && (await this.store.pendingCount()))) break;
		}
		report.durationMs = performance.now() - started;
		await this.store.setMeta('last_sync_at', new Date().toISOString());
		return report;
	}

	async #variables(clientId: string, batch: OutboxOp[]): Promise<JSONDict> {
		return {
			clientId,
			protocolVersion: this.protocolVersion,
			schemaVersion: this.schemaVersion,
			cursor: await this.store.getMeta<string>('cursor'),
			ops: batch.map(toInput),
			pullLimit: this.pullLimit,
			branchId: await this.store.getMeta<string>('branch_id')
		};
	}

	/** Apply one answer locally in one transaction; returns the expected seq of a GAP. */
	async #absorb(
		batch: OutboxOp[],
		response: SyncResponse,
		report: SyncReport,
		sentAt: number,
		receivedAt: number
	): Promise<number | null> {
		return this.store.tx(async () => {
			await this.store.setMeta('upgrade_required', null);
			const clock = await this.#clockNow();
			if (response.serverTimeMs !== null) {
				// NTP-style: server time against the midpoint of the round trip.
				clock.offsetMs = response.serverTimeMs - Math.floor((sentAt + receivedAt) / 2);
			}
			if (response.serverHlc) clock.receive(parseHlc(response.serverHlc));
			let gap: number | null = null;
			for (const result of response.results) {
				const expected = await this.#applyResult(result, report);
				if (expected !== null && gap === null) gap = expected;
			}
			if (gap !== null && batch.length && gap < batch[0].clientSeq) {
				// The server lost ops we had handed over (a restore): number ours from its point.
				await this.store.renumber(gap);
			}
			for (const conflict of response.conflicts) {
				if (conflict.id !== null && conflict.id !== undefined) {
					await this.store.recordConflict(String(conflict.id), null, conflict);
				}
			}
			if (response.reset) {
				report.resets += 1;
				await this.store.resetSynced();
			} else {
				await this.store.applyChanges(response.changes, response.cursor);
				report.pulled += response.changes.length;
			}
			await this.store.setMeta('last_hlc', formatHlc(clock.last));
			await this.store.setMeta('clock_offset_ms', clock.offsetMs);
			await this.store.setMeta('clock_suspect', response.clockSuspect ? 1 : null);
			return gap;
		});
	}

	async #applyResult(result: OpResult, report: SyncReport): Promise<number | null> {
		const op = await this.store.getOp(result.opId);
		switch (result.status) {
			case 'APPLIED':
				report.applied += 1;
				break;
			case 'DUPLICATE':
				report.duplicates += 1;
				break;
			case 'REJECTED':
				report.rejected += 1;
				await this.store.fail(result.opId, result.reason || 'rejected by the server');
				break;
			case 'CONFLICT':
				report.conflicts += 1;
				break;
			case 'GAP':
				report.gaps += 1;
				return result.expectedSeq ?? null;
		}
		// An applied identity edit can open a review too (LWW_REVIEW), not only CONFLICT.
		const ids = [...new Set([...(result.conflictId ? [result.conflictId] : []), ...result.conflictIds])];
		for (const id of ids) {
			const data = op ? { entity: op.entity, entityId: op.entityId } : {};
			await this.store.recordConflict(id, result.opId, data);
		}
		if (result.status === 'APPLIED' || result.status === 'DUPLICATE' || result.status === 'CONFLICT') {
			await this.store.acknowledge(result.opId);
		}
		return null;
	}
}
