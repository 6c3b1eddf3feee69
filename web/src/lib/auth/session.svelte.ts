/**
 * Who is signed in, in this tab. The access token is held in memory only (api/http.ts); the
 * refresh token is an httpOnly cookie the script never sees. A reload asks the server for a
 * new access token with the cookie (and the CSRF token beside it). Refreshes are serialised
 * across tabs with a Web Lock because each refresh token works once.
 *
 * Offline, a person who signed in here before can unlock with the same password (checked
 * against a local verifier) and work on the local copy; syncing waits for a real login.
 * After `idleMinutes` without a key press or touch in any tab the session ends (revoked on
 * the server when it can be reached).
 */
import { ApiError, api, csrfToken, NetworkError, onUnauthorized, setAccessToken } from '../api/http';
import { AccountsDb, type Account } from '../db/database';
import { checkVerifier, deriveVerifier } from './verifier';

export interface User {
	id: string;
	organisation_id: string;
	email: string;
	full_name: string;
	roles: string[];
	branch_ids: string[] | null;
}

interface SessionAnswer {
	access_token: string;
	expires_in: number;
	idle_minutes: number;
	user: User;
}

export type SessionMode = 'online' | 'offline';
type PeerMessage =
	| { type: 'logout'; reason?: 'logout' | 'idle' }
	| { type: 'who' }
	| { type: 'session'; user: User; mode: SessionMode; idleMinutes: number };
const ACTIVITY_KEY = 'nidaan:last-activity';
const REFRESH_LOCK = 'nidaan-session-refresh';

class Session {
	user = $state<User | null>(null);
	mode = $state<SessionMode>('online');
	idleMinutes = $state(15);
	/** Why the last session ended (shown on the login screen). */
	ended = $state<'idle' | 'logout' | 'expired' | null>(null);
	ready = $state(false);

	#accounts = new AccountsDb();
	/** The last refresh could not reach the server (offline, or the lab's line is down). */
	#unreachable = false;
	#refreshTimer: ReturnType<typeof setTimeout> | null = null;
	#idleTimer: ReturnType<typeof setInterval> | null = null;
	#channel: BroadcastChannel | null =
		typeof BroadcastChannel !== 'undefined' ? new BroadcastChannel('nidaan-session') : null;

	constructor() {
		onUnauthorized(() => this.refresh());
		if (this.#channel) {
			this.#channel.onmessage = (event: MessageEvent<PeerMessage>) => {
				const message = event.data;
				if (message.type === 'logout') this.#clear(message.reason ?? 'logout');
				else if (message.type === 'who' && this.user) {
					// A new tab of this browser: hand it the session (memory to memory, same origin).
					this.#channel!.postMessage({
						type: 'session',
						user: $state.snapshot(this.user),
						mode: this.mode,
						idleMinutes: this.idleMinutes
					});
				}
			};
		}
	}

	hasRole(...roles: string[]): boolean {
		return Boolean(this.user?.roles.some((r) => roles.includes(r)));
	}

	/** At start-up: resume the session from the cookie, or (offline) from another open tab. */
	async restore(): Promise<void> {
		try {
			// No CSRF cookie: this browser holds no session, so there is nothing to resume.
			if (csrfToken() && (await this.refresh())) return;
			if (navigator.onLine && !this.#unreachable) return;
			const peer = await this.#askPeers();
			if (peer) {
				this.user = peer.user;
				this.mode = 'offline';
				this.idleMinutes = peer.idleMinutes;
				this.#startIdleWatch();
			}
		} finally {
			this.ready = true;
		}
	}

	#askPeers(): Promise<Extract<PeerMessage, { type: 'session' }> | null> {
		const channel = this.#channel;
		if (!channel) return Promise.resolve(null);
		return new Promise((resolve) => {
			const listen = (event: MessageEvent<PeerMessage>) => {
				if (event.data.type === 'session') {
					channel.removeEventListener('message', listen);
					resolve(event.data);
				}
			};
			channel.addEventListener('message', listen);
			channel.postMessage({ type: 'who' });
			setTimeout(() => {
				channel.removeEventListener('message', listen);
				resolve(null);
			}, 400);
		});
	}

	async login(email: string, password: string): Promise<void> {
		let answer: SessionAnswer;
		try {
			answer = await api<SessionAnswer>('/api/v1/auth/session', {
				method: 'POST',
				body: { email, password },
				auth: false
			});
		} catch (error) {
			if (error instanceof NetworkError) return this.#offlineLogin(email, password, error);
			throw error;
		}
		this.#accept(answer, 'online');
		await this.#remember(answer.user, password);
	}

	/** A new access token from the session cookie; false when there is no usable session. */
	async refresh(): Promise<boolean> {
		const run = async (): Promise<boolean> => {
			try {
				const answer = await api<SessionAnswer>('/api/v1/auth/session/refresh', {
					method: 'POST',
					headers: { 'X-CSRF-Token': csrfToken() },
					auth: false
				});
				this.#accept(answer, 'online');
				return true;
			} catch (error) {
				this.#unreachable = error instanceof NetworkError;
				if (error instanceof ApiError) {
					setAccessToken(null);
					if (this.user && this.mode === 'online') this.mode = 'offline';
				}
				return false;
			}
		};
		return navigator.locks ? navigator.locks.request(REFRESH_LOCK, run) : run();
	}

	async logout(reason: 'logout' | 'idle' = 'logout'): Promise<void> {
		try {
			await api('/api/v1/auth/session/logout', {
				method: 'POST',
				headers: { 'X-CSRF-Token': csrfToken() },
				auth: false,
				timeoutMs: 5000
			});
		} catch {
			/* offline: the cookie expires on the server by itself; this tab forgets it now */
		}
		this.#channel?.postMessage({ type: 'logout', reason });
		this.#clear(reason);
	}

	/** The people who signed in on this browser before (for the offline login hint). */
	knownAccounts(): Promise<Account[]> {
		return this.#accounts.accounts.toArray();
	}

	/** Note a key press or touch (shared by every tab through localStorage). */
	touch = (): void => {
		const now = Date.now();
		if (now - this.#lastActivity() > 5_000) localStorage.setItem(ACTIVITY_KEY, String(now));
	};

	#lastActivity(): number {
		return Number(localStorage.getItem(ACTIVITY_KEY) ?? 0);
	}

	#accept(answer: SessionAnswer, mode: SessionMode): void {
		setAccessToken(answer.access_token);
		this.user = answer.user;
		this.mode = mode;
		this.idleMinutes = answer.idle_minutes;
		this.ended = null;
		this.#startIdleWatch();
		if (this.#refreshTimer) clearTimeout(this.#refreshTimer);
		// Renew a minute before the access token runs out, while the tab is open.
		this.#refreshTimer = setTimeout(() => void this.refresh(), Math.max(30, answer.expires_in - 60) * 1000);
	}

	async #remember(user: User, password: string): Promise<void> {
		const proof = await deriveVerifier(password);
		await this.#accounts.accounts.put({
			userId: user.id,
			email: user.email.toLowerCase(),
			fullName: user.full_name,
			organisationId: user.organisation_id,
			roles: user.roles,
			branchIds: user.branch_ids,
			...proof,
			lastLoginAt: new Date().toISOString()
		});
	}

	async #offlineLogin(email: string, password: string, cause: Error): Promise<void> {
		const account = await this.#accounts.accounts.get({ email: email.trim().toLowerCase() });
		if (!account) throw new OfflineLoginImpossible(cause.message);
		if (!(await checkVerifier(password, account))) throw new ApiError(401, 'invalid_credentials', '');
		setAccessToken(null);
		this.user = {
			id: account.userId,
			organisation_id: account.organisationId,
			email: account.email,
			full_name: account.fullName,
			roles: account.roles,
			branch_ids: account.branchIds
		};
		this.mode = 'offline';
		this.ended = null;
		this.#startIdleWatch();
	}

	#startIdleWatch(): void {
		localStorage.setItem(ACTIVITY_KEY, String(Date.now()));
		if (this.#idleTimer) clearInterval(this.#idleTimer);
		this.#idleTimer = setInterval(() => {
			if (this.user && Date.now() - this.#lastActivity() > this.idleMinutes * 60_000) {
				void this.logout('idle');
			}
		}, 10_000);
	}

	#clear(reason: 'logout' | 'idle' | 'expired'): void {
		setAccessToken(null);
		if (this.#refreshTimer) clearTimeout(this.#refreshTimer);
		if (this.#idleTimer) clearInterval(this.#idleTimer);
		this.user = null;
		this.ended = reason;
	}
}

/** Offline, and this person never signed in on this browser: nothing to check against. */
export class OfflineLoginImpossible extends Error {}

export const session = new Session();
