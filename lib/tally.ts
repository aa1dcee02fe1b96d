/** Adds `delta` to a count kept per key, dropping the key at zero, so the map holds only what is live. */
export function tally<K>(counts: Map<K, number>, key: K, delta: number): void {
	const next = (counts.get(key) ?? 0) + delta;
	if (next > 0) counts.set(key, next);
	else counts.delete(key);
}
