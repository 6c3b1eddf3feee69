/** Browser-grade auth: the access token only in memory, the refresh token in an httpOnly
 * cookie, CSRF, logout that revokes, the idle timeout. */
import { expect, expectAccessible, screenshot, signIn, test } from './fixtures';

test('sign in, reload keeps the session, tokens never reach script-readable storage', async ({ page, context }) => {
	await page.goto('/');
	await expect(page.getByRole('heading', { name: 'Sign in to Nidaan' })).toBeVisible();
	await expectAccessible(page);
	await screenshot(page, 'login-en');

	await signIn(page, 'front_desk');
	await expect(page).toHaveURL(/\/desk$/);
	await expect(page.getByTestId('sync-status')).toBeVisible();

	const cookies = await context.cookies();
	const refresh = cookies.find((c) => c.name === 'nidaan_refresh')!;
	expect(refresh.httpOnly).toBe(true);
	expect(refresh.sameSite).toBe('Strict');
	expect(refresh.path).toBe('/api/v1/auth/session');
	const readable = await page.evaluate(() => ({
		cookie: document.cookie,
		local: JSON.stringify(localStorage),
		session: JSON.stringify(sessionStorage)
	}));
	expect(readable.cookie).not.toContain(refresh.value);
	expect(readable.cookie).toContain('nidaan_csrf=');
	for (const store of [readable.local, readable.session]) {
		expect(store).not.toContain(refresh.value);
		expect(store).not.toMatch(/eyJ[\w-]+\.[\w-]+\./); // no JWT
	}

	await page.reload();
	await expect(page.getByTestId('who')).toHaveText('Rahul Patil');
});

test('a cross-site refresh without the CSRF header is refused', async ({ page, context }) => {
	await signIn(page, 'front_desk');
	const answer = await page.evaluate(async () => {
		const response = await fetch('/api/v1/auth/session/refresh', { method: 'POST' });
		return { status: response.status, body: await response.json() };
	});
	expect(answer.status).toBe(403);
	expect(answer.body.code).toBe('csrf_failed');
	expect((await context.cookies()).some((c) => c.name === 'nidaan_refresh')).toBe(true);
});

test('logout revokes the session on the server', async ({ page, context, request }) => {
	await signIn(page, 'technician');
	const refresh = (await context.cookies()).find((c) => c.name === 'nidaan_refresh')!;
	const csrf = (await context.cookies()).find((c) => c.name === 'nidaan_csrf')!;

	await page.getByRole('button', { name: 'Sign out' }).click();
	await expect(page.getByRole('heading', { name: 'Sign in to Nidaan' })).toBeVisible();
	expect((await context.cookies()).some((c) => c.name === 'nidaan_refresh')).toBe(false);

	const replay = await request.post('/api/v1/auth/session/refresh', {
		headers: { Cookie: `nidaan_refresh=${refresh.value}`, 'X-CSRF-Token': csrf.value }
	});
	expect(replay.status()).toBe(401);
});

test('the session ends after the idle time without input', async ({ page }) => {
	await signIn(page, 'pathologist');
	// Pretend the last key press was long ago; the watch runs every 10 s.
	await page.evaluate(() => localStorage.setItem('nidaan:last-activity', String(Date.now() - 3_600_000)));
	await expect(page.getByText('signed out after a period without activity')).toBeVisible({ timeout: 15_000 });
	await expect(page.getByRole('heading', { name: 'Sign in to Nidaan' })).toBeVisible();
});
