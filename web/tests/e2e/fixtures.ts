/** Shared helpers of the browser tests: the server's address, signing in, axe, screenshots. */
import AxeBuilder from '@axe-core/playwright';
import { test as base, expect, type Page } from '@playwright/test';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';

export const PASSWORD = 'nidaan-demo';
export const DOCS_UI = resolve(import.meta.dirname, '../../../docs/ui');
/** Where screenshots go: the committed docs/ui/ only when asked (`make screenshots`), so a
 * test run leaves the working tree clean; otherwise beside the other test results. */
const SHOTS = process.env.NIDAAN_UPDATE_SCREENSHOTS ? DOCS_UI : resolve(import.meta.dirname, '../../test-results/screens');

export const test = base.extend({
	baseURL: async ({}, use) => {
		await use(process.env.NIDAAN_E2E_BASE_URL);
	}
});
export { expect };

/** Sign in through the login form and wait for the app shell. */
export async function signIn(page: Page, login: string, password = PASSWORD): Promise<void> {
	const email = login.includes('@') ? login : `${login}@demo.example.com`;
	await page.goto('/');
	await page.getByLabel(/e-mail|ई-मेल/i).fill(email);
	await page.getByLabel(/password|पासवर्ड/i).fill(password);
	await page.getByRole('button', { name: /sign in|साइन इन/i }).click();
	await expect(page.getByTestId('who')).toBeVisible();
}

/** WCAG 2.1 A/AA rules from axe-core on the current page; fails on any violation. */
export async function expectAccessible(page: Page, exclude: string[] = []): Promise<void> {
	let builder = new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']);
	for (const selector of exclude) builder = builder.exclude(selector);
	const results = await builder.analyze();
	const summary = results.violations.map(
		(v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(', ')}`
	);
	expect(summary, 'axe violations').toEqual([]);
}

/** Save a screenshot of the page (under docs/ui/ with NIDAAN_UPDATE_SCREENSHOTS=1: the
 * committed pictures of the screens as a lab sees them). */
export async function screenshot(page: Page, name: string): Promise<void> {
	mkdirSync(SHOTS, { recursive: true });
	await page.screenshot({ path: resolve(SHOTS, `${name}.png`), fullPage: false });
}

/** A short unique text for names the tests create (the server is shared by all tests). */
export function unique(prefix: string): string {
	return `${prefix} ${Date.now().toString(36).slice(-5)}${Math.random().toString(36).slice(2, 5)}`;
}
