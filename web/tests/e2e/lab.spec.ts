/** Screens 2–5 online: collection (on a phone), receipt by scanner, result entry with live
 * flags and keyboard, and the pathologist's verification with a critical value. */
import { branchId, call, receivedOrder } from './api';
import { expect, expectAccessible, screenshot, signIn, test, unique } from './fixtures';

test('phlebotomy on a phone: pending collection at my centre, collect, dispatch', async ({ page, request }) => {
	const cc1 = await branchId(request, 'CC1');
	const name = unique('Kiran Rao');
	const patient = (await call(request, 'front_desk', 'POST', '/api/v1/patients', { full_name: name, sex: 'male', age_years: 33 })).patient;
	await call(request, 'front_desk', 'POST', '/api/v1/orders', { patient_id: patient.id, branch_id: cc1, items: ['CBC', 'GLUF'] });

	await page.setViewportSize({ width: 390, height: 844 });
	await signIn(page, 'phlebotomist');
	await expect(page).toHaveURL(/\/phlebotomy$/);
	const card = page.getByTestId('waiting-order').filter({ hasText: name });
	await expect(card).toBeVisible({ timeout: 15_000 });
	const box = await card.getByTestId('collect-button').boundingBox();
	expect(box!.height).toBeGreaterThanOrEqual(44); // a touch target
	await expectAccessible(page);
	await screenshot(page, '2-phlebotomy-phone-en');

	await card.getByTestId('collect-button').click();
	await expect(page.getByTestId('collect-message')).toBeVisible();
	await expect(card).toHaveCount(0);
	// Sent to the lab: the server has the samples collected.
	await expect
		.poll(async () => (await call(request, 'admin', 'GET', `/api/v1/samples?order_id=${(await call(request, 'admin', 'GET', `/api/v1/orders?patient_id=${patient.id}`)).items[0].id}`)).items.map((s: any) => s.status))
		.toEqual(['collected', 'collected']);
	await page.getByRole('checkbox').first().check();
	await page.getByRole('button', { name: /Dispatch selected/ }).click();
	await expect(page.getByText(/Manifest .* dispatched/)).toBeVisible();
});

test('sample receipt: a scanner types the accession and Enter', async ({ page, request }) => {
	const { order } = await receivedOrder(request, unique('Receipt Patient'), ['GLUF'], { receive: false });
	const accession = order.samples[0].accession;
	await call(request, 'front_desk', 'POST', `/api/v1/samples/${accession}/collect`, {});

	await signIn(page, 'technician');
	await page.goto('/receipt');
	await page.getByTestId('receipt-scan').pressSequentially(`${accession}\n`, { delay: 5 });
	await expect(page.getByTestId('receipt-log')).toContainText(`${accession} — received`);
	await expect(page.getByTestId('receipt-scan')).toBeFocused();
	await page.getByTestId('receipt-scan').pressSequentially('CL-19990101-9999\n');
	await expect(page.getByTestId('receipt-log').locator('li').first()).toHaveClass(/bad/);
	await expectAccessible(page);
	await screenshot(page, '3-sample-receipt-en');
});

test('result entry: keyboard through the worklist, live flags, calculated tests filled in', async ({ page, request }) => {
	const name = unique('Worklist Patient');
	const { order } = await receivedOrder(request, name, ['GLUF', 'KFT'], { sex: 'male', age: 50 });

	await signIn(page, 'technician');
	await page.goto('/results');
	await page.getByTestId('department').selectOption('Biochemistry');
	const rows = page.getByTestId('worklist-row').filter({ hasText: name });
	await expect(rows.first()).toBeVisible();
	const glucose = rows.filter({ hasText: 'GLUF' });
	await glucose.getByTestId('result-input').fill('250');
	await expect(glucose.getByTestId('flag')).toHaveText(/High|Critical high/);
	await glucose.getByTestId('result-input').fill('40');
	await expect(glucose.getByTestId('flag')).toHaveText(/Low|Critical low/);
	await glucose.getByTestId('result-input').fill('95');
	await expect(glucose.getByTestId('flag')).toHaveText('');
	// Enter moves to the next row's box, ↑ back.
	const inputs = page.getByTestId('result-input');
	const index = await inputs.evaluateAll((els) => els.indexOf(document.activeElement as HTMLInputElement));
	await glucose.getByTestId('result-input').press('Enter');
	await expect(inputs.nth(index + 1)).toBeFocused();
	await page.keyboard.press('ArrowUp');
	await expect(inputs.nth(index)).toBeFocused();
	for (const [code, value] of [['UREA', '30'], ['CREA', '1.1']]) {
		const row = rows.filter({ hasText: code });
		if (await row.count()) await row.getByTestId('result-input').fill(value);
	}
	await glucose.getByTestId('result-input').focus();
	await page.getByTestId('result-comment').fill('Fasting confirmed with the patient');
	await expectAccessible(page);
	await screenshot(page, '4-result-entry-en');
	await page.keyboard.press('Control+s');
	await expect(glucose.getByTestId('flag')).toContainText('✓');
	await expect(page.getByTestId('calculated')).toBeVisible();
	const saved = (await call(request, 'technician', 'GET', `/api/v1/results?order_id=${order.id}`)).items;
	const gluf = saved.find((r: { comment: string | null; value_text: string }) => r.value_text === '95');
	expect(gluf.comment).toBe('Fasting confirmed with the patient');
});

test('verification: critical value call with read-back, verify, the report PDF', async ({ page, request }) => {
	const name = unique('Critical Patient');
	const { order } = await receivedOrder(request, name, ['GLUF'], { sex: 'female', age: 60 });
	const glucose = order.tests.find((t: any) => t.code === 'GLUF');
	await call(request, 'technician', 'POST', '/api/v1/results', { order_test_id: glucose.id, value: '600' });

	await signIn(page, 'pathologist');
	await page.goto('/verification');
	await page.getByTestId('verification-orders').getByRole('button', { name: new RegExp(order.order_number) }).click();
	await expect(page.getByTestId('verification-results')).toContainText('600');
	const ack = page.getByTestId('critical-ack');
	await expect(ack).toBeVisible();
	await expect(page.getByTestId('verify-all')).toBeDisabled();
	await ack.getByLabel('Told to (name, role)').fill('Dr. Rao, ward 3');
	await ack.getByLabel('The value was read back').check();
	await expectAccessible(page);
	await screenshot(page, '5-verification-critical-en');
	await ack.getByRole('button', { name: 'Record the call' }).click();
	await expect(page.getByText('Critical value call recorded.')).toBeVisible();
	await page.getByTestId('verify-all').click();
	await expect(page.getByText('Results verified.')).toBeVisible();
	await expect(page.getByTestId('report-preview')).toBeVisible({ timeout: 30_000 });
	await screenshot(page, '5-verification-report-en');
});
