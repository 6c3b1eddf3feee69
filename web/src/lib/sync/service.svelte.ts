/**
 * The sync service of one signed-in person in this browser: the local store, the client, and
 * the scheduler that runs it. One tab leads (a Web Lock per user: the first tab gets it, the
 * next takes over when it closes) and talks to the server; every tab writes to the shared
 * IndexedDB outbox and shows the same status, read live from IndexedDB and from the leader's
 * broadcasts.
 *
 * The leader syncs at start, 0.3 s after a local write (any tab), every 30 s, at once when the
 * browser says it is back online, and on "Sync now"; failures back off from 5 s to 5 min.
 * `navigator.onLine === false` means offline; otherwise the outcome of the last sync and a
 * /healthz heartbeat decide (a LAN without uplink says "online" too).
 */
import { liveQuery } from 'dexie';
import { UserDb } from '../db/database';
import { Backoff } from './backoff';
import { resolveDeferred } from './deferred';
import { SyncClient, type SyncReport } from './engine';
import {
	AuthExpired,
	PermanentError,
	SyncNetworkError,
	UpgradeRequired,
	type SyncError
} from './errors';
import { LocalStore } from './store';
import { Transport } from './transport';

export type NetworkState = 'ONLINE' | 'OFFLINE' | 'DEGRADED' | 'AUTH_EXPIRED' | 'UPGRADE_REQUIRED';

// Short: a desk action should reach the lab at once; writes made together still batch.
const DEBOUNCE_MS = 300;
const INTERVAL_MS = 30_000;
const HEARTBEAT_MS = 10_000;
const SLOW_SYNC_MS = 15_000;

interface Broadcast {
	type: 'state' | 'wrote' | 'sync-now';
	network?: NetworkState;
	lastError?: string | null;
	syncing?: boolean;
}

export class SyncService {
	readonly db: UserDb;
	readonly store: LocalStore;
	readonly client: SyncClient;
	readonly transport = new Transport();

	// What every tab shows.
	network = $state<NetworkState>('ONLINE');
	pending = $state(0);
	failed = $state(0);
	conflicts = $state(0);
	lastSyncAt = $state<string | null>(null);
	syncing = $state(false);
	leader = $state(false);
	lastError = $state<string | null>(null);
	lastReport = $state<SyncReport | null>(null);
	persisted = $state<boolean | null>(null);
	clockSuspect = $state(false);

	#channel: BroadcastChannel | null = null;
	#subscriptions: { unsubscribe(): void }[] = [];
	#timer: ReturnType<typeof setTimeout> | null = null;
	#heartbeat: ReturnType<typeof setInterval> | null = null;
	#release: (() => void) | null = null;
	#backoff = new Backoff();
	#stopped = false;
	#dueAt = 0;
	#listeners: (() => void)[] = [];

	constructor(
		readonly userId: string,
		branchId: string | null
	) {
		this.db = new UserDb(userId);
		this.store = new LocalStore(this.db);
		this.client = new SyncClient(this.store, this.transport);
		this.client.onLocalWrite(() => {
			this.#post({ type: 'wrote' });
			this.#localWrite();
		});
		void this.store.setMeta('branch_id', branchId);
	}

	/** Start watching; become the leader when no other tab of this person is. */
	start(): void {
		this.#stopped = false;
		this.network = typeof navigator !== 'undefined' && navigator.onLine === false ? 'OFFLINE' : 'ONLINE';
		const watch = <T>(query: () => Promise<T>, set: (value: T) => void) =>
			this.#subscriptions.push(liveQuery(query).subscribe({ next: set, error: () => {} }));
		watch(() => this.db.outbox.count(), (n) => (this.pending = n));
		watch(() => this.db.failed.count(), (n) => (this.failed = n));
		watch(() => this.store.openConflictCount(), (n) => (this.conflicts = n));
		watch(() => this.store.getMeta<string>('last_sync_at'), (v) => (this.lastSyncAt = v));
		watch(() => this.store.getMeta('clock_suspect'), (v) => (this.clockSuspect = Boolean(v)));
		if (typeof BroadcastChannel !== 'undefined') {
			this.#channel = new BroadcastChannel(`nidaan-sync-${this.userId}`);
			this.#channel.onmessage = (event: MessageEvent<Broadcast>) => this.#received(event.data);
		}
		window.addEventListener('online', this.#online);
		window.addEventListener('offline', this.#offline);
		document.addEventListener('visibilitychange', this.#visible);
		void this.#requestPersistence();
		if (navigator.locks) {
			void navigator.locks.request(`nidaan-sync-leader-${this.userId}`, () => this.#lead());
		} else {
			void this.#lead(); // no Web Locks (very old browser): every tab syncs
		}
	}

	stop(): void {
		this.#stopped = true;
		for (const subscription of this.#subscriptions) subscription.unsubscribe();
		this.#subscriptions = [];
		this.#channel?.close();
		window.removeEventListener('online', this.#online);
		window.removeEventListener('offline', this.#offline);
		document.removeEventListener('visibilitychange', this.#visible);
		if (this.#timer) clearTimeout(this.#timer);
		if (this.#heartbeat) clearInterval(this.#heartbeat);
		this.#release?.();
		this.db.close();
	}

	/** Called after every successful sync in the leader tab (screens refresh from it). */
	onSynced(listener: () => void): () => void {
		this.#listeners.push(listener);
		return () => (this.#listeners = this.#listeners.filter((l) => l !== listener));
	}

	/** "Sync now": in the leader, or asked of the leader from a follower tab. */
	syncNow(): void {
		if (this.leader) this.#schedule(0);
		else this.#post({ type: 'sync-now' });
	}

	/** Once a person signed in again after AUTH_EXPIRED. */
	resume(): void {
		if (this.network === 'AUTH_EXPIRED') this.network = 'ONLINE';
		this.#backoff.reset();
		this.syncNow();
	}

	// -- leader ----------------------------------------------------------------------------

	#lead(): Promise<void> {
		if (this.#stopped) return Promise.resolve();
		this.leader = true;
		this.#schedule(0);
		this.#heartbeat = setInterval(() => void this.#beat(), HEARTBEAT_MS);
		return new Promise((resolve) => (this.#release = resolve));
	}

	#schedule(delayMs: number): void {
		if (!this.leader || this.#stopped) return;
		const due = Date.now() + delayMs;
		if (this.#timer && this.#dueAt <= due && delayMs > 0) return; // an earlier run is set
		if (this.#timer) clearTimeout(this.#timer);
		this.#dueAt = due;
		this.#timer = setTimeout(() => {
			this.#timer = null;
			void this.#attempt();
		}, delayMs);
	}

	async #attempt(): Promise<void> {
		if (this.network === 'AUTH_EXPIRED' || this.network === 'UPGRADE_REQUIRED') return;
		if (navigator.onLine === false) {
			this.#setNetwork('OFFLINE');
			return this.#schedule(INTERVAL_MS);
		}
		this.syncing = true;
		this.#broadcastState();
		const started = performance.now();
		try {
			let report = await this.client.sync();
			if ((await resolveDeferred(this.client)) > 0) report = await this.client.sync();
			this.lastReport = report;
			this.lastError = null;
			this.#backoff.reset();
			this.#setNetwork(performance.now() - started > SLOW_SYNC_MS ? 'DEGRADED' : 'ONLINE');
			this.#schedule(INTERVAL_MS);
			for (const listener of this.#listeners) listener();
		} catch (error) {
			this.#failed(error as SyncError);
		} finally {
			this.syncing = false;
			this.#broadcastState();
		}
	}

	#failed(error: Error): void {
		this.lastError = error.message;
		if (error instanceof UpgradeRequired) return this.#setNetwork('UPGRADE_REQUIRED');
		if (error instanceof AuthExpired) return this.#setNetwork('AUTH_EXPIRED');
		if (error instanceof SyncNetworkError) this.#setNetwork('OFFLINE');
		else if (!(error instanceof PermanentError)) this.#setNetwork('DEGRADED');
		else this.#setNetwork('DEGRADED');
		this.#schedule(this.#backoff.nextDelay());
	}

	async #beat(): Promise<void> {
		if (this.network !== 'OFFLINE' || navigator.onLine === false) return;
		try {
			await this.transport.heartbeat();
		} catch {
			return;
		}
		// The line is back: sync now instead of waiting out the backoff.
		this.#backoff.reset();
		this.#schedule(0);
	}

	#localWrite(): void {
		this.#schedule(DEBOUNCE_MS);
	}

	#setNetwork(state: NetworkState): void {
		this.network = state;
		this.#broadcastState();
	}

	// -- tabs ------------------------------------------------------------------------------

	#post(message: Broadcast): void {
		this.#channel?.postMessage(message);
	}

	#broadcastState(): void {
		if (this.leader)
			this.#post({ type: 'state', network: this.network, lastError: this.lastError, syncing: this.syncing });
	}

	#received(message: Broadcast): void {
		if (message.type === 'state' && !this.leader) {
			this.network = message.network ?? this.network;
			this.lastError = message.lastError ?? null;
			this.syncing = Boolean(message.syncing);
		} else if (message.type === 'wrote') {
			this.#localWrite();
		} else if (message.type === 'sync-now') {
			this.#schedule(0);
		}
	}

	#online = () => {
		if (this.network === 'OFFLINE') this.network = 'ONLINE';
		this.#backoff.reset();
		this.#schedule(0);
	};

	#offline = () => this.#setNetwork('OFFLINE');

	#visible = () => {
		if (document.visibilityState === 'visible') this.#schedule(0);
	};

	async #requestPersistence(): Promise<void> {
		if (!navigator.storage?.persist) {
			this.persisted = false;
			return;
		}
		this.persisted = (await navigator.storage.persisted()) || (await navigator.storage.persist());
	}
}
