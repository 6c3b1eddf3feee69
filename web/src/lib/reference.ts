/**
 * Reference data a centre needs offline (the catalogue with prices, the branches), fetched
 * from the REST API when online and kept in the person's IndexedDB for when it is not.
 */
import { api, type Page } from './api/http';
import type { UserDb } from './db/database';

export interface CatalogTest {
	id: string;
	code: string;
	name: string;
	loinc: string | null;
	department: string;
	specimen_type: string;
	container: string;
	unit: string | null;
	price: string;
	is_active: boolean;
	tat_minutes: number | null;
	result_type?: string;
	ranges?: import('./results/ranges').Range[];
}
export interface Panel {
	id: string;
	code: string;
	name: string;
	price: string;
	is_active: boolean;
	tests: { id?: string; test_id?: string; code: string; name?: string }[];
}
export interface Branch {
	id: string;
	code: string;
	name: string;
	kind: string;
	address: string | null;
	state: string | null;
	is_active: boolean;
}

async function allPages<T>(path: string): Promise<T[]> {
	const items: T[] = [];
	for (let page = 1; ; page++) {
		const answer = await api<Page<T>>(path, { query: { page, limit: 100 } });
		items.push(...answer.items);
		if (page >= answer.pagination.max_page) return items;
	}
}

async function cached<T>(db: UserDb, key: string, fetcher: () => Promise<T>): Promise<T> {
	try {
		const data = await fetcher();
		await db.reference.put({ key, data, fetchedAt: new Date().toISOString() });
		return data;
	} catch (error) {
		const entry = await db.reference.get(key);
		if (entry) return entry.data as T;
		throw error;
	}
}

export const catalogTests = (db: UserDb) =>
	cached(db, 'tests', () => allPages<CatalogTest>('/api/v1/catalog/tests'));
export const catalogPanels = (db: UserDb) =>
	cached(db, 'panels', () => allPages<Panel>('/api/v1/catalog/panels'));
export const branches = (db: UserDb) =>
	cached(db, 'branches', () => allPages<Branch>('/api/v1/branches'));

/** What was ordered (tests and panels by code), for pricing and provisional labels: kept
 * locally when the order is placed here, else read from the order's tests on the server. */
export async function orderItems(db: UserDb, orderId: string): Promise<string[]> {
	const kept = await db.reference.get(`order-items:${orderId}`);
	if (kept) return kept.data as string[];
	const order = await api<{ tests: { code: string; panel_id: string | null; status: string }[] }>(
		`/api/v1/orders/${orderId}`
	);
	const panels = await catalogPanels(db);
	const items = new Set<string>();
	for (const test of order.tests.filter((x) => x.status !== 'cancelled')) {
		items.add(test.panel_id ? (panels.find((p) => p.id === test.panel_id)?.code ?? test.code) : test.code);
	}
	const list = [...items];
	await db.reference.put({ key: `order-items:${orderId}`, data: list, fetchedAt: new Date().toISOString() });
	return list;
}

export async function keepOrderItems(db: UserDb, orderId: string, items: string[]): Promise<void> {
	await db.reference.put({ key: `order-items:${orderId}`, data: items, fetchedAt: new Date().toISOString() });
}
