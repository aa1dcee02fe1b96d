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

export interface SharedState {
	readonly kind: "memory" | "redis";
	/** Token bucket: `burst` tokens at most, refilled at `ratePerSecond`. */
	takeToken(key: string, ratePerSecond: number, burst: number, cost?: number): Promise<BucketResult>;
	/**
	 * Sliding window: takes a slot if fewer than `limit` were taken in the last `windowMs`; otherwise
	 * says when the oldest slot frees. Exact for "at most N in any window" limits (Telegram's).
	 * With `log` (a logMoment key), it is also refused, and nothing taken, while that log holds
	 * `limit` moments in the last `windowMs`: the limit then counts from those moments too (when
	 * Telegram answered, which can be well after the slot was taken), in one atomic step.
	 */
	takeSlot(key: string, limit: number, windowMs: number, log?: string): Promise<{ allowed: boolean; retryAfterMs: number }>;
	/** Adds now (the store's clock, as takeSlot's) to the log at `key`, which keeps its last `keep` moments for `ttlMs`. */
	logMoment(key: string, keep: number, ttlMs: number): Promise<void>;
	/** Fixed-window counter: adds one hit and returns the window's count. */
	hit(key: string, windowMs: number): Promise<WindowResult>;
	/** Reads a fixed-window counter without adding to it. */
	peekWindow(key: string): Promise<WindowResult>;
	get(key: string): Promise<string | null>;
	set(key: string, value: string, ttlMs?: number): Promise<void>;
	del(key: string): Promise<void>;
	/** Takes the lease if it is free or already ours; true while `owner` holds it. */
	acquireLease(key: string, owner: string, ttlMs: number): Promise<boolean>;
	/** Extends a lease we hold; false if it was lost (expired and taken by another owner). */
	renewLease(key: string, owner: string, ttlMs: number): Promise<boolean>;
	releaseLease(key: string, owner: string): Promise<void>;
	/** Who holds each lease (its owner), or null where it is free: many leases in one round trip. */
	leaseHolders(keys: readonly string[]): Promise<Array<string | null>>;
	ping(): Promise<void>;
	close(): Promise<void>;
}

export async function createSharedState(redisUrl: string | null, namespace = "tgw"): Promise<SharedState> {
	return redisUrl ? createRedisState(redisUrl, `${namespace}:`) : createMemoryState();
}
