/**
 * Who a webhook counts against, and how many active webhooks one user may have
 * (WEBHOOKS_PER_USER_MAX). Every active webhook is one more delivery of each event it matches, so
 * the cap bounds what one tenant can make the gateway send. A webhook made with an API key counts
 * against the key's user: keys are cheap to make, users are not.
 */
import { QueryTypes, type Transaction } from "sequelize";
import type { Webhook } from "../../lib/db/models";
import type { Database } from "../../lib/db/connection";
import { withinUserQuota } from "../../lib/db/user-quota";
import { GatewayError } from "../../lib/errors";

/** The user a webhook counts against; 0 for one the system made (no user, no cap). */
export type OwningUser = number;

type Owned = Pick<Webhook, "id" | "owner_user_id" | "owner_api_key_id">;

/**
 * Each webhook's owning user. `keyUsers` remembers the user of each API key looked up (a key never
 * changes hands), so a caller that asks every round looks each key up once.
 */
export async function owningUsersOf(db: Database, rows: Owned[], keyUsers: Map<number, number> = new Map()): Promise<Map<number, OwningUser>> {
	const unknownKeys = [...new Set(rows.map((r) => r.owner_api_key_id).filter((k): k is number => k !== null).map(Number))].filter((k) => !keyUsers.has(k));
	if (unknownKeys.length > 0) {
		const keys = await db.models.ApiKey.findAll({ where: { id: unknownKeys }, attributes: ["id", "user_id"], raw: true });
		for (const key of keys) keyUsers.set(Number(key.id), Number(key.user_id));
	}
	const owners = new Map<number, OwningUser>();
	for (const row of rows) {
		const user = row.owner_user_id !== null ? Number(row.owner_user_id) : row.owner_api_key_id !== null ? keyUsers.get(Number(row.owner_api_key_id)) : 0;
		owners.set(row.id, user ?? 0);
	}
	return owners;
}

/** Active webhooks counting against `userId`: its own and those of its API keys. */
export async function activeWebhooksOf(db: Database, userId: OwningUser, t?: Transaction): Promise<number> {
	const [row] = await db.sequelize.query<{ n: number | string }>(
		`SELECT COUNT(*) AS n FROM webhooks
		  WHERE is_active = :active AND (owner_user_id = :userId OR owner_api_key_id IN (SELECT id FROM api_keys WHERE user_id = :userId))`,
		{ replacements: { active: true, userId }, type: QueryTypes.SELECT, transaction: t },
	);
	return Number(row?.n ?? 0);
}

/** A user at its cap (a 409): its own class, so what switches webhooks on in bulk can tell it from a failure. */
export class WebhookLimitReached extends GatewayError {}

/** The 409 of a user at its cap; `field` is what the request asked for (a new webhook, or `is_active`). */
export function webhookLimitReached(limit: number, field: string): GatewayError {
	return new WebhookLimitReached("CONFLICT", `At most ${limit} active webhooks per user, its API keys' included (WEBHOOKS_PER_USER_MAX): delete or switch off one first`, {
		field,
		limit,
	});
}

/**
 * Runs `work` (which adds or switches on one of `userId`'s webhooks) only while the user is under
 * `limit` (lib/db/user-quota.ts: safe against racing requests on any nodes).
 */
export function withinWebhookLimit<T>(db: Database, userId: OwningUser, limit: number, field: string, work: (t: Transaction) => Promise<T>): Promise<T> {
	return withinUserQuota(db, { userId, limit, count: (t) => activeWebhooksOf(db, userId, t), refusal: () => webhookLimitReached(limit, field) }, work);
}
