/** GST e-invoicing: the billing clerk gets the demo's B2B invoice its IRN from the IRP simulator
 * (through the real adapter), sees the signed QR, cancels the IRN; the screen in Hindi. */
import { call } from './api';
import { expect, expectAccessible, screenshot, signIn, test } from './fixtures';

test('e-invoice: get the IRN of a B2B invoice, see the signed QR, cancel within 24 hours', async ({ page, request }) => {
	await signIn(page, 'billing');
	// The billing role lands on Billing; GST e-invoices is its own screen.
	await expect(page).toHaveURL(/\/billing$/);
	await page.goto('/einvoice');
	await expect(page).toHaveURL(/\/einvoice$/);
	const row = page.getByTestId('einvoice-row').filter({ hasText: 'Acme Software' });
	await expect(row).toBeVisible();
	await expect(row).toContainText('Not reported');
	await expectAccessible(page);

	await row.getByTestId('einvoice-generate').click();
	const detail = page.getByTestId('einvoice-detail');
	await expect(detail).toContainText('IRN generated');
	await expect(page.getByTestId('einvoice-irn')).toHaveText(/^[0-9a-f]{64}$/);
	await expect(page.getByTestId('einvoice-qr')).toBeVisible();
	await expect(row).toContainText('IRN generated');
	await expectAccessible(page);
	await screenshot(page, '11-einvoice-en');

	// The server holds the same IRN, and the IRP simulator made exactly one.
	const irn = await page.getByTestId('einvoice-irn').textContent();
	const invoices = (await call(request, 'billing', 'GET', '/api/v1/invoices?limit=100')).items;
	const acme = invoices.find((i: { buyer_name: string }) => i.buyer_name.startsWith('Acme'));
	expect((await call(request, 'billing', 'GET', `/api/v1/invoices/${acme.id}/einvoice`)).irn).toBe(irn);

	await page.getByTestId('einvoice-reason').selectOption('2');
	await page.getByTestId('einvoice-remark').fill('Billed to the wrong client');
	await page.getByTestId('einvoice-cancel').click();
	await expect(page.getByTestId('einvoice-cancelled')).toBeVisible();
	await expect(row).toContainText('IRN cancelled');

	await page.getByLabel('Language').first().selectOption('hi');
	await expect(page.getByRole('heading', { name: 'जीएसटी ई-इनवॉइस' })).toBeVisible();
	await expect(row).toContainText('IRN रद्द');
	await expectAccessible(page);
	await page.getByLabel('भाषा').first().selectOption('en');
});
