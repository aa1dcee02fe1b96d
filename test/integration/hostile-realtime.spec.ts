/**
 * Hostile input against the realtime entry points (property-based, fast-check): socket.io handshakes
 * with odd credentials, subscribe / unsubscribe with payloads of every type, unknown event names and
 * moleculer-io's `call` (which must reach nothing), raw engine.io frames no client library would send,
 * payloads over the 64 KB frame limit; and the plain WebSocket /api/v1/ws with non-JSON, binary,
 * wrongly shaped and oversized frames. The server answers with an ack or an error frame in the API's
 * codes, or closes that one connection; it never crashes, stores nothing, and keeps serving.
 */
import fc from "fast-check";
import WebSocket from "ws";
import { ERROR_STATUS } from "../../lib/errors";
import { userWrites } from "../support/chat-helpers";
import { expectNoLeak, expectServing, expectUnchanged, heapUsed, rowCounts, stopWithinHeapBound } from "../support/hostile-checks";
import { fieldValue, hostileText, INJECTIONS, jsonBodyFor, notJson, runs } from "../support/hostile";
import { connectIo, connectWs, ioConnectError, wsRefusal, waitUntil, wsUrl, type IoClient, type Payload, type WsClient } from "../support/realtime-clients";
import { nextAddress } from "../support/auth";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

/** Error codes a client may be told about its own input (never INTERNAL or UNAVAILABLE). */
const CLIENT_CODES = Object.entries(ERROR_STATUS)
	.filter(([, status]) => status < 500)
	.map(([code]) => code);

/** Events socket.io's client refuses to emit itself: sent through raw frames instead. */
const RESERVED = ["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"];

/** Actions a `call` would reach if moleculer-io's handler were left in place, with side effects among them. */
const CALL_TARGETS = ["auth.createUser", "auth.listUsers", "auth.resolve", "bots.remove", "bots.create", "chats.send", "broker.replay", "$node.services", "$node.actions", "api.rest", "realtime.call", "realtime.broadcast", "ingest.receiveBatch", "api.telegramPush"];

describe("hostile input: socket.io and the plain WebSocket", () => {
	let t: TelegramGateway;
	let botId: number;
	let chatId: number;
	let heapBefore: number;
	const clients: Array<{ close(): void }> = [];

	beforeAll(async () => {
		// Each bad credential below comes from an address of its own (X-Forwarded-For from a trusted
		// proxy): past 60 from one address in a minute, even a good one is refused (the shared throttle).
		t = await startTelegramGateway({ mode: "polling", env: { TRUST_PROXY: "127.0.0.1" } });
		const added = await t.addBot({ username: "hostile_realtime_bot" });
		botId = added.bot.id;
		chatId = (await userWrites(t, added.token, botId, { chat_id: 3131, text: "a chat to subscribe to" })).chatId;
		heapBefore = heapUsed();
	}, 60_000);
	afterEach(() => {
		for (const client of clients.splice(0)) client.close();
	});
	afterAll(async () => {
		await stopWithinHeapBound(heapBefore, () => t?.stop());
	});

	async function io(): Promise<IoClient> {
		const client = await connectIo(t.baseUrl, { token: t.adminToken });
		clients.push(client);
		return client;
	}
	async function ws(): Promise<WsClient> {
		const client = await connectWs(t.baseUrl, `?token=${t.adminToken}`);
		clients.push(client);
		return client;
	}

	/** An id where one belongs: a real one, one that does not exist, or something that is no id at all. */
	const idish = () => fc.oneof(fc.constantFrom(chatId, botId, 987_654, 0, -1, 1.5, 2 ** 53, 2 ** 63), fieldValue);
	/** What a client may put where a subscription belongs. */
	const subscription = () =>
		fc.oneof(
			{ weight: 2, arbitrary: fc.record({ chat_id: idish(), since_seq: fc.option(idish(), { nil: undefined }) }) },
			{ weight: 2, arbitrary: fc.record({ bot_id: idish(), since_seq: fc.option(idish(), { nil: undefined }) }) },
			{ weight: 2, arbitrary: fc.record({ chat_id: idish(), bot_id: idish(), since_seq: idish(), action: fieldValue }, { requiredKeys: [] }) },
			{ weight: 1, arbitrary: fieldValue },
			{ weight: 1, arbitrary: jsonBodyFor(["chat_id", "bot_id", "since_seq"]).map((text) => JSON.parse(text) as unknown) },
			{ weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)) },
		);

	/** An ack or error frame: a boolean ok, and on refusal a client error code with a message and no internals. */
	function expectClientAnswer(answer: Payload, request: string): void {
		expectNoLeak(JSON.stringify(answer), request);
		const error = (answer.error ?? answer) as { code?: unknown; message?: unknown };
		if (answer.ok === true || answer.type === "subscribed" || answer.type === "unsubscribed" || answer.action === "pong") return;
		if (!CLIENT_CODES.includes(String(error.code)) || typeof error.message !== "string") throw new Error(`not a client error for ${request}: ${JSON.stringify(answer)}`);
	}

	describe("socket.io", () => {
		it("a handshake with a credential of any other type or value is refused with connect_error UNAUTHORIZED", async () => {
			const auth = fc.oneof(
				fc.record({ token: fc.oneof(fieldValue, hostileText, fc.constantFrom(`tgw_${"a".repeat(40)}`, "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.", "Bearer x")) }, { requiredKeys: [] }),
				fc.record({ api_key: fieldValue }),
				fieldValue.filter((v) => v !== null && typeof v === "object" && !Array.isArray(v)) as fc.Arbitrary<Payload>,
			);
			await fc.assert(
				fc.asyncProperty(auth, async (value) => {
					const err = await ioConnectError(t.baseUrl, value as Payload, { "x-forwarded-for": nextAddress() });
					expect(err.data).toMatchObject({ code: "UNAUTHORIZED", message: expect.any(String) });
					expectNoLeak(JSON.stringify(err.data), JSON.stringify(value));
				}),
				runs(60),
			);
			await expectServing(t.baseUrl, t.adminToken);
		});

		it("subscribe and unsubscribe with payloads of every type: an ack {ok: true} or {ok: false, error} with a client code; the socket stays", async () => {
			const client = await io();
			await fc.assert(
				fc.asyncProperty(fc.constantFrom("subscribe", "unsubscribe"), subscription(), fc.array(fieldValue, { maxLength: 2 }), async (event, payload, extra) => {
					const label = `${event} ${JSON.stringify(payload)?.slice(0, 200)}`;
					const before = await rowCounts(t.gw.runtime.db);
					const ack = (await client.ask(event, payload, ...extra)) as Payload;
					expectClientAnswer(ack, label);
					expectUnchanged(before, await rowCounts(t.gw.runtime.db), label);
					expect(client.connected).toBe(true);
					await expectServing(t.baseUrl, t.adminToken);
				}),
				runs(150),
			);
			// An ack-only emit (no payload at all) is refused the same way.
			expect(await client.socket.timeout(5_000).emitWithAck("subscribe")).toMatchObject({ ok: false, error: { code: "VALIDATION_ERROR" } });
			expect(await client.subscribe({ chat_id: chatId })).toEqual({ ok: true, chat_id: chatId });
			await expectServing(t.baseUrl, t.adminToken);
		});

		it("unknown events and moleculer-io's `call` reach nothing: an error ack (NOT_FOUND), no event, no row, the socket stays", async () => {
			const client = await io();
			const acks: unknown[] = [];
			const name = fc.oneof(
				fc.constant("call"),
				fc.string({ minLength: 1, maxLength: 30 }),
				fc.constantFrom("Subscribe", "subscribe ", "SUBSCRIBE", "unsubscribe\u0000", "__proto__", "constructor", "toString", "hasOwnProperty", "$service", "broadcast", "getClients", "emit", "ping", "error", "message", ...INJECTIONS),
			).filter((n) => !["subscribe", "unsubscribe", ...RESERVED].includes(n));
			const callArgs = fc.oneof(
				fc.tuple(fc.constantFrom(...CALL_TARGETS), fc.constant({ username: "intruder", password: "intruder-password-1", roles: ["admin"], id: botId, chat_id: chatId, text: "should never be sent" })),
				fc.array(fieldValue, { maxLength: 3 }),
			);
			await fc.assert(
				fc.asyncProperty(fc.array(fc.tuple(name, callArgs), { minLength: 1, maxLength: 5 }), async (emits) => {
					const before = await rowCounts(t.gw.runtime.db);
					for (const [event, args] of emits) client.socket.emit(event, ...args, (answer: unknown) => acks.push({ event, answer }));
					// The server reads a socket's packets in order: once this ack is back, every emit above was read.
					expect(await client.subscribe({ chat_id: chatId })).toEqual({ ok: true, chat_id: chatId });
					expectUnchanged(before, await rowCounts(t.gw.runtime.db), JSON.stringify(emits).slice(0, 300));
					expect(client.connected).toBe(true);
				}),
				runs(60),
			);
			// Give any handler that did run time to answer.
			await new Promise((resolve) => setTimeout(resolve, 500));
			expect(client.received).toEqual([]);
			// Each was answered, and only ever with the refusal (or the rate limit, frames being charged).
			expect(acks.length).toBeGreaterThan(0);
			for (const ack of acks as Array<{ event: string; answer: { ok: boolean; error?: { code: string } } }>) {
				expect({ event: ack.event, ok: ack.answer.ok, code: ack.answer.error?.code }).toEqual({ event: ack.event, ok: false, code: expect.stringMatching(/^(NOT_FOUND|RATE_LIMITED)$/) });
			}
			expect(t.telegram.sent.filter((s) => s.params.text === "should never be sent")).toEqual([]);
		});

		it("raw engine.io / socket.io frames no client would send close at most that connection; the server keeps serving", async () => {
			const frame = fc.oneof(
				fc.tuple(fc.constantFrom(...RESERVED, "call", "subscribe"), fc.array(fieldValue, { maxLength: 2 })).map(([event, args]) => `42${JSON.stringify([event, ...args])}`),
				notJson.map((text) => `42${text}`),
				fc.constantFrom(
					'451-["subscribe",{"_placeholder":true,"num":0}]',
					'452-["subscribe",{"_placeholder":true,"num":5}]',
					'42/admin,["subscribe",{"chat_id":1}]',
					"40/admin,",
					'40{"token":42}',
					"41",
					'43["x"]',
					'4399999999999999999999999["x"]',
					'4299999999999999999999999["subscribe",{"chat_id":1}]',
					"44{}",
					"46",
					"4",
					"2probe",
					"5",
					"6",
					"1",
					"",
					"0{}",
					`42${"[".repeat(10_000)}`,
					`42["subscribe",${"{\"a\":".repeat(5_000)}1${"}".repeat(5_000)}]`,
				),
				fc.string({ unit: "binary", maxLength: 100 }),
				fc.uint8Array({ maxLength: 100 }).map((bytes) => Buffer.from(bytes)),
			);
			await fc.assert(
				fc.asyncProperty(fc.array(frame, { minLength: 1, maxLength: 4 }), async (frames) => {
					const raw = new WebSocket(wsUrl(t.baseUrl, "/socket.io/?EIO=4&transport=websocket"));
					const packets: string[] = [];
					raw.on("error", () => undefined);
					raw.on("message", (data) => packets.push(data.toString()));
					try {
						await waitUntil(() => packets.some((p) => p.startsWith("0{")), 5_000, "the engine.io handshake");
						raw.send(`40${JSON.stringify({ token: t.adminToken })}`);
						await waitUntil(() => packets.some((p) => p.startsWith("40")), 5_000, "the socket.io connect");
						for (const f of frames) if (raw.readyState === WebSocket.OPEN) raw.send(f);
						await new Promise((resolve) => setTimeout(resolve, 20));
						for (const p of packets) expectNoLeak(p, JSON.stringify(frames).slice(0, 200));
					} finally {
						raw.terminate();
					}
					await expectServing(t.baseUrl, t.adminToken);
				}),
				runs(80),
			);
			const client = await io();
			expect(await client.subscribe({ bot_id: botId })).toEqual({ ok: true, bot_id: botId });
		});

		it("a payload over the 64 KB frame limit closes that socket only; just under it is answered", async () => {
			await fc.assert(
				fc.asyncProperty(fc.integer({ min: 65 * 1024, max: 2 * 1024 * 1024 }), fc.constantFrom("subscribe", "call", "nothing"), async (size, event) => {
					const client = await io();
					client.socket.emit(event, { chat_id: chatId, pad: "z".repeat(size) });
					await client.waitForDisconnect(5_000);
					await expectServing(t.baseUrl, t.adminToken);
				}),
				runs(8),
			);
			const client = await io();
			expect(await client.ask("subscribe", { chat_id: chatId, pad: "z".repeat(60 * 1024) })).toMatchObject({ ok: false, error: { code: "VALIDATION_ERROR" } });
		});
	});

	describe("plain WebSocket /api/v1/ws", () => {
		it("an upgrade with a hostile credential, query or header is refused with 401, never more", async () => {
			const value = fc.oneof(hostileText, fieldValue.map((v) => JSON.stringify(v) ?? ""), fc.constantFrom(`tgw_${"b".repeat(40)}`, "a.b.c", "x".repeat(8_000)));
			const where = fc.constantFrom("token", "api_key", "bearer", "x-api-key");
			await fc.assert(
				fc.asyncProperty(value, where, async (credential, at) => {
					const header = credential.replace(/[^\x20-\x7e]/g, "");
					const query = at === "token" || at === "api_key" ? `?${at}=${encodeURIComponent(credential)}` : "";
					const headers: Record<string, string> = at === "bearer" ? { authorization: `Bearer ${header}` } : at === "x-api-key" ? { "x-api-key": header } : {};
					const refusal = await wsRefusal(t.baseUrl, query, { ...headers, "x-forwarded-for": nextAddress() });
					expect(refusal).toMatchObject({ status: 401, body: { error: { code: "UNAUTHORIZED" } } });
				}),
				runs(60),
			);
			await expectServing(t.baseUrl, t.adminToken);
		});

		it("text frames of every kind get one answer (an error frame with a client code, or the action's answer); the connection stays open", async () => {
			const client = await ws();
			const text = fc.oneof(
				notJson,
				fieldValue.map((v) => JSON.stringify(v) ?? "null"),
				fc
					.tuple(fc.oneof({ weight: 4, arbitrary: fc.constantFrom("subscribe", "unsubscribe") }, { weight: 1, arbitrary: fc.constantFrom("ping", "pong", "call", "Subscribe", "__proto__") }, { weight: 1, arbitrary: fieldValue }), subscription())
					.map(([action, rest]) => JSON.stringify(rest !== null && typeof rest === "object" && !Buffer.isBuffer(rest) && !Array.isArray(rest) ? { action, ...rest } : { action, payload: rest })),
				jsonBodyFor(["action", "chat_id", "bot_id", "since_seq"]),
			);
			await fc.assert(
				fc.asyncProperty(text, async (frame) => {
					const before = await rowCounts(t.gw.runtime.db);
					const answer = await client.request(frame, (f) => typeof f.type === "string" ? ["error", "subscribed", "unsubscribed"].includes(f.type) : f.action === "pong");
					expectClientAnswer(answer, frame.slice(0, 200));
					expectUnchanged(before, await rowCounts(t.gw.runtime.db), frame.slice(0, 200));
					await client.ping();
					await expectServing(t.baseUrl, t.adminToken);
				}),
				runs(150),
			);
			expect(client.garbage).toEqual([]);
			expect(client.open).toBe(true);
		});

		it("binary frames, whatever they hold, get a BAD_REQUEST error frame; the connection stays open", async () => {
			const client = await ws();
			const bytes = fc.oneof(fc.uint8Array({ maxLength: 1_024 }).map((b) => Buffer.from(b)), fc.constantFrom('{"action":"ping"}', '{"action":"subscribe","chat_id":1}').map((s) => Buffer.from(s)));
			await fc.assert(
				fc.asyncProperty(bytes, async (frame) => {
					const answer = await client.request(frame, (f) => f.type === "error", 5_000, true);
					expect(answer).toMatchObject({ type: "error", code: "BAD_REQUEST" });
					await client.ping();
				}),
				runs(60),
			);
		});

		it("a frame over 64 KB closes that connection with 1009; the server keeps serving", async () => {
			await fc.assert(
				fc.asyncProperty(fc.integer({ min: 64 * 1024 + 1, max: 2 * 1024 * 1024 }), fc.boolean(), async (size, binary) => {
					const client = await ws();
					client.ws.send(Buffer.alloc(size, 0x7b), { binary });
					await client.waitForClose();
					expect(client.closed!.code).toBe(1009);
					await expectServing(t.baseUrl, t.adminToken);
				}),
				runs(8),
			);
			const client = await ws();
			await client.ping();
		});
	});
});
