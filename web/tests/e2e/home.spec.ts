/** Home collection: the front desk's booking calendar and runs, then the phlebotomist's run
 * sheet on a phone, offline at the door (on the way, arrived, collected with payment) and the
 * catch-up when the phone is back online. */
import { call } from './api';
import { expect, expectAccessible, screenshot, signIn, test } from './fixtures';

const tomorrow = () => new Date(Date.now() + 86_400_000).toLocaleDateString('en-CA', { timeZone: 'Asia/Kolkata' });

test('book and plan home visits, then collect offline from the run sheet', async ({ page, browser, baseURL, request }) => {
	test.setTimeout(180_000);
	await signIn(page, 'front_desk');
	await page.getByTestId('branch-picker').selectOption({ label: 'CC1 · Collection Centre, Kothrud' });
	await page.getByRole('link', { name: 'Home visits' }).click();
	await page.getByTestId('home-day').fill(tomorrow());
	// The demo day: three windows of six places, three visits, two on Sunita's run.
	await expect(page.getByTestId('slot-row')).toHaveCount(3);
	// (A patient's own booking test may have left a cancelled visit on the same day.)
	const booked = page.locator('[data-testid="visit-row"]:not([data-status="cancelled"])');
	await expect(booked).toHaveCount(3);
	await expect(booked.first()).toContainText('fasting');
	await expectAccessible(page);
	await screenshot(page, '9-home-booking-calendar-en');

	// Suggested runs: nothing is saved until the desk confirms.
	await page.getByTestId('suggest-runs').click();
	await expect(page.getByTestId('suggestions').getByRole('listitem')).toHaveCount(3);
	await expect(page.getByTestId('suggestions')).toContainText('Sunita Jadhav');
	await page.getByTestId('confirm-runs').click();
	await expect(page.getByText('Runs confirmed.')).toBeVisible();
	await expect(page.getByTestId('visit-row').filter({ hasText: 'Sunita Jadhav' })).toHaveCount(3);

	// Sunita's phone: the run sheet from the local copy.
	const phone = await browser.newContext({ baseURL, viewport: { width: 390, height: 844 }, locale: 'en-IN', timezoneId: 'Asia/Kolkata' });
	const run = await phone.newPage();
	await signIn(run, 'phlebotomist');
	await run.getByRole('link', { name: 'My run' }).click();
	await run.getByTestId('run-day').fill(tomorrow());
	const visits = run.getByTestId('run-visit');
	await expect(visits).toHaveCount(3, { timeout: 30_000 });
	await expect(visits.first().getByTestId('run-tubes')).toContainText('fluoride');
	await expectAccessible(run);
	await screenshot(run, '9-home-run-sheet-en');

	// On the road, without a network: every step is kept on the phone.
	await phone.setOffline(true);
	const first = visits.first();
	await first.getByRole('button', { name: 'On the way' }).click();
	await first.getByRole('button', { name: 'Arrived' }).click();
	await first.getByTestId('run-amount').fill('650');
	await first.getByTestId('run-method').selectOption('upi');
	await first.getByRole('button', { name: 'Samples collected' }).click();
	await expect(first.getByTestId('run-status')).toHaveText('Collected');
	await expect(run.getByTestId('pending')).toHaveAttribute('data-count', '3');
	await screenshot(run, '9-home-run-sheet-offline-en');

	// Back online: sent by itself; the lab has the order with collected tubes and the payment.
	await phone.setOffline(false);
	await expect(run.getByTestId('pending')).toHaveAttribute('data-count', '0', { timeout: 30_000 });
	const id = await first.getAttribute('data-id');
	const visit = await call(request, 'front_desk', 'GET', `/api/v1/appointments/${id}`);
	expect(visit.status).toBe('collected');
	expect(Object.keys(visit.status_times)).toEqual(expect.arrayContaining(['on_the_way', 'arrived', 'collected']));
	const samples = (await call(request, 'admin', 'GET', `/api/v1/samples?order_id=${visit.order_id}`)).items;
	expect(samples.map((s: { status: string }) => s.status)).toEqual(['collected', 'collected', 'collected'].slice(0, samples.length));
	expect(samples.length).toBeGreaterThan(0);
	expect(visit.payment_id).not.toBeNull();
	await phone.close();
});
