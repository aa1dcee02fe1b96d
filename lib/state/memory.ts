import type { BucketResult, SharedState, SlotsResult, WindowResult } from "./index";

interface Expiring<T> {
	value: T;
	expiresAt: number;
}

/** Embedded mode: one process, so plain maps with expiry are the shared state. */
export function createMemoryState(now: () => number = Date.now): SharedState {
	const buckets = new Map<string, { tokens: number; at: number }>();
	const slots = new Map<string, number[]>();
	/** logMoments' logs, oldest first, gone `ttlMs` after their last moment (as a Redis key's PEXPIRE). */
	const logs = new Map<string, Expiring<number[]>>();
	const windows = new Map<string, Expiring<number>>();
	const values = new Map<string, Expiring<string>>();
	const leases = new Map<string, Expiring<string>>();

	function live<T>(map: Map<string, Expiring<T>>, key: string): Expiring<T> | undefined {
		const entry = map.get(key);
		if (entry && entry.expiresAt <= now()) {
			map.delete(key);
			return undefined;
		}
		return entry;
	}

	// Drop idle buckets now and then so a stream of distinct keys cannot grow memory forever.
	const sweeper = setInterval(() => {
		const t = now();
		for (const [key, bucket] of buckets) if (t - bucket.at > 10 * 60_000) buckets.delete(key);
		for (const [key, times] of slots) if (times.length === 0 || t - times[times.length - 1]! > 10 * 60_000) slots.delete(key);
		for (const map of [windows, values, leases, logs] as Array<Map<string, Expiring<unknown>>>) {
			for (const [key, entry] of map) if (entry.expiresAt <= t) map.delete(key);
		}
	}, 60_000);
	sweeper.unref();

	return {
		kind: "memory",
		async takeToken(key, ratePerSecond, burst, cost = 1): Promise<BucketResult> {
			const t = now();
			const bucket = buckets.get(key) ?? { tokens: burst, at: t };
			bucket.tokens = Math.min(burst, bucket.tokens + ((t - bucket.at) * ratePerSecond) / 1000);
			bucket.at = t;
			const allowed = bucket.tokens >= cost;
			if (allowed) bucket.tokens -= cost;
			buckets.set(key, bucket);
			return {
				allowed,
				remaining: Math.floor(bucket.tokens),
				retryAfterMs: allowed ? 0 : Math.ceil(((cost - bucket.tokens) * 1000) / ratePerSecond),
				resetMs: Math.ceil(((burst - bucket.tokens) * 1000) / ratePerSecond),
			};
		},
		async takeSlots(requests, pauseKey): Promise<SlotsResult> {
			const t = now();
			const pause = pauseKey === undefined ? undefined : live(values, pauseKey);
			if (pause) return { allowed: false, retryAfterMs: 0, pausedMs: Math.max(1, pause.expiresAt - t) };
			let wait = 0;
			const kept = requests.map(({ key, limit, windowMs, log }) => {
				if (log !== undefined) {
					const recent = (live(logs, log)?.value ?? []).filter((at) => at > t - windowMs);
					// Refused until enough of them have left the window for one more to fit.
					if (recent.length >= limit) wait = Math.max(wait, recent[recent.length - limit]! + windowMs - t);
				}
				const times = (slots.get(key) ?? []).filter((at) => at > t - windowMs);
				if (times.length >= limit) wait = Math.max(wait, times[0]! + windowMs - t);
				slots.set(key, times);
				return times;
			});
			if (wait > 0) return { allowed: false, retryAfterMs: Math.max(1, wait), pausedMs: 0 };
			for (const times of kept) times.push(t);
			return { allowed: true, retryAfterMs: 0, pausedMs: 0 };
		},
		async logMoments(entries) {
			const t = now();
			for (const { key, keep, ttlMs } of entries) {
				const times = (live(logs, key)?.value ?? []).filter((at) => at > t - ttlMs);
				times.push(t);
				times.sort((a, b) => a - b);
				logs.set(key, { value: times.slice(-Math.max(1, keep)), expiresAt: t + ttlMs });
			}
		},
		async hit(key, windowMs): Promise<WindowResult> {
			const t = now();
			const entry = live(windows, key) ?? { value: 0, expiresAt: t + windowMs };
			entry.value += 1;
			windows.set(key, entry);
			return { count: entry.value, resetMs: entry.expiresAt - t };
		},
		async peekWindow(key): Promise<WindowResult> {
			const entry = live(windows, key);
			return entry ? { count: entry.value, resetMs: entry.expiresAt - now() } : { count: 0, resetMs: 0 };
		},
		async get(key) {
			return live(values, key)?.value ?? null;
		},
		async set(key, value, ttlMs) {
			values.set(key, { value, expiresAt: ttlMs ? now() + ttlMs : Number.POSITIVE_INFINITY });
		},
		async del(key) {
			values.delete(key);
			windows.delete(key);
			logs.delete(key);
			buckets.delete(key);
		},
		async acquireLease(key, owner, ttlMs) {
			const lease = live(leases, key);
			if (lease && lease.value !== owner) return false;
			leases.set(key, { value: owner, expiresAt: now() + ttlMs });
			return true;
		},
		async renewLeases(keys, owner, ttlMs) {
			return keys.map((key) => {
				const lease = live(leases, key);
				if (!lease || lease.value !== owner) return false;
				lease.expiresAt = now() + ttlMs;
				return true;
			});
		},
		async releaseLease(key, owner) {
			if (live(leases, key)?.value === owner) leases.delete(key);
		},
		async leaseHolders(keys) {
			return keys.map((key) => live(leases, key)?.value ?? null);
		},
		async ping() {},
		async close() {
			clearInterval(sweeper);
		},
	};
}
