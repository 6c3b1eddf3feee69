/** Scan to bind on the phlebotomist's run sheet: offline at the door, after collecting, a label
 * from a pre-printed roll is scanned onto each tube (a barcode scanner types the code and
 * Enter); a malformed label, a label already on another tube, and a second label on a tube
 * are told at once; back online the labels reach the lab's samples, and a label the server
 * knows better (an accession of another branch) is shown as refused. */
import { call } from './api';
import { expect, expectAccessible, screenshot, signIn, test, unique } from './fixtures';

const tomorrow = () => new Date(Date.now() + 86_400_000).toLocaleDateString('en-CA', { timeZone: 'Asia/Kolkata' });

test('scan pre-printed labels onto a visit’s tubes offline, then sync them to the lab', async ({ browser, baseURL, request }) => {
	test.setTimeout(180_000);
	const roll = unique('PL').toUpperCase().replace(/[^A-Z0-9-]/g, '-').slice(0, 30);
	const phone = await browser.newContext({ baseURL, viewport: { width: 390, height: 844 }, locale: 'en-IN', timezoneId: 'Asia/Kolkata' });
	const run = await phone.newPage();
	await signIn(run, 'phlebotomist');
	await run.getByRole('link', { name: 'My run' }).click();
	await run.getByTestId('run-day').fill(tomorrow());
	const visits = run.getByTestId('run-visit');
	await expect(visits.first()).toBeVisible({ timeout: 30_000 });
	// A demo visit still to do that needs two tubes (fluoride for the glucose and another).
	const todo = visits
		.filter({ has: run.getByTestId('run-tubes').filter({ hasText: /,/ }) })
		.filter({ has: run.getByRole('button', { name: 'On the way' }) })
		.first();
	const id = (await todo.getAttribute('data-id'))!;
	const visit = run.locator(`[data-testid="run-visit"][data-id="${id}"]`);

	// At the door, without a network: collect, then label each tube from the roll.
	await phone.setOffline(true);
	await visit.getByRole('button', { name: 'On the way' }).click();
	await visit.getByRole('button', { name: 'Arrived' }).click();
	await visit.getByRole('button', { name: 'Samples collected' }).click();
	await expect(visit.getByTestId('run-status')).toHaveText('Collected');
	const tubes = visit.getByTestId('run-tube');
	await expect(tubes).toHaveCount(2);
	const [first, second] = [tubes.nth(0), tubes.nth(1)];

	// A smudged scan: told what a label looks like, nothing queued.
	await first.getByTestId('run-label-input').fill('PL 12');
	await first.getByTestId('run-label-input').press('Enter');
	await expect(first.getByTestId('run-label-problem')).toHaveText('A label is 4 to 40 letters, digits or dashes, as printed on the roll.');
	await expect(run.getByTestId('pending')).toHaveAttribute('data-count', '3');

	// The scanner types the label and Enter (lower case from a misconfigured scanner too).
	await first.getByTestId('run-label-input').fill(`${roll.toLowerCase()}-1`);
	await first.getByTestId('run-label-input').press('Enter');
	await expect(first.getByTestId('run-tube-label')).toHaveText(`${roll}-1`);
	await expect(run.getByTestId('run-message')).toContainText(`Label ${roll}-1 is on the`);
	await expect(run.getByTestId('pending')).toHaveAttribute('data-count', '4');

	// The same label on the other tube is refused on the phone, before anything is sent.
	await second.getByTestId('run-label-input').fill(`${roll}-1`);
	await second.getByRole('button', { name: 'Bind label' }).click();
	await expect(second.getByTestId('run-label-problem')).toHaveText(`Label ${roll}-1 is already on another tube. Use a fresh label.`);
	await second.getByTestId('run-label-input').fill(`${roll}-2`);
	await second.getByRole('button', { name: 'Bind label' }).click();
	await expect(second.getByTestId('run-tube-label')).toHaveText(`${roll}-2`);
	await expect(run.getByTestId('pending')).toHaveAttribute('data-count', '5');
	await expectAccessible(run);
	await screenshot(run, '9-home-run-sheet-labels-en');

	// Back online: the visit, its order and the two labels reach the lab.
	await phone.setOffline(false);
	await expect(run.getByTestId('pending')).toHaveAttribute('data-count', '0', { timeout: 30_000 });
	const booked = await call(request, 'front_desk', 'GET', `/api/v1/appointments/${id}`);
	expect(booked.status).toBe('collected');
	const samples = (await call(request, 'admin', 'GET', `/api/v1/samples?order_id=${booked.order_id}`)).items;
	expect(samples.map((s: { label_alias: string | null }) => s.label_alias).sort()).toEqual([`${roll}-1`, `${roll}-2`]);
	// At the lab the label finds the tube like its accession.
	const found = await call(request, 'admin', 'GET', `/api/v1/samples/${roll}-2`);
	expect(found.order_id).toBe(booked.order_id);
	// The labels stay on the sheet, now from the lab's samples.
	await expect(first.getByTestId('run-tube-label')).toHaveText(`${roll}-1`);
	await expect(second.getByTestId('run-tube-label')).toHaveText(`${roll}-2`);
	await expect(visit.getByTestId('run-label-input')).toHaveCount(0);
	await phone.close();
});

test('a label the phone could not know is taken is shown as refused after the sync', async ({ browser, baseURL, request }) => {
	test.setTimeout(180_000);
	// An accession of the central lab, not on this phone (it holds its own branch's samples).
	const elsewhere = (await call(request, 'admin', 'GET', '/api/v1/samples?limit=100')).items.find(
		(s: { accession: string }) => !s.accession.startsWith('CC1-')
	);
	expect(elsewhere).toBeTruthy();
	const phone = await browser.newContext({ baseURL, viewport: { width: 390, height: 844 }, locale: 'en-IN', timezoneId: 'Asia/Kolkata' });
	const run = await phone.newPage();
	await signIn(run, 'phlebotomist');
	await run.getByRole('link', { name: 'My run' }).click();
	await run.getByTestId('run-day').fill(tomorrow());
	const waiting = run.getByTestId('run-visit').filter({ has: run.getByRole('button', { name: 'On the way' }) }).first();
	await expect(waiting).toBeVisible({ timeout: 30_000 });
	const visit = run.locator(`[data-testid="run-visit"][data-id="${await waiting.getAttribute('data-id')}"]`);
	await visit.getByRole('button', { name: 'On the way' }).click();
	await visit.getByRole('button', { name: 'Arrived' }).click();
	await visit.getByRole('button', { name: 'Samples collected' }).click();
	const tube = visit.getByTestId('run-tube').first();
	await tube.getByTestId('run-label-input').fill(elsewhere.accession);
	await tube.getByTestId('run-label-input').press('Enter');
	await expect(visit.getByTestId('run-label-refused')).toContainText(`Label ${elsewhere.accession} was refused`, { timeout: 30_000 });
	// The tube is free again for a fresh label.
	await expect(tube.getByTestId('run-label-input')).toBeVisible();
	await phone.close();
});
