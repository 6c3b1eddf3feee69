/** Messages: consent at the desk, a report going out and coming back delivered (or failed
 * with the provider's reason), "resend the report" by channel, and the admin's log. */
import { call } from './api';
import { expect, expectAccessible, screenshot, signIn, test, unique } from './fixtures';
import { patientWithMobile, reportedOrder } from './reported';

test('messages: consent at the desk, delivery on the report screen, resend by channel', async ({ page, request }) => {
	test.setTimeout(180_000);
	const name = unique('Meera Joshi');
	const patient = await patientWithMobile(request, name);

	await signIn(page, 'front_desk');
	await page.goto(`/desk/patients/${patient.id}`);
	const consent = page.getByTestId('messaging-consent');
	await expect(consent.getByText('not asked yet').first()).toBeVisible();
	// Keyboard: the WhatsApp box takes Space like any checkbox.
	await consent.getByLabel('Agreed to messages on WhatsApp').focus();
	await page.keyboard.press('Space');
	await expect(consent.getByRole('status')).toHaveText('Consent for WhatsApp saved.');
	await expect(consent.getByLabel('Agreed to messages on WhatsApp')).toBeChecked();
	const stored = (await call(request, 'front_desk', 'GET', `/api/v1/patients/${patient.id}/notification-consents`)).items;
	expect(stored.map((c: any) => [c.channel, c.opted_in])).toEqual([['whatsapp', true]]);
	await expectAccessible(page);
	await screenshot(page, '11-patient-consent-en');

	const { order, report } = await reportedOrder(request, patient);
	await page.getByRole('link', { name: 'Reports' }).click();
	await page.getByTestId('report-search').fill(name);
	await page.getByRole('button', { name: 'Search' }).click();
	await page.getByRole('button', { name: new RegExp(name) }).click();
	await page.getByRole('button', { name: 'View' }).first().click();
	const messages = page.getByTestId('messages');
	const rows = messages.getByTestId('message-row');
	const template = rows.filter({ hasText: 'Report ready' }).filter({ hasText: '(message)' });
	// Sent by the worker, then delivered/read by the simulator's signed webhook.
	await expect(template.getByTestId('message-status')).toHaveText(/Delivered|Read/, { timeout: 60_000 });
	await expect(template).toContainText('+91');
	// The PDF as a WhatsApp document outside the 24-hour window: failed, with Meta's reason.
	const pdf = messages.locator('[data-testid="message-row"][data-channel="whatsapp"]').filter({ hasText: 'report PDF' });
	await expect(pdf.getByTestId('message-status')).toHaveText('Failed', { timeout: 60_000 });
	await expect(pdf.getByTestId('message-reason')).toContainText(/Reason: 13\d{4}/);
	// Its fallback (SMS, then e-mail) is not sent: no consent there, and the screen says so.
	const fallback = rows.filter({ hasText: 'fallback' }).first();
	await expect(fallback.getByTestId('message-status')).toHaveText('Not sent');
	await expect(fallback.getByTestId('message-reason')).toContainText('opted in');
	// The history opens from the keyboard.
	await template.locator('summary').focus();
	await page.keyboard.press('Enter');
	await expect(template.locator('ol.history li').first()).toContainText('Queued');

	// A channel the patient did not agree to: refused, with the reason.
	await messages.getByTestId('resend-sms').click();
	await expect(messages.getByTestId('messages-error')).toContainText('has not agreed to messages on sms');
	await messages.getByTestId('resend-whatsapp').click();
	await expect(messages.getByRole('status')).toHaveText('The report is queued to go out again on WhatsApp.');
	await expect(template).toHaveCount(2);
	await expect(template.first().getByTestId('message-status')).toHaveText(/Delivered|Read/, { timeout: 60_000 });
	const sent = await call(request, 'admin', 'GET', `/api/v1/notifications?subject_id=${report.id}&channel=whatsapp`);
	expect(sent.items.filter((m: any) => m.kind === 'template')).toHaveLength(2);
	await expectAccessible(page, ['iframe']);
	await screenshot(page, '12-report-delivery-en');

	// The order screen shows the same delivery.
	await page.goto(`/desk/orders/${order.id}`);
	await expect(page.getByTestId('messages').getByTestId('message-row').first()).toBeVisible({ timeout: 30_000 });
});

test('messages log: the admin filters by channel, status and patient', async ({ page }) => {
	await signIn(page, 'admin');
	await page.getByRole('link', { name: 'Messages' }).click();
	await expect(page.getByRole('heading', { name: 'Messages to patients and doctors' })).toBeVisible();
	const rows = page.getByTestId('message-row');
	await expect(rows.first()).toBeVisible({ timeout: 30_000 });

	await page.getByTestId('filter-channel').selectOption('whatsapp');
	await expect(rows.first()).toBeVisible();
	await expect.poll(async () => [...new Set(await rows.evaluateAll((els) => els.map((e) => e.getAttribute('data-channel'))))]).toEqual(['whatsapp']);
	await page.getByTestId('filter-status').selectOption('failed');
	await expect.poll(async () => [...new Set(await rows.evaluateAll((els) => els.map((e) => e.getAttribute('data-status'))))]).toEqual(['failed']);
	await expect(rows.first().getByTestId('message-reason')).toContainText('Reason:');

	await page.getByRole('button', { name: 'Clear filters' }).click();
	await page.getByTestId('filter-patient').fill('Sunita');
	await page.getByTestId('filter-patient').press('Enter');
	await page.getByRole('button', { name: /Sunita Devi Sharma/ }).first().click();
	await expect(page.getByTestId('filter-patient-chosen')).toHaveText('Sunita Devi Sharma');
	await expect(rows.first()).toBeVisible();
	await expect(page.getByRole('heading', { name: /\d+ messages?/ })).toBeVisible();
	await expectAccessible(page);
	await screenshot(page, '13-messages-log-en');

	await page.getByLabel('Language').selectOption('hi');
	await expect(page.getByRole('heading', { name: 'मरीज़ों और डॉक्टरों को संदेश' })).toBeVisible();
	await expectAccessible(page);
	await screenshot(page, '13-messages-log-hi');
	await page.getByLabel(/भाषा|Language/).selectOption('en');
});
