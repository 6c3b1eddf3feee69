/** GraphQL over HTTP with the web app's in-memory access token, and the classification of
 * every failure (as `nidaan/sync/client/transport.py`). */
import { api, ApiError, NetworkError } from '../api/http';
import { AuthExpired, PermanentError, ServerError, SyncNetworkError } from './errors';
import type { JSONDict } from './model';
import { parseSync, RESOLVE_MUTATION, STATUS_QUERY, SYNC_MUTATION, type SyncResponse } from './protocol';

const RETRYABLE_CODES = new Set([
	'INTERNAL_SERVER_ERROR',
	'INTERNAL',
	'SERVICE_UNAVAILABLE',
	'TIMEOUT',
	'UNAVAILABLE'
]);
const AUTH_CODES = new Set(['UNAUTHENTICATED', 'NOT_AUTHENTICATED', 'AUTHENTICATION_REQUIRED']);

interface GraphQLError {
	message?: string;
	path?: unknown;
	extensions?: { code?: string; status?: number };
}

export function classifyGraphQLErrors(errors: GraphQLError[], httpStatus: number): Error {
	const message = errors.map((e) => e.message ?? 'GraphQL error').join('; ');
	for (const error of errors) {
		const code = String(error.extensions?.code ?? '').toUpperCase();
		const status = Number(error.extensions?.status ?? 0);
		if (AUTH_CODES.has(code) || status === 401) return new AuthExpired(message);
		if (RETRYABLE_CODES.has(code) || status === 429 || status >= 500) return new ServerError(message);
		// An exception the server did not expect inside a resolver: transient until proven otherwise.
		if (!code && error.path) return new ServerError(message);
	}
	return httpStatus >= 500 ? new ServerError(message) : new PermanentError(message);
}

export class Transport {
	async graphql(query: string, variables: JSONDict, timeoutMs = 60_000): Promise<JSONDict> {
		let body: { data?: JSONDict; errors?: GraphQLError[] };
		try {
			body = await api('/graphql', { method: 'POST', body: { query, variables }, timeoutMs });
		} catch (error) {
			if (error instanceof NetworkError) throw new SyncNetworkError(error.message);
			if (error instanceof ApiError) {
				const errors = error.body.errors as GraphQLError[] | undefined;
				if (Array.isArray(errors) && errors.length && errors[0]?.message !== undefined) {
					throw classifyGraphQLErrors(errors, error.status);
				}
				if (error.status === 401) throw new AuthExpired(error.detail);
				if (error.status === 429 || error.status >= 500) throw new ServerError(error.detail);
				throw new PermanentError(error.detail);
			}
			throw error;
		}
		if (body.errors?.length) throw classifyGraphQLErrors(body.errors, 200);
		if (!body.data) throw new ServerError('a GraphQL answer without data');
		return body.data;
	}

	async sync(variables: JSONDict): Promise<SyncResponse> {
		const data = await this.graphql(SYNC_MUTATION, variables);
		return parseSync(data.syncPendingOperations as JSONDict);
	}

	async status(clientId: string | null): Promise<JSONDict> {
		return (await this.graphql(STATUS_QUERY, { clientId })).getSyncStatus as JSONDict;
	}

	async resolveConflict(
		conflictId: string,
		resolution: string,
		reason: string,
		value: unknown = null,
		expectedVersion: number | null = null
	): Promise<JSONDict> {
		const data = await this.graphql(RESOLVE_MUTATION, {
			conflictId,
			resolution,
			reason,
			value,
			expectedVersion
		});
		return data.resolveConflict as JSONDict;
	}

	/** GET /healthz with a short timeout; the round trip in ms. */
	async heartbeat(): Promise<number> {
		const started = performance.now();
		try {
			await api('/healthz', { auth: false, timeoutMs: 5000 });
		} catch (error) {
			if (error instanceof NetworkError) throw new SyncNetworkError(error.message);
			throw new ServerError(String(error));
		}
		return performance.now() - started;
	}
}
