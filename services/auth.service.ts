/**
 * auth: users, roles and permissions, JWT access/refresh tokens, API keys and the chat ACL.
 * `auth.resolve` turns any credential into a principal for every entry point (REST, socket.io,
 * WebSocket, gRPC); `auth.can` and `auth.chatAccess` answer the per-chat ACL for all of them.
 * Its actions come in four groups (services/auth/*-actions.ts); the shared lookups are below.
 * Old security events and spent refresh tokens are removed hourly (auth/retention.ts).
 */
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { fail } from "../lib/errors";
import { runtimeOf } from "../lib/runtime";
import { retentionMixin } from "../mixins/retention.mixin";
import { toDate } from "../lib/time";
import { apiKeyActions } from "./auth/api-key-actions";
import { parseScopes, keyState } from "./auth/api-keys";
import { AuthCache, rightsKey, type AuthChange, type KeyRecord } from "./auth/cache";
import type { AuthThis } from "./auth/context";
import { ensureFirstAdmin } from "./auth/first-admin";
import { grantActions } from "./auth/grant-actions";
import { allows, loadGrants, loadRightsOn, type Right } from "./auth/grants";
import { principalKey, type Principal } from "./auth/principal";
import { refreshTokensRetention, securityEventsRetention } from "./auth/retention";
import { retiredSecretsRetention } from "./auth/retired-keys";
import { sessionActions } from "./auth/session-actions";
import { userActions } from "./auth/user-actions";
import { loadUserPrincipal } from "./auth/users";

const LAST_USED_FLUSH_MS = 30_000;

const AuthService: ServiceSchema<ServiceSettingSchema, AuthThis> = {
	name: "auth",
	mixins: [sessionActions, userActions, apiKeyActions, grantActions, retentionMixin([securityEventsRetention, refreshTokensRetention, retiredSecretsRetention])],
	settings: { rest: "/" },

	events: {
		/** Any node changed a user, key or grant: forget what this node cached about it. */
		"auth.changed"(this: AuthThis, ctx: Context<AuthChange>) {
			this.cache.apply(ctx.params);
		},
	},

	methods: {
		userPrincipal(this: AuthThis, userId: number): Promise<Principal | null> {
			return this.cache.users.get(userId, () => loadUserPrincipal(this.runtime.db, userId, this.runtime.config.rateLimitDefault));
		},

		sessionEnded(this: AuthThis, family: string): Promise<boolean> {
			return this.cache.endedSessions.get(family, async () => {
				// A revoked row first (NULLs sort last descending on both databases). A login this database has
				// no record of has ended too: its token was signed before a restore from a backup, whose
				// reused user ids would otherwise let it act as another user.
				const row = await this.runtime.db.models.RefreshToken.findOne({ where: { family_id: family }, attributes: ["revoked_at"], order: [["revoked_at", "DESC"]], raw: true });
				return row === null || row.revoked_at !== null;
			});
		},

		apiKeyRecord(this: AuthThis, keyId: number): Promise<KeyRecord | null> {
			return this.cache.keys.get(keyId, async () => {
				const row = await this.runtime.db.models.ApiKey.findByPk(keyId, { raw: true });
				return row
					? {
							id: Number(row.id),
							user_id: Number(row.user_id),
							name: row.name,
							key_hash: row.key_hash,
							scopes: parseScopes(row.scopes),
							rate_limit: row.rate_limit,
							state: keyState(row),
							expires_at: toDate(row.expires_at)?.getTime() ?? null,
						}
					: null;
			});
		},

		grantsOf(this: AuthThis, principal: Principal) {
			return this.cache.grants.get(principalKey(principal), () => loadGrants(this.runtime.db, principal));
		},

		async holdsRight(this: AuthThis, principal: Principal, chatId: number, right: Right): Promise<boolean> {
			// Admins need no grant: no lookup.
			if (principal.is_admin) return true;
			const rights = await this.cache.rights.get(rightsKey(principal, chatId), () => loadRightsOn(this.runtime.db, principal, chatId));
			return allows(principal, rights, right);
		},

		async requireChatRight(this: AuthThis, principal: Principal, chatId: number, right: Right): Promise<void> {
			if (!(await this.holdsRight(principal, chatId, right))) {
				throw fail.forbidden(`Needs ${right} on chat ${chatId}`);
			}
		},

		async announce(this: AuthThis, change: AuthChange): Promise<void> {
			this.cache.apply(change);
			await this.broker.broadcast("auth.changed", change);
		},

		async securityEvent(this: AuthThis, type, fields): Promise<void> {
			await this.runtime.db.models.SecurityEvent.create({
				type,
				user_id: fields.userId ?? null,
				api_key_id: fields.apiKeyId ?? null,
				ip: fields.ip?.slice(0, 64) ?? null,
				details: fields.details === undefined ? null : JSON.stringify(fields.details),
			});
		},
	},

	created(this: AuthThis) {
		this.runtime = runtimeOf(this.broker);
		this.cache = new AuthCache();
		this.lastUsed = new Map();
	},

	async started(this: AuthThis) {
		const created = await ensureFirstAdmin(this.runtime.db, this.runtime.config.admin);
		if (created?.generatedPassword) {
			// Printed once, on the console only: it is never stored in clear anywhere.
			console.log(
				`\n  First admin created: username "${created.username}", password "${created.generatedPassword}"\n` +
					"  Change it after logging in; it will not be shown again.\n",
			);
		} else if (created) {
			this.logger.info(`First admin "${created.username}" created from ADMIN_PASSWORD`);
		}
		this.lastUsedTimer = setInterval(() => void flushLastUsed(this), LAST_USED_FLUSH_MS);
		this.lastUsedTimer.unref();
	},

	async stopped(this: AuthThis) {
		clearInterval(this.lastUsedTimer);
		await flushLastUsed(this);
	},
};

/** Writes the keys' last use in one pass instead of one UPDATE per authenticated request. */
async function flushLastUsed(service: AuthThis): Promise<void> {
	if (service.lastUsed.size === 0) return;
	const batch = [...service.lastUsed];
	service.lastUsed.clear();
	try {
		for (const [id, at] of batch) await service.runtime.db.models.ApiKey.update({ last_used_at: at }, { where: { id } });
	} catch (err) {
		service.logger.warn("Could not record API keys' last use:", (err as Error).message);
	}
}

export default AuthService;
