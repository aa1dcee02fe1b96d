/**
 * storeUpdates on a migrated database: seqs are reserved for a batch before its duplicates are
 * known, so the ones duplicates would have used must go back, leaving the log without a gap.
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
});
