/** The files API (/api/v1/files): attachments a person uploads, and the server's refusals
 * (type read from the content, size per kind of document) in words for the desk. */
import { api, ApiError, type Page } from '$lib/api/http';
import { t } from '$lib/i18n/index.svelte';
import { problemText } from '$lib/notify/notify';

export const UPLOADABLE = ['prescription', 'consent_form', 'attachment'] as const;

export interface StoredFile {
	id: string;
	purpose: string;
	document_id: string;
	version: number;
	filename: string;
	content_type: string;
	size_bytes: number;
	patient_id: string | null;
	order_id: string | null;
	description: string | null;
	created_at: string;
	content_path: string;
}

const TYPE_NAMES: Record<string, string> = { 'application/pdf': 'PDF', 'image/png': 'PNG', 'image/jpeg': 'JPEG' };
const typeName = (mime: string) => TYPE_NAMES[mime] ?? mime;

export async function listFiles(query: { patient_id?: string; order_id?: string }): Promise<StoredFile[]> {
	const rows = (await api<Page<StoredFile>>('/api/v1/files', { query: { ...query, limit: 100 } })).items;
	return rows.filter((f) => (UPLOADABLE as readonly string[]).includes(f.purpose));
}

/** Upload one file; the form's fields go before the file part, as the server streams it. */
export async function uploadFile(fields: { purpose: string; patient_id?: string; order_id?: string; description?: string }, file: File): Promise<StoredFile> {
	const form = new FormData();
	for (const [key, value] of Object.entries(fields)) if (value) form.append(key, value);
	form.append('file', file, file.name);
	return api<StoredFile>('/api/v1/files', { method: 'POST', body: form, timeoutMs: 120_000 });
}

/** The refusal as the desk should read it: what was wrong and what is allowed. */
export function refusalText(error: unknown): string {
	if (error instanceof ApiError) {
		const body = error.body;
		if (error.code === 'file_too_large' && typeof body.max_bytes === 'number') {
			return t('files.too_large', { mb: Math.round(body.max_bytes / (1024 * 1024)) });
		}
		if (error.code === 'file_type_not_allowed' && body.detected_type) {
			const allowed = ((body.allowed_types as string[]) ?? []).map(typeName).join(', ');
			return t('files.wrong_type', { detected: typeName(String(body.detected_type)), allowed });
		}
		if (error.code === 'empty_file') return t('files.empty');
		return t('files.refused', { detail: error.detail || error.code });
	}
	return problemText(error);
}

export function sizeText(bytes: number, format: (n: number, d?: number) => string): string {
	return t('files.kb', { value: format(Math.max(1, Math.round(bytes / 1024)), 0) });
}
