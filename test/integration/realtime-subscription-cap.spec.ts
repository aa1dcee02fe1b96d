/**
 * SUBSCRIPTIONS_PER_CONNECTION: one socket.io socket or WebSocket holds at most that many
 * subscriptions, so one connection cannot grow the hub (and every dispatch) without bound, e.g. with
 * bot ids that answer "subscribed" whether or not they exist. Past it the subscribe is refused with
 * CONFLICT naming `subscriptions`; the connection stays open and keeps what it has.
 */
import { createUser, type TestUser } from "../support/auth";
import { userWrites } from "../support/chat-helpers";
import { connectIo, connectWs, type IoClient, type WsClient } from "../support/realtime-clients";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

const CAP = 3;
const NO_BOT = 1_000_000;

describe("subscriptions per connection", () => {
	let t: TelegramGateway;
	let bot: { id: number; token: string };
	let viewer: TestUser;
	let chatId: number;
	let nextTelegramChat = 6000;
	const opened: Array<{ close(): void }> = [];

	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "polling", env: { SUBSCRIPTIONS_PER_CONNECTION: String(CAP) } });
		const added = await t.addBot({ username: "subscription_cap_bot" });
		bot = { id: added.bot.id, token: added.token };
		chatId = (await userWrites(t, bot.token, bot.id, { chat_id: ++nextTelegramChat, text: "hello" })).chatId;
		viewer = await createUser(t.gw, t.adminToken, ["viewer"]);
		expect((await t.api("PUT", `/chats/${chatId}/permissions`, { user_id: viewer.id, can_read: true })).status).toBeLessThan(300);
	}, 60_000);
	afterEach(() => {
		for (const connection of opened.splice(0)) connection.close();
	});
	afterAll(() => t?.stop());

	const liveText = async (client: IoClient | WsClient, text: string) => {
		await userWrites(t, bot.token, bot.id, { chat_id: nextTelegramChat, text });
		const arrived = () => client.events().some((e) => (e.message as { text?: string } | undefined)?.text === text);
		await t.telegram.waitFor(async () => arrived(), 10_000);
	};

	it("socket.io: the subscribe past the cap is acked CONFLICT naming subscriptions; the socket keeps its subscriptions and events", async () => {
		const client = await connectIo(t.baseUrl, { token: viewer.token });
		opened.push(client);
		expect(await client.subscribe({ chat_id: chatId })).toEqual({ ok: true, chat_id: chatId });
		for (let i = 1; i < CAP; i++) expect(await client.subscribe({ bot_id: NO_BOT + i })).toEqual({ ok: true, bot_id: NO_BOT + i });

		const refused = await client.subscribe({ bot_id: NO_BOT + CAP });
		expect(refused).toEqual({
			ok: false,
			error: {
				code: "CONFLICT",
				message: expect.stringContaining("SUBSCRIPTIONS_PER_CONNECTION"),
				details: { field: "subscriptions", limit: CAP },
			},
		});
		// Subscribing again to what it holds is not one more.
		expect(await client.subscribe({ bot_id: NO_BOT + 1 })).toEqual({ ok: true, bot_id: NO_BOT + 1 });
		expect(client.connected).toBe(true);
		await liveText(client, "still live (socket.io)");

		// An unsubscribe makes room.
		expect(await client.unsubscribe({ bot_id: NO_BOT + 1 })).toEqual({ ok: true, bot_id: NO_BOT + 1 });
		expect(await client.subscribe({ bot_id: NO_BOT + CAP })).toEqual({ ok: true, bot_id: NO_BOT + CAP });
	}, 30_000);

	it("WebSocket: an error frame naming the action, bot_id and subscriptions; the connection stays open and serving", async () => {
		const client = await connectWs(t.baseUrl, `?token=${viewer.token}`);
		opened.push(client);
		await client.request({ action: "subscribe", chat_id: chatId }, (f) => f.type === "subscribed");
		for (let i = 1; i < CAP; i++) await client.request({ action: "subscribe", bot_id: NO_BOT + i }, (f) => f.type === "subscribed" && f.bot_id === NO_BOT + i);

		const refused = await client.request({ action: "subscribe", bot_id: NO_BOT + CAP }, (f) => f.type === "error" || f.type === "subscribed");
		expect(refused).toMatchObject({
			type: "error",
			code: "CONFLICT",
			action: "subscribe",
			bot_id: NO_BOT + CAP,
			details: { field: "subscriptions", limit: CAP },
		});
		await client.ping();
		expect(client.open).toBe(true);
		await liveText(client, "still live (WebSocket)");
	}, 30_000);

	it("the cap is per connection: another connection of the same principal has its own", async () => {
		const first = await connectWs(t.baseUrl, `?token=${viewer.token}`);
		const second = await connectWs(t.baseUrl, `?token=${viewer.token}`);
		opened.push(first, second);
		for (let i = 0; i < CAP; i++) await first.request({ action: "subscribe", bot_id: NO_BOT + i }, (f) => f.type === "subscribed" && f.bot_id === NO_BOT + i);
		const answer = await second.request({ action: "subscribe", bot_id: NO_BOT }, (f) => f.type === "subscribed" || f.type === "error");
		expect(answer).toEqual({ type: "subscribed", bot_id: NO_BOT });
	}, 30_000);
});
