/**
 * Hybrid logical clock, the same rules and text form as the server's (`nidaan/sync/hlc.py`):
 * `"<wall ms, 15 digits>-<counter, 5 digits>-<node>"`, sorting like the tuple.
 */
const WALL_DIGITS = 15;
const COUNTER_DIGITS = 5;
const MAX_COUNTER = 10 ** COUNTER_DIGITS - 1;

export interface HLC {
	wallMs: number;
	counter: number;
	node: string;
}

export function formatHlc(h: HLC): string {
	return `${String(h.wallMs).padStart(WALL_DIGITS, '0')}-${String(h.counter).padStart(COUNTER_DIGITS, '0')}-${h.node}`;
}

export function parseHlc(text: string): HLC {
	const first = text.indexOf('-');
	const second = first < 0 ? -1 : text.indexOf('-', first + 1);
	const wall = text.slice(0, first);
	const counter = text.slice(first + 1, second);
	const node = second < 0 ? '' : text.slice(second + 1);
	if (first < 0 || second < 0 || !/^\d+$/.test(wall) || !/^\d+$/.test(counter) || !node) {
		throw new Error(`not a hybrid logical clock value: ${JSON.stringify(text)}`);
	}
	return { wallMs: Number(wall), counter: Number(counter), node };
}

export class Clock {
	offsetMs = 0;
	#wall: number;
	#counter: number;

	constructor(
		readonly node: string,
		last: HLC | null = null,
		private readonly physical: () => number = () => Date.now()
	) {
		this.#wall = last?.wallMs ?? 0;
		this.#counter = last?.counter ?? 0;
	}

	physicalMs(): number {
		return this.physical() + this.offsetMs;
	}

	get last(): HLC {
		return { wallMs: this.#wall, counter: this.#counter, node: this.node };
	}

	/** A timestamp for a local event (a write). */
	tick(): HLC {
		const now = this.physicalMs();
		if (now > this.#wall) {
			this.#wall = now;
			this.#counter = 0;
		} else {
			this.#bump();
		}
		return this.last;
	}

	/** Advance past a timestamp seen from another node. */
	receive(remote: HLC): HLC {
		const now = this.physicalMs();
		const wall = Math.max(this.#wall, remote.wallMs, now);
		if (wall === this.#wall && wall === remote.wallMs) {
			this.#counter = Math.max(this.#counter, remote.counter);
			this.#bump();
		} else if (wall === this.#wall) {
			this.#bump();
		} else if (wall === remote.wallMs) {
			this.#wall = wall;
			this.#counter = remote.counter;
			this.#bump();
		} else {
			this.#wall = wall;
			this.#counter = 0;
		}
		return this.last;
	}

	#bump(): void {
		if (this.#counter >= MAX_COUNTER) throw new Error('hybrid logical clock counter overflow');
		this.#counter += 1;
	}
}
