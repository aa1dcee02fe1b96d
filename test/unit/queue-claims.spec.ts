/**
 * Claims on outbound queue rows (services/bots/queue-claims.ts), on a migrated SQLite database:
 * one sender at a time per row, its own claim taken again, an expired claim free for others.
 */
import type { Database } from "../../lib/db/connection";
import { enqueueMessage } from "../../services/bots/outbox";
import { claimRow, heldElsewhereFor, ROW_CLAIM_MS, whileClaimed } from "../../services/bots/queue-claims";
import { insertBot, insertChat, migratedDatabase } from "../support/database";

describe("outbound queue claims", () => {
	let db: Database;
	let messageId: number;
	const row = () => db.models.OutboundQueueItem.findByPk(messageId).then((r) => r!);

	beforeAll(async () => {
		db = await migratedDatabase();
		const bot = await insertBot(db);
		const chat = await insertChat(db, bot.id, 4_242);
		messageId = (await enqueueMessage(db, { chat_id: chat.id, text: "claimed", sent_by: "user:1" })).message.id;
	});
	afterAll(() => db.close());

	it("one sender holds a row; another is refused until the claim runs out; the holder may claim it again", async () => {
		expect(heldElsewhereFor(await row(), "node-b")).toBe(0);
		expect(await claimRow(db, "node-a", messageId)).toBe(true);
		expect(await claimRow(db, "node-b", messageId)).toBe(false);
		expect(await claimRow(db, "node-a", messageId)).toBe(true);
		const held = heldElsewhereFor(await row(), "node-b");
		expect(held).toBeGreaterThan(ROW_CLAIM_MS - 5_000);
		expect(held).toBeLessThanOrEqual(ROW_CLAIM_MS);
		expect(heldElsewhereFor(await row(), "node-a")).toBe(0);

		await db.models.OutboundQueueItem.update({ lease_until: new Date(Date.now() - 1) }, { where: { message_id: messageId } });
		expect(heldElsewhereFor(await row(), "node-b")).toBe(0);
		expect(await claimRow(db, "node-b", messageId)).toBe(true);
		expect((await row()).lease_owner).toBe("node-b");
	});

	it("a claim is renewed while its work runs", async () => {
		jest.useFakeTimers({ doNotFake: ["nextTick", "setImmediate"] });
		try {
			expect(await claimRow(db, "node-c", messageId).catch(() => false)).toBe(false); // node-b has it
			await db.models.OutboundQueueItem.update({ lease_owner: "node-c", lease_until: new Date(Date.now() + 1_000) }, { where: { message_id: messageId } });
			let finish!: () => void;
			const work = whileClaimed(db, "node-c", messageId, () => new Promise<void>((resolve) => (finish = resolve)));
			const before = new Date((await row()).lease_until!).getTime();
			await jest.advanceTimersByTimeAsync(5_000);
			// The renewal is a write through the serial writer: let it land.
			for (let i = 0; i < 50 && new Date((await row()).lease_until!).getTime() === before; i++) await new Promise((r) => setImmediate(r));
			expect(new Date((await row()).lease_until!).getTime()).toBeGreaterThan(before + 5_000);
			finish();
			await work;
		} finally {
			jest.useRealTimers();
		}
	});
});
