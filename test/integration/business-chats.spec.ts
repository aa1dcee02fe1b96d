/**
 * Chats of connected business accounts. Telegram: a business message's chat "is independent from any
 * potential bot chat which might share the same identifier", and each has its own message ids. Before
 * migration 0010 the gateway stored both as one chat: a business message with the id of one of the
 * bot's own messages was dropped as that message, and its edit overwrote the bot's message.
 */
import { waitForEvent, waitForStatus, type ChatBody, type MessageBody, type Page } from "../support/chat-helpers";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

const CUSTOMER = { id: 456, is_bot: false, first_name: "Cu", username: "customer" };
const CHAT = { id: 456, type: "private", first_name: "Cu", username: "customer" };

describe("business chats", () => {
	let t: TelegramGateway;
	let bot: { id: number; token: string };

	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "webhook" });
		const added = await t.addBot({ username: "business_bot" });
		bot = { id: added.bot.id, token: added.token };
	}, 60_000);
	afterAll(() => t.stop());

	const push = async (update: Record<string, unknown>) => {
		const sent = t.telegram.enqueueUpdate(bot.token, update);
		await t.telegram.waitFor(() => t.telegram.pushLog(bot.token).some((p) => p.update_id === sent.update_id && p.status === 200), 10_000);
		return sent;
	};
	const message = (fields: Record<string, unknown>) => ({ message_id: 123, from: CUSTOMER, chat: CHAT, date: 1_700_000_000, ...fields });
	const history = async (chatId: number) => (await t.api<Page<MessageBody>>("GET", `/chats/${chatId}/messages`)).body.data;

	it("keeps the bot's own chat, and each business account's chat with the same customer, apart: messages, edits and replies", async () => {
		await push({ message: message({ text: "to the bot itself" }) });
		await push({ business_message: message({ business_connection_id: "bc-1", date: 1_700_000_100, text: "to business one" }) });
		await push({ business_message: message({ business_connection_id: "bc-2", date: 1_700_000_150, text: "to business two" }) });
		// Connection ids are case-sensitive: on MySQL the default collation would take these for one.
		await push({ business_message: message({ business_connection_id: "BC-1", date: 1_700_000_160, text: "to business one, upper case" }) });
		await push({ edited_business_message: message({ business_connection_id: "bc-1", date: 1_700_000_100, edit_date: 1_700_000_200, text: "business one, edited" }) });

		const chats = (await t.api<Page<ChatBody>>("GET", `/chats?bot_id=${bot.id}`)).body.data;
		expect(chats.map((c) => [c.telegram_id, c.business_connection_id])).toEqual([
			[456, null],
			[456, "bc-1"],
			[456, "bc-2"],
			[456, "BC-1"],
		]);
		const [own, one, two, upper] = chats.map((c) => c.id) as [number, number, number, number];
		expect((await history(own)).map((m) => m.text)).toEqual(["to the bot itself"]);
		expect((await history(one)).map((m) => m.text)).toEqual(["business one, edited"]);
		expect((await history(two)).map((m) => m.text)).toEqual(["to business two"]);
		expect((await history(upper)).map((m) => m.text)).toEqual(["to business one, upper case"]);

		// Each new message was announced as itself, in its own chat.
		const announced = t.events.filter((e) => e.type === "new_message" && e.bot_id === bot.id) as Array<{ chat_id: number; message: { text: string } }>;
		expect(announced.map((e) => [e.chat_id, e.message.text])).toEqual([
			[own, "to the bot itself"],
			[one, "to business one"],
			[two, "to business two"],
			[upper, "to business one, upper case"],
		]);
		expect((await t.api<ChatBody>("GET", `/chats/${one}`)).body.business_connection_id).toBe("bc-1");
	});

	it("deleted_business_messages is an event of the business account's chat", async () => {
		await push({ deleted_business_messages: { business_connection_id: "bc-2", chat: CHAT, message_ids: [123] } });
		const event = await waitForEvent(t, (e) => (e as { update_kind?: string }).update_kind === "deleted_business_messages" && e.bot_id === bot.id);
		const chats = (await t.api<Page<ChatBody>>("GET", `/chats?bot_id=${bot.id}`)).body.data;
		expect(event.chat_id).toBe(chats.find((c) => c.business_connection_id === "bc-2")!.id);
	});

	it("a message sent to a business account's chat goes out on the account's behalf; one to the bot's own chat does not", async () => {
		const chats = (await t.api<Page<ChatBody>>("GET", `/chats?bot_id=${bot.id}`)).body.data;
		const one = chats.find((c) => c.business_connection_id === "bc-1")!.id;
		const own = chats.find((c) => c.business_connection_id === null)!.id;
		const viaBusiness = await t.api<MessageBody>("POST", `/chats/${one}/messages`, { text: "reply as the business" });
		const viaBot = await t.api<MessageBody>("POST", `/chats/${own}/messages`, { text: "reply as the bot" });
		for (const answer of [viaBusiness, viaBot]) expect([201, 202]).toContain(answer.status);
		await waitForStatus(t, viaBusiness.body.id, "sent");
		await waitForStatus(t, viaBot.body.id, "sent");
		const sent = (text: string) => t.telegram.sent.find((r) => r.method === "sendMessage" && r.params.text === text)!;
		expect(sent("reply as the business").params).toMatchObject({ chat_id: 456, business_connection_id: "bc-1" });
		expect(sent("reply as the bot").params).not.toHaveProperty("business_connection_id");
	});
});
