/** What the patient's booking page offers before any code is asked for: every bookable
 * package and test of the lab (not only those with preparation), each with the fasting and
 * instructions the lab wrote, narrowed by typing. */
import { expect, expectAccessible, test } from './fixtures';

const PAGE = '/book/demo-diagnostics/CC1';

test('the booking page lists every bookable test, with its preparation when it has any', async ({ browser, baseURL, request }) => {
	const phone = await browser.newContext({ baseURL, viewport: { width: 390, height: 844 }, locale: 'en-IN', timezoneId: 'Asia/Kolkata' });
	const page = await phone.newPage();
	const listed = await (await request.get(`/api/v1/public/book/demo-diagnostics/CC1/tests?limit=100`)).json();

	await page.goto(PAGE);
	await page.getByTestId('book-pincode').fill('411038');
	await page.getByRole('button', { name: 'Show times' }).click();
	const tests = page.getByTestId('book-tests');
	const offered = tests.getByTestId('book-test');
	// All of them, over every page of the list (the demo catalogue has more than 100).
	await expect(offered).toHaveCount(listed.pagination.total_count);
	expect(listed.pagination.total_count).toBeGreaterThan(100);
	await expect(tests.getByRole('heading', { name: 'Packages' })).toBeVisible();

	// Tests without preparation are there, plain; fasting ones say how long and why.
	await expect(offered.filter({ hasText: 'Haemoglobin' }).first()).toBeVisible();
	await expect(offered.filter({ hasText: 'Haemoglobin' }).first().getByTestId('book-test-instructions')).toHaveCount(0);
	const glucose = tests.locator('[data-code="GLUF"]');
	await expect(glucose).toContainText('Fast for 10 hours before');
	await expect(glucose.getByTestId('book-test-instructions')).toHaveText('Nothing to eat or drink except water after 9 pm.');
	// A package carries its tests' preparation (the lipid profile's triglycerides).
	await expect(tests.locator('[data-code="LIPID"]')).toContainText('Fast for 12 hours before');

	// Typing narrows the list; what was chosen stays.
	await glucose.getByRole('checkbox').check();
	await page.getByTestId('book-test-filter').fill('thyroid');
	await expect(offered.filter({ hasText: 'Thyroid stimulating hormone' })).toBeVisible();
	await expect(glucose).toBeVisible();
	await expect(offered.filter({ hasText: 'Haemoglobin' })).toHaveCount(0);
	await expect(page.getByTestId('book-preparation')).toContainText('Glucose, fasting: Fast for 10 hours before — Nothing to eat');
	await expectAccessible(page);
	await phone.close();
});
