/**
 * The contract of the live channels (socket.io, plain WebSocket, gRPC streams) in API.md,
 * docs/rest.md "Beyond REST" and docs/grpc.md: a connection's requests are handled in the order it
 * sent them, subscription payloads are checked as REST checks bodies, overlapping subscriptions
 * deliver each event once, answers name what they answer, credentials come first, and the live
 * handshakes share REST's bad-credential throttle.
 */
import * as grpc from "@grpc/grpc-js";
import type { MessageEventProto } from "../../services/grpc/codec";
import { randomUUID } from "node:crypto";
import jwt from "jsonwebtoken";
import { api, createKey, createUser, pollUntil, sleep } from "../support/auth";
import { userWrites } from "../support/chat-helpers";
import { grpcCredentials, grpcMethod } from "../support/hostile-grpc";
import WebSocket from "ws";
import { connectIo, connectWs, ioConnectError, pause, waitUntil, wsRefusal, wsUrl, type IoClient, type WsClient } from "../support/realtime-clients";
import { freePort } from "../support/processes";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

type Json = Record<string, unknown>;

class Probe {
	readonly events: MessageEventProto[] = [];
	status?: grpc.StatusObject;
	subscribed = false;
	readonly ended: Promise<grpc.StatusObject>;
	constructor(readonly call: grpc.ClientReadableStream<MessageEventProto>) {
		call.on("metadata", () => (this.subscribed = true));
		call.on("data", (e: MessageEventProto) => this.events.push(e));
		call.on("error", () => undefined);
		this.ended = new Promise((resolve) => call.on("status", (s: grpc.StatusObject) => resolve((this.status = s))));
	}
	async end(timeoutMs: number): Promise<grpc.StatusObject | undefined> {
		return Promise.race([this.ended, sleep(timeoutMs).then(() => undefined)]);
	}
	async whenSubscribed(): Promise<void> {
		await pollUntil(async () => this.subscribed || this.status !== undefined, 5_000, 10);
		if (!this.subscribed) throw new Error(`not subscribed: ${this.status?.code} ${this.status?.details}`);
	}
}

describe("live channels: subscriptions and answers", () => {
	let t: TelegramGateway;
	let client: grpc.Client;
	let bot: { id: number; token: string };
	let nextChat = 61_000;
	const ios: IoClient[] = [];
	const wss: WsClient[] = [];
	const probes: Probe[] = [];

	beforeAll(async () => {
		const grpcPort = await freePort();
		t = await startTelegramGateway({ mode: "polling", env: { GRPC_PORT: String(grpcPort) } });
		client = new grpc.Client(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());
		const added = await t.addBot({ username: "realtime_contract_bot" });
		bot = { id: added.bot.id, token: added.token };
	}, 60_000);
	afterEach(() => {
		for (const c of ios.splice(0)) c.close();
		for (const c of wss.splice(0)) c.close();
		for (const p of probes.splice(0)) p.call.cancel();
	});
	afterAll(async () => {
		client?.close();
		await t?.stop();
	});

	const rpc = <T = Json>(name: string, request: object, md: grpc.Metadata = grpcCredentials(t.adminToken)): Promise<{ value?: T; error?: grpc.ServiceError }> => {
		const m = grpcMethod(name);
		return new Promise((resolve) =>
			client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, request, md, { deadline: Date.now() + 10_000 }, (error, value) =>
				resolve(error ? { error } : { value: value as T }),
			),
		);
	};
	const stream = (name: string, request: object, md: grpc.Metadata = grpcCredentials(t.adminToken)): Probe => {
		const m = grpcMethod(name) as unknown as grpc.MethodDefinition<object, MessageEventProto>;
		const p = new Probe(client.makeServerStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, request, md, {}));
		probes.push(p);
		return p;
	};
	async function io(token: string): Promise<IoClient> {
		const c = await connectIo(t.baseUrl, { token });
		ios.push(c);
		return c;
	}
	async function ws(token: string): Promise<WsClient> {
		const c = await connectWs(t.baseUrl, `?token=${encodeURIComponent(token)}`);
		wss.push(c);
		return c;
	}
	async function newChat(owner = bot): Promise<{ id: number; telegramId: number }> {
		nextChat += 1;
		const written = await userWrites(t, owner.token, owner.id, { chat_id: nextChat, text: `hello ${nextChat}` });
		return { id: written.chatId, telegramId: nextChat };
	}
	const write = async (chat: { telegramId: number }, text: string, owner = bot) => (await userWrites(t, owner.token, owner.id, { chat_id: chat.telegramId, text })).message;
	async function grant(chatId: number, body: Json): Promise<number> {
		const res = await t.api<{ id: number }>("PUT", `/chats/${chatId}/permissions`, body);
		expect([200, 201]).toContain(res.status);
		return res.body.id;
	}

	// ------------------------------------------------------------------------------------------
	// A connection's requests are handled in the order it sent them.

	it("socket.io: subscribe then unsubscribe emitted back to back are both acked ok and leave the socket unsubscribed", async () => {
		const chat = await newChat();
		const c = await io(t.adminToken);
		// socket.io delivers the two packets in order; the client has not awaited the first ack.
		const [sub, unsub] = await Promise.all([c.subscribe({ chat_id: chat.id }), c.unsubscribe({ chat_id: chat.id })]);
		expect(sub).toEqual({ ok: true, chat_id: chat.id });
		expect(unsub).toEqual({ ok: true, chat_id: chat.id });
		await write(chat, "after unsubscribe");
		await pause(300);
		expect(c.events()).toEqual([]);
	});

	it("WebSocket: subscribe then unsubscribe frames sent back to back are answered in order and leave the connection unsubscribed", async () => {
		const chat = await newChat();
		const c = await ws(t.adminToken);
		c.ws.send(JSON.stringify({ action: "subscribe", chat_id: chat.id }));
		c.ws.send(JSON.stringify({ action: "unsubscribe", chat_id: chat.id }));
		await waitUntil(() => c.frames.some((f) => f.type === "subscribed") && c.frames.some((f) => f.type === "unsubscribed"), 5_000, "both answers");
		// Answers come in the order the frames were sent.
		expect(c.frames.map((f) => f.type)).toEqual(["subscribed", "unsubscribed"]);
		await write(chat, "after ws unsubscribe");
		await pause(300);
		expect(c.events()).toEqual([]);
	});

	// The replay of a subscribe with since_seq runs on after its ack: the unsubscribe behind it ends it.
	it("socket.io: subscribe with since_seq then unsubscribe, emitted back to back, leaves the socket unsubscribed", async () => {
		const chat = await newChat();
		const c = await io(t.adminToken);
		const [sub, unsub] = await Promise.all([c.subscribe({ chat_id: chat.id, since_seq: 0 }), c.unsubscribe({ chat_id: chat.id })]);
		expect(sub).toEqual({ ok: true, chat_id: chat.id });
		expect(unsub).toEqual({ ok: true, chat_id: chat.id });
		const live = await write(chat, "after unsubscribe (socket.io, since_seq)");
		await pause(500);
		expect(c.seqs(chat.id)).not.toContain(live.seq);
	});

	it("WebSocket: subscribe with since_seq then unsubscribe frames sent back to back leave the connection unsubscribed", async () => {
		const chat = await newChat();
		const c = await ws(t.adminToken);
		c.ws.send(JSON.stringify({ action: "subscribe", chat_id: chat.id, since_seq: 0 }));
		c.ws.send(JSON.stringify({ action: "unsubscribe", chat_id: chat.id }));
		await waitUntil(() => c.frames.some((f) => f.type === "unsubscribed"), 5_000, "the unsubscribe's answer");
		expect(c.frames.filter((f) => f.type === "subscribed" || f.type === "unsubscribed").map((f) => f.type)).toEqual(["subscribed", "unsubscribed"]);
		const live = await write(chat, "after unsubscribe (ws, since_seq)");
		await pause(500);
		expect(c.seqs(chat.id)).not.toContain(live.seq);
	});

	it("WebSocket: a ping behind a subscribe with a slow replay is answered after the subscribe's answer, before the replay ends", async () => {
		const chat = await newChat();
		for (let i = 0; i < 3; i++) await write(chat, `history ${i}`);
		const { broker } = t.gw;
		const call = broker.call.bind(broker);
		// The log answers this chat's replay a second late.
		const spy = jest.spyOn(broker, "call").mockImplementation(((action: string, params?: { chat_id?: number }, opts?: object) =>
			action === "broker.replay" && params?.chat_id === chat.id ? pause(1_000).then(() => call(action, params, opts)) : call(action, params, opts)) as typeof broker.call);
		try {
			const c = await ws(t.adminToken);
			c.ws.send(JSON.stringify({ action: "subscribe", chat_id: chat.id, since_seq: 0 }));
			c.ws.send(JSON.stringify({ action: "ping" }));
			await waitUntil(() => c.frames.some((f) => f.action === "pong"), 5_000, "the pong");
			expect(c.frames).toEqual([{ type: "subscribed", chat_id: chat.id }, { action: "pong" }]);
			await c.waitForSeqs(chat.id, 4, 5_000);
		} finally {
			spy.mockRestore();
		}
	});

	it("replays take turns on the node: at most 2 replay pages are read at once, whoever asks, and every replay still delivers everything", async () => {
		const chat = await newChat();
		for (let i = 0; i < 3; i++) await write(chat, `turns ${i}`);
		const { broker } = t.gw;
		const call = broker.call.bind(broker);
		let inFlight = 0;
		let most = 0;
		const spy = jest.spyOn(broker, "call").mockImplementation(((action: string, params?: { chat_id?: number }, opts?: object) => {
			if (action !== "broker.replay" || params?.chat_id !== chat.id) return call(action, params, opts);
			inFlight += 1;
			most = Math.max(most, inFlight);
			return pause(100)
				.then(() => call(action, params, opts))
				.finally(() => (inFlight -= 1));
		}) as typeof broker.call);
		try {
			const clients = await Promise.all(Array.from({ length: 6 }, () => ws(t.adminToken)));
			for (const c of clients) c.ws.send(JSON.stringify({ action: "subscribe", chat_id: chat.id, since_seq: 0 }));
			for (const c of clients) await c.waitForSeqs(chat.id, 4, 10_000);
			expect(most).toBe(2);
		} finally {
			spy.mockRestore();
		}
	});

	// A subscription that fails after it was confirmed (its replay could not read the log) is announced.
	it("socket.io and WebSocket: a replay that fails after the subscribe was confirmed ends the subscription and says so", async () => {
		const chat = await newChat();
		const { broker } = t.gw;
		const call = broker.call.bind(broker);
		const spy = jest.spyOn(broker, "call").mockImplementation(((action: string, params?: { chat_id?: number }, opts?: object) =>
			action === "broker.replay" && params?.chat_id === chat.id ? Promise.reject(new Error("the log is away")) : call(action, params, opts)) as typeof broker.call);
		try {
			const c = await io(t.adminToken);
			expect(await c.subscribe({ chat_id: chat.id, since_seq: 0 })).toEqual({ ok: true, chat_id: chat.id });
			const notice = await c.waitFor((r) => r.event === "unsubscribed", 5_000, "the unsubscribed event");
			expect(notice.payload).toMatchObject({ chat_id: chat.id, code: "INTERNAL" });
			const w = await ws(t.adminToken);
			w.ws.send(JSON.stringify({ action: "subscribe", chat_id: chat.id, since_seq: 0 }));
			await waitUntil(() => w.frames.length === 2, 5_000, "the unsubscribed frame");
			// As a revocation is announced (and as socket.io's): a client's own unsubscribe is answered without code and reason.
			expect(w.frames).toEqual([{ type: "subscribed", chat_id: chat.id }, { type: "unsubscribed", chat_id: chat.id, code: "INTERNAL", reason: expect.any(String) }]);
		} finally {
			spy.mockRestore();
		}
	});

	// ------------------------------------------------------------------------------------------
	// null is not "not given": a null field is refused, naming it.

	it("socket.io: subscribe {chat_id, since_seq: null} is a VALIDATION_ERROR naming since_seq, and nothing is subscribed", async () => {
		const chat = await newChat();
		const c = await io(t.adminToken);
		const ack = (await c.subscribe({ chat_id: chat.id, since_seq: null })) as { ok: boolean; error?: { code: string; details?: { fields: Array<{ field: string }> } } };
		expect([ack.ok, ack.error?.code, ack.error?.details?.fields.map((f) => f.field)]).toEqual([false, "VALIDATION_ERROR", ["since_seq"]]);
		await write(chat, "live after a null since_seq");
		await pause(400);
		expect(c.events()).toEqual([]);
		expect(JSON.stringify(c.received)).not.toContain("after_seq");
	});

	it("WebSocket: subscribe {chat_id, since_seq: null} gets one answer, a VALIDATION_ERROR naming since_seq and the chat", async () => {
		const chat = await newChat();
		const c = await ws(t.adminToken);
		c.ws.send(JSON.stringify({ action: "subscribe", chat_id: chat.id, since_seq: null }));
		await pause(300);
		await write(chat, "ws live after a null since_seq");
		await pause(400);
		const answers = c.frames.filter((f) => f.type === "subscribed" || f.type === "error");
		expect(answers).toEqual([
			expect.objectContaining({ code: "VALIDATION_ERROR", action: "subscribe", chat_id: chat.id, details: { fields: [expect.objectContaining({ field: "since_seq" })] } }),
		]);
		expect(c.events()).toEqual([]);
		expect(JSON.stringify(c.frames)).not.toContain("after_seq");
	});

	it("socket.io: chat_id null is a VALIDATION_ERROR naming chat_id (not NOT_FOUND), and unsubscribe {chat_id: null} is not ok", async () => {
		const c = await io(t.adminToken);
		const sub = (await c.subscribe({ chat_id: null })) as { ok: boolean; error?: { code: string; details?: { fields: Array<{ field: string }> } } };
		expect([sub.ok, sub.error?.code, sub.error?.details?.fields.map((f) => f.field)]).toEqual([false, "VALIDATION_ERROR", expect.arrayContaining(["chat_id"])]);
		const unsub = (await c.unsubscribe({ chat_id: null })) as { ok: boolean; error?: { code: string } };
		expect([unsub.ok, unsub.error?.code]).toEqual([false, "VALIDATION_ERROR"]);
	});

	// ------------------------------------------------------------------------------------------
	// One connection, overlapping subscriptions: each event arrives once.

	it("socket.io and WebSocket: a connection subscribed to a chat and to its bot receives each event once", async () => {
		const chat = await newChat();
		const c = await io(t.adminToken);
		expect(await c.subscribe({ chat_id: chat.id })).toEqual({ ok: true, chat_id: chat.id });
		expect(await c.subscribe({ bot_id: bot.id })).toEqual({ ok: true, bot_id: bot.id });
		const w = await ws(t.adminToken);
		await w.request({ action: "subscribe", chat_id: chat.id }, (f) => f.type === "subscribed");
		await w.request({ action: "subscribe", bot_id: bot.id }, (f) => f.type === "subscribed" && f.bot_id === bot.id);
		const m = await write(chat, "overlap");
		await pause(400);
		expect({ io: c.seqs(), ws: w.seqs() }).toEqual({ io: [m.seq], ws: [m.seq] });
	});

	// ------------------------------------------------------------------------------------------
	// WebSocket error frames name the subscribe or unsubscribe they answer.

	it("WebSocket: an error frame answering a subscribe names its chat_id", async () => {
		const user = await createUser(t.gw, t.adminToken, ["viewer"]);
		const readable = await newChat();
		const hidden = await newChat();
		await grant(readable.id, { user_id: user.id, can_read: true });
		const c = await ws(user.token);
		c.ws.send(JSON.stringify({ action: "subscribe", chat_id: readable.id }));
		c.ws.send(JSON.stringify({ action: "subscribe", chat_id: hidden.id }));
		c.ws.send(JSON.stringify({ action: "subscribe", chat_id: 987_654 }));
		await waitUntil(() => c.frames.length >= 3, 5_000, "three answers");
		// In the order asked, and each naming its chat all the same.
		expect(c.frames).toEqual([
			{ type: "subscribed", chat_id: readable.id },
			expect.objectContaining({ type: "error", code: "FORBIDDEN", action: "subscribe", chat_id: hidden.id }),
			expect.objectContaining({ type: "error", code: "NOT_FOUND", action: "subscribe", chat_id: 987_654 }),
		]);
	});

	it("WebSocket: error frames answering a subscribe or unsubscribe name its bot_id, and the action", async () => {
		const c = await ws(t.adminToken);
		const missing = await c.request({ action: "subscribe", bot_id: 987_654 }, (f) => f.type === "error");
		expect(missing).toMatchObject({ type: "error", code: "NOT_FOUND", action: "subscribe", bot_id: 987_654 });
		const both = await c.request({ action: "unsubscribe", bot_id: bot.id, chat_id: 5 }, (f) => f.type === "error");
		expect(both).toMatchObject({ type: "error", code: "VALIDATION_ERROR", action: "unsubscribe", bot_id: bot.id, chat_id: 5 });
		const text = await c.request({ action: "subscribe", bot_id: "x".repeat(100) }, (f) => f.type === "error");
		expect(text).not.toHaveProperty("bot_id");
	});

	// ------------------------------------------------------------------------------------------
	// gRPC streams check the credential before the request, as unary RPCs do.

	it("gRPC: a stream without credentials is UNAUTHENTICATED whatever its request holds (as unary RPCs and REST answer)", async () => {
		for (const [name, request] of [
			["StreamChatMessages", { chat_id: 0 }],
			["StreamChatMessages", { chat_id: 1, since_seq: -1 }],
			["StreamMessages", { bot_id: -1 }],
		] as const) {
			const status = await stream(name, request, grpcCredentials()).end(5_000);
			expect([name, status?.code, status?.metadata.get("x-error-code")]).toEqual([name, grpc.status.UNAUTHENTICATED, ["UNAUTHORIZED"]]);
		}
		// A unary RPC with an invalid request and no credential is UNAUTHENTICATED already.
		const unary = await rpc("GetChat", {}, grpcCredentials());
		expect([unary.error?.code, unary.error?.metadata.get("x-error-code")]).toEqual([grpc.status.UNAUTHENTICATED, ["UNAUTHORIZED"]]);
	});

	// ------------------------------------------------------------------------------------------
	// A refused WebSocket upgrade is answered as REST answers a request.

	it("WebSocket: upgrade refusals carry X-Request-ID (the caller's, when it is a sane one)", async () => {
		const unknownPath = await new Promise<{ status: number; headers: Record<string, unknown> }>((resolve, reject) => {
			const socket = new WebSocket(wsUrl(t.baseUrl, "/api/v1/nowhere"), { headers: { "x-request-id": "upgrade-404" } });
			socket.on("error", () => undefined);
			socket.once("open", () => (socket.terminate(), reject(new Error("the upgrade was accepted"))));
			socket.once("unexpected-response", (_req, res) => (res.resume(), resolve({ status: res.statusCode ?? 0, headers: res.headers })));
		});
		expect(unknownPath).toMatchObject({ status: 404, headers: { "x-request-id": "upgrade-404" } });
		const missing = await wsRefusal(t.baseUrl, "", { "x-request-id": "bad id with spaces" });
		expect(missing).toMatchObject({ status: 401, headers: { "x-request-id": expect.stringMatching(/^[A-Za-z0-9._:-]{1,128}$/) } });
		expect(missing.headers["x-request-id"]).not.toBe("bad id with spaces");
	});
});

/**
 * An address that sent 60 bad credentials within a minute is refused without a check (docs/rest.md,
 * docs/grpc.md "As on REST"), on the socket.io handshake and the WebSocket upgrade as on REST and
 * gRPC. A gateway of its own: the throttle keys on 127.0.0.1, which every other test uses.
 */
describe("live channels: the bad-credential throttle on the handshakes", () => {
	let t: TelegramGateway;
	beforeAll(async () => {
		// Behind a trusted proxy, so that each test can be a client address of its own.
		t = await startTelegramGateway({ mode: "polling", env: { GRPC_PORT: String(await freePort()), TRUST_PROXY: "127.0.0.1" } });
	}, 60_000);
	afterAll(() => t?.stop());

	it("socket.io: after 60 bad credentials from one address within a minute, the next handshake is refused RATE_LIMITED", async () => {
		const from = { "x-forwarded-for": "203.0.113.1" };
		for (let i = 0; i < 60; i++) {
			const err = await ioConnectError(t.baseUrl, { token: `tgw_${"a".repeat(30)}${String(i).padStart(10, "0")}` }, from);
			expect(err.data?.code).toBe("UNAUTHORIZED");
		}
		const refused = await ioConnectError(t.baseUrl, { token: `tgw_${"b".repeat(40)}` }, from);
		expect(refused.data).toMatchObject({ code: "RATE_LIMITED", details: { retry_after: expect.any(Number) } });
		// Refused unchecked, a good credential too; another address is not affected.
		expect((await ioConnectError(t.baseUrl, { token: t.adminToken }, from)).data).toMatchObject({ code: "RATE_LIMITED" });
		const elsewhere = await connectIo(t.baseUrl, { token: t.adminToken }, { "x-forwarded-for": "203.0.113.2" });
		elsewhere.close();
	}, 30_000);

	it("WebSocket: after 60 bad credentials from one address within a minute, the next upgrade is refused 429 RATE_LIMITED", async () => {
		const from = { "x-forwarded-for": "203.0.113.3" };
		for (let i = 0; i < 60; i++) {
			const refusal = await wsRefusal(t.baseUrl, `?token=tgw_${"c".repeat(30)}${String(i).padStart(10, "0")}`, from);
			expect(refusal.status).toBe(401);
		}
		const refused = await wsRefusal(t.baseUrl, `?token=tgw_${"d".repeat(40)}`, { ...from, "x-request-id": "throttled-upgrade-1" });
		expect([refused.status, refused.body]).toEqual([429, { error: expect.objectContaining({ code: "RATE_LIMITED" }) }]);
		expect(refused.headers).toMatchObject({ "retry-after": expect.stringMatching(/^[1-9][0-9]*$/), "x-request-id": "throttled-upgrade-1" });
		const elsewhere = await connectWs(t.baseUrl, `?token=${t.adminToken}`, { "x-forwarded-for": "203.0.113.4" });
		elsewhere.close();
	}, 30_000);

	it("one count per address across the entry points: failures on the handshakes throttle REST, and failures on REST the handshakes", async () => {
		const from = { "x-forwarded-for": "203.0.113.5" };
		for (let i = 0; i < 30; i++) await ioConnectError(t.baseUrl, { token: `tgw_${"e".repeat(30)}${String(i).padStart(10, "0")}` }, from);
		for (let i = 0; i < 30; i++) await wsRefusal(t.baseUrl, `?token=tgw_${"f".repeat(30)}${String(i).padStart(10, "0")}`, from);
		const rest = await fetch(`${t.baseUrl}/api/v1/auth/me`, { headers: { authorization: `Bearer tgw_${"g".repeat(40)}`, ...from } });
		expect(rest.status).toBe(429);
		const other = { "x-forwarded-for": "203.0.113.6" };
		for (let i = 0; i < 60; i++) {
			const res = await fetch(`${t.baseUrl}/api/v1/auth/me`, { headers: { authorization: `Bearer tgw_${"h".repeat(30)}${String(i).padStart(10, "0")}`, ...other } });
			expect(res.status).toBe(401);
		}
		expect((await ioConnectError(t.baseUrl, { token: t.adminToken }, other)).data).toMatchObject({ code: "RATE_LIMITED" });
		expect((await wsRefusal(t.baseUrl, `?token=${t.adminToken}`, other)).status).toBe(429);
	}, 30_000);

	it("credentials that verified but ended do not count: an expired token, a revoked key, a disabled user's token and key, 80 refusals in all, leave the address admitted", async () => {
		const from = { "x-forwarded-for": "203.0.113.7" };
		const { secret, issuer, audience } = t.gw.config.jwt;
		const now = Math.floor(Date.now() / 1000);
		const expired = jwt.sign({ sub: "1", typ: "access", jti: randomUUID(), iss: issuer, aud: audience, iat: now - 3_600, exp: now - 60 }, secret);
		const key = await createKey(t.baseUrl, t.adminToken, { name: "revoked-before-use" });
		expect((await api(t.baseUrl, "DELETE", `/apikeys/${key.id}`, t.adminToken)).status).toBe(204);
		const user = await createUser(t.gw, t.adminToken, ["operator"]);
		const usersKey = await createKey(t.baseUrl, user.token, { name: "owner-disabled" });
		// Disabling a user ends its logins, too (refused as the user's, reason user_disabled).
		expect((await api(t.baseUrl, "PATCH", `/users/${user.id}`, t.adminToken, { is_active: false })).status).toBe(200);
		const ended: Array<[string, string]> = [
			[expired, "Token expired"],
			[key.key, "API key revoked"],
			[user.token, "User is disabled or deleted"],
			[usersKey.key, "The API key's user is disabled or deleted"],
		];
		for (const [credential, message] of ended) {
			for (let i = 0; i < 8; i++) {
				const res = await fetch(`${t.baseUrl}/api/v1/auth/me`, { headers: { authorization: `Bearer ${credential}`, ...from } });
				expect([res.status, ((await res.json()) as { error: { message: string } }).error.message]).toEqual([401, message]);
			}
			for (let i = 0; i < 4; i++) expect((await ioConnectError(t.baseUrl, { token: credential }, from)).data).toMatchObject({ code: "UNAUTHORIZED" });
			for (let i = 0; i < 8; i++) expect((await wsRefusal(t.baseUrl, `?token=${encodeURIComponent(credential)}`, from)).status).toBe(401);
		}
		expect((await fetch(`${t.baseUrl}/api/v1/auth/me`, { headers: { authorization: `Bearer ${t.adminToken}`, ...from } })).status).toBe(200);
		(await connectIo(t.baseUrl, { token: t.adminToken }, from)).close();
		(await connectWs(t.baseUrl, `?token=${t.adminToken}`, from)).close();
		// Credentials that do not verify still count from the same address.
		for (let i = 0; i < 60; i++) expect((await wsRefusal(t.baseUrl, `?token=tgw_${"m".repeat(30)}${String(i).padStart(10, "0")}`, from)).status).toBe(401);
		expect((await wsRefusal(t.baseUrl, `?token=${t.adminToken}`, from)).status).toBe(429);
	}, 60_000);
});

