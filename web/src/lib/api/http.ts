/**
 * The one door to the server's REST API. The access token lives only in this module's memory;
 * a 401 triggers one cookie refresh (serialised across tabs by a Web Lock, because the refresh
 * token is single-use) and the request is retried once.
 */

export class ApiError extends Error {
	constructor(
		readonly status: number,
		readonly code: string,
		readonly detail: string,
		readonly body: Record<string, unknown> = {}
	) {
		super(detail || code);
	}
	get fieldErrors(): { field: string; message: string }[] {
		return (this.body.errors as { field: string; message: string }[]) ?? [];
	}
}

/** The request never reached the server (offline, DNS, refused, timed out). */
export class NetworkError extends Error {}

let accessToken: string | null = null;
let refresher: (() => Promise<boolean>) | null = null;

export function setAccessToken(token: string | null): void {
	accessToken = token;
}
export function hasAccessToken(): boolean {
	return accessToken !== null;
}
/** Called on a 401: renews the access token through the session cookie; false = log in. */
export function onUnauthorized(refresh: () => Promise<boolean>): void {
	refresher = refresh;
}

export function csrfToken(): string {
	const match = document.cookie.match(/(?:^|;\s*)nidaan_csrf=([^;]+)/);
	return match ? decodeURIComponent(match[1]) : '';
}

export interface RequestOptions {
	method?: string;
	body?: unknown;
	query?: Record<string, string | number | boolean | null | undefined>;
	headers?: Record<string, string>;
	idempotencyKey?: string;
	timeoutMs?: number;
	raw?: boolean;
	auth?: boolean;
}

function url(path: string, query?: RequestOptions['query']): string {
	const params = new URLSearchParams();
	for (const [key, value] of Object.entries(query ?? {})) {
		if (value !== null && value !== undefined && value !== '') params.set(key, String(value));
	}
	const qs = params.toString();
	return qs ? `${path}?${qs}` : path;
}

async function send(path: string, options: RequestOptions): Promise<Response> {
	const headers: Record<string, string> = { Accept: 'application/json', ...options.headers };
	if (options.auth !== false && accessToken) headers.Authorization = `Bearer ${accessToken}`;
	if (options.idempotencyKey) headers['Idempotency-Key'] = options.idempotencyKey;
	let body: BodyInit | undefined;
	if (options.body instanceof FormData) {
		body = options.body; // multipart upload: the browser sets the boundary
	} else if (options.body !== undefined) {
		headers['Content-Type'] = 'application/json';
		body = JSON.stringify(options.body);
	}
	try {
		return await fetch(url(path, options.query), {
			method: options.method ?? 'GET',
			headers,
			body,
			credentials: 'same-origin',
			signal: AbortSignal.timeout(options.timeoutMs ?? 20_000)
		});
	} catch (error) {
		throw new NetworkError(error instanceof Error ? error.message : String(error));
	}
}

async function failure(response: Response): Promise<ApiError> {
	let body: Record<string, unknown> = {};
	try {
		body = await response.json();
	} catch {
		/* not a problem document */
	}
	return new ApiError(
		response.status,
		String(body.code ?? `http_${response.status}`),
		String(body.detail ?? response.statusText),
		body
	);
}

/** Call the API; JSON in and out. Throws ApiError (server said no) or NetworkError. */
export async function api<T = unknown>(path: string, options: RequestOptions = {}): Promise<T> {
	let response = await send(path, options);
	if (response.status === 401 && options.auth !== false && refresher && (await refresher())) {
		response = await send(path, options);
	}
	if (!response.ok) throw await failure(response);
	if (options.raw) return response as unknown as T;
	if (response.status === 204) return undefined as T;
	return (await response.json()) as T;
}

/** A binary answer (a PDF) as a blob URL the page can show or print. */
export async function blobUrl(path: string): Promise<string> {
	const response = await api<Response>(path, { raw: true, headers: { Accept: '*/*' } });
	return URL.createObjectURL(await response.blob());
}

export interface Page<T> {
	items: T[];
	pagination: { total_count: number; max_page: number };
}
