import type { GatewayError } from "../../lib/errors";
import type { GatewayEvent } from "../../services/broker/event-log";
import { approximateSize, eventToProto, messageToProto, ROUTES, streamChatOpening, streamMessagesOpening } from "../../services/grpc/codec";
import type { MessageView } from "../../services/chats/views";

const message: MessageView = {
	id: 7,
	seq: 42,
	chat_id: 3,
	bot_id: 1,
	telegram_message_id: 99,
	direction: "incoming",
	type: "text",
	text: "hello",
	caption: null,
	entities: [{ type: "bold", offset: 0, length: 5 }],
	from: { telegram_id: 500, username: null, first_name: "Ann", last_name: null, is_bot: false },
	reply_to_message_id: null,
	thread_id: null,
	media_group_id: null,
	media: null,
	date: "2025-01-02T03:04:05.000Z",
	edit_date: null,
	status: null,
} as unknown as MessageView;

function thrown(fn: () => unknown): GatewayError {
	try {
		fn();
	} catch (err) {
		return err as GatewayError;
	}
	throw new Error("did not throw");
}

describe("gRPC codec: requests to the REST actions' params", () => {
	it("SendMessage -> chats.send: proto defaults are absent, the chat is the action's id", () => {
		expect(ROUTES.SendMessage.action).toBe("chats.send");
		expect(ROUTES.SendMessage.params({ chat_id: 3, text: "hi", parse_mode: "", reply_to_message_id: 0, disable_notification: false, idempotency_key: "" })).toEqual({ id: 3, text: "hi" });
		expect(ROUTES.SendMessage.params({ chat_id: 3, text: "hi", parse_mode: "HTML", reply_to_message_id: 12, disable_notification: true, idempotency_key: "k" })).toEqual({
			id: 3,
			text: "hi",
			parse_mode: "HTML",
			reply_to_message_id: 12,
			disable_notification: true,
		});
		// Not given at all: the action's validation names them.
		expect(ROUTES.SendMessage.params({ chat_id: 0, text: "", parse_mode: "", reply_to_message_id: 0, disable_notification: false, idempotency_key: "" })).toEqual({});
		expect(ROUTES.SendMessage.fields).toEqual({ id: "chat_id", "Idempotency-Key": "idempotency_key" });
	});

	it("SendMessage's idempotency_key becomes meta.idempotencyKey, under REST's Idempotency-Key rule", () => {
		const request = { chat_id: 3, text: "hi", parse_mode: "", reply_to_message_id: 0, disable_notification: false };
		expect(ROUTES.SendMessage.meta({ ...request, idempotency_key: "" })).toEqual({});
		expect(ROUTES.SendMessage.meta({ ...request, idempotency_key: "order-17:retry.1_x" })).toEqual({ idempotencyKey: "order-17:retry.1_x" });
		for (const key of ["has spaces", "k".repeat(65), "ünïcode"]) {
			const err = thrown(() => ROUTES.SendMessage.meta({ ...request, idempotency_key: key }));
			expect([err.type, err.code]).toEqual(["BAD_REQUEST", 400]);
		}
	});

	it("GetMessages keeps the presence of before_seq and after_seq (0 is a real seq there)", () => {
		expect(ROUTES.GetMessages.params({ chat_id: 3, limit: 0, cursor: "" })).toEqual({ id: 3 });
		expect(ROUTES.GetMessages.params({ chat_id: 3, limit: 10, cursor: "abc", after_seq: 0 })).toEqual({ id: 3, limit: 10, cursor: "abc", after_seq: 0 });
		expect(ROUTES.GetMessages.params({ chat_id: 3, limit: 0, cursor: "", before_seq: 100 })).toEqual({ id: 3, before_seq: 100 });
	});

	it("the other routes call the REST actions with only what was given", () => {
		expect([ROUTES.ListChats.action, ROUTES.GetChat.action, ROUTES.ListBots.action, ROUTES.GetBot.action, ROUTES.CreateBot.action, ROUTES.DeleteBot.action]).toEqual([
			"chats.list",
			"chats.get",
			"bots.list",
			"bots.get",
			"bots.create",
			"bots.remove",
		]);
		expect(ROUTES.ListChats.params({ bot_id: 0, limit: 0, cursor: "" })).toEqual({});
		expect(ROUTES.ListChats.params({ bot_id: 2, limit: 5, cursor: "c" })).toEqual({ bot_id: 2, limit: 5, cursor: "c" });
		expect(ROUTES.GetChat.params({ id: 0 })).toEqual({});
		expect(ROUTES.GetBot.params({ id: 4 })).toEqual({ id: 4 });
		expect(ROUTES.CreateBot.params({ token: "1:abc", display_name: "", description: "" })).toEqual({ token: "1:abc" });
		expect(ROUTES.DeleteBot.params({ id: 4 })).toEqual({ id: 4 });
		// Negative numbers are passed on: the action's validation refuses them.
		expect(ROUTES.ListBots.params({ limit: -1, cursor: "" })).toEqual({ limit: -1 });
	});
});

describe("gRPC codec: results to proto messages", () => {
	it("a message: nulls become the proto defaults, JSON fields become JSON strings", () => {
		expect(messageToProto(message)).toEqual({
			id: 7,
			seq: 42,
			chat_id: 3,
			bot_id: 1,
			telegram_message_id: 99,
			direction: "incoming",
			type: "text",
			text: "hello",
			caption: "",
			entities_json: '[{"type":"bold","offset":0,"length":5}]',
			from: { telegram_id: 500, username: "", first_name: "Ann", last_name: "", is_bot: false },
			reply_to_message_id: 0,
			thread_id: 0,
			media_json: "",
			date: "2025-01-02T03:04:05.000Z",
			edit_date: "",
			status: "",
			error: "",
			error_details_json: "",
			media_group_id: "",
		});
		expect(messageToProto({ ...message, media_group_id: "13579" } as MessageView).media_group_id).toBe("13579");
		expect(messageToProto({ ...message, from: null, seq: null, status: "failed", error: "chat not found", error_details: { telegram_error_code: 400 } } as unknown as MessageView)).toMatchObject({
			from: null,
			seq: 0,
			status: "failed",
			error: "chat not found",
			error_details_json: '{"telegram_error_code":400}',
		});
	});

	it("SendMessage answers queued while Telegram has not taken the message", () => {
		expect(ROUTES.SendMessage.reply({ ...message, direction: "outgoing", status: "queued" })).toMatchObject({ queued: true, message: { id: 7, status: "queued" } });
		expect(ROUTES.SendMessage.reply({ ...message, direction: "outgoing", status: "sent" })).toMatchObject({ queued: false });
	});

	it("lists keep their order and map next_cursor null to \"\"", () => {
		const chat = { id: 1, bot_id: 2, telegram_id: 3, business_connection_id: null, type: "group", title: "T", username: null, first_name: null, last_name: null, is_forum: false, migrated_to_chat_id: null, created_at: "a", updated_at: "b" };
		expect(ROUTES.ListChats.reply({ data: [chat, { ...chat, id: 5, business_connection_id: "bc" }], next_cursor: null })).toEqual({
			chats: [
				{ id: 1, bot_id: 2, telegram_id: 3, type: "group", title: "T", username: "", first_name: "", last_name: "", created_at: "a", updated_at: "b", business_connection_id: "", is_forum: false, migrated_to_chat_id: 0 },
				expect.objectContaining({ id: 5, business_connection_id: "bc" }),
			],
			next_cursor: "",
		});
		expect(ROUTES.GetMessages.reply({ data: [message], next_cursor: "abc" })).toEqual({ messages: [messageToProto(message)], next_cursor: "abc" });
		const bot = { id: 1, username: "b", telegram_id: 9, display_name: "B", description: null, mode: "polling", webhook_url: null, is_active: true, last_error: "x", created_at: "a", updated_at: "b" };
		expect(ROUTES.ListBots.reply({ data: [bot], next_cursor: null })).toEqual({
			bots: [{ id: 1, username: "b", telegram_id: 9, display_name: "B", description: "", mode: "polling", webhook_url: "", is_active: true, created_at: "a", updated_at: "b", last_error: "x" }],
			next_cursor: "",
		});
		expect(ROUTES.DeleteBot.reply()).toEqual({});
	});

	it("events: message events carry the message; other updates their kind and raw JSON; chat_id 0 when none", () => {
		const base = { seq: 10, bot_id: 1, created_at: "2025-01-02T03:04:05.000Z" };
		expect(eventToProto({ ...base, type: "new_message", chat_id: 3, message: message as unknown as Record<string, unknown> })).toEqual({
			...base,
			type: "new_message",
			chat_id: 3,
			message: messageToProto(message),
			update_kind: "",
			update_json: "",
		});
		const update: GatewayEvent = { ...base, type: "update", chat_id: null, update_kind: "my_chat_member", update: { chat: { id: 1 }, date: 5 } };
		expect(eventToProto(update)).toEqual({ ...base, type: "update", chat_id: 0, message: null, update_kind: "my_chat_member", update_json: '{"chat":{"id":1},"date":5}' });
	});

	it("approximateSize grows with the event's text", () => {
		const small = eventToProto({ type: "new_message", seq: 1, bot_id: 1, chat_id: 1, created_at: "x", message: message as unknown as Record<string, unknown> });
		const big = eventToProto({ type: "new_message", seq: 1, bot_id: 1, chat_id: 1, created_at: "x", message: { ...message, text: "x".repeat(4096) } as unknown as Record<string, unknown> });
		expect(approximateSize(big) - approximateSize(small)).toBe(4091);
	});

	it("approximateSize counts UTF-8 bytes, as the wire does, not UTF-16 units", () => {
		const ascii = eventToProto({ type: "new_message", seq: 1, bot_id: 1, chat_id: 1, created_at: "x", message: { ...message, text: "x".repeat(4000) } as unknown as Record<string, unknown> });
		const cyrillic = eventToProto({ type: "new_message", seq: 1, bot_id: 1, chat_id: 1, created_at: "x", message: { ...message, text: "я".repeat(4000) } as unknown as Record<string, unknown> });
		const cjk = eventToProto({ type: "new_message", seq: 1, bot_id: 1, chat_id: 1, created_at: "x", message: { ...message, text: "無".repeat(4000) } as unknown as Record<string, unknown> });
		expect(approximateSize(cyrillic) - approximateSize(ascii)).toBe(4000);
		expect(approximateSize(cjk) - approximateSize(ascii)).toBe(8000);
	});
});

describe("gRPC codec: stream requests to topics", () => {
	it("StreamMessages: every chat, or one bot's; since_seq only when present", () => {
		expect(streamMessagesOpening({ bot_id: 0 })).toEqual({ topic: { kind: "all" } });
		expect(streamMessagesOpening({ bot_id: 4, since_seq: 0 })).toEqual({ topic: { kind: "all", botId: 4 }, sinceSeq: 0 });
	});

	it("StreamChatMessages: one chat", () => {
		expect(streamChatOpening({ chat_id: 9, since_seq: 17 })).toEqual({ topic: { kind: "chat", id: 9 }, sinceSeq: 17 });
		expect(streamChatOpening({ chat_id: 9 })).toEqual({ topic: { kind: "chat", id: 9 } });
	});

	it.each([
		[() => streamChatOpening({ chat_id: 0 }), ["chat_id"]],
		[() => streamChatOpening({ chat_id: -2, since_seq: -1 }), ["chat_id", "since_seq"]],
		[() => streamMessagesOpening({ bot_id: -1 }), ["bot_id"]],
		[() => streamMessagesOpening({ bot_id: 0, since_seq: -5 }), ["since_seq"]],
	])("bad stream requests are VALIDATION_ERROR naming the fields (%#)", (open, fields) => {
		const err = thrown(open);
		expect(err.type).toBe("VALIDATION_ERROR");
		expect((err.data as { fields: Array<{ field: string }> }).fields.map((f) => f.field)).toEqual(fields);
	});
});
