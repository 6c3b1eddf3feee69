/** Attachments: a prescription or consent form attached to a patient and an order, listed
 * and opened; the server's refusals (type read from the content, size per kind) shown. */
import { writeFileSync } from 'node:fs';
import { call, receivedOrder } from './api';
import { expect, expectAccessible, screenshot, signIn, test, unique } from './fixtures';

// A 1×1 PNG, and the smallest PDF libmagic recognises.
const PNG = Buffer.from(
	'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
	'base64'
);
const PDF = Buffer.from('%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n');

test('attachments: upload a prescription, see the refusals, open it; a consent form on the order', async ({ page, request }) => {
	test.setTimeout(120_000);
	const { patient, order } = await receivedOrder(request, unique('Farah Khan'), ['GLUF'], { receive: false });

	await signIn(page, 'front_desk');
	await page.goto(`/desk/patients/${patient.id}`);
	const box = page.getByTestId('attachments');
	await expect(box.getByText('No attachments yet.')).toBeVisible();

	// A text file named .pdf: the server reads the content and says what it is.
	await box.getByTestId('attach-file').setInputFiles({ name: 'prescription.pdf', mimeType: 'application/pdf', buffer: Buffer.from('not a pdf at all, just words\n') });
	await box.getByTestId('attach-submit').click();
	await expect(box.getByTestId('attach-error')).toHaveText('Refused: this file is text/plain; allowed here: PDF, JPEG, PNG.');

	// Over the 20 MB a prescription may be.
	const big = Buffer.alloc(21 * 1024 * 1024, 0);
	PNG.copy(big);
	const scan = test.info().outputPath('scan.png'); // a path: the browser reads it itself
	writeFileSync(scan, big);
	await box.getByTestId('attach-file').setInputFiles(scan);
	await box.getByTestId('attach-submit').click();
	await expect(box.getByTestId('attach-error')).toHaveText('Refused: the file is larger than the 20 MB allowed for this kind of document.', { timeout: 30_000 });
	const none = await call(request, 'front_desk', 'GET', `/api/v1/files?patient_id=${patient.id}`);
	expect(none.items).toEqual([]); // refused uploads leave nothing behind

	// From the keyboard: choose the kind, the file, a note, then Enter.
	await box.getByTestId('attach-purpose').selectOption('prescription');
	await box.getByTestId('attach-file').setInputFiles({ name: 'rx-dr-kulkarni.png', mimeType: 'image/png', buffer: PNG });
	await box.getByLabel('Description (optional)').fill('Dr. Kulkarni, fasting sugar');
	await box.getByLabel('Description (optional)').press('Enter');
	await expect(box.getByRole('status')).toHaveText('rx-dr-kulkarni.png attached.');
	const row = box.getByTestId('attachment-row').filter({ hasText: 'rx-dr-kulkarni.png' });
	await expect(row).toContainText('Prescription');
	await expect(row).toContainText('Dr. Kulkarni, fasting sugar');
	await row.getByRole('button', { name: 'Open rx-dr-kulkarni.png' }).click();
	const viewer = box.getByTestId('attachment-viewer');
	await expect(viewer.getByRole('img', { name: 'Attachment rx-dr-kulkarni.png' })).toBeVisible();
	await expect.poll(() => viewer.getByRole('img').evaluate((img: HTMLImageElement) => img.naturalWidth)).toBe(1);
	await expectAccessible(page);
	await screenshot(page, '14-attachments-en');
	await viewer.getByRole('button', { name: 'Close' }).click();
	await expect(viewer).toHaveCount(0);

	const stored = (await call(request, 'front_desk', 'GET', `/api/v1/files?patient_id=${patient.id}`)).items;
	expect(stored.map((f: any) => [f.purpose, f.filename, f.content_type])).toEqual([['prescription', 'rx-dr-kulkarni.png', 'image/png']]);

	// The order screen: a signed consent form for this order.
	await page.goto(`/desk/orders/${order.id}`);
	const orderBox = page.getByTestId('attachments');
	await expect(orderBox).toBeVisible({ timeout: 30_000 });
	await orderBox.getByTestId('attach-purpose').selectOption('consent_form');
	await orderBox.getByTestId('attach-file').setInputFiles({ name: 'consent-signed.pdf', mimeType: 'application/pdf', buffer: PDF });
	await orderBox.getByTestId('attach-submit').click();
	await expect(orderBox.getByTestId('attachment-row')).toHaveCount(1);
	await expect(orderBox.getByTestId('attachment-row')).toContainText('Consent form');
	await orderBox.getByRole('button', { name: 'Open consent-signed.pdf' }).click();
	await expect(orderBox.getByTestId('attachment-viewer').locator('iframe')).toBeVisible();
	const onOrder = (await call(request, 'front_desk', 'GET', `/api/v1/files?order_id=${order.id}`)).items;
	expect(onOrder.map((f: any) => [f.purpose, f.content_type, f.patient_id])).toEqual([['consent_form', 'application/pdf', patient.id]]);
	await expectAccessible(page, ['iframe']);
});
