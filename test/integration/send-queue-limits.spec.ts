/**
 * SEND_QUEUE_PER_CHAT and SEND_QUEUE_PER_BOT: a chat or bot with that many messages waiting for
 * Telegram takes no more. The send is refused with 429 RATE_LIMITED, a Retry-After from Telegram's
 * pace and details naming the queue and its limit, and nothing is stored; the same on REST and gRPC
 * SendMessage. The bot's sending is paused (as a Telegram 429 would) so the queue stays full.
 */
import * as grpc from "@grpc/grpc-js";
import { pause } from "../../services/bots/flood";
import { enqueueMessage } from "../../services/bots/outbox";
import { expectApiError } from "../support/auth";
import { rowCounts, userWrites, type MessageBody } from "../support/chat-helpers";
import { grpcCall, grpcCredentials, grpcPortOf } from "../support/hostile-grpc";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

const PER_CHAT = 3;
const PER_BOT = 5;

describe("send queue limits", () => {
	let t: TelegramGateway;
	let bot: { id: number; token: string };
	let client: grpc.Client;
	let nextChat = 5000;

	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "polling", env: { SEND_QUEUE_PER_CHAT: String(PER_CHAT), SEND_QUEUE_PER_BOT: String(PER_BOT) } });
		const added = await t.addBot({ username: "queue_limits_bot" });
		bot = { id: added.bot.id, token: added.token };
		client = new grpc.Client(`127.0.0.1:${grpcPortOf(t.gw.broker)}`, grpc.credentials.createInsecure());
	}, 60_000);
	afterAll(async () => {
		client?.close();
		await t?.stop();
	});

	const newChat = async () => (await userWrites(t, bot.token, bot.id, { chat_id: ++nextChat, text: "hello" })).chatId;
	/** Queues messages directly, past any cap (as a backlog left by a Telegram outage would be). */
	const fill = async (chatId: number, n: number) => {
		for (let i = 0; i < n; i++) await enqueueMessage(t.gw.runtime.db, { chat_id: chatId, text: `backlog ${chatId}-${i}`, sent_by: "user:1" });
	};
	const send = (chatId: number, text: string) => t.api<MessageBody>("POST", `/chats/${chatId}/messages`, { text });

	it("a chat with SEND_QUEUE_PER_CHAT messages queued: 429 RATE_LIMITED naming the chat's queue, Retry-After from its pace, nothing stored; REST and gRPC alike", async () => {
		const full = await newChat();
		await pause(t.gw.runtime.state, bot.id, 3_600);
		await fill(full, PER_CHAT);
		const before = await rowCounts(t);

		const res = await send(full, "one too many");
		const error = expectApiError(res, 429, "RATE_LIMITED");
		// One message of a private chat goes out per second: room for one more in about 1 s.
		expect(error.details).toEqual({ queue: "chat", limit: PER_CHAT, retry_after: 1 });
		expect(error.message).toContain("SEND_QUEUE_PER_CHAT");
		expect(res.headers.get("retry-after")).toBe("1");

		const viaGrpc = await grpcCall(client, "SendMessage", { chat_id: full, text: "one too many (gRPC)" }, grpcCredentials(t.adminToken));
		expect({ code: viaGrpc.code, apiCode: viaGrpc.apiCode }).toEqual({ code: grpc.status.RESOURCE_EXHAUSTED, apiCode: "RATE_LIMITED" });
		expect(await rowCounts(t)).toEqual(before);
	});

	it("a bot with SEND_QUEUE_PER_BOT messages queued over its chats: 429 naming the bot's queue, even for a chat with none queued", async () => {
		// The chat above holds PER_CHAT; two more chats bring the bot to PER_BOT.
		await fill(await newChat(), PER_BOT - PER_CHAT);
		const empty = await newChat();
		const before = await rowCounts(t);
		const res = await send(empty, "bot is full");
		const error = expectApiError(res, 429, "RATE_LIMITED");
		expect(error.details).toEqual({ queue: "bot", limit: PER_BOT, retry_after: 1 });
		expect(res.headers.get("retry-after")).toBe("1");
		expect(await rowCounts(t)).toEqual(before);
	});

	it("only messages still queued count: once the backlog is sent or failed, its chat takes messages again", async () => {
		const backlog = await t.gw.runtime.db.models.Message.findAll({ where: { status: "queued" }, attributes: ["id", "chat_id"], raw: true });
		const ids = backlog.map((m) => Number(m.id));
		// As the sender records a failure: the message is failed, its queue row gone.
		await t.gw.runtime.db.models.OutboundQueueItem.destroy({ where: { message_id: ids } });
		await t.gw.runtime.db.models.Message.update({ status: "failed" }, { where: { id: ids } });
		const res = await send(Number(backlog[0]!.chat_id), "room again");
		// The bot is still paused: the message waits its 5 s in the queue and is answered 202.
		expect(res.status).toBe(202);
		expect(res.body.status).toBe("queued");
	}, 30_000);
});
