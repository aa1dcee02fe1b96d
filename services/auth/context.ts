/** The `this` of the auth service and of the action groups it is assembled from. */
import type { Service, ServiceSchema, ServiceSettingSchema } from "moleculer";
import type { Runtime } from "../../lib/runtime";
import type { AuthCache, AuthChange, KeyRecord } from "./cache";
import type { GrantMap, Right } from "./grants";
import type { Principal } from "./principal";

export interface AuthMethods {
	userPrincipal(userId: number): Promise<Principal | null>;
	apiKeyRecord(keyId: number): Promise<KeyRecord | null>;
	/** Whether a login's token family was revoked (logout, reuse, a new password). */
	sessionEnded(family: string): Promise<boolean>;
	/** All of the principal's grants: only where the whole list is needed (chatAccess). */
	grantsOf(principal: Principal): Promise<GrantMap>;
	/** auth.can's answer for one chat, from the principal's grant on that chat alone. */
	holdsRight(principal: Principal, chatId: number, right: Right): Promise<boolean>;
	requireChatRight(principal: Principal, chatId: number, right: Right): Promise<void>;
	/** Applies a change to this node's caches at once and tells every other node. */
	announce(change: AuthChange): Promise<void>;
	securityEvent(type: string, fields: { userId?: number | null; apiKeyId?: number | null; ip?: string | null; details?: unknown }): Promise<void>;
}

export interface AuthLocalVars {
	runtime: Runtime;
	cache: AuthCache;
	/** key id -> last use, flushed to api_keys.last_used_at in batches instead of a write per request. */
	lastUsed: Map<number, Date>;
	lastUsedTimer?: NodeJS.Timeout;
}

export type AuthThis = Service<ServiceSettingSchema> & AuthMethods & AuthLocalVars;

/** One group of the auth service's actions. */
export type AuthActions = Pick<ServiceSchema<ServiceSettingSchema, AuthThis>, "actions">;
