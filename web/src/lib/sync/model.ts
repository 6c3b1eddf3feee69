/** Plain records of the sync client (the same shapes as `nidaan/sync/client/model.py`). */

export type JSONDict = Record<string, unknown>;
export type Entity = 'patient' | 'order' | 'sample' | 'payment' | 'result' | 'conflict';
/** The standard operations, and `bind_label` (a home visit's scanned label, see docs/home-collection.md). */
export type Operation = 'create' | 'update' | 'delete' | 'transition' | 'append' | 'bind_label';
export type OpStatus = 'APPLIED' | 'DUPLICATE' | 'REJECTED' | 'CONFLICT' | 'GAP';

/** A change a user made, before it has a place in the outbox. */
export interface LocalOp {
	entity: string;
	operation: Operation;
	entityId: string;
	data: JSONDict;
	/** null/undefined: the version of the synced row, if there is one. */
	baseVersion?: number | null;
}

export interface OutboxOp {
	opId: string;
	clientSeq: number;
	entity: string;
	entityId: string;
	operation: Operation;
	data: JSONDict;
	baseVersion: number | null;
	hlc: string;
	schemaVersion: number;
	txGroup: string | null;
	attempts: number;
	createdAt: string;
}

export function toInput(op: OutboxOp): JSONDict {
	return {
		opId: op.opId,
		clientSeq: op.clientSeq,
		entity: op.entity,
		entityId: op.entityId,
		operation: op.operation,
		data: op.data,
		baseVersion: op.baseVersion,
		hlc: op.hlc,
		schemaVersion: op.schemaVersion,
		txGroup: op.txGroup
	};
}

/** An entity row as the user sees it: the synced row with pending local ops applied. */
export interface Row {
	entity: string;
	id: string;
	version: number | null;
	deleted: number; // 0/1: IndexedDB cannot index booleans
	data: JSONDict;
	pending: number;
	/** The parent id lists are looked up by (a sample's or payment's order, an order's patient). */
	ref: string;
	/** Lower-case text a search matches against (patients: name, MRN, mobile tail, ABHA). */
	search: string;
}

export interface SyncedRow {
	entity: string;
	id: string;
	version: number | null;
	deleted: number;
	data: JSONDict;
	seq: number | null;
}

export interface FailedOp extends OutboxOp {
	reason: string;
	failedAt: string;
}

export interface ConflictRecord {
	id: string;
	entity: string | null;
	entityId: string | null;
	field: string | null;
	kind: string | null;
	status: string;
	opId: string | null;
	data: JSONDict;
	seenAt: string;
}

export interface OpResult {
	opId: string;
	status: OpStatus;
	seq?: number | null;
	reason?: string | null;
	conflictId?: string | null;
	expectedSeq?: number | null;
	conflictIds: string[];
}

export interface Change {
	seq: number;
	entity: string;
	entityId: string;
	deleted: boolean;
	version: number | null;
	data: JSONDict;
}
