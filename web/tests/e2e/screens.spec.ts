/** Screens 6–10 (reports, instruments, admin, dashboard) and Hindi, each with an axe check and
 * a screenshot under docs/ui/. */
import { call, receivedOrder } from './api';
import { expect, expectAccessible, screenshot, signIn, test, unique } from './fixtures';

test('reports: today\'s completed orders, view, print and download the PDF', async ({ page }) => {
	await signIn(page, 'front_desk');
	await page.getByRole('link', { name: 'Reports' }).click();
	const today = page.getByTestId('reports-today');
	await expect(today.getByRole('button', { name: 'View' }).first()).toBeVisible();
	await today.getByRole('button', { name: 'View' }).first().click();
	await expect(page.getByTestId('report-frame')).toBeVisible();
	await expect(page.getByRole('link', { name: 'Download PDF' })).toHaveAttribute('download', /\.pdf$/);
	await expectAccessible(page, ['iframe']);
	await screenshot(page, '6-reports-en');
});

test('instruments: connection status, last message and the exceptions queue', async ({ page }) => {
	await signIn(page, 'technician');
	await page.getByRole('link', { name: 'Instruments' }).click();
	await expect(page.getByTestId('instruments').locator('tbody tr').first()).toContainText(/cobas|Roche|ASTM|astm/i);
	await expect(page.getByTestId('exceptions')).toBeVisible();
	await expectAccessible(page);
	await screenshot(page, '8-instruments-en');
});

test('admin: users and roles, catalogue prices, API keys, audit log', async ({ page }) => {
	await signIn(page, 'admin');
	await page.getByRole('link', { name: 'Admin' }).click();
	await expect(page.getByTestId('users')).toContainText('front_desk@demo.example.com');
	const email = `${unique('newtech').replace(/\s/g, '')}@demo.example.com`;
	await page.getByLabel('Name', { exact: true }).fill('New Technician');
	await page.getByLabel('E-mail').fill(email);
	await page.getByLabel('Password').fill('a-long-password-1');
	await page.getByRole('checkbox', { name: 'Technician' }).check();
	await page.getByRole('button', { name: 'Create', exact: true }).click();
	await expect(page.getByText('User created.')).toBeVisible();
	await expect(page.getByTestId('users')).toContainText(email);
	await expectAccessible(page);
	await screenshot(page, '9-admin-users-en');

	await page.getByRole('tab', { name: 'Catalogue and prices' }).click();
	await page.getByLabel('Search').fill('GLUF');
	await page.getByLabel('Price of GLUF').fill('95.00');
	await page.getByTestId('catalogue').getByRole('button', { name: 'Save' }).first().click();
	await expect(page.getByText('Saved.')).toBeVisible();

	await page.getByRole('tab', { name: 'Audit log' }).click();
	await page.getByLabel('Action').fill('user.created');
	await page.getByRole('button', { name: 'Search' }).click();
	await expect(page.getByTestId('audit')).toContainText('user.created');
	await expectAccessible(page);
	await screenshot(page, '9-admin-audit-en');
});

test('dashboard: work by state, critical values, in transit, turnaround against targets', async ({ page, request }) => {
	await receivedOrder(request, unique('Dash Patient'), ['GLUF']);
	await signIn(page, 'admin');
	await page.getByRole('link', { name: 'Dashboard' }).click();
	await expect(page.getByTestId('tile-orders').locator('.big')).not.toHaveText('0');
	await expect(page.getByTestId('tat').locator('tbody tr').first()).toBeVisible();
	await expectAccessible(page);
	await screenshot(page, '10-dashboard-en');
	// The figures are the API's.
	const work = await call(request, 'admin', 'GET', '/api/v1/analytics/work-by-state');
	await expect(page.getByTestId('tile-orders').locator('.big')).toHaveText(new Intl.NumberFormat('en-IN').format(work.orders));
});

test('Hindi throughout: labels, messages, Indian number grouping', async ({ page }) => {
	await signIn(page, 'front_desk');
	await page.getByLabel('Language').first().selectOption('hi');
	await expect(page.getByRole('heading', { name: 'पंजीकरण डेस्क' })).toBeVisible();
	await expect(page.locator('html')).toHaveAttribute('lang', 'hi');
	await expect(page.getByRole('link', { name: 'नमूना संग्रह' })).toBeVisible();
	await page.getByTestId('patient-search').fill('Sunita');
	await page.getByRole('link', { name: 'Sunita Devi Sharma' }).first().click();
	await expect(page.getByRole('heading', { name: 'नया ऑर्डर' })).toBeVisible();
	const picker = page.getByTestId('test-picker');
	await picker.fill('LIPID');
	await picker.press('Enter');
	await expect(page.getByTestId('order-total')).toContainText('₹');
	await expectAccessible(page);
	await screenshot(page, '1-registration-order-hi');
	await page.getByLabel('भाषा').first().selectOption('en');
});
