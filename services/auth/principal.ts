/**
 * A principal is who is calling: a user (JWT), an API key, or the system (REPL, CLI, internal jobs).
 * It travels in ctx.meta.principal, so keep it small: ids, roles, permissions, scopes.
 */
export type PrincipalType = "user" | "api_key" | "system";

export interface Principal {
	type: PrincipalType;
	/** The user's id, the API key's id, or 0 for the system. */
	id: number;
	/** The user behind the principal (an API key's owner); 0 for the system. */
	user_id: number;
	username?: string;
	name?: string;
	roles: string[];
	permissions: string[];
	/** API keys only: the permissions the key was narrowed to (null: all of its owner's). */
	scopes?: string[] | null;
	/** Requests per second this principal may make. */
	rate_limit: number;
	/** Admins are not bound by chat grants. */
	is_admin: boolean;
	/** Epoch ms when the credential behind this principal stops being valid (token or key expiry). */
	expires_at?: number;
}

/** RATE_LIMIT_DEFAULT's default: requests per second for principals without a limit of their own. */
export const DEFAULT_RATE_LIMIT = 100;

/** Every permission of the catalogue (seeded by migration 0002). */
export const PERMISSIONS = [
	"users:read",
	"users:write",
	"apikeys:read",
	"apikeys:write",
	"bots:read",
	"bots:write",
	"chats:read",
	"chats:manage",
	"messages:read",
	"messages:send",
	"webhooks:read",
	"webhooks:write",
	"system:read",
] as const;
export type PermissionName = (typeof PERMISSIONS)[number];

export const ROLES = ["admin", "operator", "viewer"] as const;
export type RoleName = (typeof ROLES)[number];

export const SYSTEM_PRINCIPAL: Principal = Object.freeze({
	type: "system",
	id: 0,
	user_id: 0,
	name: "system",
	roles: ["admin"],
	permissions: [...PERMISSIONS],
	rate_limit: Number.MAX_SAFE_INTEGER,
	is_admin: true,
}) as Principal;

export function hasPermission(principal: Principal, permission: string): boolean {
	return principal.permissions.includes(permission);
}

export function userPrincipal(
	user: { id: number; username: string },
	roles: string[],
	permissions: string[],
	rateLimit = DEFAULT_RATE_LIMIT,
): Principal {
	return {
		type: "user",
		id: user.id,
		user_id: user.id,
		username: user.username,
		roles,
		permissions,
		rate_limit: rateLimit,
		is_admin: roles.includes("admin"),
	};
}

/**
 * A key can do what its owner can, narrowed to its scopes. It is bound by chat grants of its own,
 * unless it belongs to an admin and is not narrowed at all (then it acts as that admin).
 */
export function apiKeyPrincipal(
	key: { id: number; name: string; scopes: string[] | null; rate_limit: number | null },
	owner: Principal,
): Principal {
	const permissions = key.scopes ? owner.permissions.filter((p) => key.scopes!.includes(p)) : owner.permissions;
	return {
		type: "api_key",
		id: key.id,
		user_id: owner.id,
		name: key.name,
		roles: owner.roles,
		permissions,
		scopes: key.scopes,
		rate_limit: key.rate_limit ?? owner.rate_limit,
		is_admin: owner.is_admin && key.scopes === null,
	};
}

/**
 * What `target` may do that `holder` may not: permissions beyond the holder's, and acting as an
 * admin (past every chat grant) when only the target does. Empty when the holder covers it all.
 */
export function powersBeyond(holder: Pick<Principal, "permissions" | "is_admin">, target: Pick<Principal, "permissions" | "is_admin">): string[] {
	const beyond = target.permissions.filter((p) => !holder.permissions.includes(p));
	if (target.is_admin && !holder.is_admin) beyond.push("admin (an unscoped key of an admin)");
	return beyond;
}

/** A stable key for per-principal state (rate-limit buckets, caches). */
export function principalKey(principal: Pick<Principal, "type" | "id">): string {
	return `${principal.type}:${principal.id}`;
}

/** What GET /auth/me shows. */
export function principalView(principal: Principal) {
	return {
		type: principal.type,
		id: principal.id,
		...(principal.type === "api_key" ? { name: principal.name, user_id: principal.user_id } : { username: principal.username }),
		roles: principal.roles,
		permissions: principal.permissions,
		...(principal.type === "api_key" ? { scopes: principal.scopes ?? null, rate_limit: principal.rate_limit } : {}),
	};
}
