/** Shapes and helpers of the notifications API (/api/v1/notifications). */
import { ApiError, NetworkError } from '$lib/api/http';
import { t } from '$lib/i18n/index.svelte';

export const CHANNELS = ['whatsapp', 'sms', 'email'] as const;
export const STATUSES = ['pending', 'sending', 'sent', 'delivered', 'read', 'failed', 'uncertain', 'skipped'] as const;
/** Statuses that may still change (worth polling for). */
const MOVING = new Set(['pending', 'sending', 'sent', 'uncertain']);

export interface NotificationEvent {
	status: string;
	source: string;
	occurred_at: string;
	error_code: string | null;
	error_title: string | null;
	detail: string | null;
}
export interface Notification {
	id: string;
	template: string;
	kind: string;
	language: string;
	channel: string;
	recipient_type: string;
	to: string | null;
	patient_id: string | null;
	subject_type: string | null;
	subject_id: string | null;
	status: string;
	attempts: number;
	error_code: string | null;
	error_title: string | null;
	fallback_of_id: string | null;
	created_at: string;
	history: NotificationEvent[];
}
export interface Consent {
	channel: string;
	opted_in: boolean;
	source: string;
	opted_in_at: string | null;
	opted_out_at: string | null;
	updated_at: string;
}

export function stillMoving(rows: Notification[]): boolean {
	return rows.some((r) => MOVING.has(r.status));
}

export function statusClass(status: string): string {
	if (status === 'delivered' || status === 'read') return 'ok';
	if (status === 'failed') return 'bad';
	if (status === 'skipped' || status === 'uncertain') return 'warn';
	return 'info';
}

/** The reason a message failed or was not sent, for the table. */
export function reasonOf(row: Notification): string {
	if (row.error_code || row.error_title) return t('notify.reason', { code: row.error_code ?? '', title: row.error_title ?? '' }).trim();
	if (row.status === 'skipped') return row.history.find((h) => h.detail)?.detail ?? '';
	return '';
}

/** What the server said no with, in words for the screen. */
export function problemText(error: unknown): string {
	if (error instanceof NetworkError) return t('common.offline_needed');
	if (error instanceof ApiError) return error.detail || error.code;
	return error instanceof Error ? error.message : String(error);
}
