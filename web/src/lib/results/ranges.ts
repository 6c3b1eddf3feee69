/** Reference bands and flags as the server decides them (`nidaan/catalog/domain.py`), so the
 * entry grid can flag a value while it is typed. The server's flag on save is the one kept. */

export interface Range {
	id?: string;
	sex: string | null;
	age_min_days: number | null;
	age_max_days: number | null;
	pregnant: boolean | null;
	low: string | null;
	high: string | null;
	critical_low: string | null;
	critical_high: string | null;
	text: string | null;
}

export interface Facts {
	sex: string | null;
	ageDays: number | null;
	pregnant: boolean | null;
}

export function ageInDays(dateOfBirth: string | null | undefined, today = new Date()): number | null {
	if (!dateOfBirth) return null;
	const born = Date.parse(`${dateOfBirth}T00:00:00+05:30`);
	return Number.isNaN(born) ? null : Math.floor((today.getTime() - born) / 86_400_000);
}

function matches(r: Range, f: Facts): boolean {
	if (r.sex !== null && r.sex !== f.sex) return false;
	if (r.age_min_days !== null || r.age_max_days !== null) {
		if (f.ageDays === null) return false;
		if (r.age_min_days !== null && f.ageDays < r.age_min_days) return false;
		if (r.age_max_days !== null && f.ageDays >= r.age_max_days) return false;
	}
	return r.pregnant === null || r.pregnant === f.pregnant;
}

function specificity(r: Range): (number | string)[] {
	const lower = r.age_min_days ?? 0;
	const width = r.age_max_days === null ? Infinity : r.age_max_days - lower;
	const bounds = Number(r.age_min_days !== null) + Number(r.age_max_days !== null);
	return [Number(r.pregnant === null), width, -bounds, Number(r.sex === null), -lower, String(r.low), String(r.high), String(r.id ?? '')];
}

function compare(a: (number | string)[], b: (number | string)[]): number {
	for (let i = 0; i < a.length; i++) {
		if (a[i] < b[i]) return -1;
		if (a[i] > b[i]) return 1;
	}
	return 0;
}

/** The most specific band matching the patient, or null. */
export function selectRange(ranges: Range[], facts: Facts): Range | null {
	const matching = ranges.filter((r) => matches(r, facts));
	if (!matching.length) return null;
	return matching.reduce((best, r) => (compare(specificity(r), specificity(best)) < 0 ? r : best));
}

/** A typed value as a number ("5,6" → 5.6); null for text such as "<0.01" or "Positive". */
export function parseNumber(typed: string): number | null {
	const text = typed.trim().replace(',', '.');
	return /^[-+]?\d+(\.\d+)?$/.test(text) ? Number(text) : null;
}

/** "LL"/"HH" beyond a critical limit, "L"/"H" outside the band, "N" inside, null = no band. */
export function numericFlag(value: number, r: Range | null): string | null {
	if (!r || [r.low, r.high, r.critical_low, r.critical_high].every((v) => v === null)) return null;
	if (r.critical_low !== null && value < Number(r.critical_low)) return 'LL';
	if (r.critical_high !== null && value > Number(r.critical_high)) return 'HH';
	if (r.low !== null && value < Number(r.low)) return 'L';
	if (r.high !== null && value > Number(r.high)) return 'H';
	return 'N';
}

export function rangeText(r: Range | null): string {
	if (!r) return '';
	if (r.text) return r.text;
	if (r.low !== null && r.high !== null) return `${Number(r.low)}–${Number(r.high)}`;
	if (r.low !== null) return `≥ ${Number(r.low)}`;
	if (r.high !== null) return `≤ ${Number(r.high)}`;
	return '';
}

export const isCritical = (flag: string | null | undefined) => flag === 'LL' || flag === 'HH';
