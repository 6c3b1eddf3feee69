/**
 * The counter UPI QR made in the browser, so a collection centre without its line can still take
 * UPI: a `upi://pay` intent per NPCI's UPI linking specification (the same string the server
 * makes, see billing/domain.py `upi_payment_uri`), drawn as a QR by lean-qr. The branch's payee
 * (VPA and name) is kept on this computer whenever the app is online.
 */
import { correction, generate } from 'lean-qr';
import { api } from '$lib/api/http';
import { rupeesOf } from './tender';

export interface UpiPayee {
	branch_id: string;
	upi_vpa: string;
	upi_payee_name: string;
	upi_merchant_code: string | null;
}

const VPA = /^[A-Za-z0-9.\-_]{2,256}@[A-Za-z][A-Za-z0-9]{1,63}$/; // as the server's VPA_PATTERN
const KEY = 'nidaan:upi-payee:';

/** Percent-encode as Python's quote(value, safe='@'): only A–Z a–z 0–9 _ . - ~ and @ stay. */
function enc(value: string): string {
	return encodeURIComponent(value)
		.replace(/%40/g, '@')
		.replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

export function upiUri(p: { vpa: string; payeeName: string; amountPaise: number; reference: string; note?: string; merchantCode?: string | null }): string {
	if (!VPA.test(p.vpa)) throw new Error(`${p.vpa} is not a UPI address (name@bank)`);
	if (!(p.amountPaise > 0)) throw new Error('a UPI request needs an amount above zero');
	const params: [string, string][] = [
		['pa', p.vpa],
		['pn', p.payeeName.trim().slice(0, 99)]
	];
	if (p.merchantCode) params.push(['mc', p.merchantCode]);
	params.push(
		['tr', p.reference.slice(0, 35)],
		['tn', (p.note ?? `Invoice ${p.reference}`).slice(0, 80)],
		['am', rupeesOf(p.amountPaise)],
		['cu', 'INR']
	);
	return `upi://pay?${params.map(([k, v]) => `${k}=${enc(v)}`).join('&')}`;
}

/** The QR's modules (true = dark), medium error correction as the server's. */
export function upiQr(uri: string) {
	return generate(uri, { minCorrectionLevel: correction.M });
}

/** The branch's payee: fresh from the lab when online (and kept), else the kept copy. */
export async function branchPayee(branchId: string): Promise<UpiPayee | null> {
	try {
		const payee = await api<UpiPayee>(`/api/v1/billing/branches/${branchId}/upi-payee`);
		localStorage.setItem(KEY + branchId, JSON.stringify(payee));
		return payee;
	} catch {
		const kept = localStorage.getItem(KEY + branchId);
		return kept ? (JSON.parse(kept) as UpiPayee) : null;
	}
}
