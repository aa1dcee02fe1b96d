/**
 * A message Telegram took, whose record the sending node could not write, is never sent again by
 * another node that takes the row over: the answer is in the shared state, where every sender looks
 * after claiming a row and before sending it. Two senders ("nodes") of one gateway's database and
 * shared state are run directly (drainBotQueue, each with deps of its own: owner, in-process answers,
 * send times); the gateway's own sender is stopped, so it takes no part. The double keeps Telegram's
 * flood limits (a 429 for a send too soon): the pacing must hold when the lease moves between nodes.
 */
import { QueryTypes } from "sequelize";
import type { Database } from "../../lib/db/connection";
import type { SharedState } from "../../lib/state";
import { SendTimes } from "../../services/bots/flood";
import { enqueueMessage } from "../../services/bots/outbox";
import { drainBotQueue, type SenderDeps } from "../../services/bots/sender";
import { userWrites } from "../support/chat-helpers";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

describe("sender handover: a message Telegram took is sent once, whichever node records it", () => {
	let t: TelegramGateway;
	let db: Database;
	const bots = new Map<string, { botId: number; chatId: number; telegramId: number }>();

	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "webhook", double: { floodLimits: true } });
		db = t.gw.runtime.db;
		for (const [index, username] of ["handover_bot", "recorded_bot", "blind_bot", "deleted_bot", "pacing_bot"].entries()) {
			const added = await t.addBot({ username });
			const telegramId = 8100 + index;
			const written = await userWrites(t, added.token, added.bot.id, { chat_id: telegramId, text: "hello" });
			bots.set(username, { botId: added.bot.id, chatId: written.chatId, telegramId });
		}
		// Only the senders of this test send from now on.
		await t.gw.broker.destroyService("bots");
	}, 60_000);
	afterAll(() => t.stop());

	const botWithChat = async (username: string) => bots.get(username)!;

	function node(owner: string, over: { db?: Database; state?: SharedState; telegram?: SenderDeps["telegram"] } = {}): SenderDeps & { settledIds: number[] } {
		const settledIds: number[] = [];
		return {
			db: over.db ?? db,
			keys: t.gw.config.encryptionKeys,
			telegram: over.telegram ?? t.gw.runtime.telegram,
			state: over.state ?? t.gw.runtime.state,
			logger: t.gw.broker.getLogger("sender-handover"),
			owner,
			sendTimes: new SendTimes(),
			known: new Map(),
			settledIds,
			settled: async (_events, settled) => {
				settledIds.push(...settled.map((s) => s.message_id));
			},
		};
	}

	/** The database as a node sees it whose every transaction fails once Telegram has `text` (its record and the bare fallback). */
	function databaseAwayAfterSending(text: string): Database {
		const away: Database = Object.create(db) as Database;
		away.transaction = ((work: Parameters<Database["transaction"]>[0]) =>
			sent(text).length > 0 ? Promise.reject(new Error("simulated: the record cannot be written")) : db.transaction(work)) as Database["transaction"];
		away.rawTransaction = ((work: Parameters<Database["rawTransaction"]>[0], options?: Parameters<Database["rawTransaction"]>[1]) =>
			sent(text).length > 0 ? Promise.reject(new Error("simulated: the record cannot be written")) : db.rawTransaction(work, options)) as Database["rawTransaction"];
		return away;
	}

	const sent = (text: string) => t.telegram.sent.filter((r) => r.method === "sendMessage" && r.params.text === text);
	const run = (deps: SenderDeps, botId: number, signal = new AbortController().signal) => drainBotQueue(deps, botId, signal);
	const message = (id: number) => db.models.Message.findByPk(id, { raw: true });
	const queued = (id: number) => db.models.OutboundQueueItem.findByPk(id, { raw: true });
	/** What happens 15 s after the node last renewed its claim, without waiting for it. */
	const claimRunsOut = (id: number) => db.models.OutboundQueueItem.update({ lease_until: new Date(Date.now() - 1) }, { where: { message_id: id } });

	/** Node A sends `text`; Telegram takes it; A cannot record it and gives up, leaving the row queued and claimed. */
	async function sentByNodeAThatGaveUp(chatId: number, botId: number, text: string): Promise<number> {
		const { message: queuedMessage } = await enqueueMessage(db, { chat_id: chatId, text, sent_by: "user:1" });
		const a = node("node-a", { db: databaseAwayAfterSending(text) });
		await expect(run(a, botId)).rejects.toThrow("simulated");
		expect(sent(text)).toHaveLength(1);
		expect(a.known.has(queuedMessage.id)).toBe(true);
		expect(await queued(queuedMessage.id)).toMatchObject({ lease_owner: "node-a" });
		expect(await message(queuedMessage.id)).toMatchObject({ status: "queued" });
		return queuedMessage.id;
	}

	it("node A's record fails after Telegram took the message; node B, claiming the row once A's claim ran out, records Telegram's answer and sends nothing", async () => {
		const { botId, chatId, telegramId } = await botWithChat("handover_bot");
		const text = "taken by Telegram, recorded by another node";
		const id = await sentByNodeAThatGaveUp(chatId, botId, text);
		await claimRunsOut(id);

		const b = node("node-b");
		await run(b, botId);
		const [record, ...again] = sent(text);
		expect(again).toHaveLength(0);
		expect(record!.chat_id).toBe(telegramId);
		expect(t.telegram.sent.filter((r) => r.chat_id === telegramId && r.method === "sendMessage")).toHaveLength(1);
		expect(await message(id)).toMatchObject({ status: "sent", telegram_message_id: record!.message_id });
		expect(await queued(id)).toBeNull();
		expect(b.settledIds).toEqual([id]);
		const [events] = await db.sequelize.query<{ n: number }>("SELECT COUNT(*) AS n FROM events WHERE type = 'outgoing_message' AND message_id = ?", { replacements: [id], type: QueryTypes.SELECT });
		expect(Number(events!.n)).toBe(1);
		// Recorded: the shared answer is dropped.
		expect(await t.gw.runtime.state.get(`sent:${id}`)).toBeNull();
	}, 30_000);

	it("a message sent and recorded at once leaves no answer behind in the shared state", async () => {
		const { botId, chatId } = await botWithChat("recorded_bot");
		const text = "recorded at once";
		const { message: queuedMessage } = await enqueueMessage(db, { chat_id: chatId, text, sent_by: "user:1" });
		await run(node("node-a"), botId);
		expect(sent(text)).toHaveLength(1);
		expect(await message(queuedMessage.id)).toMatchObject({ status: "sent", telegram_message_id: sent(text)[0]!.message_id });
		expect(await t.gw.runtime.state.get(`sent:${queuedMessage.id}`)).toBeNull();
	}, 30_000);

	it("while the shared state cannot be read, a claimed row is not sent (it stays queued); once it can, the message goes once", async () => {
		const { botId, chatId } = await botWithChat("blind_bot");
		const text = "not sent blind";
		const { message: queuedMessage } = await enqueueMessage(db, { chat_id: chatId, text, sent_by: "user:1" });
		const state = t.gw.runtime.state;
		const unreadable: SharedState = Object.create(state) as SharedState;
		unreadable.get = (key: string) => (key.startsWith("sent:") ? Promise.reject(new Error("simulated: Redis away")) : state.get(key));
		const stop = new AbortController();
		const blind = run(node("node-a", { state: unreadable }), botId, stop.signal);
		await new Promise((r) => setTimeout(r, 1_500));
		stop.abort();
		await blind;
		expect(sent(text)).toHaveLength(0);
		expect(await message(queuedMessage.id)).toMatchObject({ status: "queued" });

		await run(node("node-a"), botId);
		expect(sent(text)).toHaveLength(1);
		expect(await message(queuedMessage.id)).toMatchObject({ status: "sent", telegram_message_id: sent(text)[0]!.message_id });
	}, 30_000);

	it("a bot deleted after Telegram took a message whose record failed: another node records it as sent, not failed", async () => {
		const { botId, chatId } = await botWithChat("deleted_bot");
		const text = "taken before the bot was deleted";
		const id = await sentByNodeAThatGaveUp(chatId, botId, text);
		await db.models.Bot.update({ is_active: false }, { where: { id: botId } });
		await claimRunsOut(id);

		await run(node("node-b"), botId);
		expect(sent(text)).toHaveLength(1);
		expect(await message(id)).toMatchObject({ status: "sent", telegram_message_id: sent(text)[0]!.message_id });
		expect(await queued(id)).toBeNull();
	}, 30_000);

	it("pacing holds across the handover: a node whose sends reach Telegram 700 ms late hands the bot to a fast one, whose next send to the chat waits a second after Telegram answered the slow one's", async () => {
		const { botId, chatId, telegramId } = await botWithChat("pacing_bot");
		const texts = ["sent by the slow node", "sent by the fast node"];
		const ids: number[] = [];
		for (const text of texts) ids.push((await enqueueMessage(db, { chat_id: chatId, text, sent_by: "user:1" })).message.id);
		// Node A's requests take 700 ms to reach Telegram; it loses the sender lease once its first send is answered.
		const real = t.gw.runtime.telegram;
		const lost = new AbortController();
		const slow = Object.create(real) as SenderDeps["telegram"];
		slow.sendMessage = async (...args: Parameters<SenderDeps["telegram"]["sendMessage"]>) => {
			await new Promise((r) => setTimeout(r, 700));
			try {
				return await real.sendMessage(...args);
			} finally {
				lost.abort();
			}
		};
		await run(node("node-a", { telegram: slow }), botId, lost.signal);
		expect(sent(texts[0]!)).toHaveLength(1);
		await run(node("node-b"), botId);

		// No 429: Telegram never saw the fast node's send within a second of the slow one's.
		expect(t.telegram.floodRefusals.filter((r) => r.chat_id === telegramId)).toEqual([]);
		const records = texts.map((text) => sent(text));
		expect(records.map((r) => r.length)).toEqual([1, 1]);
		expect(records[1]![0]!.at - records[0]![0]!.at).toBeGreaterThanOrEqual(1_000);
		for (const [index, id] of ids.entries()) expect(await message(id)).toMatchObject({ status: "sent", telegram_message_id: records[index]![0]!.message_id });
	}, 30_000);
});
