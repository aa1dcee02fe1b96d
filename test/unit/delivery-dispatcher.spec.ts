/**
 * The dispatcher's step on a migrated SQLite database: events after the cursor become one delivery
 * per matching webhook, the cursor moves past them, and two steps racing from the same cursor (a
 * lease lost half-way) dispatch each event once; a step whose list of webhooks went stale (on this
 * node or in the database) is dropped.
 */
import { QueryTypes } from "sequelize";
import type { Database } from "../../lib/db/connection";
import { appendEvents, type Reader } from "../../services/broker/event-log";
import { activeWebhooksNow, dispatchBatch, scheduleReplay, type Audience, type AudienceList } from "../../services/delivery/dispatcher";
import { insertBot, insertChat, migratedDatabase, updateDraft as draft } from "../support/database";

const audience = (id: number, chatIds: number[]): Audience => ({
	rule: { id, scope: "chat", bot_id: null, chat_ids: chatIds, reply_to_message_id: null, event_types: null, after_seq: null, created_at: "1970-01-01T00:00:00.000Z" },
	access: { all: true, chats: new Set() },
});

describe("dispatchBatch", () => {
	let db: Database;
	let botId: number;
	let chatA: number;
	let chatB: number;

	const cursor = async () => {
		const [row] = await db.sequelize.query<{ value: number }>("SELECT value FROM sequences WHERE name = 'webhook_dispatch'", { type: QueryTypes.SELECT });
		return Number(row!.value);
	};
	const deliveries = async () =>
		(await db.models.WebhookDelivery.findAll({ attributes: ["webhook_id", "event_seq"], order: [["webhook_id", "ASC"], ["event_seq", "ASC"]], raw: true })).map(
			(d) => `${d.webhook_id}:${d.event_seq}`,
		);

	beforeAll(async () => {
		db = await migratedDatabase();
		botId = (await insertBot(db)).id;
		chatA = (await insertChat(db, botId, 1)).id;
		chatB = (await insertChat(db, botId, 2)).id;
		for (const id of [1, 2]) {
			await db.models.Webhook.create({ id, owner_user_id: null, owner_api_key_id: null, url: `https://example.com/${id}`, scope: "chat", secret_ciphertext: "x", key_id: "x" } as never);
		}
	});
	afterAll(() => db.close());

	/** The list as the delivery service builds it: which webhooks are active, read before the audiences. */
	const listOf = async (audiences: Audience[]): Promise<AudienceList> => ({ audiences, active: await activeWebhooksNow(db) });

	it("writes one delivery per matching webhook and moves the cursor to the last event read", async () => {
		await db.transaction((t) => appendEvents(db, t, [draft(botId, chatA, "1"), draft(botId, chatB, "2"), draft(botId, chatA, "3")]));
		const result = await dispatchBatch(db, await listOf([audience(1, [chatA]), audience(2, [chatA, chatB])]), 2);
		expect(result).toEqual({ events: 2, deliveries: 3, webhookIds: [1, 2] });
		expect(await deliveries()).toEqual(["1:1", "2:1", "2:2"]);
		expect(await cursor()).toBe(2);

		expect(await dispatchBatch(db, await listOf([audience(1, [chatA]), audience(2, [chatA, chatB])]), 2)).toMatchObject({ events: 1, deliveries: 2 });
		expect(await cursor()).toBe(3);
		expect(await dispatchBatch(db, await listOf([audience(1, [chatA])]), 2)).toEqual({ events: 0, deliveries: 0, webhookIds: [] });
	});

	it("moves the cursor past events nobody wants", async () => {
		await db.transaction((t) => appendEvents(db, t, [draft(botId, chatB, "4")]));
		expect(await dispatchBatch(db, await listOf([]), 10)).toEqual({ events: 1, deliveries: 0, webhookIds: [] });
		expect(await cursor()).toBe(4);
	});

	it("drops a step whose webhooks changed while it ran, and leaves its events for the next", async () => {
		await db.transaction((t) => appendEvents(db, t, [draft(botId, chatA, "5")]));
		expect(await dispatchBatch(db, await listOf([audience(1, [chatA])]), 10, () => false)).toEqual({ events: 0, deliveries: 0, webhookIds: [], stale: true });
		expect(await cursor()).toBe(4);
		expect(await deliveries()).toEqual(["1:1", "1:3", "2:1", "2:2", "2:3"]);
		expect(await dispatchBatch(db, await listOf([audience(1, [chatA])]), 10, () => true)).toMatchObject({ events: 1, deliveries: 1 });
		expect(await cursor()).toBe(5);
	});

	it("dispatches each event once when two steps start from the same cursor", async () => {
		await db.transaction((t) => appendEvents(db, t, [draft(botId, chatA, "6"), draft(botId, chatA, "7")]));
		const results = await Promise.all([dispatchBatch(db, await listOf([audience(1, [chatA])]), 10), dispatchBatch(db, await listOf([audience(1, [chatA])]), 10)]);
		expect(results.map((r) => r.deliveries).sort()).toEqual([0, 2]);
		expect(await deliveries()).toEqual(["1:1", "1:3", "1:5", "1:6", "1:7", "2:1", "2:2", "2:3"]);
		expect(await cursor()).toBe(7);
	});

	it("drops a step when the active webhooks in the database changed after the list was read, before any broadcast", async () => {
		const before = await listOf([audience(1, [chatA]), audience(2, [chatA, chatB])]);
		// Another node creates webhook 3; this node has not heard of it.
		await db.models.Webhook.create({ id: 3, owner_user_id: null, owner_api_key_id: null, url: "https://example.com/3", scope: "chat", secret_ciphertext: "x", key_id: "x" } as never);
		await db.transaction((t) => appendEvents(db, t, [draft(botId, chatA, "8")]));
		expect(await dispatchBatch(db, before, 10)).toEqual({ events: 0, deliveries: 0, webhookIds: [], stale: true });
		expect(await cursor()).toBe(7);
		const rebuilt = await listOf([audience(1, [chatA]), audience(2, [chatA, chatB]), audience(3, [chatA])]);
		expect(await dispatchBatch(db, rebuilt, 10)).toEqual({ events: 1, deliveries: 3, webhookIds: [1, 2, 3] });

		// Disabling one is a change too; so is enabling it again, and deleting it.
		await db.models.Webhook.update({ is_active: false }, { where: { id: 3 } });
		await db.transaction((t) => appendEvents(db, t, [draft(botId, chatA, "9")]));
		expect(await dispatchBatch(db, rebuilt, 10)).toMatchObject({ stale: true });
		const withoutThree = await listOf([audience(1, [chatA]), audience(2, [chatA, chatB])]);
		await db.models.Webhook.update({ is_active: true }, { where: { id: 3 } });
		expect(await dispatchBatch(db, withoutThree, 10)).toMatchObject({ stale: true });
		await db.models.Webhook.destroy({ where: { id: 3 } });
		expect(await dispatchBatch(db, withoutThree, 10)).toEqual({ events: 1, deliveries: 2, webhookIds: [1, 2] });
		expect(await cursor()).toBe(9);
	});

	it("replay: a cap reached inside the log's last page says complete: false, and where to go on from", async () => {
		const before = await db.models.WebhookDelivery.count({ where: { webhook_id: 2 } });
		const [head] = await db.sequelize.query<{ value: number }>("SELECT value FROM sequences WHERE name = 'events'", { type: QueryTypes.SELECT });
		const from = Number(head!.value);
		await db.transaction((t) => appendEvents(db, t, [draft(botId, chatB, "r1"), draft(botId, chatA, "r2"), draft(botId, chatB, "r3"), draft(botId, chatB, "r4")]));
		const chatBOnly = audience(2, [chatB]);
		// Three of the four match; the cap of 2 cuts the page (the log's last) short.
		expect(await scheduleReplay(db, chatBOnly, { afterSeq: from }, 2)).toEqual({ scheduled: 2, complete: false, last_seq: from + 3 });
		expect(await scheduleReplay(db, chatBOnly, { afterSeq: from + 3 }, 2)).toEqual({ scheduled: 1, complete: true, last_seq: from + 4 });
		expect(await scheduleReplay(db, chatBOnly, { afterSeq: from + 4 }, 2)).toEqual({ scheduled: 0, complete: true, last_seq: null });
		expect(await db.models.WebhookDelivery.count({ where: { webhook_id: 2 } })).toBe(before + 3);
	});

	it("replay: a call reads at most scanMax events, and says where the next goes on from, when none of them matched", async () => {
		const [head] = await db.sequelize.query<{ value: number }>("SELECT value FROM sequences WHERE name = 'events'", { type: QueryTypes.SELECT });
		const from = Number(head!.value);
		await db.transaction((t) => appendEvents(db, t, Array.from({ length: 2_500 }, (_, i) => draft(botId, chatB, `s${i}`))));
		const base = audience(2, [chatB]);
		// Only message events wanted: the log holds none after `from`, so every page is read and left.
		const messagesOnly: Audience = { ...base, rule: { ...base.rule, event_types: ["new_message"] } };
		expect(await scheduleReplay(db, messagesOnly, { afterSeq: from }, 100_000, undefined, 1_000)).toEqual({ scheduled: 0, complete: false, last_seq: from + 1_000 });
		expect(await scheduleReplay(db, messagesOnly, { afterSeq: from + 1_000 }, 100_000, undefined, 1_000)).toEqual({ scheduled: 0, complete: false, last_seq: from + 2_000 });
		expect(await scheduleReplay(db, messagesOnly, { afterSeq: from + 2_000 }, 100_000, undefined, 1_000)).toEqual({ scheduled: 0, complete: true, last_seq: null });
		// With every event wanted, the same budget still schedules what it read.
		expect(await scheduleReplay(db, base, { afterSeq: from }, 100_000, undefined, 1_000)).toEqual({ scheduled: 1_000, complete: false, last_seq: from + 1_000 });
	});
});

/**
 * A replay reads the webhook's part of the log through the log's (chat_id, seq) and (bot_id, seq)
 * indexes, never the whole log filtered here: a replay of a quiet chat costs what that chat holds,
 * however busy the rest of the gateway is.
 */
describe("scheduleReplay reads only the webhook's part of the log", () => {
	let db: Database;
	let bot1: number;
	let bot2: number;
	let quiet: number;
	let busy: number;
	let other: number;
	let rowsRead = 0;
	let nextWebhook = 100;

	beforeAll(async () => {
		db = await migratedDatabase();
		[bot1, bot2] = [(await insertBot(db)).id, (await insertBot(db)).id];
		[quiet, busy, other] = [(await insertChat(db, bot1, 1)).id, (await insertChat(db, bot1, 2)).id, (await insertChat(db, bot2, 3)).id];
		await db.transaction((t) => appendEvents(db, t, Array.from({ length: 2_500 }, (_, i) => draft(bot1, busy, `busy ${i}`))));
		await db.transaction((t) => appendEvents(db, t, [draft(bot1, quiet, "q"), draft(bot2, other, "o1"), draft(bot2, other, "o2"), draft(bot1, null, "no chat")]));
		// Every event row the replay reads from the log, counted as the database hands them over.
		const query = db.sequelize.query.bind(db.sequelize);
		jest.spyOn(db.sequelize, "query").mockImplementation((async (sql: string, options?: object) => {
			const result = await query(sql, options as never);
			if (/SELECT payload FROM events/.test(sql) && Array.isArray(result)) rowsRead += result.length;
			return result;
		}) as never);
	});
	afterAll(() => db.close());

	/** A replay from the start of the log for a new webhook: what it scheduled and how many event rows it read. */
	const replayOf = async (rule: Partial<Audience["rule"]>, access: Audience["access"], reader?: Reader) => {
		const id = ++nextWebhook;
		await db.models.Webhook.create({ id, owner_user_id: null, owner_api_key_id: null, url: `https://example.com/${id}`, scope: "all", secret_ciphertext: "x", key_id: "x" } as never);
		const base = { id, scope: "all" as const, bot_id: null, chat_ids: null, reply_to_message_id: null, event_types: null, after_seq: null, created_at: "1970-01-01T00:00:00.000Z" };
		rowsRead = 0;
		const result = await scheduleReplay(db, { rule: { ...base, ...rule }, access }, { afterSeq: 0 }, 100_000, reader);
		return { scheduled: result.scheduled, rowsRead };
	};
	const reads = (...chats: number[]) => ({ all: false, chats: new Set(chats) });

	it("chat scope: the webhook's chats that its owner may read, nothing else", async () => {
		expect(await replayOf({ scope: "chat", chat_ids: [quiet] }, reads(quiet))).toEqual({ scheduled: 1, rowsRead: 1 });
		expect(await replayOf({ scope: "chat", chat_ids: [quiet, busy] }, reads(quiet))).toEqual({ scheduled: 1, rowsRead: 1 });
		expect(await replayOf({ scope: "chat", chat_ids: [busy] }, reads(quiet))).toEqual({ scheduled: 0, rowsRead: 0 });
	});

	it("bot scope: that bot's events, of the chats its owner may read", async () => {
		expect(await replayOf({ scope: "bot", bot_id: bot2 }, { all: true, chats: new Set() })).toEqual({ scheduled: 2, rowsRead: 2 });
		expect(await replayOf({ scope: "bot", bot_id: bot1 }, reads(quiet, other))).toEqual({ scheduled: 1, rowsRead: 1 });
	});

	it("scope all: the chats its owner may read; only an admin's reads the whole log", async () => {
		expect(await replayOf({ scope: "all" }, reads(quiet, other))).toEqual({ scheduled: 3, rowsRead: 3 });
		expect(await replayOf({ scope: "all" }, reads())).toEqual({ scheduled: 0, rowsRead: 0 });
		expect(await replayOf({ scope: "all" }, { all: true, chats: new Set() })).toEqual({ scheduled: 2_504, rowsRead: 2_504 });
	});

	it("scope all and bot with the owner named: its grants are looked up by the query, not listed in it", async () => {
		const user = (await db.models.User.create({ username: `owner${nextWebhook}`, password_hash: "x", is_active: true } as never)).get("id") as number;
		await db.models.ChatPermission.create({ chat_id: quiet, user_id: user, api_key_id: null, can_read: true, can_send: false, can_manage: false } as never);
		await db.models.ChatPermission.create({ chat_id: other, user_id: user, api_key_id: null, can_read: false, can_send: true, can_manage: false } as never);
		const owner: Reader = { type: "user", id: user };
		// The access the audience was built with says quiet and other; the grants in the database, read by the query, only quiet.
		expect(await replayOf({ scope: "all" }, reads(quiet, other), owner)).toEqual({ scheduled: 1, rowsRead: 1 });
		expect(await replayOf({ scope: "bot", bot_id: bot2 }, reads(quiet, other), owner)).toEqual({ scheduled: 0, rowsRead: 0 });
		expect(await replayOf({ scope: "all" }, reads(), owner)).toEqual({ scheduled: 0, rowsRead: 0 });
	});
});
