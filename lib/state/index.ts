/**
 * State that several nodes must agree on: rate-limit buckets, login throttles, leases (one poller per
 * bot, one dispatcher), breaker state, flood counters. In embedded mode it lives in this process; in
 * cluster mode in Redis, behind the same interface, so the callers do not know which.
 */
import { createMemoryState } from "./memory";
import { createRedisState } from "./redis";

export interface BucketResult {
	allowed: boolean;
	/** Whole tokens left after this take. */
	remaining: number;
	/** Milliseconds until a token is available again (0 when allowed). */
	retryAfterMs: number;
	/** Milliseconds until the bucket is full again. */
	resetMs: number;
}

export interface WindowResult {
	count: number;
	/** Milliseconds until this window ends. */
	resetMs: number;
}

/** One sliding window of takeSlots. */
export interface SlotRequest {
	key: string;
	limit: number;
	windowMs: number;
	/** A logMoments key: the window is also counted from its moments. */
	log?: string;
}

export interface SlotsResult {
	allowed: boolean;
	/** When refused by a window: milliseconds until every window has room (0 when allowed or paused). */
	retryAfterMs: number;
	/** When refused by the pause key: milliseconds it still holds (0 otherwise). */
	pausedMs: number;
}

export interface SharedState {
	readonly kind: "memory" | "redis";
	/** Token bucket: `burst` tokens at most, refilled at `ratePerSecond`. */
	takeToken(key: string, ratePerSecond: number, burst: number, cost?: number): Promise<BucketResult>;
	/**
	 * Sliding windows, all or none, in one atomic step: takes a slot in each window if every one had
	 * fewer than `limit` taken in the last `windowMs`; otherwise takes nothing and says when they all
	 * have room. Exact for "at most N in any window" limits (Telegram's). A window with `log` (a
	 * logMoments key) is also refused while that log holds `limit` moments in the last `windowMs`:
	 * the limit then counts from those moments too (when Telegram answered, which can be well after
	 * the slot was taken). While `pauseKey` (a set() value with a ttl) exists, nothing is taken.
	 */
	takeSlots(slots: readonly SlotRequest[], pauseKey?: string): Promise<SlotsResult>;
	/** Adds now (the store's clock, as takeSlots') to each log at `key`, which keeps its last `keep` moments for `ttlMs`. */
	logMoments(logs: ReadonlyArray<{ key: string; keep: number; ttlMs: number }>): Promise<void>;
	/** Fixed-window counter: adds one hit and returns the window's count. */
	hit(key: string, windowMs: number): Promise<WindowResult>;
	/** Reads a fixed-window counter without adding to it. */
	peekWindow(key: string): Promise<WindowResult>;
	get(key: string): Promise<string | null>;
	set(key: string, value: string, ttlMs?: number): Promise<void>;
	del(key: string): Promise<void>;
	/** Takes the lease if it is free or already ours; true while `owner` holds it. */
	acquireLease(key: string, owner: string, ttlMs: number): Promise<boolean>;
	/** Extends leases we hold, in one round trip; per key, false if it was lost (expired, or taken by another owner). */
	renewLeases(keys: readonly string[], owner: string, ttlMs: number): Promise<boolean[]>;
	releaseLease(key: string, owner: string): Promise<void>;
	/** Who holds each lease (its owner), or null where it is free: many leases in one round trip. */
	leaseHolders(keys: readonly string[]): Promise<Array<string | null>>;
	ping(): Promise<void>;
	close(): Promise<void>;
}

export async function createSharedState(redisUrl: string | null, namespace = "tgw"): Promise<SharedState> {
	return redisUrl ? createRedisState(redisUrl, `${namespace}:`) : createMemoryState();
}
