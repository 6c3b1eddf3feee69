/** Set-up for the messaging, files and ABDM browser tests: a patient with a mobile, and an
 * order taken through to a verified report by the REST API (as the lab's staff would). */
import type { APIRequestContext } from '@playwright/test';
import { call, receivedOrder } from './api';

/** A mobile no other test uses (the simulator paces messages per recipient). */
export function uniqueMobile(): string {
	return `9${String(Math.floor(Math.random() * 1e9)).padStart(9, '0')}`;
}

export async function patientWithMobile(request: APIRequestContext, name: string, mobile = uniqueMobile()): Promise<any> {
	return (await call(request, 'front_desk', 'POST', '/api/v1/patients', { full_name: name, sex: 'female', age_years: 45, mobile })).patient;
}

/** An order for `patient` with GLUF entered and verified: the report follows (a job). */
export async function reportedOrder(request: APIRequestContext, patient: any): Promise<{ order: any; report: any }> {
	const cl = (await call(request, 'admin', 'GET', '/api/v1/branches')).items.find((b: any) => b.code === 'CL').id;
	const order = await call(request, 'front_desk', 'POST', '/api/v1/orders', { patient_id: patient.id, branch_id: cl, items: ['GLUF'] });
	for (const sample of order.samples) {
		await call(request, 'front_desk', 'POST', `/api/v1/samples/${sample.accession}/collect`, {});
		await call(request, 'technician', 'POST', `/api/v1/samples/${sample.accession}/receive`, {});
	}
	const test = order.tests.find((t: any) => t.code === 'GLUF');
	const result = await call(request, 'technician', 'POST', '/api/v1/results', { order_test_id: test.id, value: '95' });
	await call(request, 'pathologist', 'POST', `/api/v1/results/${result.id}/verify`);
	let report: any;
	for (let i = 0; i < 120 && !report; i++) {
		report = (await call(request, 'admin', 'GET', `/api/v1/orders/${order.id}/reports`)).items[0];
		if (!report) await new Promise((r) => setTimeout(r, 500));
	}
	if (!report) throw new Error(`no report for ${order.order_number}`);
	return { order, report };
}

export { receivedOrder };
