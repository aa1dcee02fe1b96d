/**
 * API keys: `tgw_` + 16 hex characters of public prefix + 43 characters (32 random bytes) of secret.
 * The prefix finds the row (unique index, no scan); only an argon2id hash of the whole key is kept.
 */
import { randomBytes } from "node:crypto";

export const KEY_PREFIX = "tgw_";
const PUBLIC_PART_LENGTH = 16;
const KEY_PATTERN = /^tgw_([0-9a-f]{16})([A-Za-z0-9_-]{43})$/;

export interface NewApiKey {
	key: string;
	prefix: string;
}

export function generateApiKey(): NewApiKey {
	const prefix = randomBytes(PUBLIC_PART_LENGTH / 2).toString("hex");
	const secret = randomBytes(32).toString("base64url");
	return { key: `${KEY_PREFIX}${prefix}${secret}`, prefix };
}

import { iso, toDate } from "../../lib/time";
/** The public prefix of a well-formed key, or null (then it cannot be a key of ours). */
export function apiKeyPrefix(key: string): string | null {
	const match = KEY_PATTERN.exec(key);
	return match ? match[1]! : null;
}

export function looksLikeApiKey(credential: string): boolean {
	return credential.startsWith(KEY_PREFIX);
}

export interface ApiKeyRow {
	id: number;
	user_id: number;
	name: string;
	prefix: string;
	scopes: string | null;
	rate_limit: number | null;
	expires_at: Date | null;
	revoked_at: Date | null;
	last_used_at: Date | null;
	created_at: Date;
	updated_at: Date;
}

export function parseScopes(raw: string | null): string[] | null {
	if (raw === null) return null;
	const parsed = JSON.parse(raw) as unknown;
	return Array.isArray(parsed) ? parsed.filter((s): s is string => typeof s === "string") : null;
}

/** What the API shows of a key: never the hash, the key itself only at creation or rotation. */
export function apiKeyView(row: ApiKeyRow, lastUsedAt?: Date | null) {
	const lastUsed = lastUsedAt ?? row.last_used_at;
	return {
		id: row.id,
		user_id: row.user_id,
		name: row.name,
		prefix: `${KEY_PREFIX}${row.prefix}`,
		scopes: parseScopes(row.scopes),
		rate_limit: row.rate_limit,
		expires_at: iso(row.expires_at),
		revoked_at: iso(row.revoked_at),
		last_used_at: iso(lastUsed),
		created_at: iso(row.created_at),
		updated_at: iso(row.updated_at),
	};
}

export function keyState(row: Pick<ApiKeyRow, "expires_at" | "revoked_at">, now = Date.now()): "active" | "revoked" | "expired" {
	if (row.revoked_at) return "revoked";
	const expiresAt = toDate(row.expires_at);
	if (expiresAt && expiresAt.getTime() <= now) return "expired";
	return "active";
}
