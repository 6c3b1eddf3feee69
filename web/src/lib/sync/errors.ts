/** How a sync attempt can fail; the scheduler decides what to do from the class alone
 * (the same classes as `nidaan/sync/client/errors.py`). */
export class SyncError extends Error {
	constructor(message: string) {
		super(message);
		this.name = new.target.name;
	}
}
/** Try again later with backoff. */
export class RetryableError extends SyncError {}
/** The server could not be reached at all (the state becomes OFFLINE). */
export class SyncNetworkError extends RetryableError {}
/** The server answered with a transient failure (5xx, 429, an internal GraphQL error). */
export class ServerError extends RetryableError {}
/** The session is gone: a person must sign in again (the outbox waits). */
export class AuthExpired extends SyncError {}
/** The server refused the request itself; retrying will not help. */
export class PermanentError extends SyncError {}
/** The server does not accept this client's protocol or schema version any more. */
export class UpgradeRequired extends SyncError {}
