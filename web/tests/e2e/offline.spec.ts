/**
 * Offline at a collection centre: with the network cut, a front-desk user searches the local
 * copy, registers, orders, collects, takes a counter payment and prints labels; everything
 * waits in the IndexedDB outbox through a reload, a second tab and a browser restart, and goes
 * to the lab by itself when the line comes back. A guarded (clinical) field edited offline
 * while the lab changed it becomes a conflict on the Sync screen.
 */
import { chromium, type BrowserContext, type Page } from '@playwright/test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { branchId, call } from './api';
import { expect, expectAccessible, screenshot, signIn, test, unique } from './fixtures';
import config from '../../playwright.config';

const CENTRE_PASSWORD = 'centre-desk-2024';

async function launch(dir: string, baseURL: string): Promise<BrowserContext> {
	const use = config.use!;
	return chromium.launchPersistentContext(dir, {
		...use.launchOptions,
		headless: true,
		baseURL,
		locale: use.locale,
		timezoneId: use.timezoneId,
		viewport: use.viewport
	});
}

async function signInAt(page: Page, email: string): Promise<void> {
	await page.getByLabel('E-mail').fill(email);
	await page.getByLabel('Password').fill(CENTRE_PASSWORD);
	await page.getByRole('button', { name: 'Sign in' }).click();
	await expect(page.getByTestId('who')).toBeVisible();
}

/** A step of the journey, printed as it passes (the test's output tells the story). */
async function step(name: string, body: () => Promise<void>): Promise<void> {
	const started = Date.now();
	await test.step(name, body);
	console.log(`  ✔ ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

const pending = (page: Page) => page.getByTestId('pending');
const network = (page: Page) => page.getByTestId('network');

test('the collection-centre day without a network, and the catch-up when it returns', async ({ request, baseURL, browser }) => {
	test.setTimeout(240_000);
	const cc1 = await branchId(request, 'CC1');
	const email = `cc1-desk-${Date.now()}@demo.example.com`;
	await call(request, 'admin', 'POST', '/api/v1/users', {
		email,
		full_name: 'Priya Kale',
		password: CENTRE_PASSWORD,
		roles: ['front_desk'],
		branch_ids: [cc1]
	});
	// A patient of this centre whose pregnancy status the lab will also change meanwhile.
	const expectant = (
		await call(request, 'front_desk', 'POST', '/api/v1/patients', {
			full_name: unique('Kavya Desai'),
			sex: 'female',
			age_years: 29,
			registered_at_branch_id: cc1
		})
	).patient;

	const dir = mkdtempSync(join(tmpdir(), 'nidaan-offline-'));
	let context = await launch(dir, baseURL!);
	try {
		let page = context.pages()[0] ?? (await context.newPage());
		const newName = unique('Ramesh Offline');
		let orderId = '';
		let collectedBefore = 0;
		let backOnlineAt = 0;

		await step('online once: sign in, first sync, app shell cached by the service worker', async () => {
			await page.goto('/');
			await signInAt(page, email);
			await expect(page.getByTestId('last-sync')).toContainText('Last sync', { timeout: 20_000 });
			await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 20_000 });
		});

		await step('the line goes down: the status says so', async () => {
			await context.setOffline(true);
			await expect(network(page)).toHaveAttribute('data-state', 'OFFLINE');
		});

		await step('search the local copy', async () => {
			await page.getByTestId('patient-search').fill(expectant.full_name.split(' ')[0]);
			await expect(page.getByRole('link', { name: expectant.full_name })).toBeVisible();
			await expect(page.getByText("The lab cannot be reached: showing this centre's copy only.")).toBeVisible();
		});

		await step('edit a clinical (guarded) field offline', async () => {
			await page.getByRole('link', { name: expectant.full_name }).click();
			await page.getByRole('button', { name: 'Edit details' }).click();
			await page.getByTestId('edit-pregnant').check();
			await page.getByRole('button', { name: 'Save' }).click();
			await expect(pending(page)).toHaveAttribute('data-count', '1');
		});

		await step('register a new patient offline', async () => {
			await page.getByRole('link', { name: 'Registration' }).click();
			await expect(page.getByRole('heading', { name: 'Registration desk' })).toBeVisible();
			await page.keyboard.press('F2');
			const form = page.getByTestId('new-patient');
			await form.getByLabel('Name').fill(newName);
			await form.getByLabel('Sex').selectOption('male');
			await form.getByLabel('Age (years)').fill('61');
			await form.getByLabel('Mobile').fill('9811122233');
			await form.getByRole('button', { name: 'Register patient' }).click();
			await expect(page.getByRole('heading', { name: newName })).toBeVisible();
			await expect(page.getByTestId('mrn')).toHaveText('MRN after sync');
		});

		await step('order a panel and a test with a cash payment', async () => {
			const picker = page.getByTestId('test-picker');
			await picker.fill('CBC');
			await picker.press('Enter');
			await picker.fill('GLUF');
			await picker.press('Enter');
			await expect(page.getByTestId('chosen').getByRole('row')).toHaveCount(2);
			await page.keyboard.press('Control+Enter');
			await expect(page.getByTestId('order-number')).toHaveText('Order number after sync');
			orderId = page.url().split('/').at(-1)!;
			await expect(page.getByTestId('order-pending')).toBeVisible();
			await expect(page.getByTestId('balance')).toHaveText('₹0.00');
		});

		await step('provisional labels and the collection, offline', async () => {
			const labels = page.getByTestId('label');
			await expect(labels).toHaveCount(2); // EDTA for CBC, fluoride for glucose
			for (const code of await labels.evaluateAll((els) => els.map((e) => e.getAttribute('data-code')))) {
				expect(code).toMatch(/^P-[0-9A-F]{10}-\d$/);
			}
			await expect(labels.first().locator('svg[data-barcode] rect').first()).toBeAttached();
			collectedBefore = Date.now();
			await page.getByTestId('collect-order').click();
			await expect(page.getByTestId('collection-waiting')).toBeVisible();
			await expect(pending(page)).toHaveAttribute('data-count', '4'); // edit, patient, order, payment
			await expect(network(page)).toHaveAttribute('data-state', 'OFFLINE');
			await expectAccessible(page);
			await screenshot(page, '1-offline-order-en');
		});

		await step('a reload offline: the shell comes from the service worker, sign in locally, nothing lost', async () => {
			await page.reload();
			await signInAt(page, email);
			await expect(page.getByText('local sign-in')).toBeVisible();
			await expect(pending(page)).toHaveAttribute('data-count', '4');
		});

		await step('a second tab sees the same outbox and follows the leader', async () => {
			const second = await context.newPage();
			await second.goto(`/desk/orders/${orderId}`);
			await expect(second.getByTestId('who')).toHaveText('Priya Kale');
			await expect(pending(second)).toHaveAttribute('data-count', '4');
			await expect(second.getByTestId('order-pending')).toBeVisible();
			await second.close();
		});

		await step('the lab changes the same guarded field meanwhile', async () => {
			const current = await call(request, 'admin', 'GET', `/api/v1/patients/${expectant.id}`);
			await call(request, 'admin', 'PATCH', `/api/v1/patients/${expectant.id}`, { version: current.version, pregnant: false });
		});

		await step('a browser restart while offline keeps everything', async () => {
			await context.close();
			context = await launch(dir, baseURL!);
			await context.setOffline(true);
			page = context.pages()[0] ?? (await context.newPage());
			await page.goto('/desk');
			await signInAt(page, email);
			await expect(pending(page)).toHaveAttribute('data-count', '4');
			await expect(network(page)).toHaveAttribute('data-state', 'OFFLINE');
		});

		await step('the line comes back: pushed and pulled by itself', async () => {
			// Find the order the way a person would: the patient, then the order.
			await page.getByTestId('patient-search').fill(newName);
			await page.getByRole('link', { name: newName }).click();
			await page.getByRole('link', { name: 'Order number after sync' }).click();
			await expect(page.getByTestId('order-pending')).toBeVisible();
			backOnlineAt = Date.now();
			await context.setOffline(false);
			await expect(pending(page)).toHaveAttribute('data-count', '0', { timeout: 30_000 });
			await expect(network(page)).toHaveAttribute('data-state', 'ONLINE');
			await expect(page.getByTestId('order-number')).toHaveText(/^ORD-/, { timeout: 30_000 });
			await expect(page.getByTestId('sample-status').first()).toHaveText('Collected', { timeout: 30_000 });
			await expect(page.getByTestId('label').first()).toHaveAttribute('data-code', /^CC1-\d{8}-\d{4}$/);
		});

		await step('the lab has the order, the collection with its offline time, and the payment', async () => {
			// The collection follows the order one round later (its tubes had to arrive first).
			const samplesOf = async () => (await call(request, 'admin', 'GET', `/api/v1/samples?order_id=${orderId}`)).items;
			await expect.poll(async () => (await samplesOf()).map((s: { status: string }) => s.status), { timeout: 20_000 }).toEqual(['collected', 'collected']);
			const samples = await samplesOf();
			for (const sample of samples) {
				// Stamped with the time it happened at the centre, not when it reached the lab.
				const at = Date.parse(sample.collected_at);
				expect(at).toBeGreaterThanOrEqual(collectedBefore - 1000);
				expect(at).toBeLessThan(backOnlineAt);
			}
			const order = await call(request, 'admin', 'GET', `/api/v1/orders/${orderId}`);
			expect(order.branch_id).toBe(cc1);
			await expect(page.getByTestId('payments')).not.toContainText('Not sent yet');
			await expect(page.getByTestId('balance')).toHaveText('₹0.00');
		});

		await step('the clinical edit became a conflict on the Sync screen (both values, who and when)', async () => {
			await page.getByRole('link', { name: 'Sync', exact: true }).click();
			const conflict = page.getByTestId('conflict').filter({ hasText: 'pregnant' });
			await expect(conflict).toBeVisible({ timeout: 20_000 });
			await expect(conflict.getByTestId('server-value')).toHaveText('false');
			await expect(conflict.getByTestId('client-value')).toHaveText('true');
			await expect(conflict.getByTestId('not-yours')).toBeVisible(); // clinical: a pathologist decides
			await expect(page.getByTestId('conflicts')).toContainText('1 conflict');
			await expectAccessible(page);
			await screenshot(page, '7-sync-conflicts-en');
		});

		await step('a pathologist resolves it with a reason; the centre learns it at its next sync', async () => {
			const lab = await browser.newContext({ baseURL });
			const pathologist = await lab.newPage();
			await signIn(pathologist, 'pathologist');
			await pathologist.getByRole('link', { name: 'Sync', exact: true }).click();
			const conflict = pathologist.getByTestId('conflict').filter({ hasText: 'pregnant' }).first();
			await conflict.getByTestId('conflict-reason').fill('Checked with the patient: not pregnant');
			await conflict.getByRole('button', { name: 'Resolve' }).click();
			await expect(pathologist.getByText('Conflict resolved.')).toBeVisible();
			await lab.close();
			await page.getByRole('button', { name: 'Sync now' }).click();
			await expect(page.getByTestId('conflicts')).toContainText('0 conflicts', { timeout: 20_000 });
		});
	} finally {
		await context.close();
		rmSync(dir, { recursive: true, force: true });
	}
});
