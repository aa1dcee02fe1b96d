import { QueryTypes } from "sequelize";
import type { Database } from "../../lib/db/connection";
import { appendEvents, headSeq, readEvents } from "../../services/broker/event-log";
import { insertBot, insertChat, migratedDatabase, updateDraft as draft } from "../support/database";

describe("event log", () => {
	let db: Database;
	let botId: number;
	let chatA: number;
	let chatB: number;

	beforeAll(async () => {
		db = await migratedDatabase();
		botId = (await insertBot(db)).id;
		chatA = (await insertChat(db, botId, 1)).id;
		chatB = (await insertChat(db, botId, 2)).id;
	});
	afterAll(() => db.close());

	it("starts empty", async () => {
		expect(await headSeq(db)).toBe(0);
	});

	it("gives concurrent writers consecutive seqs with no gap and no repeat", async () => {
		const writes = Array.from({ length: 20 }, (_, i) =>
			db.transaction((t) => appendEvents(db, t, [draft(botId, i % 2 ? chatA : chatB, `a${i}`), draft(botId, chatA, `b${i}`)])),
		);
		const seqs = (await Promise.all(writes)).flat().map((e) => e.seq);
		expect([...seqs].sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
		expect(await headSeq(db)).toBe(40);
	});

	it("gives the seq back when the transaction rolls back", async () => {
		await expect(
			db.transaction(async (t) => {
				await appendEvents(db, t, [draft(botId, chatA, "lost")]);
				throw new Error("rollback");
			}),
		).rejects.toThrow("rollback");
		const [event] = await db.transaction((t) => appendEvents(db, t, [draft(botId, chatA, "kept")]));
		expect(event!.seq).toBe(41);
	});

	it("replays after a seq, in order, for one chat, some chats, a bot, or everything", async () => {
		const all = await readEvents(db, { afterSeq: 0, limit: 1000 });
		expect(all.map((e) => e.seq)).toEqual(Array.from({ length: 41 }, (_, i) => i + 1));
		expect(all[0]).toMatchObject({ type: "update", seq: 1, bot_id: botId, created_at: expect.any(String) });

		const onlyA = await readEvents(db, { afterSeq: 10, chatIds: [chatA], limit: 1000 });
		expect(onlyA.every((e) => e.chat_id === chatA && e.seq > 10)).toBe(true);
		expect(onlyA.map((e) => e.seq)).toEqual([...onlyA.map((e) => e.seq)].sort((a, b) => a - b));

		expect(await readEvents(db, { afterSeq: 0, chatIds: [], limit: 10 })).toEqual([]);
		expect((await readEvents(db, { afterSeq: 0, botId, limit: 5 })).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
		expect((await readEvents(db, { afterSeq: 3, untilSeq: 6, limit: 100 })).map((e) => e.seq)).toEqual([4, 5, 6]);
	});
});

/**
 * A replay of a bot's events for a reader of a few of its chats walks the chat index (SQLite has no
 * statistics, and took the bot's index: the bot's whole log for a few chats' events). Readers of
 * many chats, and replays of everything, are left to the planner. The same events either way.
 */
describe("event log replay for a reader of few or many chats", () => {
	let db: Database;
	let botId: number;
	let otherBotId: number;
	const chats: number[] = [];
	let fewReader: number;
	let manyReader: number;

	beforeAll(async () => {
		db = await migratedDatabase();
		botId = (await insertBot(db)).id;
		otherBotId = (await insertBot(db)).id;
		for (let i = 0; i < 40; i++) chats.push((await insertChat(db, botId, 10_000 + i)).id);
		const otherChat = (await insertChat(db, otherBotId, 20_000)).id;
		const user = (name: string) => db.models.User.create({ username: name, email: null, password_hash: "x", last_login_at: null });
		fewReader = (await user("few")).id;
		manyReader = (await user("many")).id;
		const grant = (userId: number, chatId: number) =>
			db.models.ChatPermission.create({ chat_id: chatId, user_id: userId, api_key_id: null, can_read: true, can_send: false, can_manage: false, granted_by_user_id: null });
		await grant(fewReader, chats[3]!);
		await grant(fewReader, chats[17]!);
		await grant(fewReader, otherChat);
		for (const chatId of chats.slice(0, 36)) await grant(manyReader, chatId);
		// 2,000 events over the bot's 40 chats, a few of the other bot's among them.
		for (let batch = 0; batch < 20; batch++) {
			await db.transaction((t) =>
				appendEvents(
					db,
					t,
					Array.from({ length: 100 }, (_, i) => (i === 50 ? draft(otherBotId, otherChat, "other") : draft(botId, chats[(batch * 100 + i) % 40]!, `e${batch}-${i}`))),
				),
			);
		}
	});
	afterAll(() => db.close());

	/** Every page of a replay, and the plan SQLite made for its first page. */
	async function replayed(query: { reader: number; botId?: number }) {
		const spy = jest.spyOn(db.sequelize, "query");
		const seqs: number[] = [];
		let after = 0;
		for (;;) {
			const page = await readEvents(db, { afterSeq: after, readableBy: { type: "user", id: query.reader }, ...(query.botId ? { botId: query.botId } : {}), limit: 100 });
			seqs.push(...page.map((e) => e.seq));
			if (page.length < 100) break;
			after = page.at(-1)!.seq;
		}
		const call = spy.mock.calls.find(([sql]) => String(sql).startsWith("SELECT payload"))!;
		spy.mockRestore();
		const { replacements } = call[1] as { replacements: Record<string, unknown> };
		const plan = await db.sequelize.query<{ detail: string }>(`EXPLAIN QUERY PLAN ${String(call[0])}`, { type: QueryTypes.SELECT, replacements });
		return { seqs, sql: String(call[0]), plan: plan.map((p) => p.detail).join("; ") };
	}

	/** The same events read the plain way: every event, filtered here. */
	async function expected(chatIds: number[], bot?: number) {
		const all = await readEvents(db, { afterSeq: 0, limit: 10_000 });
		return all.filter((e) => e.chat_id !== null && chatIds.includes(e.chat_id) && (bot === undefined || e.bot_id === bot)).map((e) => e.seq);
	}

	it("reads a reader of a few chats of a bot through the chat index, and only its chats' events", async () => {
		const { seqs, plan } = await replayed({ reader: fewReader, botId });
		expect(seqs).toEqual(await expected([chats[3]!, chats[17]!], botId));
		expect(seqs).toHaveLength(100);
		expect(plan).toContain("ix_events_chat_id_seq");
		expect(plan).not.toContain("ix_events_bot_id_seq");
	});

	it("reads a reader of many chats of a bot in seq order through the bot index", async () => {
		const { seqs, plan } = await replayed({ reader: manyReader, botId });
		expect(seqs).toEqual(await expected(chats.slice(0, 36), botId));
		expect(plan).toContain("ix_events_bot_id_seq");
		expect(plan).not.toContain("ix_events_chat_id_seq");
	});

	it("reads everything a reader may read, few chats or many, without steering the planner", async () => {
		const few = await replayed({ reader: fewReader });
		const otherChat = (await db.models.Chat.findOne({ where: { bot_id: otherBotId } }))!.id;
		expect(few.seqs).toEqual(await expected([chats[3]!, chats[17]!, otherChat]));
		expect(few.sql).not.toContain("+");
		const many = await replayed({ reader: manyReader });
		expect(many.seqs).toEqual(await expected(chats.slice(0, 36)));
		expect(many.sql).not.toContain("+");
	});

	it("reads an explicit list of a bot's chats through the chat index when it is short", async () => {
		const spy = jest.spyOn(db.sequelize, "query");
		const seqs = (await readEvents(db, { afterSeq: 0, chatIds: [chats[5]!], botId, limit: 1000 })).map((e) => e.seq);
		const sql = String(spy.mock.calls.find(([q]) => String(q).startsWith("SELECT payload"))![0]);
		spy.mockRestore();
		expect(seqs).toEqual(await expected([chats[5]!], botId));
		expect(sql).toContain("+bot_id = ");
	});
});
