import { describe, expect, it } from 'vitest';
import { Clock, formatHlc, parseHlc } from '../../src/lib/sync/hlc';

describe('hybrid logical clock', () => {
	it('formats like the server: 15-digit wall, 5-digit counter, node', () => {
		expect(formatHlc({ wallMs: 1764140000000, counter: 7, node: 'abc' })).toBe(
			'001764140000000-00007-abc'
		);
		expect(parseHlc('001764140000000-00007-a-b-c')).toEqual({
			wallMs: 1764140000000,
			counter: 7,
			node: 'a-b-c'
		});
		for (const bad of ['', 'x-1-n', '1-x-n', '1-2-', '12']) expect(() => parseHlc(bad)).toThrow();
	});

	it('text order equals tuple order (the server compares strings)', () => {
		const values = Array.from({ length: 200 }, () => ({
			wallMs: Math.floor(Math.random() * 2e12),
			counter: Math.floor(Math.random() * 99999),
			node: 'n'
		}));
		const byTuple = [...values].sort((a, b) => a.wallMs - b.wallMs || a.counter - b.counter);
		const byText = [...values].map(formatHlc).sort();
		expect(byText).toEqual(byTuple.map(formatHlc));
	});

	it('never goes backwards, even when the wall clock does', () => {
		let now = 1_000_000;
		const clock = new Clock('c1', null, () => now);
		const seen: string[] = [];
		for (let i = 0; i < 500; i++) {
			now += Math.floor(Math.random() * 7) - 3; // jitter, including jumps back
			seen.push(formatHlc(clock.tick()));
		}
		expect([...seen].sort()).toEqual(seen);
		expect(new Set(seen).size).toBe(seen.length);
	});

	it('receive moves past a remote timestamp from the future', () => {
		const clock = new Clock('c1', null, () => 1000);
		const after = clock.receive({ wallMs: 5000, counter: 3, node: 'server' });
		expect(after).toEqual({ wallMs: 5000, counter: 4, node: 'c1' });
		expect(clock.tick()).toEqual({ wallMs: 5000, counter: 5, node: 'c1' });
	});

	it('applies the measured offset', () => {
		const clock = new Clock('c1', null, () => 1000);
		clock.offsetMs = 250;
		expect(clock.tick().wallMs).toBe(1250);
	});
});
