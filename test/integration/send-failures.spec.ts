/**
 * How a failed send is told: every answer about it (the POST, a retry with its Idempotency-Key, GET
 * /messages/:id) carries the same failure and its details, and every event consumer learns it from an
 * `outgoing_message` event whose message is `failed` (REST history, gRPC reads and replays see it too).
 * A group Telegram upgraded to a supergroup fails the send with a pointer to the supergroup, and takes
 * no new message; nothing is sent to the supergroup on the client's behalf.
 */
import * as grpc from "@grpc/grpc-js";
import { createUser, expectApiError } from "../support/auth";
import { rowCounts, sentWithText, userWrites, waitForEvent, waitForStatus, type ChatBody, type MessageBody } from "../support/chat-helpers";
import { grpcCall, grpcCredentials, grpcPortOf } from "../support/hostile-grpc";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

describe("sending: failures and how they are told", () => {
	let t: TelegramGateway;
	let bot: { id: number; token: string };
	let nextChat = 9_300;

	const send = (chatId: number, text: string, headers: Record<string, string> = {}) => t.api<MessageBody>("POST", `/chats/${chatId}/messages`, { text }, undefined, headers);
	const sendCalls = () => t.telegram.calls.sendMessage ?? 0;
	const newPrivateChat = async () => {
		nextChat += 1;
		const written = await userWrites(t, bot.token, bot.id, { chat_id: nextChat, text: `hi from ${nextChat}` });
		return { chatId: written.chatId, telegramId: nextChat, incoming: written.message };
	};
	const newGroup = async (type: "group" | "supergroup", telegramId: number) =>
		(await userWrites(t, bot.token, bot.id, { chat_id: telegramId, chat: { type, title: `${type} ${telegramId}` }, text: `hello ${type}` })).chatId;

	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "webhook" });
		const added = await t.addBot({ username: "failing_sends_bot" });
		bot = { id: added.bot.id, token: added.token };
	}, 60_000);
	afterEach(() => t.telegram.clearFaults());
	afterAll(() => t.stop());

	it("a refused message answers with telegram_error_code every time, a retry with its Idempotency-Key included", async () => {
		const { chatId, telegramId } = await newPrivateChat();
		t.telegram.markBotBlocked(telegramId);
		const headers = { "Idempotency-Key": `blocked-${telegramId}` };
		const first = await send(chatId, "to a user who blocked the bot", headers);
		const retry = await send(chatId, "to a user who blocked the bot", headers);
		const refused = expectApiError(first, 400, "BAD_REQUEST");
		expect(refused.details).toMatchObject({ telegram_error_code: 403 });
		expect(expectApiError(retry, 400, "BAD_REQUEST")).toEqual(refused);
		const stored = await t.api<MessageBody>("GET", `/messages/${Number(refused.details!.message_id)}`);
		expect(stored.body).toMatchObject({ status: "failed", error: "Forbidden: bot was blocked by the user", error_details: { telegram_error_code: 403 } });
	});

	it("a failed message gets a seq and an outgoing_message event (status failed, with its error), seen by the history, gRPC reads and replays", async () => {
		const { chatId, telegramId, incoming } = await newPrivateChat();
		t.telegram.markChatMissing(telegramId);
		const res = await send(chatId, "to a chat that is gone");
		const messageId = Number(expectApiError(res, 400, "BAD_REQUEST").details!.message_id);
		const failed = { id: messageId, status: "failed", error: "Bad Request: chat not found", error_details: { telegram_error_code: 400 } };

		const event = await waitForEvent(t, (e) => e.type === "outgoing_message" && e.message?.id === messageId);
		expect(event).toMatchObject({ bot_id: bot.id, chat_id: chatId, message: failed });
		expect(event.seq).toBeGreaterThan(incoming.seq!);
		expect(event.message!.seq).toBe(event.seq);
		const stored = (await t.api<MessageBody>("GET", `/messages/${messageId}`)).body;
		expect(stored).toMatchObject({ ...failed, seq: event.seq });
		const history = await t.api<{ data: MessageBody[] }>("GET", `/chats/${chatId}/messages`);
		expect(history.body.data.map((m) => [m.id, m.status])).toEqual([
			[messageId, "failed"],
			[incoming.id, null],
		]);

		const client = new grpc.Client(`127.0.0.1:${grpcPortOf(t.gw.broker)}`, grpc.credentials.createInsecure());
		try {
			const md = () => grpcCredentials(t.adminToken);
			const read = await grpcCall(client, "GetMessages", { chat_id: chatId }, md());
			const [newest] = (read.value as { messages: Array<Record<string, unknown>> }).messages;
			expect(newest).toMatchObject({ id: messageId, seq: event.seq, status: "failed", error: failed.error, error_details_json: JSON.stringify(failed.error_details) });
			const replay = await grpcCall(client, "StreamChatMessages", { chat_id: chatId, since_seq: incoming.seq }, md(), { keepEvents: 1 });
			expect(replay.events).toEqual([expect.objectContaining({ type: "outgoing_message", seq: event.seq, message: expect.objectContaining({ id: messageId, status: "failed" }) })]);
		} finally {
			client.close();
		}
	});

	it("a send to a group that became a supergroup: 409 CONFLICT naming the supergroup (Telegram's id and the chat here); the chat records it; nothing goes to the supergroup; the next send is refused before it is queued", async () => {
		nextChat += 1;
		const oldId = -nextChat;
		const newId = -1_000_000_000_000 - nextChat;
		const groupChatId = await newGroup("group", oldId);
		const supergroupChatId = await newGroup("supergroup", newId);
		t.telegram.migrateChat(oldId, newId);

		const res = await send(groupChatId, "after the upgrade");
		const error = expectApiError(res, 409, "CONFLICT");
		expect(error.message).toMatch(/upgraded to a supergroup/);
		expect(error.details).toEqual({ message_id: expect.any(Number), migrate_to_chat_id: newId, new_chat_id: supergroupChatId, telegram_error_code: 400 });
		expect((await t.api<ChatBody & { migrated_to_chat_id: number | null }>("GET", `/chats/${groupChatId}`)).body.migrated_to_chat_id).toBe(newId);
		expect(t.telegram.sent.filter((r) => r.chat_id === newId || r.chat_id === oldId)).toEqual([]);

		const before = await rowCounts(t);
		const calls = sendCalls();
		const again = expectApiError(await send(groupChatId, "once more"), 409, "CONFLICT");
		expect(again.details).toEqual({ migrate_to_chat_id: newId, new_chat_id: supergroupChatId });
		expect(await rowCounts(t)).toEqual(before);
		expect(sendCalls()).toBe(calls);
	});

	it("an upgrade learned only from Telegram refusing a send carries the group's grants to the supergroup's chat, at the refusal or, for a supergroup not seen yet, at the next refused send", async () => {
		const operator = await createUser(t.gw, t.adminToken, ["operator"]);
		const canReadAndSend = async (chatId: number) => [
			(await t.api("GET", `/chats/${chatId}/messages`, undefined, operator.token)).status,
			(await t.api("POST", `/chats/${chatId}/messages`, { text: "from the operator" }, operator.token)).status,
		];
		for (const seenAtRefusal of [true, false]) {
			nextChat += 1;
			const [oldId, newId] = [-nextChat, -1_000_000_000_000 - nextChat];
			const groupChatId = await newGroup("group", oldId);
			expect((await t.api("PUT", `/chats/${groupChatId}/permissions`, { user_id: operator.id, can_read: true, can_send: true })).status).toBe(201);
			// No migrate_to / migrate_from service message reaches the gateway: only the send's refusal tells.
			t.telegram.migrateChat(oldId, newId);
			const supergroupSeen = seenAtRefusal ? await newGroup("supergroup", newId) : null;
			expectApiError(await send(groupChatId, "after the upgrade"), 409, "CONFLICT");
			const supergroupChatId = supergroupSeen ?? (await newGroup("supergroup", newId));
			if (!seenAtRefusal) {
				expect(await canReadAndSend(supergroupChatId)).toEqual([403, 403]);
				const again = expectApiError(await send(groupChatId, "once more"), 409, "CONFLICT");
				expect(again.details).toMatchObject({ new_chat_id: supergroupChatId });
			}
			expect(await canReadAndSend(supergroupChatId)).toEqual([200, 201]);
		}
	}, 30_000);

	it("messages queued behind the first refusal of an upgraded group fail with it, without a call to Telegram each; a supergroup the bot has not seen is named by Telegram's id", async () => {
		nextChat += 1;
		const oldId = -nextChat;
		const newId = -1_000_000_000_000 - nextChat;
		const groupChatId = await newGroup("group", oldId);
		const { state, db } = t.gw.runtime;
		const lease = `sender:bot:${bot.id}`;
		expect(await state.acquireLease(lease, "test-holder", 30_000)).toBe(true);
		const posts = ["first", "second", "third"].map((text) => send(groupChatId, text));
		await t.telegram.waitFor(async () => (await db.models.OutboundQueueItem.count({ where: { bot_id: bot.id } })) === 3, 5_000, 50);
		t.telegram.migrateChat(oldId, newId);
		const calls = sendCalls();
		await state.releaseLease(lease, "test-holder");
		const ids = (await Promise.all(posts)).map((r) => r.body.id ?? Number((r.body as { error?: { details?: { message_id?: number } } }).error?.details?.message_id));
		for (const id of ids) {
			const failed = await waitForStatus(t, id, "failed", 10_000);
			expect(failed.error_details).toMatchObject({ migrate_to_chat_id: newId, new_chat_id: null });
		}
		expect(sendCalls() - calls).toBe(1);
		expect(sentWithText(t, "second")).toHaveLength(0);
	}, 30_000);
});
