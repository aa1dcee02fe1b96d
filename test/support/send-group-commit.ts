/**
 * A node sending for many bots writes its queue as group commits (outbox.ts, queue-claims.ts,
 * send-records.ts): sends that arrive together share a transaction, and each still gets exactly
 * what it would have got alone. Run on SQLite (test/integration) and on MariaDB (test/cluster).
 */
import { QueryTypes } from "sequelize";
import type { Database } from "../../lib/db/connection";
import type { OutboundQueueItem } from "../../lib/db/models";
import { enqueueMessage } from "../../services/bots/outbox";
import { claimRow } from "../../services/bots/queue-claims";
import { failures } from "../../services/bots/send-failure";
import { writeFailed, writeSent } from "../../services/bots/send-records";
import { insertBot, insertChat } from "./database";

/**
 * `database`: a migrated database, open before the tests run (a beforeAll of the caller's).
 * `openAnotherNode`: a second handle on the same store, as another node has (its own connections
 * and its own group commits).
 */
export function describeSendGroupCommits(name: string, database: () => Database, openAnotherNode: () => Promise<Database>): void {
	describe(name, () => {
		let db: Database;
		let botId: number;
		let nextTelegramChat = 7_000;
		/** Every transaction begun (queueing, claims, records). */
		let transactions = 0;

		beforeAll(async () => {
			db = database();
			botId = (await insertBot(db)).id;
			const rawTransaction = db.rawTransaction.bind(db);
			db.rawTransaction = ((work, options) => {
				transactions += 1;
				return rawTransaction(work, options);
			}) as Database["rawTransaction"];
			const transaction = db.transaction.bind(db);
			db.transaction = ((work) => {
				transactions += 1;
				return transaction(work);
			}) as Database["transaction"];
		});

		const newChat = async () => (await insertChat(db, botId, nextTelegramChat++)).id;
		const queueRow = async (messageId: number) => (await db.models.OutboundQueueItem.findByPk(messageId))!;
		const countWhere = async (sql: string, values: unknown[]) => Number((await db.sequelize.query<{ n: number }>(sql, { replacements: values, plain: true, type: QueryTypes.SELECT }))!.n);

		it("messages queued at once share transactions; each is its own row, with its own queue row", async () => {
			const chats = await Promise.all(Array.from({ length: 20 }, newChat));
			const before = transactions;
			const queued = await Promise.all(chats.map((chat, i) => enqueueMessage(db, { chat_id: chat, text: `together ${i}`, sent_by: "user:1" })));
			expect(transactions - before).toBeLessThan(20);
			expect(new Set(queued.map((q) => q.message.id)).size).toBe(20);
			for (const [i, { message, created }] of queued.entries()) {
				expect(created).toBe(true);
				expect(message).toMatchObject({ chat_id: chats[i], bot_id: botId, text: `together ${i}`, status: "queued", direction: "outgoing", seq: null });
				const row = await queueRow(message.id);
				expect(row).toMatchObject({ bot_id: botId, chat_kind: "private", attempts: 0, lease_owner: null });
				expect(JSON.parse(row.request)).toEqual({ chat_id: nextTelegramChat - 20 + i, text: `together ${i}` });
			}
		});

		it("a chat's cap holds for messages queued together: the ones past it are refused, 429, and nothing of them is stored", async () => {
			const chat = await newChat();
			const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => enqueueMessage(db, { chat_id: chat, text: `capped ${i}`, sent_by: "user:1" }, { perChat: 5, perBot: 1_000 })));
			const accepted = results.filter((r) => r.status === "fulfilled");
			const refused = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
			expect(accepted).toHaveLength(5);
			expect(refused).toHaveLength(7);
			for (const r of refused) expect(r.reason).toMatchObject({ code: 429, type: "RATE_LIMITED", data: { queue: "chat", limit: 5 } });
			expect(await countWhere("SELECT COUNT(*) AS n FROM messages WHERE chat_id = ?", [chat])).toBe(5);
			expect(await countWhere("SELECT COUNT(*) AS n FROM outbound_queue q JOIN messages m ON m.id = q.message_id WHERE m.chat_id = ?", [chat])).toBe(5);
		});

		it("two nodes queueing at once keep a chat's cap and a bot's: neither counts past what the other queued", async () => {
			const other = await openAnotherNode();
			try {
				const chat = await newChat();
				const bot = (await insertBot(db)).id;
				const botChats = await Promise.all(Array.from({ length: 24 }, (_, i) => insertChat(db, bot, 80_000 + i)));
				// Rounds of sends spread over both nodes, each node's arriving together (one or two batches each).
				const outcomes: Array<PromiseSettledResult<unknown>> = [];
				for (let round = 0; round < 3; round++) {
					outcomes.push(...(await Promise.allSettled(Array.from({ length: 16 }, (_, i) => enqueueMessage(i % 2 === 0 ? db : other, { chat_id: chat, text: `raced ${round}.${i}`, sent_by: "user:1" }, { perChat: 6, perBot: 1_000 })))));
					outcomes.push(...(await Promise.allSettled(botChats.map((c, i) => enqueueMessage(i % 2 === 0 ? db : other, { chat_id: c.id, text: `raced ${round}.${i}`, sent_by: "user:1" }, { perChat: 100, perBot: 10 })))));
				}
				// Refused for the cap and nothing else (a deadlock between the nodes is run again, not answered).
				const refusals = outcomes.filter((o): o is PromiseRejectedResult => o.status === "rejected").map((o) => (o.reason as { type?: string }).type);
				expect(refusals).toEqual(Array.from({ length: 3 * 16 - 6 + 3 * 24 - 10 }, () => "RATE_LIMITED"));
				expect(await countWhere("SELECT COUNT(*) AS n FROM messages WHERE chat_id = ?", [chat])).toBe(6);
				expect(await countWhere("SELECT COUNT(*) AS n FROM outbound_queue WHERE bot_id = ?", [bot])).toBe(10);
			} finally {
				await other.close();
			}
		});

		it("one client key sent twice at once queues one message, and both get it", async () => {
			const chat = await newChat();
			const [a, b] = await Promise.all([0, 1].map(() => enqueueMessage(db, { chat_id: chat, text: "once", sent_by: "user:1", client_key: "user:1:same-key" })));
			expect(a!.message.id).toBe(b!.message.id);
			expect([a!.created, b!.created].sort()).toEqual([false, true]);
			expect(await countWhere("SELECT COUNT(*) AS n FROM messages WHERE chat_id = ?", [chat])).toBe(1);
		});

		it("one row claimed by two senders at once is one sender's", async () => {
			const chat = await newChat();
			const { message } = await enqueueMessage(db, { chat_id: chat, text: "contested", sent_by: "user:1" });
			const taken = await Promise.all(["node-a", "node-b", "node-c"].map((owner) => claimRow(db, owner, message.id)));
			expect(taken.filter(Boolean)).toHaveLength(1);
			expect((await queueRow(message.id)).lease_owner).toBe(["node-a", "node-b", "node-c"][taken.indexOf(true)]);
		});

		it("outcomes recorded together: each message gets its own seq and one event, the queue rows go, and one recorded twice at once is recorded once", async () => {
			const chats = await Promise.all(Array.from({ length: 6 }, newChat));
			const ids = (await Promise.all(chats.map((chat, i) => enqueueMessage(db, { chat_id: chat, text: `outcome ${i}`, sent_by: "user:1" })))).map((q) => q.message.id);
			const rows: OutboundQueueItem[] = await Promise.all(ids.map(queueRow));
			const before = transactions;
			const [sentTwice, sentAgain, ...rest] = await Promise.all([
				writeSent(db, rows[0]!, { message_id: 900, date: 1_700_000_000, chat: { id: 1, type: "private" }, text: "outcome 0" } as never),
				writeSent(db, rows[0]!, { message_id: 900, date: 1_700_000_000, chat: { id: 1, type: "private" }, text: "outcome 0" } as never),
				...rows.slice(1, 5).map((row, i) => writeSent(db, row, { message_id: 901 + i, date: 1_700_000_000, chat: { id: 1, type: "private" }, text: `outcome ${i + 1}` } as never)),
				writeFailed(db, rows[5]!, failures.botDeleted()),
			]);
			expect(transactions - before).toBeLessThan(7);
			// The second record of the same message finds it recorded: no second event.
			expect([sentTwice, sentAgain].map((events) => events.length).sort()).toEqual([0, 1]);
			const events = [...sentTwice, ...sentAgain, ...rest.flatMap((e) => e ?? [])];
			expect(events).toHaveLength(6);
			expect(new Set(events.map((e) => e.seq)).size).toBe(6);
			for (const event of events) expect(event).toMatchObject({ type: "outgoing_message", bot_id: botId });
			const byId = new Map((await db.models.Message.findAll({ where: { id: ids }, raw: true })).map((m) => [Number(m.id), m]));
			const stored = ids.map((id) => byId.get(id)!);
			expect(stored.map((m) => m.status)).toEqual(["sent", "sent", "sent", "sent", "sent", "failed"]);
			expect(stored.map((m) => Number(m.telegram_message_id))).toEqual([900, 901, 902, 903, 904, 0]);
			for (const [i, m] of stored.entries()) expect(Number(m.seq)).toBe(events.find((e) => e.message?.id === ids[i])!.seq);
			expect(await countWhere(`SELECT COUNT(*) AS n FROM outbound_queue WHERE message_id IN (${ids.join(",")})`, [])).toBe(0);
			expect(await countWhere(`SELECT COUNT(*) AS n FROM events WHERE type = 'outgoing_message' AND message_id IN (${ids.join(",")})`, [])).toBe(6);
		});
	});
}
