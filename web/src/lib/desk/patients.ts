/** Patient search over the local copy and (online) the server, and the duplicate pre-check
 * made before a registration is saved. */
import { api, type Page } from '../api/http';
import type { JSONDict, Row } from '../sync/model';
import type { LocalStore } from '../sync/store';

export interface Found {
	id: string;
	data: JSONDict;
	pending: number;
	local: boolean;
}

export function queryKind(query: string): 'mobile' | 'abha' | 'mrn' | 'text' {
	const digits = query.replace(/[\s+-]/g, '');
	if (/^\d{14}$/.test(digits)) return 'abha';
	if (/^(91)?[6-9]\d{9}$/.test(digits)) return 'mobile';
	if (/^mrn-?\d+$/i.test(query.trim())) return 'mrn';
	return 'text';
}

/** Local rows whose name, MRN, mobile digits or ABHA address contain every word typed. */
export async function searchLocal(store: LocalStore, query: string, limit = 30): Promise<Found[]> {
	// The local copy holds pulled mobiles masked (last four digits): match a mobile by those.
	const words =
		queryKind(query) === 'mobile'
			? [query.replace(/\D/g, '').slice(-4)]
			: query.toLowerCase().replace(/[+-]/g, ' ').split(/\s+/).filter(Boolean);
	if (!words.length) return [];
	const rows = await store.db.rows
		.where('entity')
		.equals('patient')
		.filter((r) => !r.deleted && words.every((w) => r.search.includes(w.replace(/^91(?=\d{10}$)/, ''))))
		.limit(limit)
		.toArray();
	return rows.map((r: Row) => ({ id: r.id, data: r.data, pending: r.pending, local: true }));
}

/** The server's search (name, MRN, mobile, ABHA number); empty when offline. */
export async function searchServer(query: string): Promise<Found[]> {
	const kind = queryKind(query);
	const params: Record<string, string> =
		kind === 'mobile'
			? { mobile: query }
			: kind === 'abha'
				? { abha_number: query.replace(/\D/g, '') }
				: kind === 'mrn'
					? { mrn: query.trim().toUpperCase() }
					: { q: query.trim() };
	const page = await api<Page<JSONDict>>('/api/v1/patients', { query: { ...params, limit: 30 }, timeoutMs: 8000 });
	return page.items.map((p) => ({ id: String(p.id), data: p, pending: 0, local: false }));
}

export function mergeFound(local: Found[], server: Found[]): Found[] {
	const seen = new Map(local.map((f) => [f.id, f]));
	for (const f of server) if (!seen.has(f.id)) seen.set(f.id, f);
	return [...seen.values()];
}

const norm = (name: unknown) =>
	String(name ?? '')
		.toLowerCase()
		.replace(/[^\p{L}\s]/gu, '')
		.split(/\s+/)
		.filter(Boolean)
		.sort()
		.join(' ');

/** Likely duplicates of a registration about to be saved: same mobile, or same name and
 * age within a year (the server runs its own, fuller check when the record arrives). */
export function likelyDuplicates(draft: JSONDict, candidates: Found[]): Found[] {
	const mobile = String(draft.mobile ?? '').replace(/\D/g, '').slice(-10);
	const name = norm(draft.full_name);
	const age = Number(draft.age_years ?? NaN);
	return candidates.filter((c) => {
		const theirs = String(c.data.mobile ?? c.data.mobile_masked ?? '').replace(/\D/g, '');
		const sameMobile = mobile.length === 10 && theirs.length >= 4 && theirs.slice(-4) === mobile.slice(-4) && (theirs.length < 10 || theirs.slice(-10) === mobile);
		const sameName = name !== '' && norm(c.data.full_name) === name;
		const theirAge = Number(c.data.age_years ?? NaN);
		const closeAge = Number.isNaN(age) || Number.isNaN(theirAge) || Math.abs(theirAge - age) <= 1;
		return (sameMobile && (sameName || closeAge)) || (sameName && closeAge);
	});
}
