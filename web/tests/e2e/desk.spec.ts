/** Screen 1, the registration desk, online: search, the duplicate warning, registration,
 * order entry with the picker and counter payment, the order page with its labels. */
import { expect, expectAccessible, screenshot, signIn, test, unique } from './fixtures';

test('register, warn about a duplicate, order a panel by keyboard, take payment, print labels', async ({ page }) => {
	await signIn(page, 'front_desk');
	await page.getByTestId('branch-picker').selectOption({ label: 'CC1 · Collection Centre, Kothrud' });

	// Search finds the demo's patients by name and by mobile.
	const search = page.getByTestId('patient-search');
	await search.fill('Meena Kul');
	await expect(page.getByRole('link', { name: 'Meena Kulkarni' }).first()).toBeVisible();
	await search.fill('98501 23456');
	await expect(page.getByRole('link', { name: 'Meena Kulkarni' }).first()).toBeVisible();
	await expectAccessible(page);
	await screenshot(page, '1-registration-search-en');

	// A new registration that matches an existing patient is warned about first.
	const name = unique('Asha Verma');
	await page.keyboard.press('F2');
	const form = page.getByTestId('new-patient');
	await form.getByLabel('Name').fill('Meena Kulkarni');
	await form.getByLabel('Sex').selectOption('female');
	await form.getByLabel('Age (years)').fill('52');
	await form.getByLabel('Mobile').fill('9850123456');
	await form.getByRole('button', { name: 'Register patient' }).click();
	await expect(page.getByTestId('duplicate-warning')).toBeVisible();
	await screenshot(page, '1-registration-duplicate-en');

	// A different person: registered (through the outbox; online it is sent at once).
	await form.getByLabel('Name').fill(name);
	await form.getByLabel('Mobile').fill('9812345678');
	await form.getByRole('button', { name: 'Register patient' }).click();
	await expect(page.getByRole('heading', { name })).toBeVisible();
	await expect(page.getByTestId('mrn')).toHaveText(/^MRN-/, { timeout: 15_000 });

	// Order entry: the picker by keyboard (a panel and a test), prices from the rate list.
	const picker = page.getByTestId('test-picker');
	await picker.fill('lipid');
	await picker.press('Enter');
	await picker.fill('GLU');
	await expect(page.locator('#orderable-list [role=option]').first()).toContainText('GLU');
	await picker.press('Enter');
	await expect(page.getByTestId('chosen').getByRole('row')).toHaveCount(2);
	await expect(page.getByTestId('order-total')).toContainText('₹');
	await page.getByTestId('order-entry').getByLabel('Method').selectOption('upi');
	await page.getByTestId('order-entry').getByLabel('Reference (UPI/card)').fill('UPI-4455');
	await expectAccessible(page);
	await screenshot(page, '1-order-entry-en');
	await page.keyboard.press('Control+Enter');

	// The order page: the number, tubes and accession labels come back from the lab.
	await expect(page.getByTestId('order-number')).toHaveText(/^ORD-/, { timeout: 15_000 });
	await expect(page.getByTestId('sample-row').first()).toBeVisible();
	await expect(page.getByTestId('label').first().locator('svg[data-barcode]')).toBeVisible();
	const code = await page.getByTestId('label').first().getAttribute('data-code');
	expect(code).toMatch(/^CC1-\d{8}-\d{4}$/);
	await expect(page.getByTestId('balance')).toHaveText('₹0.00');
	await expect(page.getByTestId('payments')).toContainText('UPI-4455');
	await expectAccessible(page);
	await screenshot(page, '1-order-labels-payment-en');
});
