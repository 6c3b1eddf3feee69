import { describe, expect, it } from 'vitest';
import { check, knownLabels, labelOf, normalise, tubeKey } from '../../src/lib/home/scan';
import type { OutboxOp } from '../../src/lib/sync/model';
import { rebase } from '../../src/lib/sync/rebase';

const edta = { specimen_type: 'whole_blood', container: 'edta_lavender' };
const grey = { specimen_type: 'plasma', container: 'fluoride_grey' };
const visit = (id: string, data: Record<string, unknown> = {}) => ({ id, data: { order_id: `o-${id}`, ...data } });
const sample = (order: string, tube: typeof edta, extra: Record<string, unknown> = {}) => ({
	data: { order_id: order, ...tube, status: 'collected', accession: `CC1-20261208-${order.toUpperCase()}`, ...extra }
});

describe('scan to bind: what the phone checks before queueing', () => {
	it('takes what a scanner types: spaces trimmed, upper case, 4 to 40 letters, digits, dashes', () => {
		expect(normalise('  pl-000123 \n')).toBe('PL-000123');
		const none = { bound: new Map(), accessions: new Set<string>() };
		expect(check(' pl-000123 ', 'v1:t', none)).toBeNull();
		expect(check('', 'v1:t', none)).toEqual({ code: 'empty' });
		for (const bad of ['PL1', '-PL-0001', 'PL 0001', 'PL_0001', 'X'.repeat(41), 'पीएल-0001']) {
			expect(check(bad, 'v1:t', none), bad).toEqual({ code: 'format' });
		}
		expect(check('X'.repeat(40), 'v1:t', none)).toBeNull();
	});

	it('refuses a label already on another tube, a second label on a tube, and an accession', () => {
		const known = knownLabels(
			[visit('v1', { labels: { [tubeKey(edta)]: 'PL-0001' } }), visit('v2')],
			[sample('o-v2', grey, { label_alias: 'PL-0002' }), sample('o-v2', edta)]
		);
		// Scanning the same label on the same tube again is harmless (the server too says so).
		expect(check('pl-0001', `v1:${tubeKey(edta)}`, known)).toBeNull();
		expect(check('PL-0001', `v1:${tubeKey(grey)}`, known)).toEqual({ code: 'bound_elsewhere', label: 'PL-0001' });
		expect(check('PL-0002', `v1:${tubeKey(grey)}`, known)).toEqual({ code: 'bound_elsewhere', label: 'PL-0002' });
		expect(check('PL-0009', `v1:${tubeKey(edta)}`, known)).toEqual({ code: 'tube_has_label', label: 'PL-0001' });
		expect(check('PL-0009', `v2:${tubeKey(grey)}`, known)).toEqual({ code: 'tube_has_label', label: 'PL-0002' });
		expect(check('cc1-20261208-o-v2', `v2:${tubeKey(edta)}`, known)).toEqual({
			code: 'is_accession',
			label: 'CC1-20261208-O-V2'
		});
		expect(check('PL-0003', `v2:${tubeKey(edta)}`, known)).toBeNull();
	});

	it('the label on a tube: the pending scan, else the one the server sent back', () => {
		const samples = [sample('o-v1', grey, { label_alias: 'PL-0007' }), sample('o-v1', edta, { status: 'rejected', label_alias: 'PL-0008' })];
		expect(labelOf(visit('v1'), grey, samples)).toBe('PL-0007');
		expect(labelOf(visit('v1'), edta, samples)).toBeNull();
		expect(labelOf(visit('v1', { labels: { [tubeKey(edta)]: 'PL-0010' } }), edta, samples)).toBe('PL-0010');
	});

	it('a queued bind shows on the visit until the server answers', () => {
		const op: OutboxOp = {
			opId: 'o1',
			clientSeq: 1,
			entity: 'appointment',
			entityId: 'v1',
			operation: 'bind_label',
			data: { ...edta, label: ' pl-0001' },
			baseVersion: null,
			hlc: '',
			schemaVersion: 2,
			txGroup: null,
			attempts: 0,
			createdAt: ''
		};
		const row = { version: 3, deleted: false, data: { id: 'v1', status: 'collected' } };
		expect(rebase(row, [op])?.data).toEqual({ id: 'v1', status: 'collected', labels: { [tubeKey(edta)]: 'PL-0001' } });
		expect(rebase(null, [op])).toBeNull();
	});
});
