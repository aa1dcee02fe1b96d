/**
 * The plain WebSocket endpoint, /api/v1/ws (API.md "Plain WebSocket"): the credential is checked at
 * the upgrade (401 there), JSON frames subscribe / unsubscribe / ping, refused and malformed frames
 * get error frames on a connection that stays open, events arrive as the socket.io payloads, and the
 * ACL and revocation hold as they do for socket.io.
 */
import type { SubscriptionHub } from "../../mixins/event-stream/subscription-hub";
import { createKey, createUser, loginAction } from "../support/auth";
import { userWrites } from "../support/chat-helpers";
import { chatSeqsInLog, connectWs, pause, userFloods, waitUntil, wsRefusal, type Payload, type WsClient } from "../support/realtime-clients";
import { freePort } from "../support/processes";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

describe("plain WebSocket /api/v1/ws", () => {
	let t: TelegramGateway;
	let bot: { id: number; token: string };
	let hub: SubscriptionHub;
	let nextTelegramChat = 7000;
	const clients: WsClient[] = [];

	beforeAll(async () => {
		// Its own gRPC port: other gateways (other test files) may be running at the same time.
		t = await startTelegramGateway({ mode: "polling", env: { GRPC_PORT: String(await freePort()) } });
		const added = await t.addBot({ username: "ws_bot" });
		bot = { id: added.bot.id, token: added.token };
		hub = (t.gw.broker.getLocalService("realtime") as unknown as { hub: SubscriptionHub }).hub;
	}, 60_000);
	afterEach(() => {
		for (const client of clients.splice(0)) client.close();
	});
	afterAll(() => t?.stop());

	async function open(query: string, headers: Record<string, string> = {}): Promise<WsClient> {
		const client = await connectWs(t.baseUrl, query, headers);
		clients.push(client);
		return client;
	}
	const admin = () => open(`?token=${t.adminToken}`);
	async function newChat(): Promise<{ id: number; telegramId: number }> {
		nextTelegramChat += 1;
		const written = await userWrites(t, bot.token, bot.id, { chat_id: nextTelegramChat, text: `hello from ${nextTelegramChat}` });
		return { id: written.chatId, telegramId: nextTelegramChat };
	}
	const isError = (f: Payload) => f.type === "error";
	const subscribe = (client: WsClient, body: Payload) =>
		client.request({ action: "subscribe", ...body }, (f) => f.type === "subscribed" || isError(f));

	describe("the upgrade", () => {
		it.each([
			["?token= with an access JWT", "jwt", "query"],
			["?token= with an API key", "key", "query"],
			["?api_key= with an API key", "key", "api_key"],
			["?api_key= beside an empty ?token=", "key", "empty_token"],
			["Authorization: Bearer <JWT>", "jwt", "bearer"],
			["Authorization: Bearer <API key>", "key", "bearer"],
			["X-API-Key", "key", "x-api-key"],
		])("accepts %s", async (_name, kind, where) => {
			const credential = kind === "jwt" ? t.adminToken : (await createKey(t.baseUrl, t.adminToken)).key;
			const query = where === "query" ? `?token=${credential}` : where === "api_key" ? `?api_key=${credential}` : where === "empty_token" ? `?token=&api_key=${credential}` : "";
			const headers: Record<string, string> = where === "bearer" ? { authorization: `Bearer ${credential}` } : where === "x-api-key" ? { "x-api-key": credential } : {};
			const client = await open(query, headers);
			await client.ping();
			expect(client.frames).toEqual([{ action: "pong" }]);
		});

		it("a credential in a header wins over one in the query, as in REST: ?token=garbage beside a valid Bearer or X-API-Key opens", async () => {
			const key = (await createKey(t.baseUrl, t.adminToken)).key;
			const rest = await fetch(`${t.baseUrl}/api/v1/auth/me?token=garbage`, { headers: { authorization: `Bearer ${t.adminToken}` } });
			expect(rest.status).toBe(200);
			const headerForms: Array<Record<string, string>> = [{ authorization: `Bearer ${t.adminToken}` }, { "x-api-key": key }];
			for (const headers of headerForms) {
				const client = await open("?token=garbage", headers);
				await client.ping();
			}
			// Only the query: it is what is checked.
			expect((await wsRefusal(t.baseUrl, "?token=garbage")).status).toBe(401);
		});

		it.each([
			["no credential", "", {}],
			["a malformed token", "?token=not.a.jwt", {}],
			["an unknown API key", `?token=tgw_${"y".repeat(40)}`, {}],
			["an empty token", "?token=", {}],
			["a bad Bearer header", "", { authorization: "Bearer garbage" }],
			["a Basic header", "", { authorization: "Basic YWRtaW46YWRtaW4=" }],
		])("refuses %s with HTTP 401 at the upgrade", async (_name, query, headers) => {
			const refusal = await wsRefusal(t.baseUrl, query, headers as Record<string, string>);
			expect(refusal.status).toBe(401);
			expect(refusal.body).toMatchObject({ error: { code: "UNAUTHORIZED", message: expect.any(String) } });
		});
	});

	describe("frames", () => {
		it("subscribe with since_seq 0: `subscribed`, then the replayed events, then live ones; unsubscribe ends them", async () => {
			const chat = await newChat();
			await userFloods(t, bot.token, chat, 3);
			const client = await admin();
			const answer = await subscribe(client, { chat_id: chat.id, since_seq: 0 });
			expect(answer).toEqual({ type: "subscribed", chat_id: chat.id });
			await client.waitForSeqs(chat.id, 4);
			await userFloods(t, bot.token, chat, 2, (i) => `live ${i}`);
			await client.waitForSeqs(chat.id, 6);
			expect(client.frames.findIndex((f) => f.type === "subscribed")).toBe(0);
			expect(client.seqs(chat.id)).toEqual(await chatSeqsInLog(t, chat.id));
			// Event frames are the socket.io payloads, `type` included.
			for (const frame of client.events()) expect(frame).toEqual(t.events.find((e) => e.seq === frame.seq));
			expect(client.events().map((e) => (e.message as Payload).text).slice(-2)).toEqual(["live 0", "live 1"]);

			expect(await client.request({ action: "unsubscribe", chat_id: chat.id }, (f) => f.type === "unsubscribed" || isError(f))).toEqual({
				type: "unsubscribed",
				chat_id: chat.id,
			});
			await userFloods(t, bot.token, chat, 2, (i) => `after ${i}`);
			await pause(300);
			expect(client.seqs(chat.id)).toHaveLength(6);
		});

		it("subscribe without since_seq gets live events only", async () => {
			const chat = await newChat();
			const client = await admin();
			expect(await subscribe(client, { chat_id: chat.id })).toEqual({ type: "subscribed", chat_id: chat.id });
			await userFloods(t, bot.token, chat, 1, () => "only live");
			await client.waitForSeqs(chat.id, 1);
			await pause(200);
			expect(client.events().map((e) => (e.message as Payload).text)).toEqual(["only live"]);
		});

		it("a since_seq past the newest event is a VALIDATION_ERROR naming since_seq (live events up to it were skipped silently); at the head it is live", async () => {
			const chat = await newChat();
			const client = await admin();
			const { seq: head } = await t.gw.broker.call<{ seq: number }>("broker.head");
			for (const ahead of [head + 3, 1e300]) {
				const refused = (await subscribe(client, { chat_id: chat.id, since_seq: ahead })) as { code: string; details?: { fields: Array<{ field: string }> } };
				expect(refused).toMatchObject({ type: "error", code: "VALIDATION_ERROR" });
				expect(refused.details?.fields.map((f) => f.field)).toEqual(["since_seq"]);
			}
			expect(await subscribe(client, { chat_id: chat.id, since_seq: head })).toEqual({ type: "subscribed", chat_id: chat.id });
			await userFloods(t, bot.token, chat, 2, (i) => `after the head ${i}`);
			await client.waitForSeqs(chat.id, 2);
		});

		it("the newest seq, which says how busy every tenant's bots are, is named to admins only when since_seq is past it", async () => {
			const { seq: head } = await t.gw.broker.call<{ seq: number }>("broker.head");
			const message = async (token: string) => {
				const client = await open(`?token=${token}`);
				const refused = (await subscribe(client, { bot_id: bot.id, since_seq: head + 1_000 })) as { details?: { fields: Array<{ message: string }> } };
				return refused.details?.fields[0]?.message;
			};
			expect(await message(t.adminToken)).toMatch(/the newest is \d+/);
			const user = await createUser(t.gw, t.adminToken, ["viewer"]);
			const told = await message(user.token);
			expect(told).toBe("No event has this seq yet.");
		});

		it("ping is answered {action: pong}", async () => {
			const client = await admin();
			expect(await client.request({ action: "ping" }, () => true)).toEqual({ action: "pong" });
		});

		it("a refused subscribe is a FORBIDDEN error frame; the connection stays open and not one event of that chat arrives", async () => {
			const chat = await newChat();
			const user = await createUser(t.gw, t.adminToken, ["viewer"]);
			const client = await open(`?token=${user.token}`);
			const answer = await subscribe(client, { chat_id: chat.id, since_seq: 0 });
			expect(answer).toMatchObject({ type: "error", code: "FORBIDDEN", message: expect.any(String) });
			await userFloods(t, bot.token, chat, 3, (i) => `secret ${i}`);
			await pause(300);
			await client.ping();
			expect(client.frames.filter((f) => !isError(f) && f.action !== "pong")).toEqual([]);
			expect(client.open).toBe(true);
		});

		it("an unknown chat is a NOT_FOUND error frame", async () => {
			const client = await admin();
			expect(await subscribe(client, { chat_id: 987_654 })).toMatchObject({ type: "error", code: "NOT_FOUND" });
			await client.ping();
		});

		it.each(["chat_id", "bot_id", "since_seq"])("an id past 2^53 in %s is a VALIDATION_ERROR naming it, as REST's (JSON rounds it to a neighbour)", async (field) => {
			const client = await admin();
			const frame = field === "since_seq" ? '{"action":"subscribe","chat_id":1,"since_seq":9007199254740993}' : `{"action":"subscribe","${field}":9007199254740993}`;
			const answer = await client.request(frame, isError);
			expect(answer).toMatchObject({ type: "error", code: "VALIDATION_ERROR" });
			expect(JSON.stringify(answer)).toContain(field);
			await client.ping();
		});

		it.each([
			["not JSON", "{oops", false],
			["a JSON array", "[1,2]", false],
			["a JSON string", '"subscribe"', false],
			["JSON null", "null", false],
			["an unknown action", JSON.stringify({ action: "dance", chat_id: 1 }), false],
			["no action", JSON.stringify({ chat_id: 1 }), false],
			["a binary frame", Buffer.from(JSON.stringify({ action: "ping" })), true],
		])("%s gets a BAD_REQUEST error frame and the connection stays open", async (_name, frame, binary) => {
			const client = await admin();
			const answer = await client.request(frame, isError, 5_000, binary as boolean);
			expect(answer).toMatchObject({ type: "error", code: "BAD_REQUEST", message: expect.any(String) });
			await client.ping();
			expect(client.open).toBe(true);
			expect(client.garbage).toEqual([]);
		});

		it.each([
			["neither chat_id nor bot_id", {}, ["chat_id", "bot_id"]],
			["both ids", { chat_id: 1, bot_id: 1 }, ["chat_id", "bot_id"]],
			["a string chat_id", { chat_id: "1" }, ["chat_id"]],
			["a negative since_seq", { chat_id: 1, since_seq: -5 }, ["since_seq"]],
			["an unknown field", { chat_id: 1, colour: "red" }, ["colour"]],
		])("a subscribe with %s is a VALIDATION_ERROR frame naming the field", async (_name, body, fields) => {
			const client = await admin();
			const answer = (await subscribe(client, body)) as { code: string; details?: { fields: Array<{ field: string }> } };
			expect(answer).toMatchObject({ type: "error", code: "VALIDATION_ERROR" });
			expect(answer.details?.fields.map((f) => f.field)).toEqual(expect.arrayContaining(fields));
			await client.ping();
		});

		it("a frame over 64 KB closes the connection with 1009 (message too big)", async () => {
			const client = await admin();
			client.ws.send(JSON.stringify({ action: "ping", pad: "z".repeat(65 * 1024) }));
			await client.waitForClose();
			expect(client.closed!.code).toBe(1009);
		});

		it("a frame just under 64 KB is still answered", async () => {
			const client = await admin();
			const answer = await client.request(JSON.stringify({ action: "ping", pad: "z".repeat(60 * 1024) }), () => true);
			expect(answer).toEqual({ action: "pong" });
		});
	});

	describe("revocation", () => {
		it("revoking the grant sends `unsubscribed` within 1 s and ends that chat's events", async () => {
			const chat = await newChat();
			const user = await createUser(t.gw, t.adminToken, ["viewer"]);
			const granted = await t.api<{ id: number }>("PUT", `/chats/${chat.id}/permissions`, { user_id: user.id, can_read: true });
			const client = await open(`?token=${user.token}`);
			expect(await subscribe(client, { chat_id: chat.id })).toEqual({ type: "subscribed", chat_id: chat.id });
			await userFloods(t, bot.token, chat, 1);
			await client.waitForSeqs(chat.id, 1);
			expect((await t.api("DELETE", `/chats/${chat.id}/permissions/${granted.body.id}`)).status).toBe(204);
			await waitUntil(() => client.frames.some((f) => f.type === "unsubscribed"), 1_000, "unsubscribed within 1 s");
			expect(client.frames.find((f) => f.type === "unsubscribed")).toMatchObject({ chat_id: chat.id, code: "FORBIDDEN" });
			await userFloods(t, bot.token, chat, 2);
			await pause(300);
			expect(client.seqs(chat.id)).toHaveLength(1);
			await client.ping();
		});

		it("revoking the API key closes the connection within 1 s", async () => {
			const key = await createKey(t.baseUrl, t.adminToken);
			const client = await open(`?token=${key.key}`);
			await subscribe(client, { bot_id: bot.id });
			const before = hub.connectionCount;
			expect((await t.api("DELETE", `/apikeys/${key.id}`)).status).toBe(204);
			await client.waitForClose(1_000);
			expect(client.closed!.code).toBe(4401);
			expect(client.frames).toContainEqual(expect.objectContaining({ type: "error", code: "UNAUTHORIZED" }));
			expect(hub.connectionCount).toBe(before - 1);
			expect((await wsRefusal(t.baseUrl, `?token=${key.key}`)).status).toBe(401);
		});

		it("a key without messages:read keeps its connection through changes that re-check it (a grant to it): it may not subscribe, and is not closed", async () => {
			const chat = await newChat();
			const key = await createKey(t.baseUrl, t.adminToken, { name: "no-messages", scopes: ["chats:read"] });
			const client = await open(`?token=${key.key}`);
			expect(await subscribe(client, { chat_id: chat.id })).toMatchObject({ type: "error", code: "FORBIDDEN", message: "Missing permission messages:read" });
			// Closed with 4403 "Missing permission messages:read" before: each change re-resolves the live connections' credentials.
			expect((await t.api("PUT", `/chats/${chat.id}/permissions`, { api_key_id: key.id, can_read: true })).status).toBe(201);
			await pause(1_000);
			expect(client.closed).toBeNull();
			await client.ping();
		});

		it("logging out closes the connections of that login within 1 s; the user's other logins stay", async () => {
			const user = await createUser(t.gw, t.adminToken, ["viewer"]);
			const leaving = await loginAction(t.gw.broker, user.username, user.password);
			const ending = await open(`?token=${leaving.access_token}`);
			const staying = await open(`?token=${user.token}`);
			expect((await t.api("POST", "/auth/logout", { refresh_token: leaving.refresh_token })).status).toBe(204);
			await ending.waitForClose(1_000);
			expect(ending.closed!.code).toBe(4401);
			await pause(300);
			await staying.ping();
			expect((await wsRefusal(t.baseUrl, `?token=${leaving.access_token}`)).status).toBe(401);
		});
	});
});
