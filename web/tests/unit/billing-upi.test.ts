import { describe, expect, it } from 'vitest';
import { upiQr, upiUri } from '../../src/lib/billing/upi';

describe('counter UPI QR made in the browser', () => {
	it('is the intent the server makes (NPCI linking specification)', () => {
		// The same case as tests/billing/test_domain.py::test_upi_intent_per_npci_linking_spec.
		expect(upiUri({ vpa: 'demolab@okicici', payeeName: 'Demo Diagnostics', amountPaise: 144000, reference: 'CL/26-27/0001' })).toBe(
			'upi://pay?pa=demolab@okicici&pn=Demo%20Diagnostics&tr=CL%2F26-27%2F0001&tn=Invoice%20CL%2F26-27%2F0001&am=1440.00&cu=INR'
		);
		expect(upiUri({ vpa: 'a.b@ybl', payeeName: "Sai's (Lab)", amountPaise: 5, reference: 'ORD-1', note: 'Order ORD-1', merchantCode: '8071' })).toBe(
			'upi://pay?pa=a.b@ybl&pn=Sai%27s%20%28Lab%29&mc=8071&tr=ORD-1&tn=Order%20ORD-1&am=0.05&cu=INR'
		);
	});

	it('refuses what no UPI app would pay', () => {
		expect(() => upiUri({ vpa: 'not a vpa', payeeName: 'x', amountPaise: 100, reference: 'r' })).toThrow();
		expect(() => upiUri({ vpa: 'lab@okaxis', payeeName: 'x', amountPaise: 0, reference: 'r' })).toThrow();
	});

	it('draws a QR with finder patterns in three corners', () => {
		const qr = upiQr(upiUri({ vpa: 'lab@okaxis', payeeName: 'Lab', amountPaise: 45000, reference: 'CC1/26-27/0042' }));
		expect(qr.size).toBeGreaterThanOrEqual(25);
		for (const [x, y] of [[0, 0], [qr.size - 7, 0], [0, qr.size - 7]]) {
			expect(qr.get(x, y) && qr.get(x + 6, y + 6) && !qr.get(x + 1, y + 1) && qr.get(x + 3, y + 3)).toBe(true);
		}
	});
});
