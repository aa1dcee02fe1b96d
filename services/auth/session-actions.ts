/** Logging in and out, refreshing tokens, and turning any credential into a principal. */
import { setTimeout as sleep } from "node:timers/promises";
import { metricsOf } from "../../lib/metrics";
import { fail, GatewayError } from "../../lib/errors";
import { principalOf, respondWith, type GatewayContext } from "../../lib/meta";
import { apiKeyPrefix, looksLikeApiKey } from "./api-keys";
import { chatsWith, RIGHTS, type Right } from "./grants";
import { checkLoginAllowed, recordLoginFailure, recordLoginSuccess } from "./login-throttle";
import { decoyHash, verifySecret } from "./passwords";
import { apiKeyPrincipal, principalView, type Principal } from "./principal";
import { InvalidTokenError, issueToken, newFamilyId, sha256, verifyToken } from "./tokens";
import { retiredWithPrefix, type RetiredReason } from "./retired-keys";
import { rolesByUser, userView } from "./users";
import type { AuthActions, AuthThis } from "./context";

/** Any string up to 64: a login must not tell which usernames could exist. */
const USERNAME = { type: "string", trim: true, lowercase: true, min: 1, max: 64 } as const;
const REFRESH_TOKEN = { type: "string", min: 1, max: 4096 } as const;
/** Longer than any JWT or API key the gateway issues. */
const MAX_CREDENTIAL_LENGTH = 4096;

/** Wrong key strings seen lately: a repeated bad key costs a map lookup, not an argon2 hash. */
const rejectedKeys = new Map<string, number>();
const REJECTED_KEY_TTL_MS = 60_000;

function rememberRejected(digest: string): void {
	if (rejectedKeys.size > 10_000) rejectedKeys.clear();
	rejectedKeys.set(digest, Date.now() + REJECTED_KEY_TTL_MS);
}

function recentlyRejected(digest: string): boolean {
	const until = rejectedKeys.get(digest);
	if (until === undefined) return false;
	if (until > Date.now()) return true;
	rejectedKeys.delete(digest);
	return false;
}

/** Secrets of ended keys seen lately (retired-keys.ts), with why: a client polling with one costs a map lookup. */
const endedKeys = new Map<string, { until: number; reason: RetiredReason }>();

function rememberEnded(digest: string, reason: RetiredReason): void {
	if (endedKeys.size > 10_000) endedKeys.clear();
	endedKeys.set(digest, { until: Date.now() + REJECTED_KEY_TTL_MS, reason });
}

function recentlyEnded(digest: string): RetiredReason | undefined {
	const ended = endedKeys.get(digest);
	if (ended === undefined) return undefined;
	if (ended.until > Date.now()) return ended.reason;
	endedKeys.delete(digest);
	return undefined;
}

/** A fresh error each time: Moleculer attaches the request's context to what an action throws. */
function endedKeyError(reason: RetiredReason): GatewayError {
	return reason === "rotated"
		? fail.credentialEnded("API key revoked: its secret was replaced by a rotation", "revoked")
		: fail.credentialEnded("The API key's user is disabled or deleted", "user_disabled");
}

/** Why a secret that verified once has ended since, or undefined if it never was one of ours. */
async function retiredReason(db: AuthThis["runtime"]["db"], prefix: string, key: string): Promise<RetiredReason | undefined> {
	for (const retired of await retiredWithPrefix(db, prefix)) {
		if (await verifySecret(retired.key_hash, key)) return retired.reason;
	}
	return undefined;
}

/** One check per key string at a time: first uses of one key at once share it (verifySecret is bounded per node). */
const keyChecksUnderWay = new Map<string, Promise<boolean>>();

function checkKey(digest: string, hash: string, key: string): Promise<boolean> {
	const underWay = keyChecksUnderWay.get(digest);
	if (underWay) return underWay;
	const shared = verifySecret(hash, key).finally(() => keyChecksUnderWay.delete(digest));
	keyChecksUnderWay.set(digest, shared);
	return shared;
}

async function issueSession(this: AuthThis, ctx: GatewayContext, userId: number, family: string) {
	const settings = this.runtime.config.jwt;
	const access = issueToken(settings, "access", userId, family);
	const refresh = issueToken(settings, "refresh", userId, family);
	return {
		row: {
			user_id: userId,
			family_id: family,
			token_hash: sha256(refresh.jti),
			expires_at: refresh.expiresAt,
			used_at: null,
			revoked_at: null,
			revoked_reason: null,
			created_ip: ctx.meta.clientIp?.slice(0, 64) ?? null,
			user_agent: ctx.meta.userAgent?.slice(0, 255) ?? null,
		},
		tokens: {
			access_token: access.token,
			refresh_token: refresh.token,
			token_type: "Bearer" as const,
			expires_in: settings.accessTtlSeconds,
		},
	};
}

/** Ends a login: its refresh tokens, and (on every node within a second) the access tokens it issued. */
async function revokeFamily(this: AuthThis, familyId: string, userId: number, reason: string): Promise<void> {
	await this.runtime.db.models.RefreshToken.update(
		{ revoked_at: new Date(), revoked_reason: reason },
		{ where: { family_id: familyId, revoked_at: null } },
	);
	await this.announce({ kind: "session", family: familyId, user_id: userId });
}

async function resolveApiKey(this: AuthThis, key: string): Promise<Principal> {
	const prefix = apiKeyPrefix(key);
	if (!prefix) throw fail.unauthorized("Invalid API key");
	const digest = sha256(key);
	if (recentlyRejected(digest)) throw fail.unauthorized("Invalid API key");
	const ended = recentlyEnded(digest);
	if (ended) throw endedKeyError(ended);
	const verified = this.cache.verifiedKeys.get(digest);
	let record = verified ? await this.apiKeyRecord(verified.keyId) : null;
	if (!record || !verified || record.key_hash !== verified.keyHash) {
		const row = await this.runtime.db.models.ApiKey.findOne({ where: { prefix }, attributes: ["id"], raw: true });
		record = row ? await this.apiKeyRecord(Number(row.id)) : null;
		if (!record || !(await checkKey(digest, record.key_hash, key))) {
			const retired = record ? undefined : await retiredReason(this.runtime.db, prefix, key);
			if (retired) {
				rememberEnded(digest, retired);
				throw endedKeyError(retired);
			}
			rememberRejected(digest);
			throw fail.unauthorized("Invalid API key");
		}
		this.cache.verifiedKeys.set(digest, { keyId: record.id, keyHash: record.key_hash });
	}
	if (record.state !== "active" || (record.expires_at !== null && record.expires_at <= Date.now())) {
		throw record.state === "revoked" ? fail.credentialEnded("API key revoked", "revoked") : fail.credentialEnded("API key expired", "expired");
	}
	const owner = await this.userPrincipal(record.user_id);
	if (!owner) throw fail.credentialEnded("The API key's user is disabled or deleted", "user_disabled");
	this.lastUsed.set(record.id, new Date());
	const principal = apiKeyPrincipal(record, owner);
	return record.expires_at !== null ? { ...principal, expires_at: record.expires_at } : principal;
}

async function resolveJwt(this: AuthThis, token: string): Promise<Principal> {
	let verified = this.cache.verifiedTokens.get(token);
	if (!verified) {
		try {
			const claims = verifyToken(this.runtime.config.jwt, token, "access");
			verified = { userId: claims.userId, family: claims.fam, expiresAtMs: claims.exp * 1000 };
		} catch (err) {
			throw err instanceof InvalidTokenError && err.reason === "expired" ? fail.credentialEnded("Token expired", "expired") : fail.unauthorized("Invalid token");
		}
		this.cache.verifiedTokens.set(token, verified);
	}
	if (verified.expiresAtMs <= Date.now()) throw fail.credentialEnded("Token expired", "expired");
	// The user first: disabling a user also ends its logins, and the client should learn why.
	const principal = await this.userPrincipal(verified.userId);
	if (!principal) throw fail.credentialEnded("User is disabled or deleted", "user_disabled");
	if (verified.family !== undefined && (await this.sessionEnded(verified.family))) throw fail.credentialEnded("Token revoked: its login was ended", "revoked");
	return { ...principal, expires_at: verified.expiresAtMs };
}

export const sessionActions: AuthActions = {
	actions: {
		login: {
			auth: false,
			rest: "POST /auth/login",
			params: { $$strict: true, username: USERNAME, password: { type: "string", min: 1, max: 256 } },
			async handler(this: AuthThis, ctx: GatewayContext<{ username: string; password: string }>) {
				const { username, password } = ctx.params;
				const ip = ctx.meta.clientIp ?? "unknown";
				const { state, db } = this.runtime;
				const gate = await checkLoginAllowed(state, username, ip);
				if (!gate.allowed) {
					metricsOf(this.broker).rateLimited.inc({ limit: "login" });
					if (gate.reason === "locked") await this.securityEvent("login_locked", { ip, details: { username } });
					const seconds = Math.max(1, Math.ceil(gate.retryAfterMs / 1000));
					throw new GatewayError(
						"RATE_LIMITED",
						gate.reason === "locked" ? "Too many failed logins; try again later" : "Too many login attempts; slow down",
						{ retry_after: seconds },
					);
				}
				if (gate.delayMs > 0) await sleep(gate.delayMs);

				// Exactly this name: MySQL's collation also matches accented and full-width spellings
				// ("ádmin"), each with a failure counter of its own, which would get around the lockout.
				const found = await db.models.User.findOne({ where: { username } });
				const user = found?.username === username ? found : null;
				// Same argon2 cost whether or not the user exists: timing does not tell.
				const passwordOk = await verifySecret(user?.password_hash ?? (await decoyHash()), password);
				if (!user || !passwordOk || !user.is_active) {
					const failures = await recordLoginFailure(state, username, ip);
					await this.securityEvent("login_failed", { userId: user?.id ?? null, ip, details: { username, failures } });
					throw fail.unauthorized("Invalid username or password");
				}
				await recordLoginSuccess(state, username);
				const session = await issueSession.call(this, ctx, user.id, newFamilyId());
				await db.models.RefreshToken.create(session.row);
				await user.update({ last_login_at: new Date() });
				const roles = (await rolesByUser(db, [user.id])).get(user.id) ?? [];
				return { ...session.tokens, user: userView(user, roles) };
			},
		},

		refresh: {
			auth: false,
			rest: "POST /auth/refresh",
			params: { $$strict: true, refresh_token: REFRESH_TOKEN },
			async handler(this: AuthThis, ctx: GatewayContext<{ refresh_token: string }>) {
				const { db } = this.runtime;
				let claims: ReturnType<typeof verifyToken>;
				try {
					claims = verifyToken(this.runtime.config.jwt, ctx.params.refresh_token, "refresh");
				} catch (err) {
					// An expired one says so (log in again), as access tokens do; anything else is not ours.
					if (err instanceof InvalidTokenError && err.reason === "expired") throw fail.credentialEnded("Refresh token expired", "expired");
					throw fail.unauthorized("Invalid refresh token");
				}
				const row = await db.models.RefreshToken.findOne({ where: { token_hash: sha256(claims.jti) } });
				if (!row || Number(row.user_id) !== claims.userId || row.family_id !== claims.fam) {
					throw fail.unauthorized("Invalid refresh token");
				}
				if (row.revoked_at) throw fail.credentialEnded("Refresh token revoked", "revoked");

				const result = await db.transaction(async (transaction) => {
					// Spend it: only one caller can flip used_at, so a token is good exactly once.
					const [spent] = await db.models.RefreshToken.update(
						{ used_at: new Date() },
						{ where: { id: row.id, used_at: null, revoked_at: null }, transaction },
					);
					if (spent !== 1) return null;
					const principal = await this.userPrincipal(claims.userId);
					if (!principal) throw fail.unauthorized("User is disabled or deleted");
					const session = await issueSession.call(this, ctx, claims.userId, row.family_id);
					await db.models.RefreshToken.create(session.row, { transaction });
					return session.tokens;
				});
				if (!result) {
					// Not spent by another refresh, but revoked meanwhile (a logout racing this refresh): no theft.
					const now = await db.models.RefreshToken.findByPk(row.id, { attributes: ["used_at", "revoked_at"], raw: true });
					if (now?.used_at === null && now.revoked_at !== null) throw fail.credentialEnded("Refresh token revoked", "revoked");
					// A spent token came back: someone holds a copy. End the whole login.
					await revokeFamily.call(this, row.family_id, claims.userId, "reuse");
					await this.securityEvent("refresh_token_reuse", {
						userId: claims.userId,
						ip: ctx.meta.clientIp ?? null,
						details: { family_id: row.family_id },
					});
					this.logger.warn(`Security: reuse of a spent refresh token for user ${claims.userId}; its token family is revoked`);
					throw fail.credentialEnded("Refresh token already used; this session is revoked", "revoked");
				}
				return result;
			},
		},

		logout: {
			auth: false,
			rest: "POST /auth/logout",
			params: { $$strict: true, refresh_token: REFRESH_TOKEN },
			async handler(this: AuthThis, ctx: GatewayContext<{ refresh_token: string }>) {
				let claims: ReturnType<typeof verifyToken>;
				try {
					// An expired refresh token still ends its login: the access token may outlive it (JWT_ACCESS_TTL > JWT_REFRESH_TTL).
					claims = verifyToken(this.runtime.config.jwt, ctx.params.refresh_token, "refresh", { ignoreExpiration: true });
				} catch {
					throw fail.unauthorized("Invalid refresh token");
				}
				const row = await this.runtime.db.models.RefreshToken.findOne({ where: { token_hash: sha256(claims.jti) } });
				if (!row || Number(row.user_id) !== claims.userId) throw fail.unauthorized("Invalid refresh token");
				await revokeFamily.call(this, row.family_id, claims.userId, "logout");
				respondWith(ctx, 204);
				return null;
			},
		},

		me: {
			rest: "GET /auth/me",
			params: { $$strict: true },
			handler(this: AuthThis, ctx: GatewayContext) {
				return principalView(principalOf(ctx));
			},
		},

		resolve: {
			visibility: "public",
			// No `max`: an over-long credential is a wrong one (401 on every channel), not malformed params (400).
			params: { credential: { type: "string", min: 1 } },
			async handler(this: AuthThis, ctx: GatewayContext<{ credential: string }>): Promise<Principal> {
				const { credential } = ctx.params;
				if (credential.length > MAX_CREDENTIAL_LENGTH) throw fail.unauthorized(looksLikeApiKey(credential) ? "Invalid API key" : "Invalid token");
				return looksLikeApiKey(credential) ? resolveApiKey.call(this, credential) : resolveJwt.call(this, credential);
			},
		},

		/**
		 * The principal a user or an API key acts as, without a credential (webhooks act for their
		 * owner); null when the user is gone or disabled, or the key revoked or expired.
		 */
		principalFor: {
			visibility: "public",
			params: {
				user_id: { type: "number", integer: true, positive: true, optional: true },
				api_key_id: { type: "number", integer: true, positive: true, optional: true },
			},
			async handler(this: AuthThis, ctx: GatewayContext<{ user_id?: number; api_key_id?: number }>): Promise<Principal | null> {
				const { user_id, api_key_id } = ctx.params;
				if (api_key_id !== undefined) {
					const record = await this.apiKeyRecord(api_key_id);
					if (!record || record.state !== "active" || (record.expires_at !== null && record.expires_at <= Date.now())) return null;
					const owner = await this.userPrincipal(record.user_id);
					return owner ? apiKeyPrincipal(record, owner) : null;
				}
				return user_id !== undefined ? this.userPrincipal(user_id) : null;
			},
		},

		can: {
			visibility: "public",
			params: { chat_id: { type: "number", integer: true, positive: true }, right: { type: "enum", values: [...RIGHTS] } },
			async handler(this: AuthThis, ctx: GatewayContext<{ chat_id: number; right: Right }>): Promise<boolean> {
				const principal = principalOf(ctx);
				return this.holdsRight(principal, ctx.params.chat_id, ctx.params.right);
			},
		},

		chatAccess: {
			visibility: "public",
			params: { right: { type: "enum", values: [...RIGHTS] } },
			async handler(this: AuthThis, ctx: GatewayContext<{ right: Right }>): Promise<{ all: boolean; chat_ids: number[] }> {
				const principal = principalOf(ctx);
				if (principal.is_admin) return { all: true, chat_ids: [] };
				return { all: false, chat_ids: chatsWith(await this.grantsOf(principal), ctx.params.right) };
			},
		},
	},
};
