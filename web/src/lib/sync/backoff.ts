/** Exponential backoff with full jitter above a floor (as `nidaan/sync/client/backoff.py`):
 * 5 s up to 5 min, so a hundred centres coming back after an outage spread out. */
export class Backoff {
	failures = 0;
	constructor(
		readonly baseMs = 5_000,
		readonly capMs = 300_000,
		private readonly random: () => number = Math.random
	) {}

	ceiling(): number {
		return Math.min(this.capMs, this.baseMs * 2 ** Math.min(Math.max(this.failures - 1, 0), 32));
	}

	nextDelay(): number {
		this.failures += 1;
		const ceiling = this.ceiling();
		return this.baseMs + this.random() * (ceiling - this.baseMs);
	}

	reset(): void {
		this.failures = 0;
	}
}
