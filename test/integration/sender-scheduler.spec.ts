/**
 * The senders' scan (services/bots/sender-scheduler.ts): every node scans the send queue every
 * second, and tries only the sender leases no other node holds (one read of their holders).
 */
import type { ServiceBroker } from "moleculer";
import type { Database } from "../../lib/db/connection";
import { LeaseRunner } from "../../lib/lease";
import { createMemoryState } from "../../lib/state/memory";
import type { TelegramClient } from "../../lib/telegram/client";
import { enqueueMessage } from "../../services/bots/outbox";
import { SenderScheduler } from "../../services/bots/sender-scheduler";
import { insertBot, insertChat, migratedDatabase } from "../support/database";
import { silentLogger } from "../support/harness";


describe("the senders' scan", () => {
	let db: Database;
	beforeAll(async () => {
		db = await migratedDatabase();
	});
	afterAll(() => db.close());

	it("tries the lease of each bot with due messages that no node holds, and not one another node sends for", async () => {
		const bots = await Promise.all([0, 1, 2].map(() => insertBot(db)));
		for (const [i, bot] of bots.entries()) {
			const chat = await insertChat(db, bot.id, 61_000 + i);
			await enqueueMessage(db, { chat_id: chat.id, text: `due ${i}`, sent_by: "user:1" });
		}
		const state = createMemoryState();
		expect(await state.acquireLease(`sender:bot:${bots[1]!.id}`, "another-node", 10_000)).toBe(true);
		const attempts: string[] = [];
		const acquire = state.acquireLease.bind(state);
		state.acquireLease = (key, owner, ttlMs) => {
			attempts.push(key);
			return acquire(key, owner, ttlMs);
		};
		const leases = new LeaseRunner(state, "this-node", { ttlMs: 10_000 });
		// The senders themselves stop at once here (the test bots' tokens do not decrypt): only the leases matter.
		const scheduler = new SenderScheduler({ db, config: { encryptionKeys: [] }, telegram: {} as TelegramClient, state, logger: silentLogger, leases, broker: {} as ServiceBroker });
		await scheduler.schedule();
		await scheduler.stopped();
		expect(attempts.sort()).toEqual([`sender:bot:${bots[0]!.id}`, `sender:bot:${bots[2]!.id}`].sort());
		// A kick names its bot: tried whoever holds it (the holder may have just let go).
		await scheduler.schedule([bots[1]!.id]);
		expect(attempts).toContain(`sender:bot:${bots[1]!.id}`);
		await scheduler.stopped();
		await state.close();
	});
});
