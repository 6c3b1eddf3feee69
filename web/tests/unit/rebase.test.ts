import { describe, expect, it } from 'vitest';
import type { OutboxOp } from '../../src/lib/sync/model';
import { rebase } from '../../src/lib/sync/rebase';

const op = (clientSeq: number, operation: OutboxOp['operation'], data: Record<string, unknown>): OutboxOp => ({
	opId: `o${clientSeq}`,
	clientSeq,
	entity: 'patient',
	entityId: 'p1',
	operation,
	data,
	baseVersion: null,
	hlc: '',
	schemaVersion: 2,
	txGroup: null,
	attempts: 0,
	createdAt: ''
});

describe('rebase (the local view of pending intent)', () => {
	it('a create makes the row; updates apply in client order whatever the list order', () => {
		const state = rebase(null, [op(3, 'update', { city: 'Pune' }), op(1, 'create', { full_name: 'A' }), op(2, 'update', { city: 'Nashik' })]);
		expect(state).toEqual({ version: null, deleted: false, data: { id: 'p1', full_name: 'A', city: 'Pune' } });
	});

	it('a replayed create keeps the server values and fills gaps', () => {
		const server = { version: 4, deleted: false, data: { id: 'p1', full_name: 'Server', mrn: 'MRN-1' } };
		expect(rebase(server, [op(1, 'create', { full_name: 'Local', city: 'X' })])?.data).toEqual({
			id: 'p1',
			full_name: 'Server',
			mrn: 'MRN-1',
			city: 'X'
		});
	});

	it('transitions set the status and carry their fields; delete marks a tombstone', () => {
		const sample = { version: 2, deleted: false, data: { id: 'p1', status: 'ordered' } };
		const collected = rebase(sample, [op(1, 'transition', { to: 'collected', collected_at: 't' })]);
		expect(collected?.data).toEqual({ id: 'p1', status: 'collected', collected_at: 't' });
		expect(rebase(sample, [op(1, 'delete', {})])?.deleted).toBe(true);
		expect(rebase(null, [op(1, 'transition', { to: 'collected' })])).toBeNull();
	});
});
