/** The test/panel picker's search and the order's price from the rate list (pure, tested). */
import type { CatalogTest, Panel } from '../reference';

export interface Orderable {
	kind: 'test' | 'panel';
	id: string;
	code: string;
	name: string;
	loinc: string | null;
	price: string;
	/** Test codes it brings in (a panel's tests; a test itself). */
	tests: string[];
	containers: string[];
}

export function orderables(tests: CatalogTest[], panels: Panel[]): Orderable[] {
	const byCode = new Map(tests.map((t) => [t.code, t]));
	return [
		...panels
			.filter((p) => p.is_active)
			.map<Orderable>((p) => ({
				kind: 'panel',
				id: p.id,
				code: p.code,
				name: p.name,
				loinc: null,
				price: p.price,
				tests: p.tests.map((t) => t.code),
				containers: [...new Set(p.tests.map((t) => byCode.get(t.code)?.container ?? ''))].filter(Boolean)
			})),
		...tests
			.filter((t) => t.is_active)
			.map<Orderable>((t) => ({
				kind: 'test',
				id: t.id,
				code: t.code,
				name: t.name,
				loinc: t.loinc,
				price: t.price,
				tests: [t.code],
				containers: [t.container]
			}))
	];
}

/** Items matching `query` by code, name or LOINC; exact code first, then prefix, then contains. */
export function searchOrderables(items: Orderable[], query: string, limit = 12): Orderable[] {
	const q = query.trim().toLowerCase();
	if (!q) return [];
	const scored: [number, Orderable][] = [];
	for (const item of items) {
		const code = item.code.toLowerCase();
		const name = item.name.toLowerCase();
		let score = -1;
		if (code === q || item.loinc === q) score = 0;
		else if (code.startsWith(q)) score = 1;
		else if (name.startsWith(q)) score = 2;
		else if (name.includes(q) || code.includes(q) || (item.loinc ?? '').includes(q)) score = 3;
		if (score >= 0) scored.push([score, item]);
	}
	return scored
		.sort((a, b) => a[0] - b[0] || (a[1].kind === 'panel' ? -1 : 1) - (b[1].kind === 'panel' ? -1 : 1) || a[1].code.localeCompare(b[1].code))
		.slice(0, limit)
		.map(([, item]) => item);
}

/** Paise arithmetic on decimal strings: money is never a float here. */
export function toPaise(rupees: string | number): number {
	const [whole, fraction = ''] = String(rupees).trim().split('.');
	const sign = whole.startsWith('-') ? -1 : 1;
	return sign * (Math.abs(Number(whole)) * 100 + Number((fraction + '00').slice(0, 2)));
}

export function fromPaise(paise: number): string {
	const sign = paise < 0 ? '-' : '';
	const abs = Math.abs(paise);
	return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
}

/** The order's total at rate-list prices; a test already inside a chosen panel is not charged
 * twice (the server orders it once). */
export function orderTotal(chosen: Orderable[]): { total: string; duplicates: string[] } {
	const inPanels = new Set(chosen.filter((c) => c.kind === 'panel').flatMap((c) => c.tests));
	const duplicates = chosen.filter((c) => c.kind === 'test' && inPanels.has(c.code)).map((c) => c.code);
	const paise = chosen
		.filter((c) => !(c.kind === 'test' && inPanels.has(c.code)))
		.reduce((sum, c) => sum + toPaise(c.price), 0);
	return { total: fromPaise(paise), duplicates };
}
