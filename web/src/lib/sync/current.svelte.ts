/** The signed-in person's sync service and working branch, shared by every screen. */
import { SyncService } from './service.svelte';

const BRANCH_KEY = 'nidaan:working-branch';

class Current {
	service = $state<SyncService | null>(null);
	branchId = $state<string | null>(null);

	/** Start (or keep) the service for `userId`; the branch is the user's only one, or the
	 * one chosen last time in this browser. */
	open(userId: string, branchIds: string[] | null): SyncService {
		const fixed = branchIds && branchIds.length === 1 ? branchIds[0] : null;
		const saved = localStorage.getItem(`${BRANCH_KEY}:${userId}`);
		const branch = fixed ?? (saved && (!branchIds || branchIds.includes(saved)) ? saved : null);
		if (this.service && this.service.userId === userId && this.branchId === branch) return this.service;
		this.close();
		this.branchId = branch;
		this.service = new SyncService(userId, branch);
		this.service.start();
		return this.service;
	}

	/** Work at another branch: the local copy is re-pulled for it (the outbox is kept). */
	chooseBranch(userId: string, branchIds: string[] | null, branchId: string): void {
		localStorage.setItem(`${BRANCH_KEY}:${userId}`, branchId);
		this.open(userId, branchIds);
	}

	close(): void {
		this.service?.stop();
		this.service = null;
	}
}

export const current = new Current();
