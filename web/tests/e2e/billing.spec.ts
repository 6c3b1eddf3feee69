/** Billing screens for the billing role: invoices with dues, a counter payment in split tender,
 * the counter and gateway UPI QR, a payment link paid in the Razorpay simulator (its signed
 * webhook turns the invoice paid), a refund with its reason, and the reconciliation report
 * naming a gateway payment of the wrong amount. All against `nidaan demo run`. */
import { branchId, call, receivedOrder, token } from './api';
import { expect, expectAccessible, screenshot, signIn, test, unique } from './fixtures';

const utr = () => `4${Date.now().toString().slice(-8)}${Math.floor(Math.random() * 900 + 100)}`;

async function invoiceFor(request: Parameters<typeof call>[0], name: string, items: string[]) {
	const { order } = await receivedOrder(request, name, items, { receive: false });
	return call(request, 'billing', 'POST', '/api/v1/invoices', { order_id: order.id });
}

test('billing desk: dues, split tender, counter UPI QR, payment link paid at the gateway, refund', async ({ page, request }) => {
	const name = unique('Billing Patient');
	const invoice = await invoiceFor(request, name, ['GLUF', 'CBC']);
	const total = Number(invoice.grand_total);
	expect(total).toBeGreaterThan(200);

	await signIn(page, 'billing');
	await expect(page).toHaveURL(/\/billing$/); // the billing role's first screen
	const row = page.getByTestId('invoice-row').filter({ hasText: invoice.number });
	await expect(row).toBeVisible();
	await expect(row.getByTestId('invoice-due')).toHaveText(`₹${total.toLocaleString('en-IN', { minimumFractionDigits: 2 })}`);
	await expectAccessible(page);
	await screenshot(page, 'billing-1-invoices-en');

	await row.getByRole('link', { name: invoice.number }).click();
	await expect(page.getByRole('heading', { name: invoice.number })).toBeVisible();
	await expect(page.getByTestId('payment-status')).toHaveText('Unpaid');

	// The counter UPI QR (no gateway): an image, and the UPI tender waits for the UTR.
	await page.getByTestId('counter-qr').click();
	await expect(page.getByTestId('qr-image')).toBeVisible();
	expect(await page.getByTestId('qr-image').evaluate((img: HTMLImageElement) => img.naturalWidth)).toBeGreaterThan(100);
	await expect(page.getByTestId('tender-method').first()).toHaveValue('upi');

	// Split tender: ₹100 cash + ₹50 UPI (a UPI tender without its UTR is refused on screen).
	const tenders = page.getByTestId('tender');
	await tenders.nth(0).getByTestId('tender-method').selectOption('cash');
	await tenders.nth(0).getByTestId('tender-amount').fill('100');
	await page.getByTestId('add-tender').click();
	await tenders.nth(1).getByTestId('tender-method').selectOption('upi');
	await tenders.nth(1).getByTestId('tender-amount').fill('50');
	await page.getByTestId('take-payment').click();
	await expect(tenders.nth(1).getByRole('alert')).toContainText('UTR');
	await tenders.nth(1).getByTestId('tender-utr').fill(utr());
	await page.getByTestId('take-payment').click();
	await expect(page.getByTestId('billing-message')).toHaveText('Payment of ₹150.00 recorded.');
	await expect(page.getByTestId('payment-status')).toHaveText('Part paid');
	await expect(page.getByTestId('amount-paid')).toHaveText('₹150.00');
	await expect(page.getByTestId('payment-row')).toHaveCount(2);
	await expect(page.getByTestId('receipt')).toHaveCount(1);

	// The rest by a Razorpay payment link, paid in the simulator; its webhook settles it.
	await page.getByTestId('gateway').selectOption('razorpay');
	await page.getByTestId('make-link').click();
	const link = page.getByTestId('payment-link').getByRole('link');
	await expect(link).toBeVisible();
	const due = (total - 150).toLocaleString('en-IN', { minimumFractionDigits: 2 });
	await expect(page.getByTestId('payment-link')).toContainText(`₹${due}`);
	await expectAccessible(page);
	await screenshot(page, 'billing-2-invoice-en');
	const payer = await page.context().newPage();
	await payer.goto((await link.getAttribute('href'))!);
	await expect(payer.getByText(`₹${due}`).first()).toBeVisible();
	await payer.getByRole('button', { name: /^Pay / }).click();
	await payer.close();
	await expect
		.poll(async () => (await call(request, 'billing', 'GET', `/api/v1/invoices/${invoice.id}`)).payment_status, { timeout: 20_000 })
		.toBe('paid');
	await page.reload();
	await expect(page.getByTestId('payment-status')).toHaveText('Paid');
	await expect(page.getByTestId('balance-due')).toHaveText('₹0.00');
	await expect(page.getByTestId('payment-row')).toHaveCount(3);
	await expect(page.getByTestId('counter-form')).toHaveCount(0); // nothing left to take

	// Refund part of the cash with a reason.
	const cash = page.getByTestId('payment-row').filter({ hasText: 'Cash' });
	await cash.getByTestId('refund-button').click();
	await page.getByTestId('refund-amount').fill('40');
	await page.getByTestId('refund-reason').fill('Glucose repeated free of charge');
	await page.getByTestId('refund-form').getByRole('button', { name: 'Refund' }).click();
	await expect(page.getByTestId('billing-message')).toHaveText('Refund recorded.');
	await expect(page.getByTestId('refund-row')).toContainText('Glucose repeated free of charge');
	await expect(page.getByTestId('refund-row')).toContainText('Processed');
	await expect(page.getByTestId('amount-refunded')).toHaveText('₹40.00');
	const refunds = (await call(request, 'billing', 'GET', `/api/v1/invoices/${invoice.id}/payments`)).items;
	expect(refunds.find((p: any) => p.method === 'cash').amount_refunded).toBe('40.00');
});

test('reconciliation: a gateway payment of the wrong amount is held and listed', async ({ page, request }) => {
	const invoice = await invoiceFor(request, unique('Mismatch Patient'), ['GLUF']);
	// A single-use Razorpay UPI QR for the invoice, paid with ₹1 less than due.
	const answer = await request.post(`/api/v1/invoices/${invoice.id}/upi-qr`, {
		headers: { Authorization: `Bearer ${await token(request, 'billing')}` }
	});
	expect(answer.status()).toBe(200);
	expect(answer.headers()['content-type']).toBe('image/png');
	const qr = answer.headers()['x-gateway-ref'];
	const paise = Math.round(Number(invoice.balance_due) * 100) - 100;
	const paid = await request.post(`/simulators/razorpay/_sim/qr_codes/${qr}/pay`, { data: { amount: paise } });
	expect(paid.ok()).toBeTruthy();

	await signIn(page, 'billing');
	await page.goto('/billing/reconciliation');
	const row = page.getByTestId('mismatch-row').filter({ has: page.getByRole('link', { name: 'Open invoice' }) }).filter({ hasText: 'Held payment' });
	await expect
		.poll(async () => {
			await page.getByTestId('reconcile-now').click();
			await expect(page.getByTestId('reconcile-result')).toBeVisible();
			return (await call(request, 'billing', 'GET', '/api/v1/payments/reconciliation')).items.filter((i: any) => i.invoice_id === invoice.id).map((i: any) => i.kind);
		}, { timeout: 20_000 })
		.toContain('held_payment');
	await page.reload();
	await expect(row.first()).toBeVisible();
	await expectAccessible(page);
	await screenshot(page, 'billing-3-reconciliation-en');
	await page.locator(`a[href="/billing/invoices/${invoice.id}"]`).first().click();
	await expect(page.getByTestId('payment-status')).toHaveText('Unpaid'); // held, not applied
	await expect(page.getByTestId('payment-row').filter({ hasText: 'held' })).toHaveCount(1);
});

test('the billing screens in Hindi; other roles do not see them', async ({ page, request, browser, baseURL }) => {
	await invoiceFor(request, unique('Hindi Billing'), ['GLUF']);
	const technician = await browser.newContext({ baseURL });
	const lab = await technician.newPage();
	await signIn(lab, 'technician');
	await expect(lab.getByRole('navigation').getByRole('link', { name: 'Result entry' })).toBeVisible();
	await expect(lab.getByRole('navigation').getByRole('link', { name: 'Billing' })).toHaveCount(0);
	await technician.close();
	await signIn(page, 'billing');
	await page.getByLabel('Language').first().selectOption('hi');
	await expect(page.getByRole('heading', { name: 'बिलिंग' })).toBeVisible();
	await expect(page.getByTestId('invoice-row').first()).toBeVisible();
	await expect(page.getByText('केवल बकाया वाले बिल')).toBeVisible();
	await expectAccessible(page);
	await screenshot(page, 'billing-4-invoices-hi');
});

test('collection centre offline: the desk makes the counter UPI QR itself', async ({ page, request }) => {
	const cc1 = await branchId(request, 'CC1');
	const name = unique('Offline UPI');
	const patient = (await call(request, 'front_desk', 'POST', '/api/v1/patients', { full_name: name, sex: 'male', age_years: 61 })).patient;
	const order = await call(request, 'front_desk', 'POST', '/api/v1/orders', { patient_id: patient.id, branch_id: cc1, items: ['GLUF'] });

	await signIn(page, 'front_desk');
	await page.getByTestId('branch-picker').selectOption({ label: 'CC1 · Collection Centre, Kothrud' });
	await expect(page.getByTestId('last-sync')).toContainText('Last sync', { timeout: 20_000 });
	// From the centre's copy, as the cashier would (no reload: the sync service keeps running).
	await page.getByTestId('patient-search').fill(name);
	await page.getByRole('link', { name }).first().click();
	await page.getByRole('link', { name: order.order_number }).click();
	await expect(page.getByTestId('order-number')).toHaveText(order.order_number, { timeout: 15_000 });
	// Online once: the branch's payee is kept on this computer.
	await expect.poll(() => page.evaluate((id) => localStorage.getItem(`nidaan:upi-payee:${id}`), cc1)).toContain('demodiagnostics.cc1@okaxis');

	await page.context().setOffline(true);
	await page.getByLabel('Method').selectOption('upi');
	const qr = page.getByTestId('desk-upi-qr');
	await expect(qr).toBeVisible();
	await expect(qr).toContainText('demodiagnostics.cc1@okaxis');
	await expect(qr).toContainText(order.order_number);
	const box = await qr.locator('canvas').boundingBox();
	expect(box!.width).toBeGreaterThanOrEqual(150);
	const dark = await qr.locator('canvas').evaluate((c: HTMLCanvasElement) => {
		const data = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
		let n = 0;
		for (let i = 0; i < data.length; i += 4) if (data[i] < 128 && data[i + 3] > 0) n++;
		return n / (c.width * c.height);
	});
	expect(dark).toBeGreaterThan(0.3); // modules drawn, not a blank canvas
	await expect(page.getByRole('img', { name: /UPI QR code for ₹/ })).toBeVisible();
	await expectAccessible(page);
	await qr.scrollIntoViewIfNeeded();
	await screenshot(page, 'billing-5-desk-offline-upi-qr-en');
	await page.context().setOffline(false);
});
