import { describe, expect, it } from 'vitest';
import { nextBatch, opSize } from '../../src/lib/sync/batching';
import type { OutboxOp } from '../../src/lib/sync/model';

function op(seq: number, txGroup: string | null, size = 10): OutboxOp {
	return {
		opId: `op-${seq}`,
		clientSeq: seq,
		entity: 'patient',
		entityId: `p-${seq}`,
		operation: 'update',
		data: { note: 'x'.repeat(size) },
		baseVersion: null,
		hlc: '000000000000001-00000-c',
		schemaVersion: 2,
		txGroup,
		attempts: 0,
		createdAt: ''
	};
}

function randomOutbox(): OutboxOp[] {
	const ops: OutboxOp[] = [];
	let seq = 1;
	while (ops.length < 20 + Math.random() * 300) {
		const group = Math.random() < 0.4 ? `g${seq}` : null;
		const size = group ? 1 + Math.floor(Math.random() * 6) : 1;
		for (let i = 0; i < size; i++) ops.push(op(seq++, group, Math.floor(Math.random() * 2000)));
	}
	return ops;
}

describe('push batches', () => {
	it('are prefixes within the limits that never split a tx group (random outboxes)', () => {
		for (let run = 0; run < 200; run++) {
			const maxOps = 1 + Math.floor(Math.random() * 40);
			const maxBytes = 500 + Math.floor(Math.random() * 20000);
			let rest = randomOutbox();
			const sent: OutboxOp[] = [];
			while (rest.length) {
				const batch = nextBatch(rest, maxOps, maxBytes);
				expect(batch.length).toBeGreaterThan(0);
				expect(batch).toEqual(rest.slice(0, batch.length));
				const groupOfFirst = batch[0].txGroup;
				const onlyOneGroup = groupOfFirst !== null && batch.every((o) => o.txGroup === groupOfFirst);
				if (!onlyOneGroup) {
					expect(batch.length).toBeLessThanOrEqual(maxOps);
					const bytes = batch.reduce((s, o) => s + opSize(o), 0);
					const last = batch.at(-1)!;
					// Only the op that reached the limit may cross it (as the reference client).
					expect(bytes - opSize(last)).toBeLessThan(maxBytes);
				}
				const next = rest[batch.length];
				if (next && next.txGroup !== null) expect(batch.at(-1)!.txGroup).not.toBe(next.txGroup);
				sent.push(...batch);
				rest = rest.slice(batch.length);
			}
			expect(sent.map((o) => o.clientSeq)).toEqual(sent.map((_, i) => i + 1));
		}
	});

	it('send a group bigger than the limits alone', () => {
		const ops = [op(1, 'g'), op(2, 'g'), op(3, 'g'), op(4, null)];
		expect(nextBatch(ops, 2, 1_000_000).map((o) => o.clientSeq)).toEqual([1, 2, 3]);
	});
});
