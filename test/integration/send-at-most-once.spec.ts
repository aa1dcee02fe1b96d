/**
 * A message is sent at most once: a send whose outcome is unknown (Telegram took it but answered too
 * late, a 500, a 504 page) is not sent again, and fails saying it may have been delivered; a failure
 * that cannot have reached Telegram (connection refused) is tried again for 15 minutes from queueing,
 * not 8 times, and then fails saying plainly that it was not sent.
 */
import { QueryTypes } from "sequelize";
import { TelegramNetworkError } from "../../lib/telegram/client";
import { enqueueMessage } from "../../services/bots/outbox";
import { expectApiError } from "../support/auth";
import { sentWithText, userWrites, waitForStatus, type MessageBody } from "../support/chat-helpers";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

describe("sending at most once", () => {
	let t: TelegramGateway;
	let bot: { id: number; token: string };
	let admin: string;
	let nextChat = 9_100;

	const newChat = async () => {
		nextChat += 1;
		return (await userWrites(t, bot.token, bot.id, { chat_id: nextChat, text: `hello from ${nextChat}` })).chatId;
	};
	const send = (chatId: number, text: string, key?: string) =>
		t.api<MessageBody>("POST", `/chats/${chatId}/messages`, { text }, undefined, key ? { "idempotency-key": key } : {});
	const sendCalls = () => t.telegram.calls.sendMessage ?? 0;

	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "webhook" });
		const added = await t.addBot({ username: "at_most_once_bot" });
		bot = { id: added.bot.id, token: added.token };
		const me = await t.api<{ type: string; id: number }>("GET", "/auth/me");
		admin = `${me.body.type}:${me.body.id}`;
	}, 60_000);
	afterEach(() => t.telegram.clearFaults());
	afterAll(() => t.stop());

	it("Telegram takes the message but answers after the send timeout: one copy reaches the chat, the message fails as may have been delivered, and a retry with its key answers the same", async () => {
		const chatId = await newChat();
		const text = "pay invoice #17";
		t.telegram.failNext("sendMessage", { acceptThenDelayMs: 12_000 });
		const first = await send(chatId, text, "invoice-17");
		expect(first.status).toBe(202);
		const failed = await waitForStatus(t, first.body.id, "failed", 15_000);
		expect(failed.error).toMatch(/may have been delivered/);
		expect(failed.error_details).toEqual({ may_have_been_delivered: true });
		const retry = await send(chatId, text, "invoice-17");
		const error = expectApiError(retry, 409, "CONFLICT");
		expect(error.message).toMatch(/may have been delivered/);
		expect(error.details).toEqual({ message_id: first.body.id, may_have_been_delivered: true });
		// Past the late answer and any retry: still one copy.
		await new Promise((resolve) => setTimeout(resolve, 3_000));
		expect(sentWithText(t, text)).toHaveLength(1);
	}, 40_000);

	it.each([
		["a 500 from the Bot API (it may come after the message went out)", { status: 500 as const }, { telegram_error_code: 500 }],
		["a 504 page from its proxy (the Bot API took the request and was slow)", { status: 504 as const }, {}],
	])("%s: not sent again; 409 CONFLICT saying it may have been delivered", async (_name, fault, telegramCode) => {
		const chatId = await newChat();
		const text = `unknown outcome ${fault.status}`;
		t.telegram.failNext("sendMessage", fault);
		const calls = sendCalls();
		const res = await send(chatId, text);
		const error = expectApiError(res, 409, "CONFLICT");
		expect(error.details).toEqual({ message_id: expect.any(Number), may_have_been_delivered: true, ...telegramCode });
		await new Promise((resolve) => setTimeout(resolve, 2_500));
		expect(sendCalls() - calls).toBe(1);
		expect((await t.api<MessageBody>("GET", `/messages/${Number(error.details!.message_id)}`)).body).toMatchObject({ status: "failed", error_details: { may_have_been_delivered: true } });
	});

	/** Queues `text` while the bot's sender is held off, then lets the row look as `row` says (attempts, age) before the sender sees it. */
	async function queuedWithHistory(chatId: number, text: string, row: { attempts: number; queuedMsAgo: number }, key: string): Promise<number> {
		const { state, db } = t.gw.runtime;
		const lease = `sender:bot:${bot.id}`;
		expect(await state.acquireLease(lease, "test-holder", 30_000)).toBe(true);
		const { message } = await enqueueMessage(db, { chat_id: chatId, text, sent_by: admin, client_key: `${admin}:${key}` });
		const queuedAt = new Date(Date.now() - row.queuedMsAgo);
		await db.transaction((transaction) =>
			db.sequelize.query("UPDATE outbound_queue SET attempts = ?, created_at = ? WHERE message_id = ?", { replacements: [row.attempts, queuedAt, message.id], type: QueryTypes.UPDATE, transaction }),
		);
		await state.releaseLease(lease, "test-holder");
		await t.gw.broker.broadcast("outbound.kick", { bot_id: bot.id });
		return message.id;
	}

	function refuseConnections(times: number) {
		const client = t.gw.runtime.telegram;
		const original = client.sendMessage.bind(client);
		let left = times;
		return jest.spyOn(client, "sendMessage").mockImplementation((token, params, options) => {
			if (left-- > 0) return Promise.reject(new TelegramNetworkError("sendMessage", "no", "ECONNREFUSED"));
			return original(token, params, options);
		});
	}

	it("connection refused on the 8th try (where it used to give up): the message stays queued, and goes out once Telegram is back", async () => {
		const chatId = await newChat();
		const text = "sent after a long outage";
		const spy = refuseConnections(1);
		try {
			const id = await queuedWithHistory(chatId, text, { attempts: 7, queuedMsAgo: 2 * 60_000 }, "long-outage");
			const queue = t.gw.runtime.db.models.OutboundQueueItem;
			// Tried (and refused) for the 8th time: still queued, or (as it was) given up on.
			await t.telegram.waitFor(async () => (await queue.findByPk(id, { raw: true }))?.attempts !== 7, 10_000, 50);
			expect((await t.api<MessageBody>("GET", `/messages/${id}`)).body).toMatchObject({ status: "queued" });
			expect(await queue.findByPk(id, { raw: true })).toMatchObject({ attempts: 8 });
			// Its next try is a minute away: brought forward.
			await queue.update({ next_attempt_at: new Date() }, { where: { message_id: id } });
			const sent = await waitForStatus(t, id, "sent", 10_000);
			expect(sent.telegram_message_id).toBe(sentWithText(t, text)[0]!.message_id);
			expect(sentWithText(t, text)).toHaveLength(1);
		} finally {
			spy.mockRestore();
		}
	}, 30_000);

	it("connection refused 15 minutes after queueing: the message fails as not sent, and a retry with its key is 503 UNAVAILABLE saying so (not 400 'refused')", async () => {
		const chatId = await newChat();
		const text = "given up after the time budget";
		const spy = refuseConnections(1);
		try {
			const id = await queuedWithHistory(chatId, text, { attempts: 8, queuedMsAgo: 16 * 60_000 }, "budget-spent");
			const failed = await waitForStatus(t, id, "failed", 10_000);
			expect(failed.error_details).toEqual({ may_have_been_delivered: false });
			const retry = await send(chatId, text, "budget-spent");
			const error = expectApiError(retry, 503, "UNAVAILABLE");
			expect(error.message).toMatch(/^Not sent: Telegram could not be reached for 16 min after the message was queued \(9 attempts, the last: ECONNREFUSED\)$/);
			expect(error.details).toEqual({ message_id: id, may_have_been_delivered: false });
			expect(sentWithText(t, text)).toHaveLength(0);
		} finally {
			spy.mockRestore();
		}
	}, 30_000);
});
