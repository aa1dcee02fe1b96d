/**
 * Claiming due deliveries within an endpoint's max_concurrency, on a migrated SQLite database: rows
 * in flight count against the cap, except those this node already has an answer for (off the wire,
 * waiting for their outcome to be recorded).
 */
import type { Database } from "../../lib/db/connection";
import { claimDeliveries } from "../../services/delivery/claims";
import { migratedDatabase } from "../support/database";

describe("claimDeliveries", () => {
	let db: Database;
	let webhookId: number;

	beforeAll(async () => {
		db = await migratedDatabase();
		const hook = await db.models.Webhook.create({
			owner_user_id: null,
			owner_api_key_id: null,
			url: "https://example.com/hook",
			scope: "all",
			secret_ciphertext: "unused",
			key_id: "unused",
		} as never);
		webhookId = Number(hook.id);
		await db.models.WebhookDelivery.bulkCreate(
			Array.from({ length: 6 }, (_, i) => ({
				webhook_id: webhookId,
				event_seq: i + 1,
				event_type: "new_message",
				chat_id: null,
				status: "pending" as const,
				next_attempt_at: new Date(Date.now() - 1_000),
			})) as never,
		);
	});
	afterAll(() => db.close());

	const request = (count: number) => [{ id: webhookId, ordered: false, count, maxConcurrency: 2 }];

	it("takes no more than the cap, oldest event first, and nothing while the cap is full", async () => {
		const first = await claimDeliveries(db, request(5), "node-a", 30_000);
		expect(first.map((c) => c.event_seq)).toEqual([1, 2]);
		expect(await claimDeliveries(db, request(5), "node-a", 30_000)).toEqual([]);
		expect(await claimDeliveries(db, request(5), "node-b", 30_000)).toEqual([]);
	});

	it("leaves room for the claims this node already has answers for, and no more", async () => {
		const one = await claimDeliveries(db, request(5), "node-a", 30_000, () => 1);
		expect(one.map((c) => c.event_seq)).toEqual([3]);
		// Three in flight in the table now, one of them answered: the cap of 2 is full again.
		expect(await claimDeliveries(db, request(5), "node-a", 30_000, () => 1)).toEqual([]);
		const two = await claimDeliveries(db, request(5), "node-a", 30_000, () => 3);
		expect(two.map((c) => c.event_seq)).toEqual([4, 5]);
	});

	it("never counts more answered claims than there are rows in flight", async () => {
		await db.models.WebhookDelivery.update({ status: "pending", lease_owner: null, lease_until: null, next_attempt_at: new Date(Date.now() - 1_000) } as never, { where: { webhook_id: webhookId } });
		// A tally out of step with the table (say, outcomes already committed) cannot lift the cap.
		const claimed = await claimDeliveries(db, request(5), "node-a", 30_000, () => 10);
		expect(claimed.map((c) => c.event_seq)).toEqual([1, 2]);
	});
});
