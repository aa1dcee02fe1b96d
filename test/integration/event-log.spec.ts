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
