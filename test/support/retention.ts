/**
 * The delivery log retention scenario, run on SQLite (unit) and on MariaDB (cluster): deliveries of
 * every status and age, each with an attempt, and which of them a prune must keep.
 */
import { QueryTypes } from "sequelize";
import type { Database } from "../../lib/db/connection";
import { insertRows, run } from "../../lib/db/raw";

const DAY_MS = 24 * 60 * 60_000;

/** [status, created days ago, last changed days ago, kept by a 30-day retention] */
const ROWS: Array<[string, number, number, boolean]> = [
	["succeeded", 40, 40, false],
	["pending", 45, 45, true], // still to be made, however old
	["dead", 39, 39, false],
	["failed", 38, 38, true],
	["in_flight", 37, 37, true],
	["dead", 36, 3, true], // retried by hand three days ago: touched within the retention
	["succeeded", 35, 31, false],
	["succeeded", 5, 5, true], // the first one created after the cutoff: the scan stops here
	["dead", 2, 2, true],
];

export const RETENTION_DAYS = 30;

/** Creates a webhook with the scenario's deliveries; resolves with the ids a prune must keep, and all ids. */
export async function seedDeliveries(db: Database): Promise<{ webhookId: number; kept: number[]; all: number[] }> {
	const hook = await db.models.Webhook.create({
		owner_user_id: null,
		owner_api_key_id: null,
		url: "https://example.com/retention",
		scope: "all",
		secret_ciphertext: "unused",
		key_id: "unused",
		// Disabled: a running gateway's workers leave its old pending rows alone.
		is_active: false,
	} as never);
	const webhookId = Number(hook.id);
	const now = Date.now();
	const kept: number[] = [];
	const all: number[] = [];
	// One at a time, oldest first: ids follow creation, as they do when the dispatcher writes them.
	for (const [i, [status, created, updated, keep]] of ROWS.entries()) {
		const id = await db.rawTransaction(async (t) => {
			await insertRows(db, t, "webhook_deliveries", ["webhook_id", "event_seq", "event_type", "chat_id", "status", "attempts", "next_attempt_at", "created_at", "updated_at"], [
				[webhookId, i + 1, "new_message", null, status, 1, new Date(now - created * DAY_MS), new Date(now - created * DAY_MS), new Date(now - updated * DAY_MS)],
			]);
			const [row] = await db.sequelize.query<{ id: number }>("SELECT MAX(id) AS id FROM webhook_deliveries WHERE webhook_id = ?", {
				replacements: [webhookId],
				type: QueryTypes.SELECT,
				transaction: t,
			});
			const deliveryId = Number(row!.id);
			await run(db, t, "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms, status_code) VALUES (?, 1, ?, 5, 500)", [deliveryId, new Date(now - created * DAY_MS)]);
			return deliveryId;
		});
		all.push(id);
		if (keep) kept.push(id);
	}
	return { webhookId, kept, all };
}

/** The deliveries of `webhookId` still stored, and the deliveries their attempts belong to. */
export async function storedDeliveries(db: Database, webhookId: number): Promise<{ deliveries: number[]; attemptsOf: number[] }> {
	const deliveries = await db.sequelize.query<{ id: number }>("SELECT id FROM webhook_deliveries WHERE webhook_id = ? ORDER BY id", { replacements: [webhookId], type: QueryTypes.SELECT });
	const attempts = await db.sequelize.query<{ delivery_id: number }>(
		"SELECT a.delivery_id FROM webhook_attempts a WHERE a.delivery_id IN (SELECT id FROM webhook_deliveries WHERE webhook_id = ?) OR a.delivery_id NOT IN (SELECT id FROM webhook_deliveries) ORDER BY a.delivery_id",
		{ replacements: [webhookId], type: QueryTypes.SELECT },
	);
	return { deliveries: deliveries.map((r) => Number(r.id)), attemptsOf: attempts.map((r) => Number(r.delivery_id)) };
}
