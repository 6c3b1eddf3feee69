/** Quality control: a failed control run blocks release (the Westgard rule named), the
 * Levey-Jennings chart of the lot, results stopped by autoverification with the rule that
 * stopped them (on the QC screen and in verification), a corrective action and a passing run
 * that lift the block. The demo lab has potassium controls (levels 1 and 2, 4.0 ± 0.1 and
 * 6.5 ± 0.15 mmol/L) with three weeks of runs on its analyzer. */
import { call, receivedOrder } from './api';
import { expect, expectAccessible, screenshot, signIn, test, unique } from './fixtures';

test('QC: a failed run blocks release, the chart marks it, a corrective action and a passing run lift it', async ({ page, request, browser, baseURL }) => {
	const lots = (await call(request, 'technician', 'GET', '/api/v1/qc/lots?limit=100')).items;
	const materials = new Map(
		(await call(request, 'technician', 'GET', '/api/v1/qc/materials?limit=100')).items.map((m: any) => [m.id, m.level])
	);
	// The demo's potassium lots: targets 4.0 (level 1) and 6.5 mmol/L (level 2).
	const active = lots.filter((l: any) => l.lot_number.startsWith('2604') && l.state === 'active');
	const level1 = active.find((l: any) => Number(l.mean) === 4 && materials.get(l.material_id) === '1');
	const level2 = active.find((l: any) => Number(l.mean) === 6.5 && materials.get(l.material_id) === '2');
	expect(level1 && level2).toBeTruthy();

	// The morning control run: level 1 at +3.5 SD (1-3s), level 2 in control.
	await call(request, 'technician', 'POST', '/api/v1/qc/results', { lot_id: level1.id, value: '4.35' });
	await call(request, 'technician', 'POST', '/api/v1/qc/results', { lot_id: level2.id, value: '6.5' });

	// A potassium entered by hand: autoverification stops it (only analyzer results qualify).
	const { order } = await receivedOrder(request, unique('QC Patient'), ['K'], { sex: 'male', age: 52 });
	const test = order.tests.find((x: any) => x.code === 'K');
	await call(request, 'technician', 'POST', '/api/v1/results', { order_test_id: test.id, value: '4.3' });

	await signIn(page, 'technician');
	await page.goto('/qc');
	await expect(page.getByRole('heading', { name: 'Quality control', level: 1 })).toBeVisible();
	const status = page.getByTestId('qc-status').getByRole('row').filter({ hasText: 'Potassium' });
	await expect(status).toContainText('Release blocked');
	await expect(status).toContainText('1-3s');
	const violation = page.getByTestId('qc-violations').getByRole('row').filter({ hasText: '1-3s' }).first();
	await expect(violation).toContainText('rejection');

	// The Levey-Jennings chart of level 1: an SVG the browser decodes, described for readers.
	await page.getByTestId('qc-lots').getByRole('button', { name: /K · level 1 · 26041/ }).click();
	const chart = page.getByTestId('lj-chart');
	await expect(chart).toBeVisible();
	await expect(chart).toHaveAttribute('alt', /Levey-Jennings chart of K · level 1/);
	await expect.poll(() => chart.evaluate((img: HTMLImageElement) => img.naturalWidth)).toBeGreaterThan(300);

	// Stopped by autoverification, with the rule that stopped it (the worker decides shortly).
	await expect(async () => {
		await page.reload();
		await expect(page.getByTestId('autoverify-stopped')).toContainText('source manual is not autoverified', { timeout: 5_000 });
	}).toPass({ timeout: 45_000 });
	await expectAccessible(page);
	await screenshot(page, 'qc-1-blocked-en');

	// Corrective action: recorded, but the block stays until a control run passes.
	await violation.getByRole('button', { name: 'Corrective action' }).click();
	const form = page.getByRole('form', { name: 'Corrective action' });
	await form.getByLabel('Action taken').selectOption('recalibration');
	await form.getByLabel('Note').fill('Recalibrated potassium, new ISE reference');
	await form.getByRole('button', { name: 'Save' }).click();
	await expect(page.getByRole('status')).toContainText('Results stay blocked until a control run passes');
	await expect(status).toContainText('Release blocked');

	// A passing run entered at the bench (both levels) lifts the block.
	const entry = page.getByRole('form', { name: 'Enter control result' });
	for (const [lot, value] of [[level1, '4.02'], [level2, '6.48']]) {
		await entry.getByLabel('Control lot').selectOption(lot.id);
		await entry.getByLabel('Value').fill(value);
		await entry.getByRole('button', { name: 'Enter control result' }).click();
		await expect(page.getByRole('status')).toContainText('Control result saved');
	}
	await expect(page.getByRole('status')).toContainText('run passed');
	await expect(status).toContainText('Passing: results released');
	await expect(page.getByTestId('qc-violations')).not.toContainText('1-3s');

	// The pathologist sees why the potassium waits for them.
	const lab = await browser.newContext({ baseURL });
	const pathologist = await lab.newPage();
	await signIn(pathologist, 'pathologist');
	await pathologist.goto('/verification');
	await pathologist.getByTestId('verification-orders').getByRole('button', { name: new RegExp(order.order_number) }).click();
	await expect(pathologist.getByTestId('review-reason')).toContainText('Stopped by autoverification: Rule 1 (source)');
	await screenshot(pathologist, 'qc-2-verification-stopped-en');
	await lab.close();
});
