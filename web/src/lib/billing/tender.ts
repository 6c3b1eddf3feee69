/**
 * Split tender at the billing counter: the rows a cashier types (cash, card, UPI, cheque), checked
 * in paise so that ₹0.10 + ₹0.20 is ₹0.30 exactly, and the body the server takes
 * (`POST /api/v1/invoices/{id}/payments`). The server checks everything again; this only keeps
 * the cashier from sending what it would refuse.
 */
export type TenderMethod = 'cash' | 'card' | 'upi' | 'cheque';

export interface TenderRow {
	method: TenderMethod;
	amount: string; // rupees as typed, e.g. "500" or "250.50"
	reference: string; // card approval code, cheque number
	utr: string; // UPI: the 12-digit UTR from the payer's app
}

export type TenderProblem = 'amount' | 'utr' | 'reference' | 'over' | 'empty';

const RUPEES = /^\d{1,9}(\.\d{1,2})?$/;

/** Rupees as typed → paise, or null when it is not an amount (no float on the way). */
export function paiseOf(rupees: string): number | null {
	const text = rupees.trim().replace(/,/g, '');
	if (!RUPEES.test(text)) return null;
	const [whole, fraction = ''] = text.split('.');
	return Number(whole) * 100 + Number(fraction.padEnd(2, '0'));
}

/** Paise → the rupee string the API takes ("1250.50"). */
export function rupeesOf(paise: number): string {
	const sign = paise < 0 ? '-' : '';
	const abs = Math.abs(paise);
	return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
}

export function newTender(method: TenderMethod = 'cash', amount = ''): TenderRow {
	return { method, amount, reference: '', utr: '' };
}

/** Sum of the rows that hold a valid amount, in paise. */
export function tenderedPaise(rows: TenderRow[]): number {
	return rows.reduce((sum, row) => sum + (paiseOf(row.amount) ?? 0), 0);
}

/** What is wrong with each row (by index), and with the whole (key -1). */
export function problems(rows: TenderRow[], balanceDue: string): Map<number, TenderProblem> {
	const found = new Map<number, TenderProblem>();
	rows.forEach((row, index) => {
		const paise = paiseOf(row.amount);
		if (paise === null || paise <= 0) found.set(index, 'amount');
		else if (row.method === 'upi' && !/^\d{12}$/.test(row.utr.trim())) found.set(index, 'utr');
		else if ((row.method === 'card' || row.method === 'cheque') && !row.reference.trim()) found.set(index, 'reference');
	});
	if (!rows.length) found.set(-1, 'empty');
	else if (tenderedPaise(rows) > (paiseOf(balanceDue) ?? 0)) found.set(-1, 'over');
	return found;
}

/** The request body for the rows (call only when `problems` is empty). */
export function tenderBody(rows: TenderRow[], id: string): { id: string; tenders: Record<string, string>[] } {
	return {
		id,
		tenders: rows.map((row) => {
			const tender: Record<string, string> = { method: row.method, amount: rupeesOf(paiseOf(row.amount)!) };
			if (row.method === 'upi') tender.utr = row.utr.trim();
			if (row.reference.trim()) tender.reference = row.reference.trim();
			return tender;
		})
	};
}
