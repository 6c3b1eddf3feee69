/** The GraphQL documents the browser client sends and the parsing of their answers
 * (docs/sync.md; the same documents as `nidaan/sync/client/protocol.py`). */
import type { Change, JSONDict, OpResult, OpStatus } from './model';

export const PROTOCOL_VERSION = 1;
export const SCHEMA_VERSION = 2;

export const CONFLICT_FIELDS = `
    id entity entityId field kind status baseVersion serverVersion serverValue serverChangedBy
    serverChangedAt clientValue clientChangedBy clientChangedAt clientId resolution
    resolutionValue resolutionReason resolvedById resolvedAt version`;

export const SYNC_MUTATION = `
mutation Sync($clientId: ID!, $protocolVersion: Int!, $schemaVersion: Int!, $cursor: String,
              $ops: [SyncOpInput!]!, $pullLimit: Int, $branchId: ID) {
  syncPendingOperations(clientId: $clientId, protocolVersion: $protocolVersion,
                        schemaVersion: $schemaVersion, cursor: $cursor, ops: $ops,
                        pullLimit: $pullLimit, branchId: $branchId) {
    results { opId status entity entityId reason conflictId conflictIds expectedSeq }
    changes { seq entity entityId deleted data }
    cursor hasMore serverTime serverHlc reset upgradeRequired clockSuspect
    conflicts { ${CONFLICT_FIELDS} }
  }
}`;

export const STATUS_QUERY = `
query Status($clientId: ID) {
  getSyncStatus(clientId: $clientId) {
    headSeq pulledSeq lag acknowledgedOps lastClientSeq openConflicts lastSyncAt
    tombstoneHorizonSeq tombstoneHorizonDays epoch schemaVersions { min max } clockSuspect
  }
}`;

export const RESOLVE_MUTATION = `
mutation Resolve($conflictId: ID!, $resolution: Resolution!, $value: JSON, $reason: String!,
                 $expectedVersion: Int) {
  resolveConflict(conflictId: $conflictId, resolution: $resolution, value: $value,
                  reason: $reason, expectedVersion: $expectedVersion) { ${CONFLICT_FIELDS} }
}`;

export const CONFLICTS_QUERY = `
query Conflicts($status: String, $limit: Int) {
  conflicts(status: $status, limit: $limit) { ${CONFLICT_FIELDS} }
}`;

export interface SyncResponse {
	results: OpResult[];
	changes: Change[];
	cursor: string | null;
	hasMore: boolean;
	serverTimeMs: number | null;
	serverHlc: string | null;
	reset: boolean;
	upgradeRequired: boolean;
	conflicts: JSONDict[];
	clockSuspect: boolean;
}

/** `serverTime` as ms since the epoch, whether sent as a number (s or ms) or ISO text. */
export function parseTimeMs(value: unknown): number | null {
	if (value === null || value === undefined) return null;
	if (typeof value === 'number') return Math.trunc(value > 1e11 ? value : value * 1000);
	const text = String(value);
	if (/^-?\d+$/.test(text)) return parseTimeMs(Number(text));
	const ms = Date.parse(text);
	return Number.isNaN(ms) ? null : ms;
}

const int = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

export function parseSync(payload: JSONDict): SyncResponse {
	const results = ((payload.results as JSONDict[]) ?? []).map((r) => ({
		opId: String(r.opId),
		status: String(r.status).toUpperCase() as OpStatus,
		seq: int(r.seq),
		reason: (r.reason as string) ?? null,
		conflictId: r.conflictId === null || r.conflictId === undefined ? null : String(r.conflictId),
		expectedSeq: int(r.expectedSeq),
		conflictIds: ((r.conflictIds as unknown[]) ?? []).map(String)
	}));
	const changes = ((payload.changes as JSONDict[]) ?? []).map((c) => ({
		seq: Number(c.seq),
		entity: String(c.entity),
		entityId: String(c.entityId),
		deleted: Boolean(c.deleted),
		// The change's seq is the row version the server compares baseVersion with.
		version: int(c.version ?? c.seq),
		data: { ...((c.data as JSONDict) ?? {}) }
	}));
	return {
		results,
		changes,
		cursor: (payload.cursor as string) ?? null,
		hasMore: Boolean(payload.hasMore),
		serverTimeMs: parseTimeMs(payload.serverTime),
		serverHlc: (payload.serverHlc as string) ?? null,
		reset: Boolean(payload.reset),
		upgradeRequired: Boolean(payload.upgradeRequired),
		conflicts: [...((payload.conflicts as JSONDict[]) ?? [])],
		clockSuspect: Boolean(payload.clockSuspect)
	};
}
