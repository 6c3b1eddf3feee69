/** ABDM at the desk and for the lab: link Sunita's existing ABHA by OTP (her report becomes a
 * linked care context), create an ABHA by Aadhaar OTP step by step, and the consents screen
 * showing the consent she grants in her PHR app and the encrypted transfer made under it.
 * The ABDM simulator plays the gateway, consent manager and the patient's app; OTP 123456. */
import { call } from './api';
import { expect, expectAccessible, screenshot, signIn, test } from './fixtures';
import { patientWithMobile } from './reported';

const HIP = 'IN2710000001';
function simulator(): string {
	const url = process.env.NIDAAN_E2E_ABDM_SIMULATOR;
	if (!url) throw new Error('the test server did not say where its ABDM simulator is');
	return url;
}

test('ABHA link by OTP, care context linked, consent granted and data transferred', async ({ page, request }) => {
	test.setTimeout(180_000);
	const sunita = (await call(request, 'front_desk', 'GET', '/api/v1/patients?q=Sunita%20Devi%20Sharma')).items[0];

	await test.step('link her existing ABHA at the desk', async () => {
		await signIn(page, 'front_desk');
		await page.goto(`/desk/patients/${sunita.id}`);
		const panel = page.getByTestId('abha-panel');
		await expect(panel.getByTestId('abha-none')).toBeVisible();
		await panel.getByRole('button', { name: 'Link an existing ABHA' }).click();
		await panel.getByLabel('ABHA number').fill('91-1111-2222-3333');
		await panel.getByLabel('ABHA number').press('Enter');
		await expect(panel.getByText("ABDM sent an OTP to the patient's mobile. Type it here.")).toBeVisible();
		// A wrong OTP is refused by ABDM and said so; the right one links.
		await panel.getByLabel('OTP').fill('000000');
		await panel.getByLabel('OTP').press('Enter');
		await expect(panel.getByTestId('abha-error')).toBeVisible();
		await expectAccessible(page);
		await panel.getByLabel('OTP').fill('123456');
		await panel.getByLabel('OTP').press('Enter');
		await expect(panel.getByTestId('abha-message')).toContainText('ABHA linked to the patient');
		await expect(panel.getByTestId('abha-linked')).toContainText('sunita.sharma@sbx');
		// Her verified report is offered to the ABHA and linked when the gateway calls back.
		const context = panel.getByTestId('care-context-row').first();
		await expect(context.getByTestId('care-context-status')).toHaveText('Linked', { timeout: 60_000 });
		await expectAccessible(page);
		await screenshot(page, '15-abha-linked-en');
	});

	let consentId = '';
	await test.step('she grants a consent in her PHR app; the lab sees it', async () => {
		const granted = await request.post(`${simulator()}/sim/consents`, { data: { abhaAddress: 'sunita.sharma@sbx', hipId: HIP } });
		expect(granted.status()).toBe(201);
		consentId = (await granted.json()).consentId;
		await page.getByRole('button', { name: 'Sign out' }).click();
		await signIn(page, 'admin');
		await page.getByRole('link', { name: 'ABDM' }).click();
		const row = page.getByTestId('consent-row').filter({ hasText: consentId });
		await expect(async () => {
			await page.getByRole('button', { name: 'Refresh' }).click();
			await expect(row.getByTestId('consent-status')).toHaveText('Granted', { timeout: 2_000 });
		}).toPass({ timeout: 60_000 });
		await expect(row).toContainText('sunita.sharma@sbx');
		await expect(row).toContainText('DiagnosticReport');
	});

	await test.step('a health-information request: the bundle is encrypted, pushed and decrypted', async () => {
		const asked = await request.post(`${simulator()}/sim/health-information/requests`, { data: { consentId } });
		expect(asked.status()).toBe(201);
		const transaction = (await asked.json()).transactionId;
		const row = page.getByTestId('transfer-row').filter({ hasText: transaction });
		await expect(async () => {
			await page.getByRole('button', { name: 'Refresh' }).click();
			await expect(row.getByTestId('transfer-status')).toHaveText('Transferred', { timeout: 2_000 });
		}).toPass({ timeout: 90_000 });
		const received = await (await request.get(`${simulator()}/sim/health-information/requests/${transaction}`)).json();
		expect(received.decryptedBundles?.length ?? 0).toBeGreaterThan(0);
		await page.getByTestId('requests-waiting').check();
		await expect(page.getByTestId('requests-waiting')).toBeChecked();
		await expectAccessible(page);
		await screenshot(page, '16-abdm-consents-en');
	});
});

test('ABHA creation by Aadhaar OTP: mobile OTP, then the address', async ({ page, request }) => {
	test.setTimeout(120_000);
	const patient = await patientWithMobile(request, 'Lakshmi Iyer');
	await signIn(page, 'front_desk');
	await page.goto(`/desk/patients/${patient.id}`);
	const panel = page.getByTestId('abha-panel');
	await panel.getByRole('button', { name: 'Create an ABHA (Aadhaar OTP)' }).click();
	await panel.getByLabel('Aadhaar number').fill('2341 2341 2346');
	await expect(panel.getByTestId('aadhaar-send-otp')).toBeDisabled(); // not without consent
	await panel.getByLabel("The patient agrees to ABDM's consent for creating an ABHA with Aadhaar.").check();
	await panel.getByTestId('aadhaar-send-otp').click();
	await expect(panel.getByTestId('abha-otp-form')).toContainText('XXXX-XXXX-2346');
	await expectAccessible(page);
	await panel.getByLabel('OTP').fill('123456');
	await panel.getByLabel('Mobile to link to the ABHA').fill('98450 11111'); // not Aadhaar's mobile
	await panel.getByRole('button', { name: 'Verify' }).click();
	await expect(panel.getByText("The mobile differs from Aadhaar's: ABDM sent an OTP to it.")).toBeVisible();
	await panel.getByLabel('OTP').fill('123456');
	await panel.getByLabel('OTP').press('Enter');
	const choice = panel.getByTestId('abha-address-form');
	await expect(choice.getByRole('radio').first()).toBeChecked();
	const address = await choice.getByRole('radio').first().getAttribute('value');
	await expectAccessible(page);
	await screenshot(page, '17-abha-create-address-en');
	await choice.getByRole('button', { name: 'Use this address' }).click();
	await expect(panel.getByTestId('abha-message')).toContainText('ABHA linked to the patient');
	await expect(panel.getByTestId('abha-linked')).toContainText(address!);
	const stored = await call(request, 'front_desk', 'GET', `/api/v1/patients/${patient.id}`);
	expect(stored.abha_address).toContain(address!.split('@')[0]);
	expect(stored.abha_number_masked).toMatch(/\d{4}$/);
	expect(JSON.stringify(stored)).not.toContain('234123412346'); // Aadhaar is never kept
});
