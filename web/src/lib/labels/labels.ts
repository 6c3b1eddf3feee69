/** What goes on a tube label, from the local copy: the server's accession when the order has
 * synced, else a provisional code from the order's own id (the accession label replaces it). */
import type { Row } from '../sync/model';
import { ageSex } from '../util/people';

export interface LabelSpec {
	code: string;
	provisional: boolean;
	patient: string;
	ageSex: string;
	mrn: string;
	container: string;
	tests: string[];
	when: string;
}

/** A short code for an order placed offline: the random tail of its UUIDv7, upper case. */
export function provisionalCode(orderId: string): string {
	return `P-${orderId.replace(/-/g, '').slice(-10).toUpperCase()}`;
}

export function labelsFor(
	order: Row,
	samples: Row[],
	patient: Row | undefined,
	expand: (item: string) => string[],
	containerOf: (testCode: string) => string
): LabelSpec[] {
	const base = {
		patient: String(patient?.data.full_name ?? ''),
		ageSex: patient ? ageSex(patient.data) : '',
		mrn: String(patient?.data.mrn ?? ''),
		when: String(order.data.created_at ?? new Date().toISOString())
	};
	const live = samples.filter((s) => !s.deleted && s.data.status !== 'rejected');
	if (live.length) {
		const tests = (order.data.tests as { sample_id: string | null; test_code: string }[]) ?? [];
		return live.map((s) => ({
			...base,
			code: String(s.data.accession),
			provisional: false,
			container: String(s.data.container),
			tests: tests.filter((t) => t.sample_id === s.id).map((t) => t.test_code)
		}));
	}
	// Not synced yet: one provisional label per container the ordered tests need.
	const codes = [...new Set(((order.data.items as string[]) ?? []).flatMap(expand))];
	const byContainer = new Map<string, string[]>();
	for (const code of codes) {
		const container = containerOf(code) || 'unknown';
		byContainer.set(container, [...(byContainer.get(container) ?? []), code]);
	}
	return [...byContainer].map(([container, tests], i) => ({
		...base,
		code: `${provisionalCode(order.id)}-${i + 1}`,
		provisional: true,
		container,
		tests
	}));
}
