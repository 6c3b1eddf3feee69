/** A Dexie live query as reactive state: re-runs when IndexedDB changes (in any tab) and when
 * the reactive values read by `make` change. Call it during component initialisation. */
import { liveQuery } from 'dexie';

export function live<T>(make: () => (() => Promise<T>) | null, initial: T): { readonly value: T } {
	let value = $state<T>(initial);
	$effect(() => {
		const querier = make();
		if (!querier) return;
		const subscription = liveQuery(querier).subscribe({
			next: (v) => (value = v),
			error: (e) => console.error('live query', e)
		});
		return () => subscription.unsubscribe();
	});
	return {
		get value() {
			return value;
		}
	};
}
