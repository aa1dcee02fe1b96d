/**
 * A short-lived LRU whose misses load through one shared promise per key. Without it, every request
 * in flight when an entry expires misses at once (64 concurrent clients of one key made 64 database
 * reads every 400 ms). A load that an invalidation overtook still answers the callers that were
 * waiting for it, but is not kept: what it read may be what the invalidation was about.
 */
import { LRUCache } from "lru-cache";

interface Loading<V> {
	promise: Promise<V>;
}

export interface LoadingCacheOptions<V> {
	max: number;
	ttlMs: number;
	/** A shorter life for one value (e.g. a token's own expiry); the cache's ttl when absent. */
	ttlOf?: (value: V) => number;
}

export class LoadingCache<K extends NonNullable<unknown>, V> {
	private readonly values: LRUCache<K, { value: V }>;
	private readonly loading = new Map<K, Loading<V>>();
	private readonly ttlOf?: (value: V) => number;

	constructor(options: LoadingCacheOptions<V>) {
		this.values = new LRUCache({ max: options.max, ttl: options.ttlMs });
		this.ttlOf = options.ttlOf;
	}

	/** The kept value, or the one `load` gives (shared with every caller asking while it runs). */
	get(key: K, load: () => Promise<V>): Promise<V> {
		const kept = this.values.get(key);
		if (kept) return Promise.resolve(kept.value);
		const running = this.loading.get(key);
		if (running) return running.promise;
		const entry = { promise: undefined as unknown as Promise<V> };
		entry.promise = load().then(
			(value) => {
				if (this.loading.get(key) === entry) {
					this.loading.delete(key);
					const ttl = this.ttlOf?.(value);
					if (ttl === undefined) this.values.set(key, { value });
					else if (ttl > 0) this.values.set(key, { value }, { ttl });
				}
				return value;
			},
			(err: unknown) => {
				if (this.loading.get(key) === entry) this.loading.delete(key);
				throw err;
			},
		);
		this.loading.set(key, entry);
		return entry.promise;
	}

	/** The kept value without loading, or undefined. */
	peek(key: K): V | undefined {
		return this.values.get(key)?.value;
	}

	delete(key: K): void {
		this.values.delete(key);
		this.loading.delete(key);
	}

	clear(): void {
		this.values.clear();
		this.loading.clear();
	}

	/** Drops the kept values `matches` picks, and every load under way (its value is not kept). */
	deleteWhere(matches: (value: V) => boolean): void {
		for (const [key, kept] of this.values.entries()) if (matches(kept.value)) this.values.delete(key);
		this.loading.clear();
	}
}
