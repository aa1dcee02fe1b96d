import Redis from "ioredis";
import type { BucketResult, SharedState, SlotsResult, WindowResult } from "./index";

/** Token bucket on the server's clock, so nodes with skewed clocks share one fair limit. */
const TAKE_TOKEN = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then tokens = burst; at = now end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
local allowed = 0
if tokens >= cost then tokens = tokens - cost; allowed = 1 end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {allowed, tostring(tokens)}
`;

/**
 * Sliding-window logs in sorted sets scored by the server's clock (ms), all or none. KEYS: the
 * pause key first when ARGV[3] is 1, then per window its set and a LOG_MOMENTS log (its own set
 * again when ARGV says it has none). ARGV: window count, a unique suffix, pause flag, then per
 * window limit, length (ms) and has-log. Returns {allowed, retry after ms, paused ms}.
 */
const TAKE_SLOTS = `
local n = tonumber(ARGV[1])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local first = 1
if ARGV[3] == '1' then
  local paused = redis.call('PTTL', KEYS[1])
  if paused > 0 then return {0, 0, paused} end
  first = 2
end
local wait = 0
for i = 0, n - 1 do
  local limit = tonumber(ARGV[4 + i * 3])
  local window = tonumber(ARGV[5 + i * 3])
  local key = KEYS[first + i * 2]
  if ARGV[6 + i * 3] == '1' then
    local log = KEYS[first + i * 2 + 1]
    local since = '(' .. (now - window)
    local recent = redis.call('ZCOUNT', log, since, '+inf')
    if recent >= limit then
      local entry = redis.call('ZRANGEBYSCORE', log, since, '+inf', 'WITHSCORES', 'LIMIT', recent - limit, 1)
      wait = math.max(wait, tonumber(entry[2]) + window - now)
    end
  end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    wait = math.max(wait, tonumber(oldest[2]) + window - now)
  end
end
if wait > 0 then return {0, wait, 0} end
for i = 0, n - 1 do
  local key = KEYS[first + i * 2]
  redis.call('ZADD', key, now, now .. '-' .. ARGV[2])
  redis.call('PEXPIRE', key, tonumber(ARGV[5 + i * 3]))
end
return {1, 0, 0}
`;

/** Logs of moments in sorted sets scored by the server's clock (ms): per key, its last `keep` (ARGV pairs keep, ttl), for ttl ms. */
const LOG_MOMENTS = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local unique = ARGV[#ARGV]
for i = 1, #KEYS do
  local keep = tonumber(ARGV[i * 2 - 1])
  local ttl = tonumber(ARGV[i * 2])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - ttl)
  redis.call('ZADD', KEYS[i], now, now .. '-' .. unique)
  redis.call('ZREMRANGEBYRANK', KEYS[i], 0, -(keep + 1))
  redis.call('PEXPIRE', KEYS[i], ttl)
end
return 1
`;

const HIT_WINDOW = `
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
return {count, ttl}
`;

/** Per key: 1 if ARGV[1] held it and it was extended by ARGV[2] ms, 0 if not. */
const RENEW_LEASES = `
local kept = {}
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then kept[i] = redis.call('PEXPIRE', KEYS[i], ARGV[2]) else kept[i] = 0 end
end
return kept
`;

const ACQUIRE_LEASE = `
local holder = redis.call('GET', KEYS[1])
if holder == false then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
`;

const RELEASE_LEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

type ScriptClient = Redis & {
	tgwTakeToken(key: string, rate: number, burst: number, cost: number): Promise<[number, string]>;
	tgwHitWindow(key: string, windowMs: number): Promise<[number, number]>;
	tgwTakeSlots(keyCount: number, ...keysThenArgs: Array<string | number>): Promise<[number, number, number]>;
	tgwLogMoments(keyCount: number, ...keysThenArgs: Array<string | number>): Promise<number>;
	tgwAcquireLease(key: string, owner: string, ttlMs: number): Promise<number>;
	tgwRenewLeases(keyCount: number, ...keysThenArgs: Array<string | number>): Promise<number[]>;
	tgwReleaseLease(key: string, owner: string): Promise<number>;
};

export async function createRedisState(url: string, prefix: string): Promise<SharedState> {
	const client = new Redis(url, {
		// Fail a command quickly while Redis is away instead of queueing requests behind it: without the
		// offline queue a command fails at once while the connection is down (each request waited
		// 2.5-4 s for a reconnect attempt); connect() below is awaited before any command is sent.
		enableOfflineQueue: false,
		maxRetriesPerRequest: 1,
		commandTimeout: 2_000,
		connectTimeout: 2_000,
		lazyConnect: true,
		retryStrategy: (times) => Math.min(times * 200, 2_000),
	}) as ScriptClient;
	client.on("error", () => undefined); // reconnects on its own; callers see failed commands
	client.defineCommand("tgwTakeToken", { numberOfKeys: 1, lua: TAKE_TOKEN });
	client.defineCommand("tgwHitWindow", { numberOfKeys: 1, lua: HIT_WINDOW });
	// Key counts vary: given first in each call.
	client.defineCommand("tgwTakeSlots", { lua: TAKE_SLOTS });
	client.defineCommand("tgwLogMoments", { lua: LOG_MOMENTS });
	client.defineCommand("tgwAcquireLease", { numberOfKeys: 1, lua: ACQUIRE_LEASE });
	client.defineCommand("tgwRenewLeases", { lua: RENEW_LEASES });
	client.defineCommand("tgwReleaseLease", { numberOfKeys: 1, lua: RELEASE_LEASE });
	try {
		await client.connect();
	} catch (err) {
		// Otherwise the client goes on reconnecting (retryStrategy) for as long as the process lives.
		client.disconnect();
		throw err;
	}

	return {
		kind: "redis",
		async takeToken(key, ratePerSecond, burst, cost = 1): Promise<BucketResult> {
			const [allowed, tokensText] = await client.tgwTakeToken(prefix + key, ratePerSecond, burst, cost);
			const tokens = Number(tokensText);
			return {
				allowed: allowed === 1,
				remaining: Math.floor(tokens),
				retryAfterMs: allowed === 1 ? 0 : Math.ceil(((cost - tokens) * 1000) / ratePerSecond),
				resetMs: Math.ceil(((burst - tokens) * 1000) / ratePerSecond),
			};
		},
		async takeSlots(slots, pauseKey): Promise<SlotsResult> {
			const keys = [...(pauseKey === undefined ? [] : [prefix + pauseKey]), ...slots.flatMap((s) => [prefix + s.key, prefix + (s.log ?? s.key)])];
			const args = [slots.length, Math.random().toString(36).slice(2), pauseKey === undefined ? 0 : 1, ...slots.flatMap((s) => [s.limit, s.windowMs, s.log === undefined ? 0 : 1])];
			const [allowed, retryAfterMs, pausedMs] = await client.tgwTakeSlots(keys.length, ...keys, ...args);
			if (pausedMs > 0) return { allowed: false, retryAfterMs: 0, pausedMs };
			return { allowed: allowed === 1, retryAfterMs: allowed === 1 ? 0 : Math.max(1, retryAfterMs), pausedMs: 0 };
		},
		async logMoments(logs) {
			if (logs.length === 0) return;
			const args = logs.flatMap((l) => [Math.max(1, l.keep), l.ttlMs]);
			await client.tgwLogMoments(logs.length, ...logs.map((l) => prefix + l.key), ...args, Math.random().toString(36).slice(2));
		},
		async hit(key, windowMs): Promise<WindowResult> {
			const [count, ttl] = await client.tgwHitWindow(prefix + key, windowMs);
			return { count, resetMs: Math.max(0, ttl) };
		},
		async peekWindow(key): Promise<WindowResult> {
			const [count, ttl] = await Promise.all([client.get(prefix + key), client.pttl(prefix + key)]);
			return { count: count ? Number(count) : 0, resetMs: Math.max(0, ttl) };
		},
		async get(key) {
			return client.get(prefix + key);
		},
		async set(key, value, ttlMs) {
			if (ttlMs) await client.set(prefix + key, value, "PX", ttlMs);
			else await client.set(prefix + key, value);
		},
		async del(key) {
			await client.del(prefix + key);
		},
		async acquireLease(key, owner, ttlMs) {
			return (await client.tgwAcquireLease(prefix + key, owner, ttlMs)) === 1;
		},
		async renewLeases(keys, owner, ttlMs) {
			if (keys.length === 0) return [];
			return (await client.tgwRenewLeases(keys.length, ...keys.map((key) => prefix + key), owner, ttlMs)).map((kept) => kept === 1);
		},
		async releaseLease(key, owner) {
			await client.tgwReleaseLease(prefix + key, owner);
		},
		async leaseHolders(keys) {
			// A lease is a plain string key holding its owner (ACQUIRE_LEASE), so one MGET reads them all.
			return keys.length === 0 ? [] : client.mget(keys.map((key) => prefix + key));
		},
		async ping() {
			await client.ping();
		},
		async close() {
			await client.quit().catch(() => client.disconnect());
		},
	};
}
