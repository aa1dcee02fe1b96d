/**
 * Claiming due deliveries within an endpoint's max_concurrency, on a migrated SQLite database: rows
 * in flight count against the cap, except those this node already has an answer for (off the wire,
 * waiting for their outcome to be recorded).
 */
import { QueryTypes } from "sequelize";
import type { Database } from "../../lib/db/connection";
import { claimDeliveries, roomsFor, takeOldest, webhooksWithDueDeliveries } from "../../services/delivery/claims";
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
		const one = await claimDeliveries(db, request(5), "node-a", 30_000, { answeredHere: () => 1 });
		expect(one.map((c) => c.event_seq)).toEqual([3]);
		// Three in flight in the table now, one of them answered: the cap of 2 is full again.
		expect(await claimDeliveries(db, request(5), "node-a", 30_000, { answeredHere: () => 1 })).toEqual([]);
		const two = await claimDeliveries(db, request(5), "node-a", 30_000, { answeredHere: () => 3 });
		expect(two.map((c) => c.event_seq)).toEqual([4, 5]);
	});

	it("never counts more answered claims than there are rows in flight", async () => {
		await db.models.WebhookDelivery.update({ status: "pending", lease_owner: null, lease_until: null, next_attempt_at: new Date(Date.now() - 1_000) } as never, { where: { webhook_id: webhookId } });
		// A tally out of step with the table (say, outcomes already committed) cannot lift the cap.
		const claimed = await claimDeliveries(db, request(5), "node-a", 30_000, { answeredHere: () => 10 });
		expect(claimed.map((c) => c.event_seq)).toEqual([1, 2]);
	});
});

/**
 * A webhook's delivered history only grows; finding and claiming what is due must read the waiting
 * rows alone. The statements run are traced and their query plans checked, with a history in place.
 */
describe("claimDeliveries and webhooksWithDueDeliveries with a delivered history", () => {
	let db: Database;
	const traced: string[] = [];

	async function webhook(ordered = false): Promise<number> {
		const hook = await db.models.Webhook.create({ owner_user_id: null, owner_api_key_id: null, url: "https://example.com/hook", scope: "all", secret_ciphertext: "unused", key_id: "unused", ordered } as never);
		return Number(hook.id);
	}

	async function deliveries(webhookId: number, rows: Array<{ seq: number; status: string; chat?: number; dueInMs?: number }>): Promise<void> {
		await db.models.WebhookDelivery.bulkCreate(
			rows.map((r) => ({ webhook_id: webhookId, event_seq: r.seq, event_type: "new_message", chat_id: r.chat ?? 7, status: r.status, next_attempt_at: new Date(Date.now() + (r.dueInMs ?? -1_000)) })) as never,
		);
	}

	/** SQLite's own plan for a traced statement (its values already inlined), one line per step. */
	async function planOf(sql: string): Promise<string[]> {
		const rows = await db.sequelize.query<{ detail: string }>(`EXPLAIN QUERY PLAN ${sql}`, { type: QueryTypes.SELECT });
		return rows.map((r) => r.detail);
	}

	beforeAll(async () => {
		db = await migratedDatabase();
		const connections = (db.sequelize.connectionManager as unknown as { connections: Record<string, { on(event: "trace", listener: (sql: string) => void): void }> }).connections;
		await db.sequelize.query("SELECT 1");
		for (const connection of Object.values(connections)) connection.on("trace", (sql) => traced.push(sql));
	});
	afterAll(() => db.close());
	beforeEach(() => {
		traced.length = 0;
	});

	it("reads deliveries only through the status indexes: the delivered history stays out of every plan", async () => {
		const plain = await webhook();
		const ordered = await webhook(true);
		for (const id of [plain, ordered]) {
			await deliveries(id, Array.from({ length: 300 }, (_, i) => ({ seq: i + 1, status: "succeeded" })));
			await deliveries(id, [{ seq: 301, status: "pending" }, { seq: 302, status: "failed" }]);
		}
		expect(await webhooksWithDueDeliveries(db)).toEqual([plain, ordered]);
		const claimed = await claimDeliveries(db, [plain, ordered].map((id) => ({ id, ordered: id === ordered, count: 8, maxConcurrency: 8 })), "node-a", 30_000);
		expect(claimed.map((c) => [c.webhook_id, c.event_seq])).toEqual([[plain, 301], [plain, 302], [ordered, 301]]);

		const selects = traced.filter((sql) => /^\s*SELECT/i.test(sql) && /webhook_deliveries/.test(sql));
		expect(selects.length).toBeGreaterThanOrEqual(3);
		for (const sql of selects) {
			for (const step of (await planOf(sql)).filter((line) => /\b(d|p|webhook_deliveries)\b/.test(line) && /^(SEARCH|SCAN)/.test(line))) {
				// Every read of the table goes through an index whose lookup names the status.
				expect(step).toMatch(/^SEARCH .* USING (COVERING )?INDEX ix_webhook_deliveries_webhook_id_(status_next_attempt_at|chat_id_status_event_seq) \(webhook_id=\? AND (chat_id=\? AND )?status=\?/);
			}
		}
	});

	it("takes a webhook's oldest due events first across waiting, retried and abandoned claims", async () => {
		const id = await webhook();
		await deliveries(id, [
			{ seq: 10, status: "pending" },
			{ seq: 4, status: "failed" },
			{ seq: 2, status: "failed", dueInMs: 60_000 },
		]);
		// A claim whose node died: its lease ran out, so it is due again.
		await db.models.WebhookDelivery.create({ webhook_id: id, event_seq: 6, event_type: "new_message", chat_id: 7, status: "in_flight", lease_owner: "gone-node", lease_until: new Date(Date.now() - 1_000), next_attempt_at: new Date() } as never);
		const claimed = await claimDeliveries(db, [{ id, ordered: false, count: 2, maxConcurrency: 8 }], "node-a", 30_000);
		expect(claimed.map((c) => c.event_seq)).toEqual([4, 6]);
		expect((await claimDeliveries(db, [{ id, ordered: false, count: 8, maxConcurrency: 8 }], "node-a", 30_000)).map((c) => c.event_seq)).toEqual([10]);
	});

	it("claims for more webhooks than one statement holds", async () => {
		const ids: number[] = [];
		for (let i = 0; i < 120; i++) ids.push(await webhook());
		for (const id of ids) await deliveries(id, [{ seq: 1, status: "pending" }, { seq: 2, status: "pending" }]);
		const claimed = await claimDeliveries(db, ids.map((id) => ({ id, ordered: false, count: 1, maxConcurrency: 8 })), "node-a", 30_000);
		expect(claimed.map((c) => [c.webhook_id, c.event_seq])).toEqual(ids.map((id) => [id, 1]));
	});
});

describe("roomsFor and takeOldest", () => {
	const request = (id: number, count = 8) => ({ id, ordered: false, count, maxConcurrency: 8 });
	const row = (webhookId: number, seq: number, id = seq) => ({ id, webhook_id: webhookId, event_seq: seq, event_type: "new_message", chat_id: null, attempts: 0, schedule_base: 0 });

	it("room: the cap less every node's live claims, those answered here excepted, and never more than asked (a probe asks for one)", () => {
		const rooms = roomsFor([request(1), request(2), request(3), request(4, 1)], new Map([[1, 3], [2, 8], [3, 8]]), (id) => (id === 3 ? 2 : 0));
		expect([...rooms]).toEqual([[1, 5], [3, 2], [4, 1]]);
	});

	it("takes each webhook's oldest events up to its room, webhooks in the order asked, no more than the limit in all", () => {
		const found = [row(1, 9), row(1, 3), row(1, 5), row(2, 7), row(2, 2), row(3, 4)];
		const rooms = new Map([[1, 2], [2, 8], [3, 8]]);
		expect(takeOldest(found, rooms, [2, 1, 3], Infinity).map((r) => [r.webhook_id, r.event_seq])).toEqual([[2, 2], [2, 7], [1, 3], [1, 5], [3, 4]]);
		// A webhook with fewer due rows than its room leaves the rest of the limit to the next one.
		expect(takeOldest(found, rooms, [3, 2, 1], 3).map((r) => [r.webhook_id, r.event_seq])).toEqual([[3, 4], [2, 2], [2, 7]]);
	});
});

describe("claimDeliveries with a node limit", () => {
	let db: Database;
	afterAll(() => db.close());

	it("claims no more than the limit in all, endpoints in the order asked, and nothing with none", async () => {
		db = await migratedDatabase();
		const ids: number[] = [];
		for (let i = 0; i < 3; i++) {
			const hook = await db.models.Webhook.create({ owner_user_id: null, owner_api_key_id: null, url: "https://example.com/hook", scope: "all", secret_ciphertext: "unused", key_id: "unused" } as never);
			ids.push(Number(hook.id));
			await db.models.WebhookDelivery.bulkCreate(
				Array.from({ length: 5 }, (_, seq) => ({ webhook_id: hook.id, event_seq: seq + 1, event_type: "new_message", chat_id: null, status: "pending", next_attempt_at: new Date(Date.now() - 1_000) })) as never,
			);
		}
		const order = [ids[2]!, ids[0]!, ids[1]!];
		const asked = order.map((id) => ({ id, ordered: false, count: 8, maxConcurrency: 8 }));
		expect(await claimDeliveries(db, asked, "node-a", 30_000, { limit: 0 })).toEqual([]);
		const claimed = await claimDeliveries(db, asked, "node-a", 30_000, { limit: 7 });
		expect(order.map((id) => claimed.filter((c) => c.webhook_id === id).length)).toEqual([5, 2, 0]);
		// What the limit left behind is still due: nothing of it was taken.
		const rest = await claimDeliveries(db, asked, "node-a", 30_000);
		expect(order.map((id) => rest.filter((c) => c.webhook_id === id).length)).toEqual([0, 3, 5]);
	});
});
