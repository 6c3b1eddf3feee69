/** The patient's booking page, no login, on a phone: windows for their pincode, tests with
 * fasting instructions, a code by SMS (read from the demo's SMS simulator), book; then the
 * reminder's link (?appointment=…) in Hindi to reschedule and cancel the same visit. */
import type { APIRequestContext } from '@playwright/test';
import { call } from './api';
import { expect, expectAccessible, screenshot, test } from './fixtures';

const PAGE = '/book/demo-diagnostics/CC1';

/** The newest code the SMS simulator "delivered" to `mobile` (10 digits). */
async function smsCode(request: APIRequestContext, mobile: string, not?: string): Promise<string> {
	let found = '';
	await expect
		.poll(
			async () => {
				const answer = await (await request.get('/_simulators/sms/_sim/messages')).json();
				const mine = answer.messages.filter((m: { to: string }) => m.to === `91${mobile}`);
				const code = mine.length ? (/\b(\d{6})\b/.exec(mine[mine.length - 1].text)?.[1] ?? '') : '';
				found = code && code !== not ? code : '';
				return found;
			},
			{ timeout: 30_000 }
		)
		.not.toBe('');
	return found;
}

test('a patient books from the link, then reschedules and cancels it in Hindi', async ({ browser, baseURL, request }) => {
	test.setTimeout(180_000);
	const phone = await browser.newContext({ baseURL, viewport: { width: 390, height: 844 }, locale: 'en-IN', timezoneId: 'Asia/Kolkata' });
	const page = await phone.newPage();
	const mobile = `98${String(Date.now()).slice(-8)}`;

	await page.goto(PAGE);
	// Public: no staff sign-in form, no staff navigation.
	await expect(page.getByRole('heading', { name: 'Book a home sample collection' })).toBeVisible();
	await expect(page.getByLabel('Password')).toHaveCount(0);

	// A pincode the centre does not go to is told so before anything else.
	await page.getByTestId('book-pincode').fill('110001');
	await page.getByRole('button', { name: 'Show times' }).click();
	await expect(page.getByTestId('book-error')).toHaveText('Sorry, we do not collect at home in this pincode.');

	await page.getByTestId('book-pincode').fill('411038');
	await page.getByRole('button', { name: 'Show times' }).click();
	const slots = page.getByTestId('book-slots').getByRole('radio');
	await expect(slots.first()).toBeVisible();
	await slots.first().check();
	const tests = page.getByTestId('book-tests');
	// Every bookable test is listed; the filter finds the fasting one.
	await page.getByTestId('book-test-filter').fill('glucose fasting');
	await tests.getByRole('checkbox', { name: /Glucose, fasting/ }).check();
	await expect(page.getByTestId('book-preparation')).toContainText(/Fast for \d+ hours before/);
	await expectAccessible(page);

	await page.getByTestId('book-mobile').fill(mobile);
	await page.getByRole('button', { name: 'Send code' }).click();
	await page.getByTestId('book-code').fill(await smsCode(request, mobile));
	await page.getByRole('button', { name: 'Verify' }).click();
	await page.getByTestId('book-name').fill('Meera Kulkarni');
	await page.getByTestId('book-age').fill('41');
	await page.getByTestId('book-address').fill('Flat 12, Shanti Kunj, Paud Road');
	await page.getByRole('button', { name: 'Confirm booking' }).click();
	const visit = page.getByTestId('book-visit');
	await expect(visit).toHaveAttribute('data-status', 'booked');
	await expect(page.getByTestId('book-fasting')).toBeVisible();
	await screenshot(page, '9-home-patient-booking-en');
	const id = (await visit.getAttribute('data-id'))!;
	const booked = await call(request, 'front_desk', 'GET', `/api/v1/appointments/${id}`);
	expect(booked.booked_via).toBe('patient_link');

	// The reminder's link, in Hindi: verify again, move the visit, then cancel it.
	const first = await smsCode(request, mobile);
	await page.goto(`${PAGE}?appointment=${id}`);
	await page.getByRole('button', { name: 'हिन्दी' }).click();
	await expect(page.getByRole('heading', { name: 'घर पर नमूना संग्रह बुक करें' })).toBeVisible();
	await page.getByTestId('book-mobile').fill(mobile);
	await page.getByRole('button', { name: 'कोड भेजें' }).click();
	await page.getByTestId('book-code').fill(await smsCode(request, mobile, first));
	await page.getByRole('button', { name: 'पुष्टि करें' }).click();
	await expect(visit).toHaveAttribute('data-id', id);
	const before = await page.getByTestId('book-when').textContent();
	const other = page.getByTestId('book-new-slot').locator('option').nth(1);
	await page.getByTestId('book-new-slot').selectOption((await other.getAttribute('value'))!);
	await page.getByRole('button', { name: 'समय बदलें' }).click();
	await expect(page.getByRole('status')).toHaveText('आपकी विज़िट का समय बदल दिया गया है।');
	await expect(page.getByTestId('book-when')).not.toHaveText(before!);
	await expectAccessible(page);
	await screenshot(page, '9-home-patient-reschedule-hi');
	await page.getByRole('button', { name: 'विज़िट रद्द करें' }).click();
	await expect(visit).toHaveAttribute('data-status', 'cancelled');
	const cancelled = await call(request, 'front_desk', 'GET', `/api/v1/appointments/${id}`);
	expect(cancelled.status).toBe('cancelled');
	await phone.close();
});
