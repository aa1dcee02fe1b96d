/**
 * GET /api/openapi.json describes what the gateway really answers: the main flows run against a real
 * gateway (with the Telegram double and a webhook receiver), and every answer of a documented
 * operation is checked against the document. Its status must be one the operation declares (by
 * itself, not through `default`), its media type the declared one, its body valid against the
 * declared schema with ajv, where every object is closed (a field the schema does not name fails,
 * as does a missing required one, a wrong type or an unexpected null), and a Location header must be
 * there exactly where one is declared. The validator's strictness is itself checked on real answers
 * taken apart, so a schema that accepts anything cannot pass.
 */
import Ajv from "ajv";
import type { HttpResult } from "../support/harness";
import { http } from "../support/harness";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";
import { userWrites, waitForStatus } from "../support/chat-helpers";
import { closedPortUrl, ok, startReceiver, type Receiver } from "../support/receivers";
import { ADMIN_PASSWORD } from "../support/auth";

type Json = Record<string, unknown>;
type Schema = Record<string, unknown>;
type Operation = { operationId: string; responses: Record<string, Schema>; requestBody?: { content: Record<string, { schema: Schema }> } };
type OpenApiDoc = { paths: Record<string, Record<string, Operation>>; components: Record<string, Record<string, Schema>> };

const METHODS = ["get", "post", "put", "patch", "delete"];

/** A copy of `schema` in which every object that names its properties takes no others. */
function closed(schema: unknown): unknown {
	if (Array.isArray(schema)) return schema.map(closed);
	if (!schema || typeof schema !== "object") return schema;
	const copy: Record<string, unknown> = Object.fromEntries(Object.entries(schema).map(([key, value]) => [key, key === "enum" ? value : closed(value)]));
	if (copy.properties && copy.additionalProperties === undefined) copy.additionalProperties = false;
	return copy;
}

/** `#/components/...` as a reference into the document registered under `base`. */
function rebased(schema: unknown, base: string): unknown {
	if (Array.isArray(schema)) return schema.map((s) => rebased(s, base));
	if (!schema || typeof schema !== "object") return schema;
	return Object.fromEntries(Object.entries(schema).map(([key, value]) => [key, key === "$ref" && typeof value === "string" && value.startsWith("#/") ? base + value : rebased(value, base)]));
}

/** "type/subtype" and its parameters, lower-cased. */
function mediaType(text: string): { type: string; params: Map<string, string> } {
	const [type = "", ...params] = text.split(";").map((part) => part.trim().toLowerCase());
	return { type, params: new Map(params.map((p) => p.split("=").map((s) => s.trim()) as [string, string])) };
}

/** The answer's media type is the declared one: the same type, and every parameter the declaration names. */
function mediaMatches(declared: string, answered: string): boolean {
	const d = mediaType(declared);
	const a = mediaType(answered);
	return d.type === a.type && [...d.params].every(([key, value]) => a.params.get(key) === value);
}

interface Seen {
	operation: string;
	status: number;
}

/** Checks answers against the document, and remembers which operation answered what. */
class ResponseChecker {
	private readonly ajv: Ajv.Ajv;
	private readonly strictAjv: Ajv.Ajv;
	private readonly compiled = new Map<string, Ajv.ValidateFunction>();
	readonly seen: Seen[] = [];

	constructor(readonly doc: OpenApiDoc) {
		// OpenAPI 3.0's `nullable`; every format the document uses (date-time, email, uri) checked in full.
		const options: Ajv.Options = { nullable: true, allErrors: true, format: "full", unknownFormats: true };
		this.strictAjv = new Ajv(options);
		this.strictAjv.addSchema({ components: { schemas: closed(doc.components.schemas) } }, "closed.json");
		this.ajv = new Ajv(options);
		this.ajv.addSchema({ components: { schemas: doc.components.schemas } }, "open.json");
	}

	/** A validator of answers (every object closed) or, `strict` false, of requests (as declared). */
	validator(schema: Schema, strict = true): Ajv.ValidateFunction {
		const key = `${strict}:${JSON.stringify(schema)}`;
		let validate = this.compiled.get(key);
		if (!validate) {
			validate = strict ? this.strictAjv.compile(closed(rebased(schema, "closed.json")) as object) : this.ajv.compile(rebased(schema, "open.json") as object);
			this.compiled.set(key, validate);
		}
		return validate;
	}

	/** The problems ajv finds in `body` against a components schema (none: valid). */
	problems(schemaName: string, body: unknown): string[] {
		const validate = this.validator({ $ref: `#/components/schemas/${schemaName}` });
		return validate(body) ? [] : (validate.errors ?? []).map((e) => `${e.dataPath} ${e.message} ${JSON.stringify(e.params)}`);
	}

	/** The documented operation serving `method url`: the template matching it with the most literal segments. */
	operationOf(method: string, url: string): { path: string; op: Operation } {
		const path = url.split("?")[0]!;
		const candidates = Object.keys(this.doc.paths)
			.filter((template) => this.doc.paths[template]![method.toLowerCase()] && new RegExp(`^${template.replace(/\{[^}]+\}/g, "[^/]+")}$`).test(path))
			.sort((a, b) => b.replace(/\{[^}]+\}/g, "").length - a.replace(/\{[^}]+\}/g, "").length);
		if (candidates.length === 0) throw new Error(`${method} ${path} is not a documented operation`);
		return { path: candidates[0]!, op: this.doc.paths[candidates[0]!]![method.toLowerCase()]! };
	}

	private resolve(response: Schema): Schema {
		const target = response.$ref;
		if (typeof target !== "string") return response;
		return this.resolve(target.replace(/^#\//, "").split("/").reduce<unknown>((at, part) => (at as Json)[part], this.doc) as Schema);
	}

	/** Fails (throws) unless the answer is one the document declares, in every respect it declares. */
	check(method: string, url: string, res: HttpResult<unknown>): void {
		const { path, op } = this.operationOf(method, url);
		const where = `${method.toUpperCase()} ${path} -> ${res.status}`;
		this.seen.push({ operation: `${method.toUpperCase()} ${path}`, status: res.status });
		const declared = op.responses[String(res.status)];
		if (!declared) throw new Error(`${where}: status not declared (declared: ${Object.keys(op.responses).join(", ")}); body ${res.text.slice(0, 300)}`);
		const response = this.resolve(declared);
		const content = response.content as Record<string, { schema: Schema }> | undefined;
		if (!content) {
			if (res.text !== "") throw new Error(`${where}: declared without a body, answered ${res.text.slice(0, 200)}`);
		} else {
			const answered = res.headers.get("content-type") ?? "";
			const media = Object.keys(content).find((m) => mediaMatches(m, answered));
			if (!media) throw new Error(`${where}: answered ${answered}, declared ${Object.keys(content).join(", ")}`);
			if (mediaType(media).type === "application/json") {
				const validate = this.validator(content[media]!.schema);
				if (!validate(res.body)) {
					const errors = (validate.errors ?? []).map((e) => `${e.dataPath} ${e.message} ${JSON.stringify(e.params)}`);
					throw new Error(`${where}: the body does not match its schema:\n  ${errors.join("\n  ")}\nbody: ${res.text.slice(0, 1500)}`);
				}
			} else if (content[media]!.schema.type === "string" && typeof res.text !== "string") {
				throw new Error(`${where}: not text`);
			}
		}
		if (res.status >= 200 && res.status < 300) {
			const headers = (response.headers ?? {}) as Record<string, unknown>;
			const location = res.headers.get("location");
			if (headers.Location && !location?.startsWith("/api/v1/")) throw new Error(`${where}: Location declared, answered ${location}`);
			if (!headers.Location && location !== null) throw new Error(`${where}: Location ${location} answered but not declared`);
		}
	}

	/** The declared JSON body schema of a request. */
	requestSchema(method: string, path: string): Schema {
		return this.doc.paths[path]![method]!.requestBody!.content["application/json"]!.schema;
	}
}

describe("GET /api/openapi.json describes every answer of the main flows", () => {
	let t: TelegramGateway;
	let checker: ResponseChecker;
	let receiver: Receiver;
	let botToken: string;
	let botId: number;
	let chatId: number;
	let chatTelegramId: number;
	let incomingMessageId: number;
	let userId: number;
	let webhookId: number;

	/** A request under /api/v1 (or, `absolute`, anywhere), checked against the document. */
	async function call<T = Json>(method: string, path: string, init: { body?: unknown; token?: string | null; headers?: Record<string, string>; absolute?: boolean } = {}): Promise<HttpResult<T>> {
		const url = init.absolute ? path : `/api/v1${path}`;
		const token = init.token === undefined ? t.adminToken : init.token;
		const res = await http<T>(t.baseUrl, method, url, { body: init.body, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...init.headers } });
		checker.check(method, url, res);
		return res;
	}

	function expectStatus(res: HttpResult<unknown>, status: number): void {
		expect({ status: res.status, body: res.status === status ? null : res.text }).toEqual({ status, body: null });
	}

	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "webhook" });
		receiver = await startReceiver(ok());
		const doc = await http<OpenApiDoc>(t.baseUrl, "GET", "/api/openapi.json");
		checker = new ResponseChecker(doc.body);
		checker.check("GET", "/api/openapi.json", doc);
	}, 60_000);
	afterAll(async () => {
		await receiver?.close();
		await t?.stop();
	});

	it("the probes: /health, /ready (200, and 503 with its report when a check is down), /metrics as Prometheus text", async () => {
		expect((await call("GET", "/health", { absolute: true, token: null })).body).toMatchObject({ status: "ok" });
		expect((await call("GET", "/ready", { absolute: true, token: null })).body).toMatchObject({ status: "ok" });
		const ping = jest.spyOn(t.gw.runtime.db, "ping").mockRejectedValue(new Error("the database is away"));
		try {
			const down = await call<Json>("GET", "/ready", { absolute: true, token: null });
			expectStatus(down, 503);
			expect(down.body).toMatchObject({ status: "unavailable", checks: { db: "down" } });
		} finally {
			ping.mockRestore();
		}
		const metrics = await call("GET", "/metrics", { absolute: true, token: null });
		expectStatus(metrics, 200);
		expect(metrics.text).toMatch(/^# (HELP|TYPE) /m);
	});

	it("auth: login, me (user and API key), refresh, logout", async () => {
		const login = await call<Json>("POST", "/auth/login", { token: null, body: { username: "admin", password: ADMIN_PASSWORD } });
		expectStatus(login, 200);
		const me = await call<Json>("GET", "/auth/me", { token: login.body.access_token as string });
		expect(me.body).toMatchObject({ type: "user", username: "admin" });
		const refreshed = await call<Json>("POST", "/auth/refresh", { token: null, body: { refresh_token: login.body.refresh_token } });
		expectStatus(refreshed, 200);
		expectStatus(await call("POST", "/auth/logout", { token: null, body: { refresh_token: refreshed.body.refresh_token } }), 204);
		expectStatus(await call("POST", "/auth/refresh", { token: null, body: { refresh_token: refreshed.body.refresh_token } }), 401);
		expectStatus(await call("GET", "/auth/me", { token: null }), 401);
	});

	it("users: create (a mixed-case username, as the request schema allows), list, get, update, delete", async () => {
		const body = { username: "Alice.Ops", password: "a-long-enough-password", email: "alice@example.com" };
		expect(checker.validator(checker.requestSchema("post", "/api/v1/users"), false)(body)).toBe(true);
		const created = await call<Json>("POST", "/users", { body });
		expectStatus(created, 201);
		expect(created.body.username).toBe("alice.ops");
		expect(created.headers.get("location")).toBe(`/api/v1/users/${created.body.id}`);
		userId = created.body.id as number;
		expectStatus(await call("POST", "/users", { body }), 409);
		expectStatus(await call("GET", "/users?limit=1"), 200);
		expectStatus(await call("GET", `/users/${userId}`), 200);
		const updated = await call<Json>("PATCH", `/users/${userId}`, { body: { email: null, roles: ["operator"] } });
		expectStatus(updated, 200);
		expect(updated.body).toMatchObject({ email: null, roles: ["operator"] });
		const doomed = await call<Json>("POST", "/users", { body: { username: "doomed", password: "a-long-enough-password" } });
		expectStatus(await call("DELETE", `/users/${doomed.body.id}`), 204);
		expectStatus(await call("GET", `/users/${doomed.body.id}`), 404);
		expectStatus(await call("POST", "/users", { body: { username: "x" } }), 400);
	});

	it("API keys: create (expires_at a plain date), list, get, me with a key, rotate, revoke", async () => {
		const body = { name: "reporting", scopes: ["chats:read", "messages:read"], expires_at: "2031-01-01", rate_limit: 20 };
		expect(checker.validator(checker.requestSchema("post", "/api/v1/apikeys"), false)(body)).toBe(true);
		const created = await call<Json>("POST", "/apikeys", { body });
		expectStatus(created, 201);
		expect(created.body).toMatchObject({ expires_at: "2031-01-01T00:00:00.000Z", key: expect.stringMatching(/^tgw_/) });
		const unscoped = await call<Json>("POST", "/apikeys", { body: { name: "everything" } });
		expectStatus(unscoped, 201);
		expect((await call<Json>("GET", "/auth/me", { token: created.body.key as string })).body).toMatchObject({ type: "api_key", scopes: ["chats:read", "messages:read"] });
		expect((await call<Json>("GET", "/auth/me", { token: unscoped.body.key as string })).body).toMatchObject({ type: "api_key", scopes: null });
		expectStatus(await call("GET", "/apikeys"), 200);
		expectStatus(await call("GET", `/apikeys/${created.body.id}`), 200);
		const rotated = await call<Json>("POST", `/apikeys/${created.body.id}/rotate`);
		expectStatus(rotated, 200);
		expectStatus(await call("GET", "/auth/me", { token: created.body.key as string }), 401);
		expectStatus(await call("DELETE", `/apikeys/${created.body.id}`), 204);
		expectStatus(await call("POST", `/apikeys/${created.body.id}/rotate`), 409);
		expectStatus(await call("GET", `/apikeys/${created.body.id}`), 200);
	});

	it("bots: create, list, get, update, delete", async () => {
		botToken = t.telegram.addBot({ username: "openapi_bot" });
		const created = await call<Json>("POST", "/bots", { body: { token: botToken, display_name: "OpenAPI bot" } });
		expectStatus(created, 201);
		botId = created.body.id as number;
		expect(created.body.webhook_url).toEqual(expect.any(String));
		expectStatus(await call("GET", "/bots?is_active=true"), 200);
		expectStatus(await call("GET", `/bots/${botId}`), 200);
		expectStatus(await call("PATCH", `/bots/${botId}`, { body: { description: "answers questions" } }), 200);
		expectStatus(await call("PATCH", `/bots/${botId}`, { body: { description: null } }), 200);
		expectStatus(await call("POST", "/bots", { body: { token: botToken } }), 409);

		const other = await call<Json>("POST", "/bots", { body: { token: t.telegram.addBot({ username: "openapi_doomed_bot" }) } });
		expectStatus(other, 201);
		expectStatus(await call("DELETE", `/bots/${other.body.id}`), 204);
		expect((await call<Json>("GET", `/bots/${other.body.id}`)).body).toMatchObject({ is_active: false, webhook_url: null });
		expectStatus(await call("GET", "/bots/999999"), 404);
	});

	it("chats and messages: list, get, history, one message; the Telegram receiver", async () => {
		const written = await userWrites(t, botToken, botId, { chat_id: 7001, text: "hello gateway", from: { username: "carol" } });
		chatId = written.chatId;
		chatTelegramId = 7001;
		incomingMessageId = written.message.id;
		await userWrites(t, botToken, botId, { chat_id: -7002, text: "hello group", chat: { title: "The group" } });
		expectStatus(await call("GET", "/chats"), 200);
		expectStatus(await call("GET", `/chats?bot_id=${botId}&limit=1`), 200);
		expectStatus(await call("GET", `/chats/${chatId}`), 200);
		const history = await call<{ data: Json[] }>("GET", `/chats/${chatId}/messages`);
		expect(history.body.data.map((m) => m.direction)).toContain("incoming");
		expectStatus(await call("GET", `/messages/${incomingMessageId}`), 200);

		const bot = (await call<Json>("GET", `/bots/${botId}`)).body;
		const path = String(bot.webhook_url).split("/").pop()!;
		const secret = t.telegram.bot(botToken).webhook!.secret_token!;
		const update = { update_id: 900_000_001, message: { message_id: 900, date: Math.floor(Date.now() / 1000), chat: { id: 7001, type: "private" }, from: { id: 7001, is_bot: false, first_name: "Carol" }, text: "pushed" } };
		for (const duplicate of [false, true]) {
			const push = await call<Json>("POST", `/api/v1/telegram/webhook/${path}`, { absolute: true, token: null, headers: { "x-telegram-bot-api-secret-token": secret }, body: update });
			expectStatus(push, 200);
			expect(push.body).toEqual(duplicate ? { ok: true, duplicate: true } : { ok: true });
		}
		expectStatus(await call("POST", `/api/v1/telegram/webhook/${path}`, { absolute: true, token: null, headers: { "x-telegram-bot-api-secret-token": "wrong" }, body: update }), 401);
	});

	it("sending: 201 when Telegram took it, 202 while queued, and a failed message as GET /messages/:id shows it", async () => {
		const sent = await call<Json>("POST", `/chats/${chatId}/messages`, { body: { text: "*hi*", parse_mode: "MarkdownV2", reply_to_message_id: 1 } });
		expectStatus(sent, 201);
		expect(sent.body).toMatchObject({ direction: "outgoing", status: "sent" });
		expect(sent.headers.get("location")).toBe(`/api/v1/messages/${sent.body.id}`);
		expectStatus(await call("GET", `/messages/${sent.body.id}`), 200);

		t.telegram.failNext("sendMessage", { delayMs: 7_000 });
		const queued = await call<Json>("POST", `/chats/${chatId}/messages`, { body: { text: "slow telegram" }, headers: { "idempotency-key": "openapi-queued-1" } });
		expectStatus(queued, 202);
		expect(queued.body).toMatchObject({ status: "queued", seq: null, telegram_message_id: null });
		expect(queued.headers.get("location")).toBe(`/api/v1/messages/${queued.body.id}`);
		expectStatus(await call("GET", `/messages/${queued.body.id}`), 200);
		await waitForStatus(t, queued.body.id as number, "sent", 20_000);
		// The same key again: the message it names, as sent now.
		expectStatus(await call("POST", `/chats/${chatId}/messages`, { body: { text: "slow telegram" }, headers: { "idempotency-key": "openapi-queued-1" } }), 201);

		t.telegram.markBotBlocked(chatTelegramId);
		const refused = await call<{ error: { details: Json } }>("POST", `/chats/${chatId}/messages`, { body: { text: "you blocked me" } });
		expectStatus(refused, 400);
		const failed = await call<Json>("GET", `/messages/${refused.body.error.details.message_id}`);
		expect(failed.body).toMatchObject({ status: "failed", error: expect.any(String), error_details: { telegram_error_code: 403 } });
		expectStatus(await call<Json>("GET", `/chats/${chatId}/messages?limit=200`), 200);
		expectStatus(await call("POST", `/chats/${chatId}/messages`, { body: {} }), 400);
		expectStatus(await call("POST", "/chats/999999/messages", { body: { text: "nobody" } }), 404);
	}, 60_000);

	it("grants: put (201 new, 200 replaced) for a user and a key, list, delete; exactly one of user_id and api_key_id", async () => {
		const schema = checker.validator(checker.requestSchema("put", "/api/v1/chats/{id}/permissions"), false);
		for (const body of [{ can_read: true }, { user_id: userId, api_key_id: 1, can_read: true }]) {
			expect({ body, valid: schema(body) }).toEqual({ body, valid: false });
			expectStatus(await call("PUT", `/chats/${chatId}/permissions`, { body }), 400);
		}
		expect(schema({ user_id: userId, can_read: true })).toBe(true);
		const first = await call<Json>("PUT", `/chats/${chatId}/permissions`, { body: { user_id: userId, can_read: true } });
		expectStatus(first, 201);
		expect(first.headers.get("location")).toBe(`/api/v1/chats/${chatId}/permissions`);
		expectStatus(await call("PUT", `/chats/${chatId}/permissions`, { body: { user_id: userId, can_read: true, can_send: true } }), 200);
		const key = await call<Json>("POST", "/apikeys", { body: { name: "bound", scopes: ["chats:read"] } });
		const keyGrant = await call<Json>("PUT", `/chats/${chatId}/permissions`, { body: { api_key_id: key.body.id, can_read: true } });
		expectStatus(keyGrant, 201);
		expectStatus(await call("GET", `/chats/${chatId}/permissions`), 200);
		expectStatus(await call("DELETE", `/chats/${chatId}/permissions/${keyGrant.body.id}`), 204);
		expectStatus(await call("DELETE", `/chats/${chatId}/permissions/${keyGrant.body.id}`), 404);
	});

	it("webhooks: create, list, get, update, replace, test, rotate the secret, deliveries, retry, replay, delete", async () => {
		const created = await call<Json>("POST", "/webhooks", { body: { url: receiver.url, scope: "all" } });
		expectStatus(created, 201);
		webhookId = created.body.id as number;
		expect(created.headers.get("location")).toBe(`/api/v1/webhooks/${webhookId}`);
		expectStatus(await call("GET", "/webhooks"), 200);
		expect((await call<Json>("GET", `/webhooks/${webhookId}`)).body).toMatchObject({ breaker: { state: "closed", open_until: null } });
		expectStatus(await call("PATCH", `/webhooks/${webhookId}`, { body: { event_types: ["new_message", "outgoing_message"], max_concurrency: 2 } }), 200);
		expectStatus(await call("PUT", `/webhooks/${webhookId}`, { body: { url: receiver.url, scope: "chat", chat_ids: [chatId] } }), 200);
		expect((await call<Json>("POST", `/webhooks/${webhookId}/test`)).body).toMatchObject({ ok: true, status_code: 200 });
		expectStatus(await call("POST", `/webhooks/${webhookId}/rotate-secret`), 200);
		expectStatus(await call("POST", `/webhooks/${webhookId}/rotate-secret`), 409);

		await userWrites(t, botToken, botId, { chat_id: chatTelegramId, text: "for the webhook" });
		let deliveries: HttpResult<{ data: Json[] }> | undefined;
		await t.telegram.waitFor(async () => {
			deliveries = await call<{ data: Json[] }>("GET", `/webhooks/${webhookId}/deliveries`);
			return deliveries.body.data.some((d) => d.status === "succeeded");
		}, 15_000, 100);
		const delivered = deliveries!.body.data.find((d) => d.status === "succeeded")!;
		expect(delivered.log).toEqual([expect.objectContaining({ attempt: 1, status_code: 200 })]);
		expectStatus(await call("GET", `/webhooks/${webhookId}/deliveries?status=succeeded&limit=1`), 200);
		const retried = await call<Json>("POST", `/webhooks/${webhookId}/deliveries/${delivered.id}/retry`);
		expectStatus(retried, 202);
		expect(retried.body).toMatchObject({ id: delivered.id });

		const replay = checker.validator(checker.requestSchema("post", "/api/v1/webhooks/{id}/replay"), false);
		expect([{}, { since: "2020-01-01", since_seq: 0 }].map((body) => replay(body))).toEqual([false, false]);
		expect([{ since: "2020-01-01" }, { since: "2020-01-01T00:00Z" }, { since_seq: 0 }].map((body) => replay(body))).toEqual([true, true, true]);
		expectStatus(await call("POST", `/webhooks/${webhookId}/replay`, { body: {} }), 400);
		const bySince = await call<Json>("POST", `/webhooks/${webhookId}/replay`, { body: { since: "2020-01-01" } });
		expectStatus(bySince, 202);
		expect(bySince.body).toMatchObject({ complete: true, scheduled: expect.any(Number) });
		expectStatus(await call("POST", `/webhooks/${webhookId}/replay`, { body: { since_seq: 0 } }), 202);
		expectStatus(await call("POST", `/webhooks/${webhookId}/replay`, { body: { since: new Date(Date.now() + 3_600_000).toISOString() } }), 202);

		// A receiver that is not there: the ping's outcome says so, without a status code.
		const away = await call<Json>("POST", "/webhooks", { body: { url: await closedPortUrl(), scope: "bot", bot_id: botId } });
		expectStatus(away, 201);
		expect((await call<Json>("POST", `/webhooks/${away.body.id}/test`)).body).toMatchObject({ ok: false, status_code: null, error: expect.any(String) });
		expectStatus(await call("PATCH", `/webhooks/${away.body.id}`, { body: { is_active: false } }), 200);
		expectStatus(await call("DELETE", `/webhooks/${away.body.id}`), 204);
		expectStatus(await call("DELETE", `/webhooks/${webhookId}`), 204);
		expectStatus(await call("GET", `/webhooks/${webhookId}`), 404);
	}, 60_000);

	it("exercised every operation of the flows above, each with the success statuses it declares", () => {
		const success = new Map<string, Set<number>>();
		for (const { operation, status } of checker.seen) if (status < 300) success.set(operation, (success.get(operation) ?? new Set()).add(status));
		const expected: Record<string, number[]> = {
			"GET /health": [200],
			"GET /ready": [200],
			"GET /metrics": [200],
			"GET /api/openapi.json": [200],
			"POST /api/v1/auth/login": [200],
			"POST /api/v1/auth/refresh": [200],
			"POST /api/v1/auth/logout": [204],
			"GET /api/v1/auth/me": [200],
			"POST /api/v1/users": [201],
			"GET /api/v1/users": [200],
			"GET /api/v1/users/{id}": [200],
			"PATCH /api/v1/users/{id}": [200],
			"DELETE /api/v1/users/{id}": [204],
			"POST /api/v1/apikeys": [201],
			"GET /api/v1/apikeys": [200],
			"GET /api/v1/apikeys/{id}": [200],
			"POST /api/v1/apikeys/{id}/rotate": [200],
			"DELETE /api/v1/apikeys/{id}": [204],
			"POST /api/v1/bots": [201],
			"GET /api/v1/bots": [200],
			"GET /api/v1/bots/{id}": [200],
			"PATCH /api/v1/bots/{id}": [200],
			"DELETE /api/v1/bots/{id}": [204],
			"GET /api/v1/chats": [200],
			"GET /api/v1/chats/{id}": [200],
			"GET /api/v1/chats/{id}/messages": [200],
			"POST /api/v1/chats/{id}/messages": [201, 202],
			"GET /api/v1/messages/{id}": [200],
			"PUT /api/v1/chats/{id}/permissions": [200, 201],
			"GET /api/v1/chats/{id}/permissions": [200],
			"DELETE /api/v1/chats/{id}/permissions/{grant_id}": [204],
			"POST /api/v1/webhooks": [201],
			"GET /api/v1/webhooks": [200],
			"GET /api/v1/webhooks/{id}": [200],
			"PATCH /api/v1/webhooks/{id}": [200],
			"PUT /api/v1/webhooks/{id}": [200],
			"DELETE /api/v1/webhooks/{id}": [204],
			"POST /api/v1/webhooks/{id}/test": [200],
			"POST /api/v1/webhooks/{id}/rotate-secret": [200],
			"GET /api/v1/webhooks/{id}/deliveries": [200],
			"POST /api/v1/webhooks/{id}/deliveries/{delivery_id}/retry": [202],
			"POST /api/v1/webhooks/{id}/replay": [202],
			"POST /api/v1/telegram/webhook/{path}": [200],
		};
		const observed = Object.fromEntries(Object.keys(expected).map((operation) => [operation, [...(success.get(operation) ?? [])].sort()]));
		expect(observed).toEqual(expected);
		// Every 2xx the document declares for these operations was seen, and nothing else was.
		for (const operation of Object.keys(expected)) {
			const [method, path] = operation.split(" ") as [string, string];
			const declared = Object.keys(checker.doc.paths[path]![method.toLowerCase()]!.responses).filter((s) => /^2/.test(s)).map(Number);
			expect({ operation, declared: declared.sort() }).toEqual({ operation, declared: expected[operation] });
		}
	});

	it("the checker refuses what the schemas do not allow: an extra field, a missing one, a wrong type, an unexpected null, another value", async () => {
		const bot = (await call<Json>("GET", `/bots/${botId}`)).body;
		expect(checker.problems("Bot", bot)).toEqual([]);
		const broken: Array<[string, Json]> = [
			["an extra field", { ...bot, token: "123:secret" }],
			["a missing field", Object.fromEntries(Object.entries(bot).filter(([key]) => key !== "last_error"))],
			["a wrong type", { ...bot, telegram_id: String(bot.telegram_id) }],
			["an unexpected null", { ...bot, username: null }],
			["a value outside the enum", { ...bot, mode: "carrier_pigeon" }],
			["a time that is no time", { ...bot, created_at: "yesterday" }],
		];
		for (const [what, body] of broken) expect({ what, refused: checker.problems("Bot", body).length > 0 }).toEqual({ what, refused: true });

		const incoming = (await call<Json>("GET", `/messages/${incomingMessageId}`)).body;
		expect(checker.problems("Message", incoming)).toEqual([]);
		expect(incoming).toMatchObject({ direction: "incoming", status: null });
		expect(checker.problems("Message", { ...incoming, direction: "sideways" })).not.toEqual([]);
		expect(checker.problems("Message", { ...incoming, status: "delivered" })).not.toEqual([]);
		expect(checker.problems("Message", { ...incoming, error_details: { reason: "x" } })).not.toEqual([]);
		expect(checker.problems("Message", { ...incoming, from: { ...(incoming.from as Json), nickname: "x" } })).not.toEqual([]);
		expect(checker.problems("MessagePage", { data: [incoming], next_cursor: null })).toEqual([]);
		expect(checker.problems("MessagePage", { data: [{ ...incoming, extra: 1 }], next_cursor: null })).not.toEqual([]);
		expect(checker.problems("MessagePage", { data: [incoming] })).not.toEqual([]);
	});
});

describe("the document's answers are complete", () => {
	let t: TelegramGateway;
	let doc: OpenApiDoc;
	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "polling" });
		doc = (await http<OpenApiDoc>(t.baseUrl, "GET", "/api/openapi.json")).body;
	}, 60_000);
	afterAll(() => t?.stop());

	const operations = () =>
		Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).filter(([method]) => METHODS.includes(method)).map(([method, op]) => ({ route: `${method.toUpperCase()} ${path}`, op })));

	it("every operation names its success statuses one by one, each with a described body or none", () => {
		const schemas = doc.components.schemas!;
		for (const { route, op } of operations()) {
			const statuses = Object.keys(op.responses);
			expect({ route, generic: statuses.filter((s) => /X/.test(s)) }).toEqual({ route, generic: [] });
			const successes = statuses.filter((s) => /^2\d\d$/.test(s));
			expect({ route, some: successes.length > 0 }).toEqual({ route, some: true });
			for (const status of successes) {
				const response = op.responses[status]!;
				const content = response.content as Record<string, { schema: Schema }> | undefined;
				if (status === "204") {
					expect({ route, content }).toEqual({ route, content: undefined });
					continue;
				}
				expect({ route, status, content: content !== undefined }).toEqual({ route, status, content: true });
				for (const [media, { schema }] of Object.entries(content!)) {
					if (!media.startsWith("application/json")) {
						expect({ route, media, schema }).toEqual({ route, media: "text/plain; version=0.0.4", schema: { type: "string" } });
						continue;
					}
					const name = String(schema.$ref ?? "").replace("#/components/schemas/", "");
					const target = schemas[name];
					expect({ route, status, described: Boolean(target && (target.properties || target.oneOf)) }).toEqual({ route, status, described: true });
				}
				if (status === "201") expect({ route, location: Object.keys((response.headers ?? {}) as object) }).toEqual({ route, location: expect.arrayContaining(["Location"]) });
			}
		}
	});

	it("every required field of a schema is one of its properties, and every list item has a shape of its own", () => {
		for (const [name, schema] of Object.entries(doc.components.schemas!)) {
			const visit = (node: unknown, at: string): void => {
				if (!node || typeof node !== "object") return;
				if (Array.isArray(node)) return node.forEach((n, i) => visit(n, `${at}[${i}]`));
				const s = node as Schema;
				if (Array.isArray(s.required) && s.properties) {
					const missing = (s.required as string[]).filter((field) => !(field in (s.properties as object)));
					expect({ at, missing }).toEqual({ at, missing: [] });
				}
				for (const [key, value] of Object.entries(s)) if (key !== "enum") visit(value, `${at}.${key}`);
			};
			visit(schema, name);
			if (name.endsWith("Page") && name !== "Page") expect({ name, items: (schema.properties as Json).data }).toEqual({ name, items: { type: "array", items: { $ref: `#/components/schemas/${name.slice(0, -4)}` } } });
		}
	});

	it("GET /metrics is Prometheus text, and /ready's 503 is its report, not an error", () => {
		expect(Object.keys(doc.paths["/metrics"]!.get!.responses["200"]!.content as object)).toEqual(["text/plain; version=0.0.4"]);
		expect(doc.paths["/ready"]!.get!.responses["503"]).toMatchObject({ content: { "application/json": { schema: { $ref: "#/components/schemas/NotReady" } } } });
		expect(doc.paths["/ready"]!.get!.responses["200"]).toMatchObject({ content: { "application/json": { schema: { $ref: "#/components/schemas/Readiness" } } } });
	});
});
