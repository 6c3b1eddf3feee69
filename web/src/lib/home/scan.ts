/**
 * Scan to bind at the door: a label from a pre-printed barcode roll goes on one of the visit's
 * tubes. A barcode scanner is a keyboard that types the code and Enter, so the run screen only
 * needs a text field; this module says whether what was scanned can be bound, before the op is
 * queued (the server checks again and settles two phones scanning the same label at once).
 */

/** As printed on the roll: 4 to 40 letters, digits or dashes (the server's LABEL_PATTERN). */
export const LABEL_PATTERN = /^[A-Z0-9][A-Z0-9-]{3,39}$/;

export interface Tube {
	specimen_type: string;
	container: string;
}

/** A tube of a visit, named the way the phone knows it before the server numbers it. */
export const tubeKey = (tube: Tube): string => `${tube.specimen_type}/${tube.container}`;

/** Scanners add stray spaces and some type lower case: compare as the server stores it. */
export const normalise = (scanned: string): string => scanned.trim().toUpperCase();

export type LabelProblem =
	| { code: 'empty' }
	| { code: 'format' }
	| { code: 'tube_has_label'; label: string }
	| { code: 'bound_elsewhere'; label: string }
	| { code: 'is_accession'; label: string };

export interface Known {
	/** Labels already on a tube (synced or waiting to sync), with the tube they are on. */
	bound: Map<string, string>;
	/** Accessions the phone knows: a label may not equal one (it would scan ambiguously). */
	accessions: Set<string>;
}

/** Why `scanned` cannot go on `tube` (null: it can), given what the phone knows. */
export function check(scanned: string, tube: string, known: Known): LabelProblem | null {
	const label = normalise(scanned);
	if (!label) return { code: 'empty' };
	if (!LABEL_PATTERN.test(label)) return { code: 'format' };
	const where = known.bound.get(label);
	if (where !== undefined && where !== tube) return { code: 'bound_elsewhere', label };
	if (known.accessions.has(label)) return { code: 'is_accession', label };
	for (const [other, on] of known.bound) {
		if (on === tube && other !== label) return { code: 'tube_has_label', label: other };
	}
	return null;
}

/** Everything bound on this phone: pending binds predicted on visits (`labels`, keyed by
 * tube) and labels the server sent back on samples (`label_alias`). Tubes are keyed by
 * visit and tube so one visit's EDTA tube is not another's. */
export function knownLabels(
	visits: { id: string; data: Record<string, unknown> }[],
	samples: { data: Record<string, unknown> }[]
): Known {
	const bound = new Map<string, string>();
	const accessions = new Set<string>();
	const visitOfOrder = new Map<string, string>();
	for (const v of visits) {
		if (v.data.order_id) visitOfOrder.set(String(v.data.order_id), v.id);
		for (const [tube, label] of Object.entries((v.data.labels as Record<string, string>) ?? {})) {
			bound.set(String(label), `${v.id}:${tube}`);
		}
	}
	for (const s of samples) {
		if (s.data.accession) accessions.add(String(s.data.accession).toUpperCase());
		if (!s.data.label_alias) continue;
		const visit = visitOfOrder.get(String(s.data.order_id)) ?? `order ${s.data.order_id}`;
		const tube = tubeKey(s.data as unknown as Tube);
		bound.set(String(s.data.label_alias), `${visit}:${tube}`);
	}
	return { bound, accessions };
}

/** The label on a visit's tube: the pending scan first, else what the server sent back. */
export function labelOf(
	visit: { id: string; data: Record<string, unknown> },
	tube: Tube,
	samples: { data: Record<string, unknown> }[]
): string | null {
	const pending = ((visit.data.labels as Record<string, string>) ?? {})[tubeKey(tube)];
	if (pending) return pending;
	const sample = samples.find(
		(s) =>
			s.data.order_id === visit.data.order_id &&
			s.data.container === tube.container &&
			s.data.specimen_type === tube.specimen_type &&
			s.data.status !== 'rejected'
	);
	return sample?.data.label_alias ? String(sample.data.label_alias) : null;
}
