import type { JSONDict } from '$lib/sync/model';

/** A conflict field as the REST API or a pull gives it (snake_case) or GraphQL (camelCase). */
export const pick = (d: JSONDict, snake: string): unknown =>
	d[snake] ?? d[snake.replace(/_(\w)/g, (_, c: string) => c.toUpperCase())];

export const show = (v: unknown): string =>
	v === null || v === undefined ? '—' : typeof v === 'object' ? JSON.stringify(v) : String(v);
