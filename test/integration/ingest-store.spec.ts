/**
 * storeUpdates on a migrated database: seqs are reserved for a batch before its duplicates are
 * known, so the ones duplicates would have used must go back, leaving the log without a gap; and an
 * older update Telegram redelivers after newer ones never rolls a chat or a message back.
 */
import type { Database } from "../../lib/db/connection";
import { headSeq, readEvents } from "../../services/broker/event-log";
import { normalizeUpdate } from "../../services/ingest/normalize";
import { storeUpdates, type ChatCache, type IncomingUpdate } from "../../services/ingest/store";
import { insertBot, migratedDatabase } from "../support/database";

describe("storeUpdates", () => {
	let db: Database;
	let botId: number;
	const cache: ChatCache = new Map();

	beforeAll(async () => {
		db = await migratedDatabase();
		botId = (await insertBot(db)).id;
	});
	afterAll(() => db.close());

	function incoming(updateId: number): IncomingUpdate {
		const body = {
			update_id: updateId,
			message: { message_id: updateId, date: 1_700_000_000, chat: { id: 500, type: "private", first_name: "Ann" }, from: { id: 500, is_bot: false, first_name: "Ann" }, text: `m${updateId}` },
		};
		return { botId, update: normalizeUpdate(body), raw: JSON.stringify(body) };
	}

	const store = (ids: number[]) => storeUpdates(db, ids.map(incoming), cache);

	it("gives duplicates' seqs back: the log stays gap-free whatever mix a batch brings", async () => {
		expect((await store([1, 2])).duplicates).toEqual([false, false]);
		const mixed = await store([2, 3, 1, 4, 3]);
		expect(mixed.duplicates).toEqual([true, false, true, false, true]);
		expect(mixed.events.map((e) => [e.seq, e.message?.text])).toEqual([
			[3, "m3"],
			[4, "m4"],
		]);
		expect(await headSeq(db)).toBe(4);

		const repeated = await store([1, 4]);
		expect(repeated).toEqual({ duplicates: [true, true], events: [] });
		expect(await headSeq(db)).toBe(4);

		const [next] = (await store([5])).events;
		expect(next!.seq).toBe(5);
		const log = await readEvents(db, { afterSeq: 0, limit: 100 });
		expect(log.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
		expect(log.map((e) => e.message?.text)).toEqual(["m1", "m2", "m3", "m4", "m5"]);
	});

	it("runs a batch again after a lock conflict rolled it back, without the chat ids the failed attempt learned", async () => {
		const attempts: string[] = [];
		const failingOnce = (code: string): Database => ({
			...db,
			rawTransaction: (work) =>
				db.rawTransaction(async (t) => {
					const result = await work(t);
					attempts.push(code);
					// The whole attempt ran (its new chat cached), then the commit lost: as a MySQL deadlock victim.
					if (attempts.length === 1) throw Object.assign(new Error("Deadlock found when trying to get lock"), { code });
					return result;
				}),
		});
		const body = { update_id: 90, message: { message_id: 90, date: 1_700_000_000, chat: { id: 9_090, type: "group", title: "new" }, text: "retried" } };
		const item = { botId, update: normalizeUpdate(body), raw: JSON.stringify(body) };

		const result = await storeUpdates(failingOnce("ER_LOCK_DEADLOCK"), [item], cache);
		expect(attempts).toHaveLength(2);
		expect(result.duplicates).toEqual([false]);
		const chat = await db.models.Chat.findOne({ where: { bot_id: botId, telegram_id: 9_090 }, raw: true });
		expect(result.events[0]!.chat_id).toBe(chat!.id);
		expect(result.events[0]!.message?.text).toBe("retried");

		attempts.length = 0;
		const other = { ...item, update: normalizeUpdate({ ...body, update_id: 91 }) };
		await expect(storeUpdates(failingOnce("SQLITE_CONSTRAINT"), [other], cache)).rejects.toThrow("Deadlock");
		expect(attempts).toHaveLength(1);
	});

	it.each([8_640_000_000_001, 9_999_999_999_999, Number.MAX_SAFE_INTEGER])(
		"an update whose `date` no time can hold (%d) is stored with the messages of its batch (it stalled the bot's ingest for good)",
		async (date) => {
			const join = { update_id: 5_000 + (date % 1_000), chat_join_request: { chat: { id: -100_777, type: "supergroup", title: "Far future" }, from: { id: 600, is_bot: false, first_name: "Bo" }, user_chat_id: 600, date } };
			const batch = [{ botId, update: normalizeUpdate(join), raw: JSON.stringify(join) }, incoming(6_000 + (date % 1_000))];
			const result = await storeUpdates(db, batch, new Map());
			expect(result.duplicates).toEqual([false, false]);
			const chat = await db.models.Chat.findOne({ where: { bot_id: botId, telegram_id: -100_777 }, raw: true });
			expect(chat).toMatchObject({ title: "Far future" });
		},
	);

	it("a new update naming a message already stored keeps the stored one and reaches consumers as an `update` event, not a second new_message with the first one's content", async () => {
		const message = (updateId: number, content: Record<string, unknown>) => {
			const body = { update_id: updateId, message: { message_id: 77, date: 1_700_000_000, chat: { id: 950, type: "private", first_name: "Cy" }, ...content } };
			return { botId, update: normalizeUpdate(body), raw: JSON.stringify(body) };
		};
		const first = await storeUpdates(db, [message(8_001, { text: "first message" })], cache);
		expect(first.events.map((e) => [e.type, e.message?.text])).toEqual([["new_message", "first message"]]);
		const again = await storeUpdates(db, [message(8_002, { caption: "a photo", photo: [{ file_id: "PHOTO1", file_unique_id: "u1", width: 1, height: 1 }] })], cache);
		expect(again.duplicates).toEqual([false]);
		expect(again.events).toHaveLength(1);
		expect(again.events[0]).toMatchObject({ type: "update", update_kind: "message", update: { update_id: 8_002, message: { caption: "a photo" } } });
		expect(again.events[0]!.message).toBeUndefined();
		const stored = await db.models.Message.findAll({ where: { bot_id: botId, telegram_message_id: 77 }, raw: true });
		expect(stored.map((m) => m.text)).toEqual(["first message"]);
	});

	describe("updates redelivered out of order", () => {
		const GROUP = -100_555;
		const groupMessage = (updateId: number, messageId: number, date: number, title: string, edit?: { date: number; text: string }) => {
			const message = { message_id: messageId, date, chat: { id: GROUP, type: "supergroup", title }, text: edit?.text ?? title, ...(edit ? { edit_date: edit.date } : {}) };
			const body = { update_id: updateId, [edit ? "edited_message" : "message"]: message };
			return { botId, update: normalizeUpdate(body), raw: JSON.stringify(body) };
		};
		const title = async () => (await db.models.Chat.findOne({ where: { bot_id: botId, telegram_id: GROUP }, raw: true }))!.title;

		it("a chat keeps the details of its latest update: an older one does not roll them back, a newer one with the earlier details does", async () => {
			await storeUpdates(db, [groupMessage(1_002, 2, 1_790_000_002, "New name")], cache);
			await storeUpdates(db, [groupMessage(1_001, 1, 1_790_000_001, "Old name")], cache);
			expect(await title()).toBe("New name");
			// Renamed back later: the cache holds what the row holds, not what the older update offered.
			await storeUpdates(db, [groupMessage(1_003, 3, 1_790_000_003, "Old name")], cache);
			expect(await title()).toBe("Old name");
		});

		it("in one batch, the newest description of a chat is the one kept", async () => {
			await storeUpdates(db, [groupMessage(1_011, 11, 1_790_000_011, "Batch new"), groupMessage(1_010, 10, 1_790_000_010, "Batch old")], new Map());
			expect(await title()).toBe("Batch new");
		});

		it("an older edit after a newer one joins the history, and its event carries the message as stored (the newer text)", async () => {
			await storeUpdates(db, [groupMessage(1_020, 20, 1_790_000_020, "Batch new")], cache);
			await storeUpdates(db, [groupMessage(1_022, 20, 1_790_000_020, "Batch new", { date: 1_790_000_040, text: "v2" })], cache);
			const stale = await storeUpdates(db, [groupMessage(1_021, 20, 1_790_000_020, "Batch new", { date: 1_790_000_030, text: "v1" })], cache);
			const message = await db.models.Message.findOne({ where: { bot_id: botId, telegram_message_id: 20 }, raw: true });
			expect(message!.text).toBe("v2");
			const edits = await db.models.MessageEdit.findAll({ where: { message_id: message!.id }, order: [["edit_date", "ASC"]], raw: true });
			expect(edits.map((e) => e.text)).toEqual(["v1", "v2"]);
			expect(stale.events.map((e) => [e.type, e.message?.text])).toEqual([["edited_message", "v2"]]);
		});
	});
});
