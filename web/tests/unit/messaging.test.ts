/** The words the messaging and attachment screens put on the server's answers. */
import { describe, expect, it } from 'vitest';
import { ApiError, NetworkError } from '../../src/lib/api/http';
import { refusalText } from '../../src/lib/files/files';
import { i18n } from '../../src/lib/i18n/index.svelte';
import { problemText, reasonOf, statusClass, stillMoving, type Notification } from '../../src/lib/notify/notify';

const message = (over: Partial<Notification>): Notification => ({
	id: '1', template: 'test_result_ready', kind: 'template', language: 'en', channel: 'whatsapp', recipient_type: 'patient',
	to: '+91••••••3210', patient_id: null, subject_type: 'report', subject_id: null, status: 'sent', attempts: 1,
	error_code: null, error_title: null, fallback_of_id: null, created_at: '2026-12-07T10:00:00Z', history: [], ...over
});

describe('attachment refusals', () => {
	it('say the size allowed, in MB', async () => {
		await i18n.use('en');
		const error = new ApiError(413, 'file_too_large', 'The file is larger than the 20 MB allowed here.', { max_bytes: 20 * 1024 * 1024 });
		expect(refusalText(error)).toBe('Refused: the file is larger than the 20 MB allowed for this kind of document.');
	});
	it('say what the file really is and what is allowed, by name', () => {
		const error = new ApiError(415, 'file_type_not_allowed', 'This is a text/plain file', {
			detected_type: 'text/plain',
			allowed_types: ['application/pdf', 'image/jpeg', 'image/png']
		});
		expect(refusalText(error)).toBe('Refused: this file is text/plain; allowed here: PDF, JPEG, PNG.');
	});
	it('fall back to the server\'s own words, and say when the lab is out of reach', () => {
		expect(refusalText(new ApiError(422, 'invalid_upload', 'No file part.'))).toBe('Refused by the server: No file part.');
		expect(refusalText(new ApiError(400, 'empty_file', 'Empty.'))).toBe('Refused: the file is empty.');
		expect(refusalText(new NetworkError('offline'))).toMatch(/connection to the lab/);
	});
	it('are in Hindi when the desk works in Hindi', async () => {
		await i18n.use('hi');
		const error = new ApiError(413, 'file_too_large', '', { max_bytes: 50 * 1024 * 1024 });
		expect(refusalText(error)).toContain('50 MB');
		expect(refusalText(error)).toMatch(/^अस्वीकार/);
		await i18n.use('en');
	});
});

describe('message status', () => {
	it('colours final states and keeps polling only while a message may change', () => {
		expect(['delivered', 'read', 'failed', 'skipped', 'pending'].map(statusClass)).toEqual(['ok', 'ok', 'bad', 'warn', 'info']);
		expect(stillMoving([message({ status: 'read' }), message({ status: 'failed' })])).toBe(false);
		for (const status of ['pending', 'sending', 'sent', 'uncertain']) expect(stillMoving([message({ status })])).toBe(true);
	});
	it('gives the provider\'s reason for a failure and ours for a skip', () => {
		expect(reasonOf(message({ status: 'failed', error_code: '131047', error_title: 'Re-engagement message' }))).toBe('Reason: 131047 Re-engagement message');
		const skipped = message({ status: 'skipped', history: [{ status: 'skipped', source: 'system', occurred_at: '', error_code: null, error_title: null, detail: 'no opted-in channel' }] });
		expect(reasonOf(skipped)).toBe('no opted-in channel');
		expect(reasonOf(message({ status: 'delivered' }))).toBe('');
		expect(problemText(new ApiError(409, 'resend_not_allowed', 'Cannot send on sms.'))).toBe('Cannot send on sms.');
	});
});
