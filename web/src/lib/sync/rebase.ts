/**
 * Re-apply pending local ops on a synced row (as `nidaan/sync/client/rebase.py`): the server
 * is authoritative, this only predicts what a pending op will do so the screen shows the
 * user's intent until the server's answer is pulled.
 */
import type { JSONDict, OutboxOp } from './model';

export interface RowState {
	version: number | null;
	deleted: boolean;
	data: JSONDict;
}

export function applyOp(state: RowState | null, op: OutboxOp): RowState | null {
	switch (op.operation) {
		case 'create':
		case 'append':
			if (state === null) return { version: null, deleted: false, data: { id: op.entityId, ...op.data } };
			// The server already has the row (a replayed create): its values win, ours fill gaps.
			return { ...state, data: { ...op.data, ...state.data } };
		case 'update': {
			const base = state ?? { version: null, deleted: false, data: { id: op.entityId } };
			return { ...base, data: { ...base.data, ...op.data } };
		}
		case 'delete':
			return state === null ? null : { ...state, deleted: true };
		case 'transition': {
			if (state === null) return null;
			const { to, ...extra } = op.data;
			return { ...state, data: { ...state.data, ...extra, status: to } };
		}
		case 'bind_label': {
			// A label scanned onto one of a visit's tubes: shown on that tube until the
			// server's samples (with the label) are pulled.
			if (state === null) return null;
			const tube = `${op.data.specimen_type}/${op.data.container}`;
			const labels = { ...((state.data.labels as JSONDict) ?? {}), [tube]: String(op.data.label).trim().toUpperCase() };
			return { ...state, data: { ...state.data, labels } };
		}
		default:
			return state;
	}
}

export function rebase(state: RowState | null, ops: OutboxOp[]): RowState | null {
	for (const op of [...ops].sort((a, b) => a.clientSeq - b.clientSeq)) state = applyOp(state, op);
	return state;
}
