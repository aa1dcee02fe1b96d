/**
 * API keys: POST/GET /apikeys, GET/DELETE /apikeys/:id, POST /apikeys/:id/rotate. A principal sees
 * and manages the keys of its own user; admins see all. A key never grants more than its creator.
 */
import { Op, type WhereOptions } from "sequelize";
import { fail } from "../../lib/errors";
import { principalOf, respondCreated, respondWith, type GatewayContext } from "../../lib/meta";
import { filteredList, pageParams } from "../../lib/paging";
import { apiKeyView, generateApiKey, parseScopes, type ApiKeyRow } from "./api-keys";
import { describeRights, loadGrants, rightsBeyond } from "./grants";
import { retireSecret } from "./retired-keys";
import { checkRotatable, keyLimitsFor, withinKeyQuota } from "./key-quota";
import { hashSecret } from "./passwords";
import { apiKeyPrincipal, PERMISSIONS, powersBeyond, type Principal } from "./principal";
import type { AuthActions, AuthThis } from "./context";
import type { ApiKey } from "../../lib/db/models";
import { ID } from "../../lib/validator";

interface CreateKeyParams {
	name: string;
	scopes?: string[];
	expires_at?: Date;
	rate_limit?: number;
	user_id?: number;
}

/** The key if the principal may see it; someone else's key is "not found", not "forbidden". */
async function ownKey(this: AuthThis, principal: Principal, id: number): Promise<ApiKey> {
	const key = await this.runtime.db.models.ApiKey.findByPk(id);
	if (!key || (!principal.is_admin && Number(key.user_id) !== principal.user_id)) throw fail.notFound("API key");
	return key;
}

/**
 * The key if the principal may rotate or revoke it: its own user's key (any key for an admin) that
 * can do nothing the principal cannot. A narrowed key would otherwise mint itself a wider one by
 * rotating it (and get its secret), or take its owner's keys away.
 */
async function manageableKey(this: AuthThis, principal: Principal, id: number): Promise<ApiKey> {
	const key = await ownKey.call(this, principal, id);
	const owner = await this.userPrincipal(Number(key.user_id));
	// A key whose owner is disabled or gone can do nothing: anyone who sees it may manage it.
	if (owner) {
		const target = apiKeyPrincipal({ id: key.id, name: key.name, scopes: parseScopes(key.scopes), rate_limit: key.rate_limit }, owner);
		const beyond = powersBeyond(principal, target);
		// A key also holds its lifetime and rate: an expiring or slower key may not take over one without those bounds.
		if (principal.type === "api_key") {
			const keyExpiry = key.expires_at ? new Date(key.expires_at).getTime() : null;
			if (principal.expires_at !== undefined && (keyExpiry === null || keyExpiry > principal.expires_at)) beyond.push("a later expiry");
			if (target.rate_limit > principal.rate_limit) beyond.push("a higher rate limit");
			// A key is bound by its own chat grants: a sibling's secret would carry the sibling's grants.
			if (!principal.is_admin) {
				const rights = rightsBeyond(await loadGrants(this.runtime.db, principal), await loadGrants(this.runtime.db, target));
				if (rights.length > 0) beyond.push(describeRights(rights));
			}
		}
		if (beyond.length > 0) throw fail.forbidden(`This key can do what you cannot (${beyond.join(", ")}): only a principal holding all of it may rotate or revoke it`);
	}
	return key;
}

/** Inserts a fresh secret for a key (new or rotated); retries the rare prefix collision. */
async function withFreshSecret<T>(work: (secret: { key: string; prefix: string; hash: string }) => Promise<T>): Promise<T> {
	for (let attempt = 0; ; attempt++) {
		const { key, prefix } = generateApiKey();
		try {
			return await work({ key, prefix, hash: await hashSecret(key) });
		} catch (err) {
			if ((err as Error).name !== "SequelizeUniqueConstraintError" || attempt >= 2) throw err;
		}
	}
}

export const apiKeyActions: AuthActions = {
	actions: {
		createApiKey: {
			rest: "POST /apikeys",
			conflict: "the user holds API_KEYS_PER_USER active keys",
			permission: "apikeys:write",
			retryPolicy: { enabled: false },
			params: {
				$$strict: true,
				name: { type: "string", trim: true, min: 1, max: 100 },
				scopes: { type: "array", items: { type: "enum", values: [...PERMISSIONS] }, unique: true, max: PERMISSIONS.length, optional: true },
				expires_at: { type: "date", convert: true, optional: true },
				rate_limit: { type: "number", integer: true, min: 1, max: 100_000, optional: true, convert: true },
				user_id: { ...ID, optional: true },
			},
			async handler(this: AuthThis, ctx: GatewayContext<CreateKeyParams>) {
				const principal = principalOf(ctx);
				const { name, expires_at, rate_limit } = ctx.params;
				const ownerId = ctx.params.user_id ?? principal.user_id;
				if (ownerId !== principal.user_id && !principal.is_admin) {
					throw fail.forbidden("Only admins create keys for other users");
				}
				const owner = await this.userPrincipal(ownerId);
				if (!owner) throw fail.validation([{ field: "user_id", message: "No active user with this id" }]);
				// A key never holds more than whoever creates it: a narrowed key makes keys as narrow.
				const scopes = ctx.params.scopes ?? (principal.type === "api_key" && principal.scopes ? principal.permissions : null);
				const excess = (scopes ?? []).filter((s) => !principal.permissions.includes(s));
				if (excess.length > 0) {
					throw fail.validation([{ field: "scopes", message: `Not permissions you hold: ${excess.join(", ")}` }]);
				}
				// Nor more than its owner: a scope the owner lacks would wake up if the owner were ever promoted.
				const notOwners = (scopes ?? []).filter((s) => !owner.permissions.includes(s));
				if (notOwners.length > 0) {
					throw fail.validation([{ field: "scopes", message: `Not permissions of user ${ownerId}: ${notOwners.join(", ")}` }]);
				}
				if (expires_at && expires_at.getTime() <= Date.now()) {
					throw fail.validation([{ field: "expires_at", message: "The 'expires_at' field must be in the future." }]);
				}
				const limits = keyLimitsFor(principal, expires_at?.getTime() ?? null, rate_limit ?? null);
				const { db, config } = this.runtime;
				const { row, key } = await withFreshSecret(async (secret) => ({
					key: secret.key,
					row: await withinKeyQuota(db, ownerId, config.apiKeysPerUser, (transaction) =>
						db.models.ApiKey.create(
							{
								user_id: ownerId,
								name,
								prefix: secret.prefix,
								key_hash: secret.hash,
								scopes: scopes ? JSON.stringify(scopes) : null,
								rate_limit: limits.rate_limit,
								expires_at: limits.expires_at === null ? null : new Date(limits.expires_at),
								revoked_at: null,
								last_used_at: null,
							},
							{ transaction },
						),
					),
				}));
				respondCreated(ctx, `/apikeys/${row.id}`);
				return { ...apiKeyView(row.get({ plain: true }) as ApiKeyRow), key };
			},
		},

		listApiKeys: {
			rest: "GET /apikeys",
			permission: "apikeys:read",
			params: { $$strict: true, ...pageParams, user_id: { ...ID, optional: true } },
			async handler(this: AuthThis, ctx: GatewayContext<{ limit?: number; cursor?: string; user_id?: number }>) {
				const principal = principalOf(ctx);
				const limit = ctx.params.limit ?? 50;
				const list = filteredList("apikeys", { user_id: ctx.params.user_id });
				const after = this.runtime.cursors.after(list, ctx.params.cursor);
				const where: WhereOptions = {};
				if (!principal.is_admin && ctx.params.user_id !== undefined && ctx.params.user_id !== principal.user_id) {
					throw fail.forbidden("Only admins list other users' keys");
				}
				if (!principal.is_admin) Object.assign(where, { user_id: principal.user_id });
				else if (ctx.params.user_id !== undefined) Object.assign(where, { user_id: ctx.params.user_id });
				if (after !== null) Object.assign(where, { id: { [Op.gt]: after } });
				const rows = await this.runtime.db.models.ApiKey.findAll({ where, order: [["id", "ASC"]], limit: limit + 1, raw: true });
				return this.runtime.cursors.page(list, rows as unknown as ApiKeyRow[], limit, (r) => r.id, (r) => apiKeyView(r, this.lastUsed.get(r.id)));
			},
		},

		getApiKey: {
			rest: "GET /apikeys/:id",
			permission: "apikeys:read",
			params: { $$strict: true, id: ID },
			async handler(this: AuthThis, ctx: GatewayContext<{ id: number }>) {
				const key = await ownKey.call(this, principalOf(ctx), ctx.params.id);
				return apiKeyView(key.get({ plain: true }) as ApiKeyRow, this.lastUsed.get(key.id));
			},
		},

		revokeApiKey: {
			rest: "DELETE /apikeys/:id",
			permission: "apikeys:write",
			params: { $$strict: true, id: ID },
			async handler(this: AuthThis, ctx: GatewayContext<{ id: number }>) {
				const principal = principalOf(ctx);
				const key = await manageableKey.call(this, principal, ctx.params.id);
				if (!key.revoked_at) await key.update({ revoked_at: new Date() });
				await this.announce({ kind: "api_key", id: key.id });
				await this.securityEvent("api_key_revoked", { userId: principal.user_id, apiKeyId: key.id, ip: ctx.meta.clientIp ?? null });
				respondWith(ctx, 204);
				return null;
			},
		},

		rotateApiKey: {
			rest: "POST /apikeys/:id/rotate",
			conflict: "the key is revoked or expired, or was rotated or revoked meanwhile",
			permission: "apikeys:write",
			retryPolicy: { enabled: false },
			params: { $$strict: true, id: ID },
			async handler(this: AuthThis, ctx: GatewayContext<{ id: number }>) {
				const principal = principalOf(ctx);
				const key = await manageableKey.call(this, principal, ctx.params.id);
				if (key.revoked_at) throw fail.conflict("A revoked key cannot be rotated");
				// Its new secret would be refused from the first request: say so instead of handing it out.
				if (key.expires_at && new Date(key.expires_at).getTime() <= Date.now()) throw fail.conflict("An expired key cannot be rotated: create a new one");
				checkRotatable(principal, key.rate_limit);
				const replaced = { prefix: key.prefix, key_hash: key.key_hash };
				const fresh = await withFreshSecret(async (secret) => {
					// Only over the secret read above: of rotations racing each other (or a revocation), one
					// wins and the others are refused, instead of each handing out a secret that a later one
					// overwrote (and that would then count as a guess).
					const [changed] = await this.runtime.db.models.ApiKey.update(
						{ prefix: secret.prefix, key_hash: secret.hash },
						{ where: { id: key.id, key_hash: replaced.key_hash, revoked_at: null } },
					);
					if (changed === 0) throw fail.conflict("The key was rotated or revoked meanwhile: read it again");
					return secret.key;
				});
				// As stored (updated_at moved with the new secret).
				await key.reload();
				// The old secret, presented again, is refused as ended rather than as a guess.
				await retireSecret(this.runtime.db, replaced, "rotated");
				await this.announce({ kind: "api_key", id: key.id });
				return { ...apiKeyView(key.get({ plain: true }) as ApiKeyRow), key: fresh };
			},
		},
	},
};
