/**
 * Forged, expired and cross-tenant credentials on every channel (property-based, fast-check). Two
 * operators, A and B, each manage their own chat (with a grant), own an API key and a webhook. Forged
 * tokens (wrong signature, `alg: none`, another algorithm, a payload swapped under A's signature,
 * expired, a refresh token, a wrong issuer or audience, a user that does not exist, revoked or altered
 * keys, oversized ones) are refused on REST, socket.io, the WebSocket and gRPC; A's real JWT and API
 * key, wherever they are carried, never reach one of B's chats, messages, grants, webhooks or keys:
 * not a byte of B's data in any answer, and nothing of B's changed.
 */
import { randomUUID } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import fc from "fast-check";
import jwt from "jsonwebtoken";
import { createKey, createUser, nextAddress, type TestUser } from "../support/auth";
import { userWrites } from "../support/chat-helpers";
import { http } from "../support/harness";
import { expectNo5xx, expectServing, heapUsed, rowCounts, stopWithinHeapBound } from "../support/hostile-checks";
import { GRPC_SERVER_FAILURES, grpcCall, grpcCredentials, grpcPortOf } from "../support/hostile-grpc";
import { hostileText, runs } from "../support/hostile";
import { connectIo, connectWs, ioConnectError, pause, wsRefusal, type Payload } from "../support/realtime-clients";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

interface Tenant {
	user: TestUser;
	key: { id: number; key: string };
	chat: number;
	message: number;
	grant: number;
	webhook: number;
	/** Strings only this tenant's data holds: any of them in another principal's answer is a leak. */
	markers: string[];
}

describe("hostile credentials: forged, expired and cross-tenant, on every channel", () => {
	let t: TelegramGateway;
	let botId: number;
	let A: Tenant;
	let B: Tenant;
	let grpcClient: grpc.Client;
	let forged: Record<string, string>;
	let heapBefore: number;

	async function tenant(name: string, token: string, telegramChat: number): Promise<Tenant> {
		const marker = `${name}-${randomUUID()}`;
		const user = await createUser(t.gw, t.adminToken, ["operator"], `user-${marker}`);
		const written = await userWrites(t, token, botId, { chat_id: telegramChat, text: `secret-of-${marker}` });
		const grant = await t.api<{ id: number }>("PUT", `/chats/${written.chatId}/permissions`, { user_id: user.id, can_read: true, can_send: true, can_manage: true });
		const key = await createKey(t.baseUrl, user.token, { name: `key-of-${marker}` });
		// A key has grants of its own (API.md: grants name a user_id or an api_key_id).
		const keyGrant = await t.api("PUT", `/chats/${written.chatId}/permissions`, { api_key_id: key.id, can_read: true, can_send: true });
		expect(keyGrant.status).toBe(201);
		const webhook = await t.api<{ id: number }>("POST", "/webhooks", { url: `http://127.0.0.1:9/hook-${marker}`, scope: "reply", chat_ids: [written.chatId], reply_to_message_id: 999_999 }, user.token);
		expect([grant.status, webhook.status]).toEqual([201, 201]);
		return { user, key, chat: written.chatId, message: written.message.id, grant: grant.body.id, webhook: webhook.body.id, markers: [marker] };
	}

	beforeAll(async () => {
		// Each forged attempt comes "from" its own address (X-Forwarded-For through a trusted proxy), so
		// the per-address limit on failed credentials (60 a minute) never stands in for the check itself.
		t = await startTelegramGateway({ mode: "polling", env: { TRUST_PROXY: "127.0.0.1" } });
		const added = await t.addBot({ username: "tenants_bot" });
		botId = added.bot.id;
		A = await tenant("A", added.token, 9101);
		B = await tenant("B", added.token, 9202);
		// B's chat is a group with a title that names B: a chat list that leaks it shows the marker.
		await userWrites(t, added.token, botId, { chat_id: -9202, chat: { type: "group", title: `chat-${B.markers[0]}` }, text: `group-secret-of-${B.markers[0]}` });
		grpcClient = new grpc.Client(`127.0.0.1:${grpcPortOf(t.gw.broker)}`, grpc.credentials.createInsecure());
		// B's keys that no longer work: one expired, one revoked.
		const expiring = await createKey(t.baseUrl, B.user.token, { name: `expiring-${B.markers[0]}`, expires_at: new Date(Date.now() + 1_500).toISOString() });
		const revoked = await createKey(t.baseUrl, B.user.token, { name: `revoked-${B.markers[0]}` });
		expect((await t.api("DELETE", `/apikeys/${revoked.id}`, undefined, B.user.token)).status).toBe(204);
		await pause(1_600);
		forged = { ...forgeries(), "B's expired key": expiring.key, "B's revoked key": revoked.key };
		heapBefore = heapUsed();
	}, 60_000);
	afterAll(async () => {
		grpcClient?.close();
		await stopWithinHeapBound(heapBefore, () => t?.stop());
	});

	/** Tokens that must never be accepted, each one claiming to be B (or the admin). */
	function forgeries(): Record<string, string> {
		const { secret, issuer, audience } = t.gw.config.jwt;
		const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
		const now = Math.floor(Date.now() / 1000);
		const claims = (sub: number, extra: object = {}) => ({ sub: String(sub), typ: "access", jti: randomUUID(), iss: issuer, aud: audience, iat: now, exp: now + 900, ...extra });
		const [header, , signature] = A.user.token.split(".");
		const bKey = B.key.key;
		return {
			"wrong secret, sub B": jwt.sign(claims(B.user.id), "not-the-gateway-secret-but-long-enough-0123456789"),
			"wrong secret, sub admin": jwt.sign(claims(1), "not-the-gateway-secret-but-long-enough-0123456789"),
			"alg none": `${b64({ alg: "none", typ: "JWT" })}.${b64(claims(B.user.id))}.`,
			"alg None with A's signature": `${b64({ alg: "None", typ: "JWT" })}.${b64(claims(B.user.id))}.${signature}`,
			"HS512 with the real secret": jwt.sign(claims(B.user.id), secret, { algorithm: "HS512" }),
			"B's payload under A's signature": `${header}.${b64(claims(B.user.id))}.${signature}`,
			"expired, real secret": jwt.sign(claims(B.user.id, { iat: now - 3_600, exp: now - 60 }), secret),
			"not yet valid, real secret": jwt.sign(claims(B.user.id, { nbf: now + 3_600 }), secret),
			"a refresh token as access": jwt.sign(claims(B.user.id, { typ: "refresh", fam: "x" }), secret),
			"wrong issuer": jwt.sign(claims(B.user.id, { iss: "someone-else" }), secret),
			"wrong audience": jwt.sign(claims(B.user.id, { aud: "someone-else" }), secret),
			"a user that does not exist": jwt.sign(claims(987_654), secret),
			"sub not a number": jwt.sign(claims(B.user.id, { sub: `${B.user.id} OR 1=1` }), secret),
			"B's key, one character changed": bKey.slice(0, -1) + (bKey.endsWith("a") ? "b" : "a"),
			"B's key, cut short": bKey.slice(0, -4),
			"B's key, upper case": bKey.toUpperCase(),
			"an unknown key": `tgw_${"k".repeat(40)}`,
			"an oversized key": `tgw_${"k".repeat(5_000)}`,
			"an oversized JWT": `${header}.${"e".repeat(5_000)}.${signature}`,
			"SQL in a key": "tgw_' OR '1'='1",
		};
	}

	/** A's own credentials, each carried in one of the ways API.md allows. */
	const legit = () => ({ jwt: A.user.token, key: A.key.key });

	/** REST requests by A aimed at B's things: each must be refused or answered without them. */
	function restTargets(): Array<[string, string, Payload?]> {
		return [
			["GET", `/chats/${B.chat}`],
			["GET", `/chats/${B.chat}/messages`],
			["GET", `/messages/${B.message}`],
			["POST", `/chats/${B.chat}/messages`, { text: "cross-tenant send" }],
			["GET", `/chats/${B.chat}/permissions`],
			["PUT", `/chats/${B.chat}/permissions`, { user_id: A.user.id, can_read: true, can_send: true, can_manage: true }],
			["DELETE", `/chats/${B.chat}/permissions/${B.grant}`],
			["GET", `/webhooks/${B.webhook}`],
			["PATCH", `/webhooks/${B.webhook}`, { url: "http://127.0.0.1:9/stolen" }],
			["PUT", `/webhooks/${B.webhook}`, { url: "http://127.0.0.1:9/stolen", scope: "chat", chat_ids: [B.chat] }],
			["DELETE", `/webhooks/${B.webhook}`],
			["POST", `/webhooks/${B.webhook}/rotate-secret`],
			["POST", `/webhooks/${B.webhook}/test`],
			["POST", `/webhooks/${B.webhook}/replay`, { since_seq: 0 }],
			["GET", `/webhooks/${B.webhook}/deliveries`],
			["POST", "/webhooks", { url: "http://127.0.0.1:9/spy", scope: "chat", chat_ids: [B.chat] }],
			["GET", `/apikeys/${B.key.id}`],
			["DELETE", `/apikeys/${B.key.id}`],
			["POST", `/apikeys/${B.key.id}/rotate`],
			["POST", "/apikeys", { name: "mine now", user_id: B.user.id }],
			["GET", `/apikeys?user_id=${B.user.id}`],
			["GET", `/users/${B.user.id}`],
			["PATCH", `/users/${B.user.id}`, { password: "taken-over-password" }],
			["GET", "/chats"],
			["GET", `/chats?bot_id=${botId}`],
			["GET", "/webhooks"],
			["GET", "/apikeys"],
		];
	}

	/** B's things are all still there, unchanged, and nothing was sent to B's chat. */
	async function expectBIntact(): Promise<void> {
		const { models } = t.gw.runtime.db;
		const grant = await models.ChatPermission.findByPk(B.grant, { raw: true });
		expect(grant).toMatchObject({ chat_id: B.chat, user_id: B.user.id });
		expect(await models.ChatPermission.count({ where: { chat_id: B.chat } })).toBe(2);
		const webhook = await models.Webhook.findByPk(B.webhook, { raw: true });
		expect({ url: webhook?.url, active: Boolean(webhook?.is_active) }).toEqual({ url: expect.stringContaining(B.markers[0]!), active: true });
		const key = await models.ApiKey.findByPk(B.key.id, { raw: true });
		expect(key).toMatchObject({ revoked_at: null });
		expect((await http(t.baseUrl, "GET", "/api/v1/auth/me", { headers: { authorization: `Bearer ${B.key.key}` } })).status).toBe(200);
		expect(t.telegram.sent.filter((s) => s.params.text === "cross-tenant send")).toEqual([]);
	}

	function expectNoMarkerOfB(text: string, label: string): void {
		for (const marker of B.markers) if (marker && text.includes(marker)) throw new Error(`B's data (${marker}) reached A: ${label}: ${text.slice(0, 300)}`);
	}

	it("B's own credentials read B's chat: the markers the properties look for are really in B's answers", async () => {
		const res = await http(t.baseUrl, "GET", `/api/v1/chats/${B.chat}/messages`, { headers: { authorization: `Bearer ${B.key.key}` } });
		expect(res.status).toBe(200);
		expect(res.text).toContain(B.markers[0]);
		const keys = await http(t.baseUrl, "GET", "/api/v1/apikeys", { headers: { authorization: `Bearer ${B.user.token}` } });
		expect(keys.text).toContain(B.markers[0]);
	});

	it("regression: a credential over 4096 characters is refused as a credential on every channel (was 400 VALIDATION_ERROR / INVALID_ARGUMENT)", async () => {
		for (const credential of [`tgw_${"k".repeat(5_000)}`, `eyJhbGciOiJIUzI1NiJ9.${"e".repeat(5_000)}.sig`]) {
			const rest = await http(t.baseUrl, "GET", "/api/v1/auth/me", { headers: { authorization: `Bearer ${credential}`, "x-forwarded-for": nextAddress() } });
			expect({ status: rest.status, body: rest.body }).toMatchObject({ status: 401, body: { error: { code: "UNAUTHORIZED" } } });
			expect((await ioConnectError(t.baseUrl, { token: credential }, { "x-forwarded-for": nextAddress() })).data).toMatchObject({ code: "UNAUTHORIZED" });
			expect((await wsRefusal(t.baseUrl, `?token=${credential}`, { "x-forwarded-for": nextAddress() })).status).toBe(401);
			const md = grpcCredentials(credential, { "x-forwarded-for": nextAddress() });
			expect(grpc.status[(await grpcCall(grpcClient, "ListChats", {}, md)).code]).toBe("UNAUTHENTICATED");
		}
	});

	it("malformed Authorization values (any scheme, any text) are 401 on REST and the WebSocket and UNAUTHENTICATED on gRPC", async () => {
		const value = fc
			.oneof(
				fc.constantFrom("Bearer", "Bearer ", "bearer  ", "Basic YWRtaW46YWRtaW4=", "Digest x", `Bearer ${A.user.token} extra`, `Bearer ${A.user.token},${B.user.token}`, `Token ${A.user.token}`, `${A.user.token}`),
				hostileText.map((s) => `Bearer ${s}`),
				fc.string({ maxLength: 300 }),
			)
			.map((v) => v.replace(/[^\x20-\x7e]/g, "").trim())
			.filter((v) => v.length > 0);
		await fc.assert(
			fc.asyncProperty(value, async (authorization) => {
				const rest = await http(t.baseUrl, "GET", `/api/v1/chats/${B.chat}`, { headers: { authorization, "x-forwarded-for": nextAddress() } });
				expectNo5xx(rest, authorization);
				expect({ authorization, status: rest.status }).toEqual({ authorization, status: 401 });
				expect({ authorization, status: (await wsRefusal(t.baseUrl, "", { authorization, "x-forwarded-for": nextAddress() })).status }).toEqual({ authorization, status: 401 });
				const md = new grpc.Metadata();
				md.set("authorization", authorization);
				md.set("x-forwarded-for", nextAddress());
				const outcome = await grpcCall(grpcClient, "GetChat", { id: B.chat }, md);
				expect({ authorization, code: grpc.status[outcome.code] }).toEqual({ authorization, code: "UNAUTHENTICATED" });
			}),
			runs(100),
		);
	});

	describe("REST", () => {
		it("forged, expired and altered credentials, carried any way, are 401 on every route", async () => {
			const where = fc.constantFrom("bearer", "x-api-key", "query api_key", "query token", "body api_key");
			await fc.assert(
				fc.asyncProperty(fc.constantFrom(...Object.keys(forged)), where, fc.constantFrom(...restTargets()), async (name, at, [method, path, body]) => {
					const credential = forged[name]!;
					const label = `${name} in ${at}: ${method} ${path}`;
					const headers: Record<string, string> = { "x-forwarded-for": nextAddress() };
					if (at === "bearer") headers.authorization = `Bearer ${credential}`;
					if (at === "x-api-key") headers["x-api-key"] = credential;
					const query = at.startsWith("query") ? `${path.includes("?") ? "&" : "?"}${at.split(" ")[1]}=${encodeURIComponent(credential)}` : "";
					const sentBody = at === "body api_key" ? { ...body, api_key: credential } : body;
					const hasBody = method !== "GET" && method !== "DELETE";
					const res = await http(t.baseUrl, method, `/api/v1${path}${query}`, { headers, ...(hasBody ? { body: sentBody ?? {} } : {}) });
					expectNo5xx(res, label);
					// A GET or DELETE has no body to carry the key: then the request simply has no credential.
					expect({ label, status: res.status }).toEqual({ label, status: 401 });
					expectNoMarkerOfB(res.text, label);
				}),
				runs(150),
			);
			await expectBIntact();
		});

		it("A's real JWT and API key, carried any way, never reach B's chats, messages, grants, webhooks, keys or user", async () => {
			const where = fc.constantFrom("bearer", "x-api-key", "query api_key", "query token", "body api_key");
			await fc.assert(
				fc.asyncProperty(fc.constantFrom<"jwt" | "key">("jwt", "key"), where, fc.constantFrom(...restTargets()), async (kind, at, [method, path, body]) => {
					const credential = legit()[kind];
					const hasBody = method !== "GET" && method !== "DELETE";
					if ((at === "x-api-key" && kind === "jwt") || (at === "body api_key" && !hasBody)) return;
					const label = `A's ${kind} in ${at}: ${method} ${path}`;
					const headers: Record<string, string> = {};
					if (at === "bearer") headers.authorization = `Bearer ${credential}`;
					if (at === "x-api-key") headers["x-api-key"] = credential;
					const query = at.startsWith("query") ? `${path.includes("?") ? "&" : "?"}${at.split(" ")[1]}=${encodeURIComponent(credential)}` : "";
					const sentBody = at === "body api_key" ? { ...body, api_key: credential } : body;
					const before = await rowCounts(t.gw.runtime.db);
					const res = await http(t.baseUrl, method, `/api/v1${path}${query}`, { headers, ...(hasBody ? { body: sentBody ?? {} } : {}) });
					const status = expectNo5xx(res, label);
					expectNoMarkerOfB(res.text, label);
					if (status < 300) expect({ label, method }).toEqual({ label, method: "GET" }); // only a list may succeed, filtered
					else expect({ label, status: [403, 404].includes(status) }).toEqual({ label, status: true });
					expect(await rowCounts(t.gw.runtime.db)).toEqual(before);
				}),
				runs(150),
			);
			await expectBIntact();
			await expectServing(t.baseUrl, A.user.token);
		});
	});

	describe("socket.io and the WebSocket", () => {
		it("forged credentials fail the socket.io handshake and the WebSocket upgrade", async () => {
			await fc.assert(
				fc.asyncProperty(fc.constantFrom(...Object.keys(forged)), fc.constantFrom("token", "api_key"), async (name, field) => {
					const err = await ioConnectError(t.baseUrl, { [field]: forged[name] }, { "x-forwarded-for": nextAddress() });
					expect({ name, data: err.data }).toMatchObject({ name, data: { code: "UNAUTHORIZED" } });
					const refusal = await wsRefusal(t.baseUrl, `?${field}=${encodeURIComponent(forged[name]!)}`, { "x-forwarded-for": nextAddress() });
					expect({ name, status: refusal.status }).toEqual({ name, status: 401 });
				}),
				runs(60),
			);
		});

		it("A's JWT or key: subscribing to B's chat is FORBIDDEN; A's bot subscription (with replay) never carries B's events", async () => {
			const subscription = fc.oneof(
				fc.record({ chat_id: fc.constant(B.chat), since_seq: fc.option(fc.constantFrom(0, 1, 5), { nil: undefined }) }),
				fc.record({ bot_id: fc.constant(botId), since_seq: fc.option(fc.constantFrom(0, 1), { nil: undefined }) }),
			);
			await fc.assert(
				fc.asyncProperty(fc.constantFrom<"jwt" | "key">("jwt", "key"), fc.constantFrom("socket.io", "ws"), subscription, async (kind, channel, request) => {
					const credential = legit()[kind];
					const label = `A's ${kind} on ${channel}: subscribe ${JSON.stringify(request)}`;
					let answer: Payload;
					let events: () => Payload[];
					let close: () => void;
					if (channel === "socket.io") {
						const client = await connectIo(t.baseUrl, { token: credential });
						answer = await client.subscribe(request);
						events = () => client.events();
						close = () => client.close();
					} else {
						const client = await connectWs(t.baseUrl, `?token=${credential}`);
						answer = await client.request({ action: "subscribe", ...request }, (f) => f.type === "subscribed" || f.type === "error");
						events = () => client.events();
						close = () => client.close();
					}
					try {
						if ("chat_id" in request) {
							expect({ label, answer }).toMatchObject({ label, answer: channel === "ws" ? { type: "error", code: "FORBIDDEN" } : { ok: false, error: { code: "FORBIDDEN" } } });
						}
						// Let a replay arrive, then look at every event for B's chat and B's data.
						await pause(request.since_seq === undefined ? 30 : 150);
						for (const event of events()) {
							expect({ label, chat: event.chat_id === B.chat }).toEqual({ label, chat: false });
							expectNoMarkerOfB(JSON.stringify(event), label);
						}
					} finally {
						close();
					}
				}),
				runs(40),
			);
		});
	});

	describe("gRPC", () => {
		const calls = (): Array<[string, Record<string, unknown>]> => [
			["GetChat", { id: B.chat }],
			["GetMessages", { chat_id: B.chat, limit: 50 }],
			["SendMessage", { chat_id: B.chat, text: "cross-tenant send" }],
			["StreamChatMessages", { chat_id: B.chat, since_seq: 0 }],
			["StreamMessages", { since_seq: 0 }],
			["StreamMessages", { bot_id: botId, since_seq: 0 }],
			["ListChats", { limit: 200 }],
		];

		it("forged credentials are UNAUTHENTICATED on every RPC, as Bearer or x-api-key", async () => {
			await fc.assert(
				fc.asyncProperty(fc.constantFrom(...Object.keys(forged)), fc.constantFrom("authorization", "x-api-key"), fc.constantFrom(...calls()), async (name, header, [method, request]) => {
					const md = new grpc.Metadata();
					md.set(header, header === "authorization" ? `Bearer ${forged[name]}` : forged[name]!);
					md.set("x-forwarded-for", nextAddress());
					const outcome = await grpcCall(grpcClient, method, request, md);
					expect({ name, method, code: grpc.status[outcome.code] }).toEqual({ name, method, code: "UNAUTHENTICATED" });
					expect(outcome.events).toEqual([]);
				}),
				runs(100),
			);
		});

		it("A's JWT or key never reaches B's chat: PERMISSION_DENIED, or streams and lists without it", async () => {
			await fc.assert(
				fc.asyncProperty(fc.constantFrom<"jwt" | "key">("jwt", "key"), fc.constantFrom(...calls()), async (kind, [method, request]) => {
					const label = `A's ${kind}: ${method} ${JSON.stringify(request)}`;
					const outcome = await grpcCall(grpcClient, method, request, grpcCredentials(legit()[kind]), { openMs: 300 });
					if (GRPC_SERVER_FAILURES.has(outcome.code)) throw new Error(`${grpc.status[outcome.code]} for ${label}`);
					expectNoMarkerOfB(JSON.stringify({ value: outcome.value, events: outcome.events, details: outcome.details }), label);
					for (const event of outcome.events as Array<{ chat_id?: number }>) expect({ label, chat: event.chat_id === B.chat }).toEqual({ label, chat: false });
					if (method === "ListChats") expect((outcome.value as { chats: Array<{ id: number }> }).chats.map((c) => c.id)).not.toContain(B.chat);
					else if (method !== "StreamMessages") expect({ label, code: grpc.status[outcome.code] }).toEqual({ label, code: "PERMISSION_DENIED" });
				}),
				runs(60),
			);
			await expectBIntact();
		});
	});
});
