import { describe, expect, it } from 'vitest';
import { newTender, paiseOf, problems, rupeesOf, tenderBody, tenderedPaise, type TenderRow } from '../../src/lib/billing/tender';

const row = (over: Partial<TenderRow>): TenderRow => ({ ...newTender(), ...over });

describe('split tender at the billing counter', () => {
	it('reads rupees into exact paise, never through a float sum', () => {
		expect(paiseOf('0.1')).toBe(10);
		expect(paiseOf('1,250.5')).toBe(125050);
		expect(paiseOf('12.345')).toBeNull();
		expect(paiseOf('-5')).toBeNull();
		expect(paiseOf('1e3')).toBeNull();
		expect(tenderedPaise([row({ amount: '0.10' }), row({ amount: '0.20' })])).toBe(30);
		expect(rupeesOf(30)).toBe('0.30');
		expect(rupeesOf(125050)).toBe('1250.50');
	});

	it('round-trips every amount in paise (randomised)', () => {
		for (let i = 0; i < 2000; i++) {
			const paise = Math.floor(Math.random() * 1e11);
			expect(paiseOf(rupeesOf(paise))).toBe(paise);
		}
	});

	it('names what the server would refuse: UTR, reference, more than due', () => {
		const rows = [
			row({ method: 'cash', amount: '100' }),
			row({ method: 'upi', amount: '50', utr: '1234' }),
			row({ method: 'card', amount: '20' }),
			row({ method: 'cheque', amount: 'abc' })
		];
		const found = problems(rows, '500');
		expect([...found.entries()]).toEqual([
			[1, 'utr'],
			[2, 'reference'],
			[3, 'amount']
		]);
		expect(problems([row({ amount: '500.01' })], '500').get(-1)).toBe('over');
		expect(problems([], '500').get(-1)).toBe('empty');
		expect(problems([row({ amount: '200' }), row({ method: 'upi', amount: '300', utr: '412345678901' })], '500').size).toBe(0);
	});

	it('sends one body per receipt with its id, UTR only on UPI', () => {
		const body = tenderBody(
			[row({ amount: '200' }), row({ method: 'upi', amount: '300.5', utr: ' 412345678901 ' }), row({ method: 'card', amount: '1', reference: 'AUTH 42' })],
			'rcpt-1'
		);
		expect(body).toEqual({
			id: 'rcpt-1',
			tenders: [
				{ method: 'cash', amount: '200.00' },
				{ method: 'upi', amount: '300.50', utr: '412345678901' },
				{ method: 'card', amount: '1.00', reference: 'AUTH 42' }
			]
		});
	});
});
