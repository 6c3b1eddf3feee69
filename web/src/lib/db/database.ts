/**
 * IndexedDB through Dexie. Two databases:
 * - `nidaan` (shared by the people using this browser): who has signed in here, with an
 *   offline password verifier, so a centre can keep working when the line is down.
 * - `nidaan-u-<userId>`: one person's synced copy and outbox. The server binds a sync client
 *   id to one user, so two people on one counter PC each get their own client and outbox.
 */
import Dexie, { type EntityTable, type Table } from 'dexie';
import type { ConflictRecord, FailedOp, OutboxOp, Row, SyncedRow } from '../sync/model';

export interface Account {
	userId: string;
	email: string;
	fullName: string;
	organisationId: string;
	roles: string[];
	branchIds: string[] | null;
	/** PBKDF2-SHA-256 of the password (base64), for unlocking offline only. */
	verifier: string;
	salt: string;
	iterations: number;
	lastLoginAt: string;
}

export class AccountsDb extends Dexie {
	accounts!: EntityTable<Account, 'userId'>;
	constructor() {
		super('nidaan');
		this.version(1).stores({ accounts: 'userId, &email' });
	}
}

export interface MetaEntry {
	key: string;
	value: unknown;
}
export interface ReferenceEntry {
	key: string;
	data: unknown;
	fetchedAt: string;
}
/** Work waiting for a row the server has not sent yet (collecting an order placed offline). */
export interface Deferred {
	id?: number;
	kind: 'collect';
	orderId: string;
	data: Record<string, unknown>;
	createdAt: string;
}

export class UserDb extends Dexie {
	meta!: Table<MetaEntry, string>;
	synced!: Table<SyncedRow, [string, string]>;
	rows!: Table<Row, [string, string]>;
	outbox!: Table<OutboxOp, number>;
	failed!: Table<FailedOp, string>;
	conflicts!: Table<ConflictRecord, string>;
	reference!: Table<ReferenceEntry, string>;
	deferred!: Table<Deferred, number>;

	constructor(userId: string, options?: ConstructorParameters<typeof Dexie>[1]) {
		super(`nidaan-u-${userId}`, options);
		this.version(1).stores({
			meta: 'key',
			synced: '[entity+id], entity',
			rows: '[entity+id], entity, [entity+ref], pending',
			outbox: 'clientSeq, &opId, [entity+entityId]',
			failed: 'opId, clientSeq',
			conflicts: 'id, status',
			reference: 'key',
			deferred: '++id, orderId'
		});
	}
}

export const SYNC_TABLES = ['meta', 'synced', 'rows', 'outbox', 'failed', 'conflicts', 'deferred'];
