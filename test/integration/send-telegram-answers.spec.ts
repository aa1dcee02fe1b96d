/**
 * A sent message is recorded as Telegram's answer says it went out (not as it was asked for): the
 * text after markup is parsed, no reply when Telegram sent it as none, the forum topic it landed in;
 * and Telegram's limit on a text counts after markup is parsed, so a parse_mode's raw text may be longer.
 */
import { expectApiError, errorFields } from "../support/auth";
import { sentWithText, userWrites, type MessageBody } from "../support/chat-helpers";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

describe("sending: recorded as Telegram answered", () => {
	let t: TelegramGateway;
	let bot: { id: number; token: string };
	let nextChat = 7_000;

	const send = (chatId: number, body: Record<string, unknown>) => t.api<MessageBody>("POST", `/chats/${chatId}/messages`, body);
	const newPrivateChat = async () => {
		nextChat += 1;
		return (await userWrites(t, bot.token, bot.id, { chat_id: nextChat, text: `hi from ${nextChat}` })).chatId;
	};

	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "webhook" });
		const added = await t.addBot({ username: "answers_bot" });
		bot = { id: added.bot.id, token: added.token };
	}, 60_000);
	afterEach(() => t.telegram.clearFaults());
	afterAll(() => t.stop());

	it("a text whose HTML markup takes it past 4096 characters, but whose visible text is under 4096, is sent (Telegram counts after entity parsing)", async () => {
		const chatId = await newPrivateChat();
		const visible = "x".repeat(4_000);
		const text = `<b>${visible.slice(0, 2_000)}</b><i>${visible.slice(2_000)}</i>` + "<b></b>".repeat(20); // 4147 raw, 4000 visible
		expect(text.length).toBeGreaterThan(4096);
		const res = await send(chatId, { text, parse_mode: "HTML" });
		expect(res.status).toBe(201);
		expect(res.body.text).toBe(visible);
	});

	it("with a parse_mode, a visible text over 4096 is Telegram's to refuse (the message fails), and a raw text over 16384 is refused at once", async () => {
		const chatId = await newPrivateChat();
		const tooLong = await send(chatId, { text: `<b>${"y".repeat(5_000)}</b>`, parse_mode: "HTML" });
		expect(expectApiError(tooLong, 400, "BAD_REQUEST").message).toBe("Telegram refused the message: Bad Request: message is too long");
		const calls = t.telegram.calls.sendMessage ?? 0;
		const huge = await send(chatId, { text: "z".repeat(16_385), parse_mode: "HTML" });
		expectApiError(huge, 400, "VALIDATION_ERROR");
		expect(errorFields(huge)).toEqual(["text"]);
		expect(t.telegram.calls.sendMessage ?? 0).toBe(calls);
		// Within the length, but too large to queue as JSON (MySQL's TEXT holds 64 KB): a 400, not a 500.
		const escaped = await send(chatId, { text: "\u0001".repeat(16_000), parse_mode: "HTML" });
		expectApiError(escaped, 400, "VALIDATION_ERROR");
		expect(errorFields(escaped)).toEqual(["text"]);
		expect(t.telegram.calls.sendMessage ?? 0).toBe(calls);
	});

	it("a reply to a message Telegram cannot find (sent without the reply) is not recorded as a reply", async () => {
		const chatId = await newPrivateChat();
		const res = await send(chatId, { text: "reply to a vanished message", reply_to_message_id: 987_654 });
		expect(res.status).toBe(201);
		const [record] = sentWithText(t, "reply to a vanished message");
		expect(record!.message.reply_to_message).toBeUndefined();
		expect(res.body.reply_to_message_id).toBeNull();
	});

	it("a reply in a forum topic is recorded in that topic, as Telegram's answer says (thread_id from message_thread_id)", async () => {
		nextChat += 1;
		const forumId = -1_000_000_000_000 - nextChat;
		const written = await userWrites(t, bot.token, bot.id, {
			chat_id: forumId,
			chat: { type: "supergroup", title: "forum", is_forum: true },
			text: "question in topic 5",
			message_thread_id: 5,
			is_topic_message: true,
		});
		expect(written.message.thread_id).toBe(5);
		// Telegram puts a reply into the topic of the message it replies to, and says so in its answer.
		t.telegram.failNext("sendMessage", {
			answer: {
				ok: true,
				result: {
					message_id: 9_001,
					from: { id: 1, is_bot: true, first_name: "bot" },
					chat: { id: forumId, type: "supergroup", title: "forum", is_forum: true },
					date: Math.floor(Date.now() / 1000),
					message_thread_id: 5,
					is_topic_message: true,
					reply_to_message: { message_id: written.message.telegram_message_id, chat: { id: forumId, type: "supergroup" }, date: 1 },
					text: "answer in topic 5",
				},
			},
		});
		const res = await send(written.chatId, { text: "answer in topic 5", reply_to_message_id: written.message.telegram_message_id! });
		expect(res.status).toBe(201);
		expect(res.body).toMatchObject({ telegram_message_id: 9_001, thread_id: 5, reply_to_message_id: written.message.telegram_message_id });
	});
});
