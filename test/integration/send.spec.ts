/**
 * POST /chats/:id/messages through the Telegram double: 201 once Telegram accepted, 202 while queued,
 * validation and ACL refusals that queue nothing, Telegram's failures (429, HTML 502/503, chat not
 * found, bot blocked), Idempotency-Key, pacing within Telegram's flood limits, and a queue that survives
 * a restart of the gateway. Sends of unknown outcome: send-at-most-once.spec.ts; how failures are told:
 * send-failures.spec.ts.
 */
import { rmSync } from "node:fs";
import { QueryTypes } from "sequelize";
import { ADMIN_PASSWORD, createUser, errorFields, expectApiError, loginAction, type TestUser } from "../support/auth";
import { rowCounts, sentWithText, userWrites, waitForEvent, waitForStatus, ISO, type MessageBody } from "../support/chat-helpers";
import { http, startTestGateway, tempDir, type TestGateway } from "../support/harness";
import { pause } from "../../services/bots/flood";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

type Body = Record<string, unknown>;

function sender(t: TelegramGateway) {
	return (chatId: number, body: Body, token?: string, headers?: Record<string, string>) =>
		t.api<MessageBody>("POST", `/chats/${chatId}/messages`, body, token, headers);
}

/** A fresh private chat of `bot`: the double's user writes first, so the gateway knows the chat. */
function chatMaker(t: TelegramGateway, first: number) {
	let next = first;
	return async (bot: { id: number; token: string }) => {
		next += 1;
		const written = await userWrites(t, bot.token, bot.id, { chat_id: next, text: `hello from ${next}` });
		return { chatId: written.chatId, telegramId: next, incoming: written.message };
	};
}


/** Whether a transaction is a send's record (send-records.ts) being written: other work (claims, ingest, deliveries) is left alone. */
const isRecordWrite = () => /services[\\/]bots[\\/]send-records\.ts/.test(new Error().stack ?? "");

describe("sending: webhook mode", () => {
	let t: TelegramGateway;
	let bot: { id: number; token: string; telegramId: number };
	let operator: TestUser;
	let send: ReturnType<typeof sender>;
	let newChat: ReturnType<typeof chatMaker>;

	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "webhook" });
		const added = await t.addBot({ username: "sender_bot" });
		bot = { id: added.bot.id, token: added.token, telegramId: added.bot.telegram_id };
		operator = await createUser(t.gw, t.adminToken, ["operator"]);
		send = sender(t);
		newChat = chatMaker(t, 3000);
	}, 60_000);
	afterEach(() => t.telegram.clearFaults());
	afterAll(() => t.stop());

	const sendCalls = () => t.telegram.calls.sendMessage ?? 0;
	const grant = async (chatId: number, body: Body) => expect([200, 201]).toContain((await t.api("PUT", `/chats/${chatId}/permissions`, body)).status);

	it("201 with the stored message and its Location once Telegram accepted it; an outgoing_message event follows", async () => {
		const { chatId, telegramId, incoming } = await newChat(bot);
		const res = await send(chatId, { text: "<b>Hello</b> there", parse_mode: "HTML" });
		expect(res.status).toBe(201);
		expect(res.headers.get("location")).toBe(`/api/v1/messages/${res.body.id}`);
		const [record, ...more] = sentWithText(t, "<b>Hello</b> there");
		expect(more).toHaveLength(0);
		expect(record!.params).toMatchObject({ chat_id: telegramId, text: "<b>Hello</b> there", parse_mode: "HTML" });
		expect(res.body).toMatchObject({
			id: expect.any(Number),
			chat_id: chatId,
			bot_id: bot.id,
			direction: "outgoing",
			status: "sent",
			telegram_message_id: record!.message_id,
			text: record!.message.text,
			entities: record!.message.entities,
			date: new Date(record!.message.date * 1000).toISOString(),
		});
		expect(res.body.date).toMatch(ISO);
		expect(res.body.seq).toBeGreaterThan(incoming.seq!);

		const event = await waitForEvent(t, (e) => e.type === "outgoing_message" && e.message?.id === res.body.id);
		expect(event).toMatchObject({ seq: res.body.seq, bot_id: bot.id, chat_id: chatId, message: { status: "sent", telegram_message_id: record!.message_id } });
		expect(event.seq).toBeGreaterThan(incoming.seq!);
		expect((await t.api<MessageBody>("GET", `/messages/${res.body.id}`)).body).toEqual(res.body);
		const history = await t.api<{ data: MessageBody[] }>("GET", `/chats/${chatId}/messages`);
		expect(history.body.data.map((m) => [m.id, m.direction])).toEqual([
			[res.body.id, "outgoing"],
			[incoming.id, "incoming"],
		]);
		expect(await t.gw.runtime.db.models.OutboundQueueItem.count({ where: { message_id: res.body.id } })).toBe(0);
	});

	it("reply_to_message_id goes to Telegram as reply_parameters, disable_notification as it is", async () => {
		const { chatId, incoming } = await newChat(bot);
		const res = await send(chatId, { text: "a reply", reply_to_message_id: incoming.telegram_message_id, disable_notification: true });
		expect(res.status).toBe(201);
		expect(res.body).toMatchObject({ status: "sent", reply_to_message_id: incoming.telegram_message_id });
		const [record] = sentWithText(t, "a reply");
		expect(record!.params.reply_parameters).toMatchObject({ message_id: incoming.telegram_message_id });
		expect(record!.params.disable_notification).toBe(true);
		expect(record!.message.reply_to_message).toMatchObject({ message_id: incoming.telegram_message_id });
	});

	it("an outgoing message names the bot as its sender, as Telegram's answer does", async () => {
		const { chatId } = await newChat(bot);
		const res = await send(chatId, { text: "who sent this?" });
		expect(res.status).toBe(201);
		const [record] = sentWithText(t, "who sent this?");
		expect(record!.message.from).toMatchObject({ id: bot.telegramId, is_bot: true, username: "sender_bot" });
		const stored = await t.api<MessageBody>("GET", `/messages/${res.body.id}`);
		expect(stored.body.from).toEqual({ telegram_id: bot.telegramId, username: "sender_bot", first_name: record!.message.from!.first_name, last_name: null, is_bot: true });
	});

	it("a malformed Idempotency-Key is 400 BAD_REQUEST, and nothing is queued", async () => {
		const { chatId } = await newChat(bot);
		const before = await rowCounts(t);
		const calls = sendCalls();
		expect(expectApiError(await send(chatId, { text: "bad key" }, undefined, { "idempotency-key": "has spaces in it" }), 400, "BAD_REQUEST").details).toEqual({ header: "Idempotency-Key" });
		expectApiError(await send(chatId, { text: "bad key" }, undefined, { "idempotency-key": "k".repeat(65) }), 400, "BAD_REQUEST");
		expect(await rowCounts(t)).toEqual(before);
		expect(sendCalls()).toBe(calls);
	});

	it.each([
		["no text", {}, "text"],
		["an empty text", { text: "" }, "text"],
		["a text longer than 4096", { text: "x".repeat(4097) }, "text"],
		["a bad parse_mode", { text: "hi", parse_mode: "html5" }, "parse_mode"],
		["an unknown field", { text: "hi", colour: "red" }, "colour"],
		["a text that is not a string", { text: 42 }, "text"],
		["a negative reply_to_message_id", { text: "hi", reply_to_message_id: -3 }, "reply_to_message_id"],
		["a text of blanks only", { text: " \n\t " }, "text"],
		["a reply_to_message_id in an array", { text: "hi", reply_to_message_id: [5] }, "reply_to_message_id"],
		["a reply_to_message_id that is true", { text: "hi", reply_to_message_id: true }, "reply_to_message_id"],
		["a reply_to_message_id past 2^53", { text: "hi", reply_to_message_id: 2 ** 53 + 2 }, "reply_to_message_id"],
		["a reply_to_message_id of 1e300", { text: "hi", reply_to_message_id: 1e300 }, "reply_to_message_id"],
	])("%s is 400 VALIDATION_ERROR naming the field, and nothing is queued", async (_name, body, field) => {
		const { chatId } = await newChat(bot);
		const before = await rowCounts(t);
		const calls = sendCalls();
		const res = await send(chatId, body);
		expectApiError(res, 400, "VALIDATION_ERROR");
		expect(errorFields(res)).toContain(field);
		expect(await rowCounts(t)).toEqual(before);
		expect(sendCalls()).toBe(calls);
	});

	it("a text of exactly 4096 characters is sent", async () => {
		const { chatId } = await newChat(bot);
		const res = await send(chatId, { text: "y".repeat(4096) });
		expect(res.status).toBe(201);
		expect(sentWithText(t, "y".repeat(4096))).toHaveLength(1);
	});

	it("without can_send it is 403 and nothing is queued; a viewer is 403 even with can_send; an unknown chat is 404", async () => {
		const { chatId } = await newChat(bot);
		const viewer = await createUser(t.gw, t.adminToken, ["viewer"]);
		await grant(chatId, { user_id: operator.id, can_read: true });
		await grant(chatId, { user_id: viewer.id, can_read: true, can_send: true });
		const before = await rowCounts(t);
		const calls = sendCalls();
		expectApiError(await send(chatId, { text: "not allowed" }, operator.token), 403, "FORBIDDEN");
		expectApiError(await send(chatId, { text: "not allowed" }, viewer.token), 403, "FORBIDDEN");
		expectApiError(await send(987_654, { text: "nowhere" }), 404, "NOT_FOUND");
		expect(await rowCounts(t)).toEqual(before);
		expect(sendCalls()).toBe(calls);

		await grant(chatId, { user_id: operator.id, can_read: true, can_send: true });
		const allowed = await send(chatId, { text: "now allowed" }, operator.token);
		expect(allowed.status).toBe(201);
		expect(sentWithText(t, "now allowed")).toHaveLength(1);
	});

	it("with can_send alone, the sender follows its own message's Location, and nobody else's message in the chat; without can_send, not even its own", async () => {
		const { chatId } = await newChat(bot);
		const other = await createUser(t.gw, t.adminToken, ["operator"]);
		await grant(chatId, { user_id: operator.id, can_read: false, can_send: true });
		await grant(chatId, { user_id: other.id, can_read: false, can_send: true });
		const own = await send(chatId, { text: "send-only" }, operator.token);
		expect(own.status).toBe(201);
		const location = own.headers.get("location")!.replace("/api/v1", "");
		expect((await t.api<MessageBody>("GET", location, undefined, operator.token)).body).toMatchObject({ id: own.body.id, status: "sent" });
		expectApiError(await t.api("GET", location, undefined, other.token), 403, "FORBIDDEN");
		expectApiError(await t.api("GET", `/chats/${chatId}/messages`, undefined, operator.token), 403, "FORBIDDEN");
		await grant(chatId, { user_id: operator.id, can_read: false, can_send: false });
		expectApiError(await t.api("GET", location, undefined, operator.token), 403, "FORBIDDEN");
	});

	it("when Telegram takes longer than 5 s: 202 with status queued, then the message is sent", async () => {
		const { chatId } = await newChat(bot);
		t.telegram.failNext("sendMessage", { delayMs: 7000 });
		const res = await send(chatId, { text: "slow telegram" });
		expect(res.status).toBe(202);
		expect(res.body).toMatchObject({ id: expect.any(Number), chat_id: chatId, direction: "outgoing", status: "queued", telegram_message_id: null });
		expect(res.headers.get("location")).toBe(`/api/v1/messages/${res.body.id}`);
		const sent = await waitForStatus(t, res.body.id, "sent", 15_000);
		expect(sent.telegram_message_id).toBe(sentWithText(t, "slow telegram")[0]!.message_id);
		expect(sentWithText(t, "slow telegram")).toHaveLength(1);
	}, 30_000);

	it("a 429 storm: every retry_after is honoured, then the message is sent once", async () => {
		const { chatId } = await newChat(bot);
		const client = t.gw.runtime.telegram;
		const original = client.sendMessage.bind(client);
		const calls: Array<{ start: number; end: number; code?: number }> = [];
		const spy = jest.spyOn(client, "sendMessage").mockImplementation(async (token, params, options) => {
			const start = Date.now();
			try {
				const result = await original(token, params, options);
				calls.push({ start, end: Date.now() });
				return result;
			} catch (err) {
				calls.push({ start, end: Date.now(), code: (err as { errorCode?: number }).errorCode });
				throw err;
			}
		});
		try {
			t.telegram.failNext("sendMessage", { status: 429, retry_after: 1 }, 3);
			const res = await send(chatId, { text: "after the storm" });
			expect([201, 202]).toContain(res.status);
			await waitForStatus(t, res.body.id, "sent", 15_000);
		} finally {
			spy.mockRestore();
		}
		expect(calls.map((c) => c.code ?? 200)).toEqual([429, 429, 429, 200]);
		for (let i = 1; i < calls.length; i++) expect(calls[i]!.start - calls[i - 1]!.end).toBeGreaterThanOrEqual(990);
		const [record, ...more] = sentWithText(t, "after the storm");
		expect(more).toHaveLength(0);
		expect(record!.at - calls[2]!.end).toBeGreaterThanOrEqual(990);
	}, 30_000);

	it.each([["an nginx 502 then 503 (HTML bodies: the Bot API behind it was not reached)", [{ status: 502 as const }, { status: 503 as const }]]])("%s: retried, then sent once", async (_name, faults) => {
		const { chatId } = await newChat(bot);
		for (const fault of faults) t.telegram.failNext("sendMessage", fault);
		const calls = sendCalls();
		const text = `retried after ${faults.map((f) => f.status).join("+")}`;
		const res = await send(chatId, { text });
		expect([201, 202]).toContain(res.status);
		const sent = await waitForStatus(t, res.body.id, "sent", 20_000);
		expect(sentWithText(t, text)).toHaveLength(1);
		expect(sent.telegram_message_id).toBe(sentWithText(t, text)[0]!.message_id);
		expect(sendCalls() - calls).toBe(3);
	}, 30_000);

	it.each([
		["a deadlock, then the database away", ["deadlock", "unreachable"]],
		["a COMMIT that landed but whose answer was lost", ["commit lost"]],
	] as const)("recording a message Telegram took fails (%s): the record is tried again, once on record, and the message is not sent again", async (_name, faults) => {
		const { chatId } = await newChat(bot);
		const text = `sent while the database stumbles: ${faults.join(", ")}`;
		const { db } = t.gw.runtime;
		const original = db.rawTransaction.bind(db);
		const pending = [...faults];
		const failure = (fault: (typeof faults)[number]) =>
			fault === "deadlock"
				? Object.assign(new Error("Deadlock found when trying to get lock"), { name: "SequelizeDatabaseError", parent: { code: "ER_LOCK_DEADLOCK" } })
				: Object.assign(new Error("connect ECONNREFUSED"), { name: "SequelizeConnectionRefusedError" });
		// Only transactions that start once Telegram has the message fail: recording it, not queueing it.
		const spy = jest.spyOn(db, "rawTransaction").mockImplementation(((work: Parameters<typeof db.rawTransaction>[0], options?: Parameters<typeof db.rawTransaction>[1]) => {
			const fault = sentWithText(t, text).length > 0 && isRecordWrite() ? pending.shift() : undefined;
			if (fault === undefined) return original(work, options);
			if (fault === "commit lost") return original(work, options).then(() => Promise.reject(failure(fault)));
			return Promise.reject(failure(fault));
		}) as typeof db.rawTransaction);
		let messageId: number;
		try {
			const res = await send(chatId, { text });
			expect([201, 202]).toContain(res.status);
			messageId = res.body.id;
			const sent = await waitForStatus(t, messageId, "sent", 15_000);
			expect(pending).toHaveLength(0);
			expect(sent.telegram_message_id).toBe(sentWithText(t, text)[0]!.message_id);
		} finally {
			spy.mockRestore();
		}
		// Another scan of the queue finds nothing left to send, and the message has one event.
		await new Promise((resolve) => setTimeout(resolve, 1_500));
		expect(sentWithText(t, text)).toHaveLength(1);
		const [row] = await db.sequelize.query<{ n: number }>("SELECT COUNT(*) AS n FROM events WHERE type = 'outgoing_message' AND message_id = ?", { replacements: [messageId], type: QueryTypes.SELECT });
		expect(Number(row!.n)).toBe(1);
	}, 30_000);

	it("a message another sender holds (a node whose lease lapsed mid-send) is left to it, and holds back its chat's later messages; once that claim runs out, both go out once, in order", async () => {
		const { chatId } = await newChat(bot);
		const [first, second] = ["held by another sender", "queued after it"];
		const { db, state } = t.gw.runtime;
		const queue = db.models.OutboundQueueItem;
		// The bot paused for a second (as after a 429): the first message is queued, then made another
		// sender's for 1.5 s, before this node's sender may claim it.
		await pause(state, bot.id, 1);
		const firstAnswer = send(chatId, { text: first });
		let firstRow: { message_id: number } | undefined;
		await t.telegram.waitFor(async () => {
			firstRow = (await queue.findAll({ where: { bot_id: bot.id }, raw: true })).find((row) => (JSON.parse(row.request) as { text: string }).text === first);
			return firstRow !== undefined;
		}, 5_000, 10);
		const elsewhereUntil = Date.now() + 1_500;
		await queue.update({ lease_owner: "another-node", lease_until: new Date(elsewhereUntil) }, { where: { message_id: firstRow!.message_id } });
		const answers = await Promise.all([firstAnswer, send(chatId, { text: second })]);
		for (const res of answers) expect([201, 202]).toContain(res.status);
		for (const res of answers) await waitForStatus(t, res.body.id, "sent", 15_000);
		const records = [first, second].map((text) => sentWithText(t, text));
		expect(records.map((r) => r.length)).toEqual([1, 1]);
		expect(records[0]![0]!.at).toBeGreaterThanOrEqual(elsewhereUntil);
		expect(records[1]![0]!.at).toBeGreaterThanOrEqual(records[0]![0]!.at);
	}, 30_000);

	it.each([
		["a chat Telegram says is missing", "markChatMissing", "chat not found"],
		["a user who blocked the bot", "markBotBlocked", "bot was blocked by the user"],
	] as const)("%s: 400 BAD_REQUEST with Telegram's description and the message id; the message is failed", async (_name, mark, description) => {
		const { chatId, telegramId } = await newChat(bot);
		t.telegram[mark](telegramId);
		const before = await rowCounts(t);
		const res = await send(chatId, { text: `refused: ${mark}` });
		const error = expectApiError(res, 400, "BAD_REQUEST");
		expect(error.message).toContain(description);
		expect(error.details).toMatchObject({ message_id: expect.any(Number) });
		const messageId = Number(error.details!.message_id);
		const stored = await t.api<MessageBody>("GET", `/messages/${messageId}`);
		expect(stored.status).toBe(200);
		expect(stored.body).toMatchObject({ id: messageId, chat_id: chatId, direction: "outgoing", status: "failed", text: `refused: ${mark}`, telegram_message_id: null });
		expect(stored.body.error).toEqual(expect.stringContaining(description));
		expect(sentWithText(t, `refused: ${mark}`)).toHaveLength(0);
		// The failed message is kept; its queue row is gone; its outgoing_message event says it failed.
		expect(await rowCounts(t)).toEqual({ ...before, messages: before.messages + 1, events: before.events + 1 });
		const event = await waitForEvent(t, (e) => e.type === "outgoing_message" && e.message?.id === messageId);
		expect(event.message).toMatchObject({ status: "failed", error: expect.stringContaining(description) });
	});

	it("a message Telegram took whose record cannot be written (nor its bare fallback) is recorded on a later pass, never sent again", async () => {
		const { chatId, telegramId } = await newChat(bot);
		const db = t.gw.runtime.db;
		const transaction = db.rawTransaction;
		const before = sendCalls();
		t.telegram.failNext("sendMessage", { delayMs: 800 });
		const posted = send(chatId, { text: "recorded later" });
		try {
			for (const deadline = Date.now() + 5_000; sendCalls() === before; ) {
				if (Date.now() > deadline) throw new Error("sendMessage never came");
				await new Promise((r) => setTimeout(r, 20));
			}
			// While Telegram answers: the sender's record, then its fallback (markSentBare), fail with an error it cannot classify.
			let failures = 0;
			db.rawTransaction = ((work: Parameters<typeof transaction>[0], options?: Parameters<typeof transaction>[1]) =>
				isRecordWrite() && failures++ < 2 ? Promise.reject(new Error("simulated: the record cannot be written")) : transaction.call(db, work, options)) as typeof transaction;
			const res = await posted;
			expect([201, 202]).toContain(res.status);
			const stored = await waitForStatus(t, res.body.id, "sent", 10_000);
			expect(failures).toBeGreaterThanOrEqual(2);
			await new Promise((r) => setTimeout(r, 1_500));
			expect(sendCalls() - before).toBe(1);
			const sent = t.telegram.sent.filter((r) => r.chat_id === telegramId && r.params.text === "recorded later");
			expect(sent).toHaveLength(1);
			// Recorded from Telegram's kept answer, with its details.
			expect(stored.telegram_message_id).toBe(sent[0]!.message_id);
		} finally {
			db.rawTransaction = transaction;
		}
	});

	it("a sent message whose Telegram message id another stored message of the chat holds is recorded without it: sent, with its seq, history entry and event", async () => {
		const { chatId, incoming } = await newChat(bot);
		const taken = Number(incoming.telegram_message_id) + 1;
		// What the next sendMessage in this chat will be given, stored already (as an update carrying it would).
		const now = new Date();
		await t.gw.runtime.db.sequelize.query(
			"INSERT INTO messages (bot_id, chat_id, telegram_message_id, direction, type, text, created_at, updated_at) VALUES (?, ?, ?, 'incoming', 'text', 'holds the id', ?, ?)",
			{ replacements: [bot.id, chatId, taken, now, now] },
		);
		const res = await send(chatId, { text: "its id is taken" });
		expect([201, 202]).toContain(res.status);
		const stored = await waitForStatus(t, res.body.id, "sent", 10_000);
		expect(sentWithText(t, "its id is taken").map((r) => r.message_id)).toEqual([taken]);
		expect(stored).toMatchObject({ status: "sent", telegram_message_id: null, seq: expect.any(Number) });
		const history = await t.api<{ data: MessageBody[] }>("GET", `/chats/${chatId}/messages`);
		expect(history.body.data.map((m) => m.id)).toContain(res.body.id);
		await waitForEvent(t, (e) => e.type === "outgoing_message" && e.message?.id === res.body.id && e.message.status === "sent");
	});

	it("Idempotency-Key: the same key returns the same message, and Telegram receives one sendMessage", async () => {
		const { chatId } = await newChat(bot);
		const headers = { "idempotency-key": "order-1001" };
		const first = await send(chatId, { text: "exactly once" }, undefined, headers);
		expect(first.status).toBe(201);
		const again = await send(chatId, { text: "exactly once" }, undefined, headers);
		expect([200, 201]).toContain(again.status);
		expect(again.body).toMatchObject({ id: first.body.id, status: "sent", telegram_message_id: first.body.telegram_message_id });

		const racing = await Promise.all([1, 2, 3].map(() => send(chatId, { text: "raced once" }, undefined, { "idempotency-key": "order-1002" })));
		expect(new Set(racing.map((r) => r.body.id)).size).toBe(1);
		for (const res of racing) expect([200, 201, 202]).toContain(res.status);
		await waitForStatus(t, racing[0]!.body.id, "sent", 10_000);
		await new Promise((resolve) => setTimeout(resolve, 1500));
		expect(sentWithText(t, "exactly once")).toHaveLength(1);
		expect(sentWithText(t, "raced once")).toHaveLength(1);
		expect(await t.gw.runtime.db.models.Message.count({ where: { chat_id: chatId, direction: "outgoing" } })).toBe(2);
	}, 20_000);

	it("Idempotency-Key sent again with a different message is 409 CONFLICT: nothing queued, Telegram gets the first only", async () => {
		const { chatId } = await newChat(bot);
		const headers = { "idempotency-key": "order-2001" };
		const first = await send(chatId, { text: "first body" }, undefined, headers);
		expect([201, 202]).toContain(first.status);
		const before = await rowCounts(t);
		for (const changed of [{ text: "DIFFERENT body" }, { text: "first body", parse_mode: "HTML" }, { text: "first body", disable_notification: true }]) {
			const res = await send(chatId, changed, undefined, headers);
			expectApiError(res, 409, "CONFLICT");
			expect(res.body.error).toMatchObject({ message: expect.stringContaining("Idempotency-Key") });
		}
		expect(await rowCounts(t)).toEqual(before);
		const same = await send(chatId, { text: "first body" }, undefined, headers);
		expect(same.body.id).toBe(first.body.id);
		await waitForStatus(t, first.body.id, "sent", 10_000);
		expect(sentWithText(t, "DIFFERENT body")).toHaveLength(0);
		expect(sentWithText(t, "first body")).toHaveLength(1);
	});

	it("Idempotency-Key: different principals with the same key get different messages", async () => {
		const { chatId } = await newChat(bot);
		await grant(chatId, { user_id: operator.id, can_read: true, can_send: true });
		const headers = { "idempotency-key": "shared-key" };
		const byAdmin = await send(chatId, { text: "same key, admin" }, undefined, headers);
		const byOperator = await send(chatId, { text: "same key, operator" }, operator.token, headers);
		expect([201, 202]).toContain(byAdmin.status);
		expect([201, 202]).toContain(byOperator.status);
		expect(byOperator.body.id).not.toBe(byAdmin.body.id);
		await waitForStatus(t, byOperator.body.id, "sent", 10_000);
		expect(sentWithText(t, "same key, admin")).toHaveLength(1);
		expect(sentWithText(t, "same key, operator")).toHaveLength(1);
	});

	it("what a bot still had queued when it was deleted is not sent: it fails, saying why", async () => {
		const added = await t.addBot({ username: "deleted_mid_queue_bot" });
		const leaving = { id: added.bot.id, token: added.token };
		const { chatId, telegramId } = await newChat(leaving);
		// The first send takes 4 s at Telegram; the others queue behind it (the bot's sender sends one at a time).
		t.telegram.failNext("sendMessage", { delayMs: 4_000 });
		const sendsBefore = t.telegram.calls.sendMessage ?? 0;
		// A POST waits up to 5 s for its message to go out: the bot is deleted while they wait.
		const posting = Promise.all(["in flight", "queued 1", "queued 2"].map((text) => send(chatId, { text })));
		await t.telegram.waitFor(() => (t.telegram.calls.sendMessage ?? 0) > sendsBefore, 5_000);
		expect((await t.api("DELETE", `/bots/${leaving.id}`)).status).toBe(204);
		// A POST whose message failed meanwhile answers with the error and the message's id.
		const idOf = (res: { body: unknown }) => {
			const body = res.body as { id?: number; error?: { details?: { message_id?: number } } };
			return body.id ?? body.error?.details?.message_id;
		};
		const [first, ...queued] = (await posting).map(idOf).sort((a, b) => a! - b!);
		expect(queued).toHaveLength(2);
		for (const id of queued) {
			const failed = await waitForStatus(t, id!, "failed", 10_000);
			expect(failed.error).toMatch(/bot was deleted/);
		}
		// The three POSTs race: the first queued (lowest id) is the one in flight, whichever text it has.
		const inFlight = await waitForStatus(t, first!, "sent", 10_000);
		expect(t.telegram.sent.filter((r) => r.chat_id === telegramId).map((r) => r.params.text)).toEqual([inFlight.text]);
	}, 30_000);

	it("a deleted bot's chats stay readable but cannot be sent to: 409 CONFLICT, nothing queued", async () => {
		const added = await t.addBot({ username: "retired_bot" });
		const retired = { id: added.bot.id, token: added.token };
		const { chatId } = await newChat(retired);
		expect((await t.api("DELETE", `/bots/${retired.id}`)).status).toBe(204);
		const before = await rowCounts(t);
		const calls = sendCalls();
		expectApiError(await send(chatId, { text: "to a deleted bot" }), 409, "CONFLICT");
		expect(await rowCounts(t)).toEqual(before);
		expect(sendCalls()).toBe(calls);
		expect((await t.api("GET", `/chats/${chatId}`)).status).toBe(200);
		expect((await t.api<{ data: unknown[] }>("GET", `/chats/${chatId}/messages`)).body.data).toHaveLength(1);
	});
});

describe("sending: polling mode", () => {
	let t: TelegramGateway;
	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "polling" });
	});
	afterAll(() => t.stop());

	it("a chat learned by long polling can be sent to: 201, the double got it, an outgoing_message event follows", async () => {
		const added = await t.addBot();
		expect(added.bot.mode).toBe("polling");
		const { chatId, telegramId, incoming } = await chatMaker(t, 6000)({ id: added.bot.id, token: added.token });
		const res = await sender(t)(chatId, { text: "polled reply", reply_to_message_id: incoming.telegram_message_id });
		expect(res.status).toBe(201);
		expect(res.body).toMatchObject({ status: "sent", reply_to_message_id: incoming.telegram_message_id });
		expect(sentWithText(t, "polled reply").map((r) => r.chat_id)).toEqual([telegramId]);
		const event = await waitForEvent(t, (e) => e.type === "outgoing_message" && e.message?.id === res.body.id);
		expect(event.seq).toBeGreaterThan(incoming.seq!);
	});
});

describe("sending: pacing within Telegram's flood limits", () => {
	let t: TelegramGateway;
	let bot: { id: number; token: string };
	let newChat: ReturnType<typeof chatMaker>;
	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "webhook", double: { floodLimits: true } });
		const added = await t.addBot({ username: "paced_bot" });
		bot = { id: added.bot.id, token: added.token };
		newChat = chatMaker(t, 4000);
	});
	afterAll(() => t.stop());

	it("4 concurrent sends to one private chat all go out, in order, about a second apart, without a 429", async () => {
		const { chatId, telegramId } = await newChat(bot);
		const texts = ["paced 1", "paced 2", "paced 3", "paced 4"];
		const answers = await Promise.all(texts.map((text) => sender(t)(chatId, { text })));
		for (const res of answers) expect([201, 202]).toContain(res.status);
		for (const res of answers) await waitForStatus(t, res.body.id, "sent", 15_000);
		expect(t.telegram.floodRefusals).toEqual([]);
		const records = t.telegram.sent.filter((r) => r.chat_id === telegramId);
		expect(records).toHaveLength(4);
		const byId = [...answers].sort((a, b) => a.body.id - b.body.id).map((res) => res.body.text);
		expect(records.map((r) => r.params.text)).toEqual(byId);
		for (let i = 1; i < records.length; i++) expect(records[i]!.at - records[i - 1]!.at).toBeGreaterThanOrEqual(950);
	}, 30_000);

	it("a chat with a long backlog does not hold back another chat of the bot", async () => {
		const busy = await newChat(bot);
		const other = await newChat(bot);
		try {
			// More than a batch of the sender: the busy chat drains at 1 a second for over a minute.
			const backlog = await Promise.all(Array.from({ length: 80 }, (_, i) => sender(t)(busy.chatId, { text: `backlog ${i}` })));
			for (const res of backlog) expect([201, 202]).toContain(res.status);
			const before = t.telegram.sent.filter((r) => r.chat_id === busy.telegramId).length;
			const res = await sender(t)(other.chatId, { text: "not behind the backlog" });
			expect(res.status).toBe(201);
			expect(t.telegram.sent.filter((r) => r.chat_id === busy.telegramId).length - before).toBeLessThan(5);
		} finally {
			// The rest of the backlog would only slow the tests after this one.
			await t.gw.runtime.db.models.OutboundQueueItem.destroy({ where: { bot_id: bot.id, chat_telegram_id: busy.telegramId } });
		}
	}, 30_000);

	it("a message whose send timed out is not overtaken by the chat's later ones while it waits, and is not sent again", async () => {
		const { chatId, telegramId } = await newChat(bot);
		// Telegram never answers the first: after the 10 s timeout the chat's own pacing no longer holds the second back.
		t.telegram.failNext("sendMessage", { hang: true });
		const started = Date.now();
		const answers = await Promise.all(["first", "second", "third"].map((text) => sender(t)(chatId, { text })));
		const [first, ...later] = [...answers].sort((a, b) => a.body.id - b.body.id);
		const failed = await waitForStatus(t, first!.body.id, "failed", 15_000);
		expect(failed.error_details).toEqual({ may_have_been_delivered: true });
		for (const res of later) await waitForStatus(t, res.body.id, "sent", 15_000);
		const records = t.telegram.sent.filter((r) => r.chat_id === telegramId);
		expect(records.map((r) => r.params.text)).toEqual(later.map((res) => res.body.text));
		// Nothing went before the first send's 10 s were up.
		expect(records[0]!.at - started).toBeGreaterThanOrEqual(9_900);
	}, 40_000);

	it("an answer of ok:true with no message in it is sent once and recorded as sent, never sent again", async () => {
		const { chatId, telegramId } = await newChat(bot);
		const before = t.telegram.calls.sendMessage ?? 0;
		t.telegram.failNext("sendMessage", { answer: { ok: true, result: null } });
		const res = await sender(t)(chatId, { text: "odd answer" });
		const sent = await waitForStatus(t, res.body.id, "sent", 10_000);
		expect(sent).toMatchObject({ text: "odd answer", telegram_message_id: null });
		await new Promise((r) => setTimeout(r, 2_500));
		expect((t.telegram.calls.sendMessage ?? 0) - before).toBe(1);
		expect(t.telegram.sent.filter((r) => r.chat_id === telegramId)).toHaveLength(0);
	}, 30_000);

	it("25 messages to 25 private chats go out without a 429 from Telegram", async () => {
		const chats = [];
		for (let i = 0; i < 25; i++) chats.push(await newChat(bot));
		const answers = await Promise.all(chats.map((chat, i) => sender(t)(chat.chatId, { text: `fan-out ${i}` })));
		for (const res of answers) expect([201, 202]).toContain(res.status);
		for (const res of answers) await waitForStatus(t, res.body.id, "sent", 15_000);
		expect(t.telegram.floodRefusals).toEqual([]);
		for (const [i, chat] of chats.entries()) expect(sentWithText(t, `fan-out ${i}`).map((r) => r.chat_id)).toEqual([chat.telegramId]);
	}, 60_000);

	it("sends to different chats overlap while Telegram answers slowly (at most 8 at once), and each chat keeps its order", async () => {
		const chats = [];
		for (let i = 0; i < 12; i++) chats.push(await newChat(bot));
		t.telegram.setLatency(300);
		t.telegram.peakCallsInFlight = 0;
		try {
			const answers = await Promise.all(chats.flatMap((chat) => [sender(t)(chat.chatId, { text: `slow ${chat.chatId} a` }), sender(t)(chat.chatId, { text: `slow ${chat.chatId} b` })]));
			for (const res of answers) await waitForStatus(t, res.body.id, "sent", 20_000);
			// One at a time, a bot sent a message per round trip: with 300 ms each, about 3 a second.
			expect(t.telegram.peakCallsInFlight).toBeGreaterThan(1);
			expect(t.telegram.peakCallsInFlight).toBeLessThanOrEqual(8);
			for (const chat of chats) {
				// In the order the gateway took them (the two requests raced each other).
				const queued = answers.filter((res) => res.body.chat_id === chat.chatId).sort((a, b) => a.body.id - b.body.id);
				expect(t.telegram.sent.filter((r) => r.chat_id === chat.telegramId).map((r) => r.params.text)).toEqual(queued.map((res) => res.body.text));
			}
			expect(t.telegram.floodRefusals).toEqual([]);
		} finally {
			t.telegram.setLatency(0);
		}
	}, 60_000);

	it("40 messages to 40 private chats: never more than 30 in a second for the bot, no 429", async () => {
		const refusals = t.telegram.floodRefusals.length;
		const chats = [];
		for (let i = 0; i < 40; i++) chats.push(await newChat(bot));
		const answers = await Promise.all(chats.map((chat, i) => sender(t)(chat.chatId, { text: `burst ${i}` })));
		for (const res of answers) expect([201, 202]).toContain(res.status);
		for (const res of answers) await waitForStatus(t, res.body.id, "sent", 20_000);
		expect(t.telegram.floodRefusals.slice(refusals)).toEqual([]);
		const times = t.telegram.sent.filter((r) => String(r.params.text).startsWith("burst ")).map((r) => r.at);
		expect(times).toHaveLength(40);
		for (let i = 30; i < times.length; i++) expect(times[i]! - times[i - 30]!).toBeGreaterThanOrEqual(1000);
	}, 60_000);

	it("21 messages to one group: at most 20 go out within a minute, no 429", async () => {
		const added = await t.addBot({ username: "group_paced_bot" });
		const groupBot = { id: added.bot.id, token: added.token };
		const { chatId } = await userWrites(t, groupBot.token, groupBot.id, { chat_id: -1_004_001, text: "hello group" });
		const refusals = t.telegram.floodRefusals.length;
		const toGroup = () => t.telegram.sent.filter((r) => r.chat_id === -1_004_001);
		const answers = await Promise.all(Array.from({ length: 21 }, (_, i) => sender(t)(chatId, { text: `group ${i}` })));
		for (const res of answers) expect([201, 202]).toContain(res.status);
		// At Telegram's 1 per second per chat, the first 20 take about 20 s.
		await t.telegram.waitFor(() => toGroup().length >= 20 || t.telegram.floodRefusals.length > refusals, 40_000, 50);
		await new Promise((resolve) => setTimeout(resolve, 3000));
		expect(t.telegram.floodRefusals.slice(refusals)).toEqual([]);
		expect(toGroup()).toHaveLength(20);
		const last = [...answers].sort((a, b) => b.body.id - a.body.id)[0]!;
		expect((await t.api<MessageBody>("GET", `/messages/${last.body.id}`)).body.status).toBe("queued");
	}, 60_000);
});

describe("sending: the queue survives a restart", () => {
	/** Queues a message while Telegram suffers `fault`, stops the gateway, starts another on the same data; `check` sees both. */
	async function acrossARestart(
		fault: Parameters<TelegramGateway["telegram"]["failNext"]>[1],
		times: number,
		text: string,
		check: (scene: { first: TelegramGateway; messageId: number; stored: () => Promise<MessageBody>; queued: () => Promise<number> }) => Promise<void>,
	): Promise<void> {
		const dataDir = tempDir("tgw-send-restart-");
		const first = await startTelegramGateway({ mode: "webhook", env: { DATA_DIR: dataDir } });
		let firstRunning = true;
		let second: TestGateway | undefined;
		try {
			const added = await first.addBot();
			const { chatId } = await userWrites(first, added.token, added.bot.id, { chat_id: 5001, text: "hello" });
			first.telegram.failNext("sendMessage", fault, times);
			const res = await sender(first)(chatId, { text });
			expect(res.status).toBe(202);
			expect(res.body).toMatchObject({ status: "queued" });
			expect(await first.gw.runtime.db.models.OutboundQueueItem.count({ where: { message_id: res.body.id } })).toBe(1);

			await first.gw.stop();
			firstRunning = false;
			first.telegram.clearFaults();

			second = await startTestGateway({
				env: {
					ADMIN_PASSWORD,
					DATA_DIR: dataDir,
					TELEGRAM_API_ROOT: first.telegram.url,
					PUBLIC_URL: first.baseUrl,
					PORT: new URL(first.baseUrl).port,
					RATE_LIMIT_DEFAULT: "100000",
				},
			});
			const next = second;
			const admin = (await loginAction(next.broker, "admin", ADMIN_PASSWORD)).access_token;
			await check({
				first,
				messageId: res.body.id,
				stored: async () => (await http<MessageBody>(next.baseUrl, "GET", `/api/v1/messages/${res.body.id}`, { headers: { authorization: `Bearer ${admin}` } })).body,
				queued: () => next.runtime.db.models.OutboundQueueItem.count(),
			});
		} finally {
			if (firstRunning) await first.gw.stop();
			await second?.stop();
			await first.telegram.stop();
			rmSync(dataDir, { recursive: true, force: true });
		}
	}

	it("a message queued while Telegram's proxy answers 502 again and again (nothing reached Telegram) is sent exactly once by the next gateway on the same data", async () => {
		const text = "survives a restart";
		await acrossARestart({ status: 502 }, 1000, text, async ({ first, messageId, stored, queued }) => {
			expect(sentWithText(first, text)).toHaveLength(0);
			await first.telegram.waitFor(() => sentWithText(first, text).length > 0, 30_000, 50);
			await first.telegram.waitFor(async () => (await stored()).status === "sent", 10_000, 100);
			expect(await stored()).toMatchObject({ id: messageId, telegram_message_id: sentWithText(first, text)[0]!.message_id });
			await new Promise((resolve) => setTimeout(resolve, 2000));
			expect(sentWithText(first, text)).toHaveLength(1);
			expect(await queued()).toBe(0);
		});
	}, 90_000);

	it("a message Telegram took but had not answered when the gateway stopped fails (it may have been delivered), and the next gateway does not send it again", async () => {
		const text = "taken, never answered";
		await acrossARestart({ acceptThenHang: true }, 1, text, async ({ first, stored, queued }) => {
			expect(sentWithText(first, text)).toHaveLength(1);
			expect(await stored()).toMatchObject({ status: "failed", error_details: { may_have_been_delivered: true } });
			await new Promise((resolve) => setTimeout(resolve, 2000));
			expect(sentWithText(first, text)).toHaveLength(1);
			expect(await queued()).toBe(0);
		});
	}, 90_000);
});
