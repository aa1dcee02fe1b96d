/**
 * How many keys a user may hold, and how fast a new one may be. Every key is a rate-limit bucket and
 * a live-connection allowance of its own, so a user who could mint keys freely, or give one any
 * rate, would lift both limits: a key is no faster than its creator (admins excepted), and a user
 * holds at most API_KEYS_PER_USER active (not revoked, not expired) keys.
 */
import { Op, type Transaction, type WhereOptions } from "sequelize";
import type { Database } from "../../lib/db/connection";
import { withinUserQuota } from "../../lib/db/user-quota";
import { fail, GatewayError } from "../../lib/errors";
import type { Principal } from "./principal";

/** The latest expiry a key may have: DATETIME columns (MySQL) end with the year 9999. */
const LATEST_EXPIRY_MS = Date.UTC(9999, 11, 31, 23, 59, 59);

/**
 * The expiry and rate limit a new key gets. Its rate limit is at most its maker's: a user's limit
 * is RATE_LIMIT_DEFAULT, and a higher one on a key of its own would lift it. Only admins (the CLI
 * acts as one) give a key more. A key made by a key also expires no later than its maker (it would
 * outlive a key meant to be short-lived), and without them takes its maker's expiry and rate.
 */
export function keyLimitsFor(maker: Principal, expiresAt: number | null, rateLimit: number | null): { expires_at: number | null; rate_limit: number | null } {
	if (expiresAt !== null && expiresAt > LATEST_EXPIRY_MS) {
		throw fail.validation([{ field: "expires_at", message: "The 'expires_at' field must be a time before the year 10000." }]);
	}
	if (maker.type !== "api_key") {
		if (rateLimit !== null && !maker.is_admin && rateLimit > maker.rate_limit) {
			throw fail.validation([{ field: "rate_limit", message: `The 'rate_limit' field must not be above your own (${maker.rate_limit} requests per second).` }]);
		}
		return { expires_at: expiresAt, rate_limit: rateLimit };
	}
	const makerExpiry = maker.expires_at ?? null;
	if (expiresAt !== null && makerExpiry !== null && expiresAt > makerExpiry) {
		throw fail.validation([{ field: "expires_at", message: `The 'expires_at' field must not be later than the creating key's (${new Date(makerExpiry).toISOString()}).` }]);
	}
	if (rateLimit !== null && rateLimit > maker.rate_limit) {
		throw fail.validation([{ field: "rate_limit", message: `The 'rate_limit' field must not be above the creating key's (${maker.rate_limit}).` }]);
	}
	return { expires_at: expiresAt ?? makerExpiry, rate_limit: rateLimit ?? maker.rate_limit };
}

/**
 * Rotation hands out a new secret for the key: the rotating user must be allowed its rate, as if
 * creating it (a key from before this rule, or made by an admin, may be faster than its owner).
 */
export function checkRotatable(rotator: Principal, keyRateLimit: number | null): void {
	if (keyRateLimit === null || rotator.is_admin || keyRateLimit <= rotator.rate_limit) return;
	throw fail.validation([
		{ field: "rate_limit", message: `This key's rate_limit (${keyRateLimit}) is above your own (${rotator.rate_limit} requests per second): an admin may rotate it, or create a new key.` },
	]);
}

export function activeKeysOf(userId: number, now = new Date()): WhereOptions {
	return { user_id: userId, revoked_at: null, [Op.or]: [{ expires_at: null }, { expires_at: { [Op.gt]: now } }] };
}

export function tooManyKeys(limit: number): GatewayError {
	return new GatewayError("CONFLICT", `A user holds at most ${limit} active API keys (API_KEYS_PER_USER): revoke one first`, { field: "api_keys", limit });
}

/** Runs `insert` only while the user holds fewer than `limit` active keys (lib/db/user-quota.ts: safe against racing creates). */
export function withinKeyQuota<T>(db: Database, userId: number, limit: number, insert: (t: Transaction) => Promise<T>): Promise<T> {
	const count = (t: Transaction) => db.models.ApiKey.count({ where: activeKeysOf(userId), transaction: t });
	return withinUserQuota(db, { userId, limit, count, refusal: () => tooManyKeys(limit) }, insert);
}
