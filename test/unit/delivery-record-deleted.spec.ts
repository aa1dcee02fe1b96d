/**
 * Recording a batch of delivery outcomes while one of their webhooks is deleted: the deleted one's
 * delivery is gone (and its attempt row would fail the foreign key), the others are recorded. The
 * whole batch used to fail, and its other deliveries, unrecorded, were sent again at their lease's end.
 */
import type { Database } from "../../lib/db/connection";
import { claimDeliveries } from "../../services/delivery/claims";
import { recordOutcomes } from "../../services/delivery/outcomes";
import { migratedDatabase } from "../support/database";

describe("recording outcomes of a batch one of whose webhooks was deleted", () => {
	let db: Database;
	beforeAll(async () => {
		db = await migratedDatabase();
	});
	afterAll(() => db.close());

	it("records the other deliveries and leaves the removed one out", async () => {
		const hooks = [];
		for (const url of ["https://example.com/kept", "https://example.com/deleted"]) {
			const hook = await db.models.Webhook.create({ owner_user_id: null, owner_api_key_id: null, url, scope: "all", secret_ciphertext: "x", key_id: "x" } as never);
			await db.models.WebhookDelivery.create({ webhook_id: hook.id, event_seq: 1, event_type: "new_message", chat_id: null, status: "pending", next_attempt_at: new Date(Date.now() - 1_000) } as never);
			hooks.push(Number(hook.id));
		}
		const claimed = await claimDeliveries(db, hooks.map((id) => ({ id, ordered: false, count: 1, maxConcurrency: 1 })), "node-a", 30_000);
		expect(claimed).toHaveLength(2);
		// The owner deletes the second webhook while both attempts are under way.
		await db.models.WebhookDelivery.destroy({ where: { webhook_id: hooks[1] } });
		await db.models.Webhook.destroy({ where: { id: hooks[1] } });

		const result = { statusCode: 200, error: null, excerpt: null, durationMs: 5, retryAfterMs: null, startedAt: new Date() };
		await recordOutcomes(db, "node-a", claimed.map((delivery) => ({ delivery, result, verdict: "succeeded" as const, nextAttemptAt: null })));
		expect(await db.models.WebhookDelivery.findAll({ attributes: ["webhook_id", "status", "attempts"], raw: true })).toEqual([{ webhook_id: hooks[0], status: "succeeded", attempts: 1 }]);
		expect(await db.models.WebhookAttempt.count()).toBe(1);
	});
});
