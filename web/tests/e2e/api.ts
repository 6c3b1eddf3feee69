/** Talking to the test server's REST API directly, to set up what a test needs. */
import type { APIRequestContext } from '@playwright/test';
import { PASSWORD } from './fixtures';

export async function token(request: APIRequestContext, role: string): Promise<string> {
	const email = role.includes('@') ? role : `${role}@demo.example.com`;
	const answer = await request.post('/api/v1/auth/token', { form: { username: email, password: PASSWORD } });
	if (!answer.ok()) throw new Error(`login ${email}: ${answer.status()}`);
	return (await answer.json()).access_token;
}

export async function call<T = any>(
	request: APIRequestContext,
	role: string,
	method: string,
	path: string,
	data?: unknown
): Promise<T> {
	const answer = await request.fetch(path, {
		method,
		data,
		headers: { Authorization: `Bearer ${await token(request, role)}` }
	});
	if (!answer.ok()) throw new Error(`${method} ${path}: ${answer.status()} ${await answer.text()}`);
	return answer.status() === 204 ? (undefined as T) : answer.json();
}

export async function branchId(request: APIRequestContext, code: string): Promise<string> {
	const branches = await call(request, 'admin', 'GET', '/api/v1/branches');
	return branches.items.find((b: { code: string }) => b.code === code).id;
}

/** A patient with an order at `branch`, its samples collected and received at the lab. */
export async function receivedOrder(
	request: APIRequestContext,
	name: string,
	items: string[],
	options: { sex?: string; age?: number; receive?: boolean } = {}
): Promise<{ patient: any; order: any }> {
	const cl = await branchId(request, 'CL');
	const patient = (
		await call(request, 'front_desk', 'POST', '/api/v1/patients', {
			full_name: name,
			sex: options.sex ?? 'female',
			age_years: options.age ?? 40
		})
	).patient;
	const order = await call(request, 'front_desk', 'POST', '/api/v1/orders', {
		patient_id: patient.id,
		branch_id: cl,
		items
	});
	if (options.receive !== false) {
		for (const sample of order.samples) {
			await call(request, 'front_desk', 'POST', `/api/v1/samples/${sample.accession}/collect`, {});
			await call(request, 'technician', 'POST', `/api/v1/samples/${sample.accession}/receive`, {});
		}
	}
	return { patient, order };
}
