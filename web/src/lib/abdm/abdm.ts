/** Shapes of the ABDM API (/api/v1/abdm). */
export interface Enrolment {
	id: string;
	patient_id: string;
	kind: 'create' | 'link';
	status: 'otp_sent' | 'mobile_otp_sent' | 'address_pending' | 'completed' | 'failed';
	aadhaar_masked: string | null;
	abha_number_masked: string | null;
	abha_address: string | null;
	address_suggestions: string[];
}
export interface CareContext {
	id: string;
	order_id: string;
	reference: string;
	display: string;
	hi_type: string;
	status: string;
	linked_via: string | null;
	linked_at: string | null;
	error: string | null;
	record_date: string;
}
export interface AbdmConsent {
	id: string;
	consent_id: string;
	hip_id: string;
	status: string;
	patient_abha_address: string | null;
	purpose_code: string | null;
	purpose_text: string | null;
	hi_types: string[];
	care_contexts: Record<string, unknown>[];
	date_from: string | null;
	date_to: string | null;
	data_erase_at: string | null;
	granted_at: string | null;
	revoked_at: string | null;
	expired_at: string | null;
	updated_at: string;
}
export interface Transfer {
	id: string;
	transaction_id: string;
	consent_id: string;
	status: string;
	date_from: string | null;
	date_to: string | null;
	entries: Record<string, unknown>[];
	refusal: string | null;
	attempts: number;
	last_error: string | null;
	pushed_at: string | null;
	created_at: string;
}
export interface AbdmRequest {
	id: string;
	kind: string;
	status: string;
	hip_id: string;
	patient_id: string | null;
	error: string | null;
	created_at: string;
	answered_at: string | null;
	deadline_at: string;
}

export function statusClass(status: string): string {
	const s = status.toLowerCase();
	if (['granted', 'answered', 'linked', 'transferred', 'completed'].includes(s)) return 'ok';
	if (['revoked', 'expired', 'denied', 'failed', 'timed_out', 'refused'].includes(s)) return 'bad';
	return 'info';
}
