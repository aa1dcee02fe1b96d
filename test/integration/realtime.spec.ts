/**
 * socket.io on the gateway's port (API.md "socket.io"), with the Telegram double playing users:
 * credentials at the handshake, subscribe acks and their refusals, events named by type, replay
 * after since_seq joined to live events with no gap and no duplicate, reconnection, per-chat ACL for
 * bot subscriptions, no cluster action reachable, revocation within a second, and a stalled client.
 */
import type { Server as SocketServer } from "socket.io";
import type { SubscriptionHub } from "../../mixins/event-stream/subscription-hub";
import { headSeq, raiseSeqFloor } from "../../services/broker/event-log";
import { createKey, createUser, loginAction, type TestUser } from "../support/auth";
import { userWrites } from "../support/chat-helpers";
import { chatSeqsInLog, connectIo, ioConnectError, pause, rawSocketIo, userFloods, waitUntil, type IoClient, type Payload } from "../support/realtime-clients";
import { freePort } from "../support/processes";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

interface Chat {
	id: number;
	telegramId: number;
}

describe("socket.io", () => {
	let t: TelegramGateway;
	let bot: { id: number; token: string };
	let realtime: { hub: SubscriptionHub; io: SocketServer };
	let nextTelegramChat = 5000;
	const clients: IoClient[] = [];

	beforeAll(async () => {
		// Its own gRPC port: other gateways (other test files) may be running at the same time.
		t = await startTelegramGateway({ mode: "polling", env: { GRPC_PORT: String(await freePort()) } });
		const added = await t.addBot({ username: "realtime_bot" });
		bot = { id: added.bot.id, token: added.token };
		realtime = t.gw.broker.getLocalService("realtime") as unknown as typeof realtime;
	}, 60_000);
	afterEach(() => {
		for (const client of clients.splice(0)) client.close();
	});
	afterAll(() => t?.stop());

	async function connect(auth: Payload): Promise<IoClient> {
		const client = await connectIo(t.baseUrl, auth);
		clients.push(client);
		return client;
	}
	const admin = () => connect({ token: t.adminToken });
	/** A fresh private chat of `owner`: its user writes first, so the gateway knows the chat. */
	async function newChat(owner = bot): Promise<Chat> {
		nextTelegramChat += 1;
		const written = await userWrites(t, owner.token, owner.id, { chat_id: nextTelegramChat, text: `hello from ${nextTelegramChat}` });
		return { id: written.chatId, telegramId: nextTelegramChat };
	}
	async function grant(chatId: number, body: Payload): Promise<number> {
		const res = await t.api<{ id: number }>("PUT", `/chats/${chatId}/permissions`, body);
		expect([200, 201]).toContain(res.status);
		return res.body.id;
	}
	const viewer = () => createUser(t.gw, t.adminToken, ["viewer"]);

	describe("connecting", () => {
		it("accepts an access JWT and an API key in auth.token", async () => {
			const key = await createKey(t.baseUrl, t.adminToken);
			for (const token of [t.adminToken, key.key]) {
				const client = await connect({ token });
				expect(client.connected).toBe(true);
				expect(await client.subscribe({ bot_id: bot.id })).toEqual({ ok: true, bot_id: bot.id });
			}
		});

		it.each([
			["no auth at all", undefined],
			["an empty token", { token: "" }],
			["a malformed JWT", { token: "not.a.jwt" }],
			["an unknown API key", { token: `tgw_${"x".repeat(40)}` }],
			["a number as token", { token: 42 }],
		])("%s fails the connection with connect_error saying why (UNAUTHORIZED)", async (_name, auth) => {
			const err = await ioConnectError(t.baseUrl, auth as Payload | undefined);
			expect(err.message.length).toBeGreaterThan(0);
			expect(err.message).not.toMatch(/websocket error|xhr poll error|timeout/i);
			expect(err.data).toMatchObject({ code: "UNAUTHORIZED", message: expect.any(String) });
		});
	});

	describe("subscribe", () => {
		it("acks {ok: true, chat_id} and sends every kind of event named by its type", async () => {
			const chat = await newChat();
			const client = await admin();
			expect(await client.subscribe({ chat_id: chat.id })).toEqual({ ok: true, chat_id: chat.id });
			const sent = t.telegram.userSends(bot.token, { chat_id: chat.telegramId, text: "typed events" });
			const messageId = sent.message!.message_id;
			const incoming = await client.waitFor((r) => r.event === "new_message");
			t.telegram.userEdits(bot.token, { chat_id: chat.telegramId, message_id: messageId, text: "typed events, edited" });
			const edited = await client.waitFor((r) => r.event === "edited_message");
			const posted = await t.api<{ id: number; seq: number }>("POST", `/chats/${chat.id}/messages`, { text: "from the API" });
			expect(posted.status).toBe(201);
			const outgoing = await client.waitFor((r) => r.event === "outgoing_message");
			t.telegram.userClicks(bot.token, { chat_id: chat.telegramId, message_id: messageId, data: "button-1" });
			const update = await client.waitFor((r) => r.event === "update");

			const base = { bot_id: bot.id, chat_id: chat.id, seq: expect.any(Number) };
			expect(incoming.payload).toMatchObject({ ...base, type: "new_message", message: { text: "typed events", direction: "incoming", telegram_message_id: messageId } });
			expect(edited.payload).toMatchObject({ ...base, type: "edited_message", message: { id: (incoming.payload.message as Payload).id, text: "typed events, edited" } });
			expect(outgoing.payload).toMatchObject({ ...base, type: "outgoing_message", seq: posted.body.seq, message: { id: posted.body.id, direction: "outgoing" } });
			expect(update.payload).toMatchObject({ ...base, type: "update", update: expect.anything() });
			expect(JSON.stringify(update.payload.update)).toContain('"data":"button-1"');
			expect(update.payload.message).toBeUndefined();
			expect(client.received.map((r) => [r.event, r.payload.type])).toEqual(["new_message", "edited_message", "outgoing_message", "update"].map((n) => [n, n]));
			const seqs = client.seqs(chat.id);
			expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
			expect(new Set(seqs).size).toBe(4);
		});

		it("live events go on after the event counter is raised while the gateway runs (`migrate -- seq --above`): the hole is stepped over", async () => {
			const chat = await newChat();
			const client = await admin();
			await client.subscribe({ chat_id: chat.id });
			await userFloods(t, bot.token, chat, 1, () => "before the raise");
			await client.waitForSeqs(chat.id, 1);
			const { after } = await raiseSeqFloor(t.gw.runtime.db, (await headSeq(t.gw.runtime.db)) + 1_000);
			await userFloods(t, bot.token, chat, 2, (i) => `after the raise ${i}`);
			await client.waitForSeqs(chat.id, 3);
			expect(client.seqs(chat.id).slice(1)).toEqual([after + 1, after + 2]);
		});

		it("an `update` event carries the raw Telegram update (API.md: `update` the raw one)", async () => {
			const chat = await newChat();
			const client = await admin();
			await client.subscribe({ chat_id: chat.id });
			const click = t.telegram.userClicks(bot.token, { chat_id: chat.telegramId, message_id: 1, data: "raw-please" });
			const update = await client.waitFor((r) => r.event === "update");
			expect(update.payload.update).toMatchObject({ update_id: click.update_id, callback_query: { data: "raw-please" } });
		});

		it("without can_read: FORBIDDEN, and not one event of that chat reaches the socket; with a grant it does", async () => {
			const chat = await newChat();
			const user = await viewer();
			const watcher = await admin();
			await watcher.subscribe({ chat_id: chat.id });
			const refused = await connect({ token: user.token });
			const ack = await refused.subscribe({ chat_id: chat.id, since_seq: 0 });
			expect(ack).toEqual({ ok: false, error: { code: "FORBIDDEN", message: expect.any(String) } });
			await userFloods(t, bot.token, chat, 5, (i) => `secret ${i}`);
			await watcher.waitForSeqs(chat.id, 5);
			await pause(300);
			expect(refused.received).toEqual([]);
			expect(refused.connected).toBe(true);

			await grant(chat.id, { user_id: user.id, can_read: true });
			expect(await refused.subscribe({ chat_id: chat.id })).toEqual({ ok: true, chat_id: chat.id });
			await userFloods(t, bot.token, chat, 1, () => "now visible");
			const got = await refused.waitFor((r) => r.event === "new_message");
			expect(got.payload).toMatchObject({ chat_id: chat.id, message: { text: "now visible" } });
		});

		it("an unknown chat or bot is NOT_FOUND", async () => {
			const client = await admin();
			expect(await client.subscribe({ chat_id: 987_654 })).toEqual({ ok: false, error: { code: "NOT_FOUND", message: expect.any(String) } });
			expect(await client.subscribe({ bot_id: 987_654 })).toEqual({ ok: false, error: { code: "NOT_FOUND", message: expect.any(String) } });
		});

		it("to a principal that may not list bots, an unknown bot answers as a bot with no chat it can read (whether a bot exists is not told)", async () => {
			const user = await viewer();
			const client = await connect({ token: user.token });
			expect(await client.subscribe({ bot_id: 987_654 })).toEqual({ ok: true, bot_id: 987_654 });
			expect(await client.subscribe({ bot_id: bot.id })).toEqual({ ok: true, bot_id: bot.id });
		});

		it.each([
			["neither chat_id nor bot_id", {}, ["chat_id", "bot_id"]],
			["both chat_id and bot_id", { chat_id: 1, bot_id: 1 }, ["chat_id", "bot_id"]],
			["a negative chat_id", { chat_id: -1 }, ["chat_id"]],
			["a string chat_id", { chat_id: "1" }, ["chat_id"]],
			["a fractional bot_id", { bot_id: 1.5 }, ["bot_id"]],
			["a negative since_seq", { chat_id: 1, since_seq: -1 }, ["since_seq"]],
			["an unknown field", { chat_id: 1, colour: "red" }, ["colour"]],
			["a string payload", "chat 1", ["payload"]],
			["an array payload", [1], ["payload"]],
			["a null payload", null, ["payload"]],
			// Was INTERNAL: fastest-validator could not write the refused value into its message (found by hostile-realtime's fuzz).
			["a field whose value String() cannot read", { chat_id: 1, action: [{ toString: 0 }] }, ["action"]],
		])("%s is VALIDATION_ERROR naming the field, and the socket stays usable", async (_name, payload, fields) => {
			const chat = await newChat();
			const client = await admin();
			const ack = (await client.subscribe(payload)) as { ok: boolean; error: { code: string; message: string; details?: { fields: Array<{ field: string }> } } };
			expect(ack).toMatchObject({ ok: false, error: { code: "VALIDATION_ERROR", message: expect.any(String) } });
			expect(ack.error.details?.fields.map((f) => f.field)).toEqual(expect.arrayContaining(fields));
			// Every problem names a field (a payload that is no object named "", and the message read "Invalid ").
			expect(ack.error.details?.fields.every((f) => f.field !== "")).toBe(true);
			expect(ack.error.message).not.toMatch(/Invalid\s*$/);
			expect(client.connected).toBe(true);
			expect(await client.subscribe({ chat_id: chat.id })).toEqual({ ok: true, chat_id: chat.id });
		});

		it("a subscribe without any payload (only the ack) is answered VALIDATION_ERROR", async () => {
			const client = await admin();
			await expect(client.ask("subscribe")).resolves.toMatchObject({ ok: false, error: { code: "VALIDATION_ERROR" } });
		});

		it("since_seq replays every stored event after it in order, then live, with no gap and no duplicate while messages keep arriving", async () => {
			const chat = await newChat();
			await userFloods(t, bot.token, chat, 1_200, (i) => `history ${i}`);
			const since = (await chatSeqsInLog(t, chat.id))[100]!;
			let producing = true;
			const producer = (async () => {
				for (let i = 0; i < 300; i += 1) {
					t.telegram.userSends(bot.token, { chat_id: chat.telegramId, text: `live ${i}` });
					if (i % 10 === 0) await pause(3);
				}
				producing = false;
			})();
			await pause(10);
			const client = await admin();
			expect(await client.subscribe({ chat_id: chat.id, since_seq: since })).toEqual({ ok: true, chat_id: chat.id });
			const headAtAck = Math.max(...(await chatSeqsInLog(t, chat.id)));
			await producer;
			expect(producing).toBe(false);
			await waitUntil(async () => (await chatSeqsInLog(t, chat.id)).length === 1_200 + 1 + 300, 30_000, "every live message stored");
			const expected = await chatSeqsInLog(t, chat.id, since);
			expect(expected[expected.length - 1]!).toBeGreaterThan(headAtAck); // some arrived live, after the ack
			await client.waitForSeqs(chat.id, expected.length, 20_000);
			await pause(200);
			expect(client.seqs(chat.id)).toEqual(expected);
		}, 60_000);

		it("a reconnect with since_seq = the last seen seq receives exactly the missed events, then live ones", async () => {
			const chat = await newChat();
			const first = await admin();
			await first.subscribe({ chat_id: chat.id });
			await userFloods(t, bot.token, chat, 3);
			await first.waitForSeqs(chat.id, 3);
			const lastSeen = Math.max(...first.seqs(chat.id));
			first.close();
			await userFloods(t, bot.token, chat, 4, (i) => `missed ${i}`);
			const missed = await chatSeqsInLog(t, chat.id, lastSeen);
			expect(missed).toHaveLength(4);
			const again = await admin();
			await again.subscribe({ chat_id: chat.id, since_seq: lastSeen });
			await again.waitForSeqs(chat.id, 4);
			await userFloods(t, bot.token, chat, 1, () => "live again");
			await again.waitForSeqs(chat.id, 5);
			await pause(200);
			expect(again.seqs(chat.id)).toEqual(await chatSeqsInLog(t, chat.id, lastSeen));
			expect(again.events().map((e) => (e.message as Payload).text)).toEqual(["missed 0", "missed 1", "missed 2", "missed 3", "live again"]);
		});

		it("a bot subscription delivers only the chats the principal can read (admins also get chat-less updates)", async () => {
			const added = await t.addBot({ username: "realtime_bot_two" });
			const other = { id: added.bot.id, token: added.token };
			const [readable, hidden] = [await newChat(other), await newChat(other)];
			const user = await viewer();
			await grant(readable.id, { user_id: user.id, can_read: true });
			const mine = await connect({ token: user.token });
			const all = await admin();
			expect(await mine.subscribe({ bot_id: other.id })).toEqual({ ok: true, bot_id: other.id });
			expect(await all.subscribe({ bot_id: other.id })).toEqual({ ok: true, bot_id: other.id });
			await userFloods(t, other.token, readable, 2);
			await userFloods(t, other.token, hidden, 2);
			t.telegram.enqueueUpdate(other.token, { inline_query: { id: "iq-1", from: { id: 77, is_bot: false, first_name: "Q" }, query: "find", offset: "" } } as never);
			await waitUntil(() => all.events().length >= 5, 10_000, "the admin's 5 events");
			expect(all.events().filter((e) => e.chat_id === null)).toHaveLength(1);
			await pause(300);
			expect(mine.events().map((e) => e.chat_id)).toEqual([readable.id, readable.id]);
		});

		it("unsubscribe acks and stops the chat's events", async () => {
			const chat = await newChat();
			const client = await admin();
			await client.subscribe({ chat_id: chat.id });
			await userFloods(t, bot.token, chat, 1);
			await client.waitForSeqs(chat.id, 1);
			expect(await client.unsubscribe({ chat_id: chat.id })).toEqual({ ok: true, chat_id: chat.id });
			await userFloods(t, bot.token, chat, 2);
			await pause(300);
			expect(client.seqs(chat.id)).toHaveLength(1);
		});

		it.each(["auth.listUsers", "$node.services", "broker.replay", "auth.createApiKey"])("moleculer-io's `call` cannot reach %s: answered NOT_FOUND, nothing runs, nothing leaks", async (action) => {
			const client = await admin();
			const keysBefore = await t.gw.runtime.db.models.ApiKey.count();
			const answer = await client.socket.timeout(2_000).emitWithAck("call", action, { after_seq: 0, name: "via-socket" });
			expect(answer).toEqual({ ok: false, error: { code: "NOT_FOUND", message: "Unknown event 'call': a socket may emit subscribe and unsubscribe" } });
			expect(client.received).toEqual([]);
			expect(client.connected).toBe(true);
			expect(await t.gw.runtime.db.models.ApiKey.count()).toBe(keysBefore);
		});

		it("any other event with an ack is answered NOT_FOUND (the client does not wait out its timeout); without one, nothing is sent", async () => {
			const client = await admin();
			for (const event of ["request", "action", "io.broadcast", "x".repeat(200)]) {
				const answer = (await client.socket.timeout(2_000).emitWithAck(event, { chat_id: 1 })) as { ok: boolean; error: { code: string; message: string } };
				expect(answer).toMatchObject({ ok: false, error: { code: "NOT_FOUND" } });
				expect(answer.error.message.length).toBeLessThan(140);
			}
			client.socket.emit("request", { chat_id: 1 });
			await pause(300);
			expect(client.received).toEqual([]);
			expect(client.connected).toBe(true);
		});
	});

	describe("revocation", () => {
		/** A viewer's socket with can_read on a new chat (not yet subscribed), and an admin's socket watching that chat. */
		async function grantedReader() {
			const chat = await newChat();
			const user = await viewer();
			const grantId = await grant(chat.id, { user_id: user.id, can_read: true });
			const client = await connect({ token: user.token });
			const watcher = await admin();
			await watcher.subscribe({ chat_id: chat.id });
			return { chat, grantId, client, watcher };
		}

		it("revoking the grant ends that chat's events with an `unsubscribed` event within 1 s", async () => {
			const { chat, grantId, client, watcher } = await grantedReader();
			expect(await client.subscribe({ chat_id: chat.id })).toMatchObject({ ok: true });
			await userFloods(t, bot.token, chat, 1);
			await client.waitForSeqs(chat.id, 1);
			expect((await t.api("DELETE", `/chats/${chat.id}/permissions/${grantId}`)).status).toBe(204);
			const notice = await client.waitFor((r) => r.event === "unsubscribed", 1_000, "unsubscribed within 1 s");
			expect(notice.payload).toMatchObject({ chat_id: chat.id, code: "FORBIDDEN" });
			await userFloods(t, bot.token, chat, 3, (i) => `after revoke ${i}`);
			await watcher.waitForSeqs(chat.id, 4);
			await pause(300);
			expect(client.seqs(chat.id)).toHaveLength(1);
			expect(client.connected).toBe(true);
		});

		it("a grant revoked while the subscription was being checked still ends it within 1 s (it was not in the hub yet when the change came)", async () => {
			const { chat, grantId, client, watcher } = await grantedReader();
			// auth.can says yes, then the grant goes before the subscription is in place.
			const call = t.gw.broker.call.bind(t.gw.broker) as (...args: unknown[]) => Promise<unknown> & { ctx?: unknown };
			let held = false;
			const spy = jest.spyOn(t.gw.broker, "call").mockImplementation(((action: string, ...rest: unknown[]) => {
				const called = call(action, ...rest);
				const params = rest[0] as { chat_id?: number; right?: string } | undefined;
				if (action !== "auth.can" || held || params?.chat_id !== chat.id || params.right !== "can_read") return called;
				held = true;
				const later = called.then(async (answer) => {
					expect((await t.api("DELETE", `/chats/${chat.id}/permissions/${grantId}`)).status).toBe(204);
					await pause(600);
					return answer;
				});
				// Moleculer merges the callee's meta back through this property of the promise.
				return Object.assign(later, { ctx: called.ctx });
			}) as unknown as typeof t.gw.broker.call);
			try {
				const ack = await client.subscribe({ chat_id: chat.id });
				expect({ ack, held }).toMatchObject({ ack: { ok: true }, held: true });
			} finally {
				spy.mockRestore();
			}
			const notice = await client.waitFor((r) => r.event === "unsubscribed", 1_000, "unsubscribed within 1 s");
			expect(notice.payload).toMatchObject({ chat_id: chat.id, code: "FORBIDDEN" });
			await userFloods(t, bot.token, chat, 2, (i) => `after revoke ${i}`);
			await watcher.waitForSeqs(chat.id, 2);
			await pause(300);
			expect(client.seqs(chat.id)).toHaveLength(0);
		});

		it("revoking the API key a socket connected with disconnects it within 1 s", async () => {
			const key = await createKey(t.baseUrl, t.adminToken);
			const client = await connect({ token: key.key });
			await client.subscribe({ bot_id: bot.id });
			const before = realtime.hub.connectionCount;
			expect((await t.api("DELETE", `/apikeys/${key.id}`)).status).toBe(204);
			await client.waitForDisconnect(1_000);
			expect(client.disconnectReason).toBe("io server disconnect");
			expect(realtime.hub.connectionCount).toBe(before - 1);
			await expect(ioConnectError(t.baseUrl, { token: key.key })).resolves.toMatchObject({ data: { code: "UNAUTHORIZED" } });
		});

		it("logging out disconnects the sockets of that login within 1 s; the user's other logins stay", async () => {
			const user: TestUser = await viewer();
			const leaving = await loginAction(t.gw.broker, user.username, user.password);
			const ending = await connect({ token: leaving.access_token });
			const staying = await connect({ token: user.token });
			const out = await t.api("POST", "/auth/logout", { refresh_token: leaving.refresh_token });
			expect(out.status).toBe(204);
			await ending.waitForDisconnect(1_000);
			expect(ending.disconnectReason).toBe("io server disconnect");
			await pause(300);
			expect(staying.connected).toBe(true);
			await expect(ioConnectError(t.baseUrl, { token: leaving.access_token })).resolves.toMatchObject({ data: { code: "UNAUTHORIZED" } });
		});

		it("deleting the user disconnects its sockets (JWT and API key) within 1 s", async () => {
			const user: TestUser = await viewer();
			const key = await createKey(t.baseUrl, t.adminToken, { user_id: user.id });
			const byToken = await connect({ token: user.token });
			const byKey = await connect({ token: key.key });
			const bystander = await admin();
			expect((await t.api("DELETE", `/users/${user.id}`)).status).toBe(204);
			await Promise.all([byToken.waitForDisconnect(1_000), byKey.waitForDisconnect(1_000)]);
			expect(bystander.connected).toBe(true);
		});
	});

	describe("a stalled client", () => {
		it("is closed once its queue is over the cap, and the server lets go of it; readers are not affected", async () => {
			const chat = await newChat();
			const reader = await admin();
			await reader.subscribe({ chat_id: chat.id });
			const stalled = await rawSocketIo(t.baseUrl, t.adminToken, { chat_id: chat.id });
			try {
				expect(stalled.ack).toEqual({ ok: true, chat_id: chat.id });
				const hubBefore = realtime.hub.connectionCount;
				const engineBefore = realtime.io.engine.clientsCount;
				stalled.stall();
				// Real ingest: 4,000 messages of ~4 KB, far more than the kernel's buffers and 1,000 packets.
				await userFloods(t, bot.token, chat, 4_000, (i) => `${i} `.padEnd(4_000, "x"));
				await waitUntil(() => realtime.hub.connectionCount === hubBefore - 1, 10_000, "the hub to drop the stalled client");
				await reader.waitForSeqs(chat.id, 4_000, 20_000);
				expect(reader.connected).toBe(true);
				// Closed means closed: the engine.io connection and the packets it holds are released.
				await waitUntil(() => realtime.io.engine.clientsCount === engineBefore - 1, 5_000, "the stalled engine.io connection to be closed");
			} finally {
				stalled.close();
			}
		}, 60_000);
	});
});
