/** Cut the outbox into push batches: at most N ops or B bytes, never splitting a tx group. */
import { toInput, type OutboxOp } from './model';

export const MAX_BATCH_OPS = 100;
export const MAX_BATCH_BYTES = 256 * 1024;

const encoder = new TextEncoder();

export function opSize(op: OutboxOp): number {
	return encoder.encode(JSON.stringify(toInput(op))).length;
}

function groups(ops: OutboxOp[]): OutboxOp[][] {
	const out: OutboxOp[][] = [];
	for (const op of ops) {
		const last = out.at(-1);
		if (last && op.txGroup !== null && last.at(-1)!.txGroup === op.txGroup) last.push(op);
		else out.push([op]);
	}
	return out;
}

/**
 * The longest prefix of `ops` (in clientSeq order) within the limits. A first group larger
 * than the limits is sent alone: the server must see it whole, and holding it back would
 * block every op behind it.
 */
export function nextBatch(
	ops: OutboxOp[],
	maxOps = MAX_BATCH_OPS,
	maxBytes = MAX_BATCH_BYTES
): OutboxOp[] {
	const batch: OutboxOp[] = [];
	let size = 0;
	for (const group of groups(ops)) {
		const groupSize = group.reduce((sum, op) => sum + opSize(op), 0);
		if (batch.length && (batch.length + group.length > maxOps || size + groupSize > maxBytes)) break;
		batch.push(...group);
		size += groupSize;
		if (batch.length >= maxOps || size >= maxBytes) break;
	}
	return batch;
}
