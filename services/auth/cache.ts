/**
 * The auth service's in-process caches. Whatever can be revoked (a user, a key, a grant) lives at
 * most 400 ms here, and the api gateway keeps a resolved principal at most as long again, so a
 * change made on any node holds everywhere within a second even if the `auth.changed` broadcast
 * that clears both at once were lost. What cannot change (this exact key
 * string was verified against this exact hash) is kept longer, so argon2 is paid once per key.
 */
import { LRUCache } from "lru-cache";
import { LoadingCache } from "../../lib/loading-cache";
import type { GrantMap, Rights } from "./grants";
import { principalKey, type Principal } from "./principal";

export const REVOCABLE_TTL_MS = 400;

export interface KeyRecord {
	id: number;
	user_id: number;
	name: string;
	key_hash: string;
	scopes: string[] | null;
	rate_limit: number | null;
	state: "active" | "revoked" | "expired";
	expires_at: number | null;
}

export type AuthChange =
	| { kind: "user"; id: number }
	| { kind: "api_key"; id: number }
	/** A login's token family was revoked (logout, refresh token reuse): its access tokens end too. */
	| { kind: "session"; family: string; user_id: number }
	| { kind: "grants"; chat_id: number; user_id: number | null; api_key_id: number | null };

export class AuthCache {
	/** user id -> principal, or null for a user that is gone or disabled. */
	readonly users = new LoadingCache<number, Principal | null>({ max: 20_000, ttlMs: REVOCABLE_TTL_MS });
	readonly keys = new LoadingCache<number, KeyRecord | null>({ max: 20_000, ttlMs: REVOCABLE_TTL_MS });
	/** sha256(key string) -> the key id and the hash it matched. */
	readonly verifiedKeys = new LRUCache<string, { keyId: number; keyHash: string }>({ max: 20_000, ttl: 10 * 60_000 });
	/** access token -> its user, family and expiry: a token's signature never changes, so verify it once. */
	readonly verifiedTokens = new LRUCache<string, { userId: number; family?: string; expiresAtMs: number }>({ max: 50_000, ttl: 15 * 60_000 });
	/** token family -> whether it was revoked. Revoked is for good, so that answer is kept longer. */
	readonly endedSessions = new LoadingCache<string, boolean>({ max: 50_000, ttlMs: REVOCABLE_TTL_MS, ttlOf: (ended) => (ended ? 15 * 60_000 : REVOCABLE_TTL_MS) });
	/** "user:1" / "api_key:7" -> all of that principal's grants (chatAccess only). */
	readonly grants = new LoadingCache<string, GrantMap>({ max: 20_000, ttlMs: REVOCABLE_TTL_MS });
	/** rightsKey(principal, chat) -> that principal's grant on that chat, or null (auth.can). */
	readonly rights = new LoadingCache<string, Rights | null>({ max: 50_000, ttlMs: REVOCABLE_TTL_MS });

	apply(change: AuthChange): void {
		switch (change.kind) {
			case "user":
				this.users.delete(change.id);
				this.grants.delete(`user:${change.id}`);
				// A new password revokes every family of the user: which those are is not tracked here.
				this.endedSessions.clear();
				// Keys act for their owner: drop them all rather than track ownership here.
				this.keys.clear();
				// Nor are a principal's chats tracked here: users and keys change rarely, grant checks are cheap.
				this.rights.clear();
				break;
			case "api_key":
				this.keys.delete(change.id);
				this.grants.delete(`api_key:${change.id}`);
				this.rights.clear();
				break;
			case "session":
				this.endedSessions.delete(change.family);
				break;
			case "grants":
				if (change.user_id !== null) this.grants.delete(`user:${change.user_id}`);
				if (change.api_key_id !== null) this.grants.delete(`api_key:${change.api_key_id}`);
				if (change.user_id !== null) this.rights.delete(rightsKey({ type: "user", id: change.user_id }, change.chat_id));
				if (change.api_key_id !== null) this.rights.delete(rightsKey({ type: "api_key", id: change.api_key_id }, change.chat_id));
				break;
		}
	}

	clear(): void {
		this.users.clear();
		this.keys.clear();
		this.verifiedKeys.clear();
		this.verifiedTokens.clear();
		this.endedSessions.clear();
		this.grants.clear();
		this.rights.clear();
	}
}

export function rightsKey(principal: Pick<Principal, "type" | "id">, chatId: number): string {
	return `${principalKey(principal)}/${chatId}`;
}
