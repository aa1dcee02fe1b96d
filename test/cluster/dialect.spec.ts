/**
 * Where MariaDB/MySQL would otherwise answer differently from SQLite (the embedded default, which
 * most tests run on): rows matched by an UPDATE, users' emails compared exactly, and times to the
 * millisecond, business connection ids compared exactly (trailing spaces too).
 */
import type { Database } from "../../lib/db/connection";
import { migrateDown, migrateUp } from "../../lib/db/migrator";
import { insertRows, run } from "../../lib/db/raw";
import { appendEvents, headSeq } from "../../services/broker/event-log";
import { activeWebhooksNow, dispatchBatch, scheduleReplay } from "../../services/delivery/dispatcher";
import { ruleOf } from "../../services/delivery/views";
import { withinWebhookLimit } from "../../services/delivery/webhook-quota";
import { normalizeUpdate } from "../../services/ingest/normalize";
import { storeUpdates } from "../../services/ingest/store";
import { insertBot } from "../support/database";
import { migratedScratchDatabase } from "./support/cluster";

describe("MariaDB/MySQL answers as SQLite does", () => {
	const scratch = migratedScratchDatabase("tgw_dialect");
	let db: Database;
	beforeAll(() => {
		db = scratch.db;
	});

	it("an UPDATE that writes the values already there counts the rows it matched (a compare-and-set succeeded)", async () => {
		const same = await db.rawTransaction((t) => run(db, t, "UPDATE sequences SET value = value WHERE name = 'events'"));
		expect(same.changes).toBe(1);
		const none = await db.rawTransaction((t) => run(db, t, "UPDATE sequences SET value = value WHERE name = 'no such row'"));
		expect(none.changes).toBe(0);
	});

	const user = (username: string, email: string) => {
		const now = new Date();
		return db.models.User.create({ username, email, password_hash: "x", is_active: true, created_at: now, updated_at: now });
	};

	it("emails that differ only in accents or letter forms are two users (one under the default collation)", async () => {
		await user("jose", "jose@example.com");
		await user("jose2", "josé@example.com");
		await user("strasse", "strasse@example.com");
		await user("strasse2", "straße@example.com");
		await expect(user("jose3", "jose@example.com")).rejects.toThrow();
	});

	it("0013's down refuses while such emails exist, and leaves them stored", async () => {
		await expect(migrateDown(db, { to: "0012-message-update-lookups" })).rejects.toThrow(/differ only in accents/);
		expect(await db.models.User.count()).toBe(4 + (await db.models.User.count({ where: { username: "admin" } })));
		await migrateUp(db);
	});

	it("a webhook replay `since` a time starts at that millisecond, not at the start of its second", async () => {
		const early = new Date("2026-03-01T12:00:00.100Z");
		const late = new Date("2026-03-01T12:00:00.900Z");
		const event = (seq: number, at: Date) => [seq, "update", null, null, null, JSON.stringify({ type: "update", seq, bot_id: null, chat_id: null, created_at: at.toISOString() }), at];
		await db.rawTransaction((t) => insertRows(db, t, "events", ["seq", "type", "bot_id", "chat_id", "message_id", "payload", "created_at"], [event(901, early), event(902, late)]));
		const hook = await db.models.Webhook.create({ owner_user_id: null, owner_api_key_id: null, url: "https://example.com/h", scope: "all", secret_ciphertext: "x", key_id: "k" } as never);
		const audience = {
			rule: { id: Number(hook.id), scope: "all" as const, bot_id: null, chat_ids: null, reply_to_message_id: null, event_types: null, after_seq: null, created_at: new Date().toISOString() },
			access: { all: true, chats: new Set<number>() },
		};
		expect(await scheduleReplay(db, audience, { since: late }, 100)).toMatchObject({ scheduled: 1, last_seq: 902 });
	});

	it("an event stored on another node while a webhook is being created is the webhook's, and is dispatched to it", async () => {
		// The replay test's events were written past the counter: gone, so the log's order is the counter's.
		await db.sequelize.query("DELETE FROM events WHERE seq > 900");
		const draft = (text: string) => ({ type: "update" as const, bot_id: 1, chat_id: null, message_id: null, payload: () => ({ type: "update" as const, bot_id: 1, chat_id: null, update: { text } }) });
		const audiences = async () => ({
			active: await activeWebhooksNow(db),
			audiences: (await db.models.Webhook.findAll({ where: { is_active: true } })).map((row) => ({ rule: ruleOf(row), access: { all: true, chats: new Set<number>() } })),
		});
		await db.rawTransaction((t) => appendEvents(db, t, [draft("before")]));
		while ((await dispatchBatch(db, await audiences())).events > 0);
		let during: Promise<unknown> | undefined;
		const hook = await withinWebhookLimit(db, 0, 100, "webhooks", async (t) => {
			const afterSeq = await headSeq(db, t);
			// Another node stores an event and its dispatcher runs while this webhook is not yet committed.
			during = db.rawTransaction((t2) => appendEvents(db, t2, [draft("during")]));
			await new Promise((resolve) => setTimeout(resolve, 300));
			await dispatchBatch(db, await audiences());
			return db.models.Webhook.create({ owner_user_id: null, owner_api_key_id: null, url: "https://example.com/during", scope: "all", secret_ciphertext: "x", key_id: "k", after_seq: afterSeq } as never, { transaction: t });
		});
		await during;
		while ((await dispatchBatch(db, await audiences())).events > 0);
		const delivered = await db.models.WebhookDelivery.findAll({ where: { webhook_id: hook.id }, raw: true });
		expect(delivered.map((d) => d.event_seq)).toEqual([Number(hook.after_seq) + 1]);
	});

	it("business connection ids differing only in trailing spaces are two chats, and both updates are stored; 0016's down refuses while such chats exist", async () => {
		const bot = await insertBot(db);
		const businessMessage = (updateId: number, connection: string) => {
			const body = { update_id: updateId, business_message: { message_id: updateId, date: 1_790_000_000, business_connection_id: connection, chat: { id: 900, type: "private", first_name: "Ann" }, text: `via ${JSON.stringify(connection)}` } };
			return { botId: bot.id, update: normalizeUpdate(body), raw: JSON.stringify(body) };
		};
		await storeUpdates(db, [businessMessage(1, "BizConn")], new Map());
		// Under a padding collation this upserted onto the first chat's row and the batch failed for good.
		await storeUpdates(db, [businessMessage(2, "BizConn ")], new Map());
		const chats = await db.models.Chat.findAll({ where: { bot_id: bot.id }, order: [["id", "ASC"]], raw: true });
		expect(chats.map((c) => c.business_connection_id)).toEqual(["BizConn", "BizConn "]);
		expect(await db.models.Message.count({ where: { chat_id: chats.map((c) => c.id) } })).toBe(2);
		await expect(migrateDown(db, { step: 1 })).rejects.toThrow(/trailing spaces/);
		await db.models.Chat.destroy({ where: { bot_id: bot.id } });
		expect((await migrateDown(db, { step: 1 })).map((m) => m.name)).toEqual(["0016-mysql-exact-business-connections"]);
		await migrateUp(db);
	});
});
