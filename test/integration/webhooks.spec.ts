/**
 * The webhook routes of API.md: create (201, Location, a whsec_ secret shown this once), validation
 * and scope rules (400 naming the field, nothing stored), who may see and change which webhook,
 * list / get / PUT / PATCH / DELETE, secret rotation (both secrets sign for 24 h), the test ping,
 * replay, a deleted bot's webhooks, and the refusal of private addresses (WEBHOOK_ALLOW_PRIVATE=false),
 * at creation and again at each send.
 */
import { createKey, createUser, errorFields, expectApiError, type TestUser } from "../support/auth";
import { ISO, userWrites } from "../support/chat-helpers";
import {
	createWebhook,
	deactivateAllWebhooks,
	deliveriesOf,
	legacySignature,
	startReceiver,
	verifies,
	verifyWith,
	waitForDeliveries,
	WEBHOOK_TEST_ENV,
	type Receiver,
	type WebhookBody,
} from "../support/receivers";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

type Body = Record<string, unknown>;

describe("webhooks: the REST routes", () => {
	let t: TelegramGateway;
	let bot: { id: number; token: string };
	let chatId: number;
	let operator: TestUser;
	let otherOperator: TestUser;
	let viewer: TestUser;
	let nextChat = 8100;
	const receivers: Receiver[] = [];

	const receiver = async (...args: Parameters<typeof startReceiver>) => {
		const r = await startReceiver(...args);
		receivers.push(r);
		return r;
	};
	const newChat = async () => (await userWrites(t, bot.token, bot.id, { chat_id: ++nextChat, text: `hello from ${nextChat}` })).chatId;
	const webhookCount = () => t.gw.runtime.db.models.Webhook.count();

	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "webhook", env: WEBHOOK_TEST_ENV });
		const added = await t.addBot({ username: "webhooks_rest_bot" });
		bot = { id: added.bot.id, token: added.token };
		chatId = await newChat();
		operator = await createUser(t.gw, t.adminToken, ["operator"]);
		otherOperator = await createUser(t.gw, t.adminToken, ["operator"]);
		viewer = await createUser(t.gw, t.adminToken, ["viewer"]);
	}, 60_000);
	afterEach(async () => {
		await deactivateAllWebhooks(t);
		await Promise.all(receivers.splice(0).map((r) => r.close()));
	});
	afterAll(() => t.stop());

	it("POST /webhooks: 201, Location, the whsec_ secret this once; GET and the list never show it", async () => {
		const res = await t.api<WebhookBody & { secret: string }>("POST", "/webhooks", { url: "https://hooks.example.com/tg", scope: "all" });
		expect(res.status).toBe(201);
		expect(res.headers.get("location")).toBe(`/api/v1/webhooks/${res.body.id}`);
		expect(res.body).toMatchObject({
			id: expect.any(Number),
			url: "https://hooks.example.com/tg",
			scope: "all",
			bot_id: null,
			chat_ids: null,
			reply_to_message_id: null,
			event_types: null,
			ordered: false,
			is_active: true,
			secret: expect.stringMatching(/^whsec_[A-Za-z0-9+/]+=*$/),
		});
		expect(res.body.created_at).toMatch(ISO);
		const { secret, id } = res.body;

		const one = await t.api<WebhookBody>("GET", `/webhooks/${id}`);
		expect(one.status).toBe(200);
		expect(one.body).toMatchObject({ id, url: "https://hooks.example.com/tg", scope: "all", breaker: { state: "closed", open_until: null } });
		const list = await t.api<{ data: WebhookBody[]; next_cursor: string | null }>("GET", "/webhooks");
		expect(list.status).toBe(200);
		expect(list.body.data.map((w) => w.id)).toContain(id);
		for (const text of [one.text, list.text, (await t.api("GET", `/webhooks/${id}/deliveries`)).text]) {
			expect(text).not.toContain(secret);
			expect(text).not.toContain(secret.slice(6));
			expect(text).not.toContain("whsec_");
			expect(text).not.toMatch(/"secret"|ciphertext/);
		}
	});

	it.each([
		["no url", { scope: "all" }, "url"],
		["a url that is not a URL", { url: "definitely not a url", scope: "all" }, "url"],
		["a non-http scheme", { url: "ftp://files.example.com/hook", scope: "all" }, "url"],
		["credentials in the url", { url: "https://user:pass@hooks.example.com/x", scope: "all" }, "url"],
		["no scope", { url: "https://hooks.example.com/x" }, "scope"],
		["an unknown scope", { url: "https://hooks.example.com/x", scope: "everything" }, "scope"],
		["scope bot without bot_id", { url: "https://hooks.example.com/x", scope: "bot" }, "bot_id"],
		["scope bot with an unknown bot", { url: "https://hooks.example.com/x", scope: "bot", bot_id: 987654 }, "bot_id"],
		["scope chat without chat_ids", { url: "https://hooks.example.com/x", scope: "chat" }, "chat_ids"],
		["scope chat with empty chat_ids", { url: "https://hooks.example.com/x", scope: "chat", chat_ids: [] }, "chat_ids"],
		["scope chat with an unknown chat", { url: "https://hooks.example.com/x", scope: "chat", chat_ids: [987654] }, "chat_ids"],
		["scope reply without chat_ids", { url: "https://hooks.example.com/x", scope: "reply", reply_to_message_id: 5 }, "chat_ids"],
		["an unknown event type", { url: "https://hooks.example.com/x", scope: "all", event_types: ["message_sent"] }, "event_types"],
		["empty event_types", { url: "https://hooks.example.com/x", scope: "all", event_types: [] }, "event_types"],
		["event_types that is not a list", { url: "https://hooks.example.com/x", scope: "all", event_types: "new_message" }, "event_types"],
		["max_concurrency 0", { url: "https://hooks.example.com/x", scope: "all", max_concurrency: 0 }, "max_concurrency"],
		["an unknown field", { url: "https://hooks.example.com/x", scope: "all", colour: "red" }, "colour"],
		["a secret of one's own", { url: "https://hooks.example.com/x", scope: "all", secret: "whsec_bWluZQ==" }, "secret"],
	])("%s: 400 VALIDATION_ERROR naming the field, nothing stored", async (_name, body, field) => {
		const before = await webhookCount();
		const res = await t.api("POST", "/webhooks", body);
		expectApiError(res, 400, "VALIDATION_ERROR");
		expect(errorFields(res).some((f) => f === field || f.startsWith(`${field}[`) || f.startsWith(`${field}.`))).toBe(true);
		expect(await webhookCount()).toBe(before);
	});

	it("chat_ids naming chats that do not exist: the message says which", async () => {
		const res = await t.api("POST", "/webhooks", { url: "https://hooks.example.com/x", scope: "chat", chat_ids: [chatId, 987_654, 987_655] });
		expectApiError(res, 400, "VALIDATION_ERROR");
		expect(JSON.stringify(res.body)).toContain("No chat has the id 987654, 987655.");
	});

	it("scope reply without reply_to_message_id: 400 naming reply_to_message_id, nothing stored", async () => {
		const before = await webhookCount();
		const res = await t.api("POST", "/webhooks", { url: "https://hooks.example.com/x", scope: "reply", chat_ids: [chatId] });
		expectApiError(res, 400, "VALIDATION_ERROR");
		expect(errorFields(res)).toContain("reply_to_message_id");
		expect(await webhookCount()).toBe(before);
	});

	it("a field its scope does not use is refused, naming it, not silently dropped (scope all with a bot_id would get every bot's events)", async () => {
		const before = await webhookCount();
		const refusals = [
			[{ scope: "all", bot_id: bot.id }, "bot_id"],
			[{ scope: "bot", bot_id: bot.id, chat_ids: [chatId] }, "chat_ids"],
			[{ scope: "chat", chat_ids: [chatId], reply_to_message_id: 7 }, "reply_to_message_id"],
		] as const;
		for (const [config, field] of refusals) {
			const res = await t.api("POST", "/webhooks", { url: "https://hooks.example.com/x", ...config });
			expectApiError(res, 400, "VALIDATION_ERROR");
			expect(errorFields(res)).toEqual([field]);
		}
		expect(await webhookCount()).toBe(before);
		// null clears a field, and a PATCH judges only the fields it sends: switching a bot webhook to scope all is fine.
		const created = await createWebhook(t, { url: "https://hooks.example.com/y", scope: "bot", bot_id: bot.id });
		expect((await t.api<WebhookBody>("PATCH", `/webhooks/${created.id}`, { scope: "all" })).body).toMatchObject({ scope: "all", bot_id: null });
		expectApiError(await t.api("PATCH", `/webhooks/${created.id}`, { bot_id: bot.id }), 400, "VALIDATION_ERROR");
		expect((await t.api<WebhookBody>("PUT", `/webhooks/${created.id}`, { url: "https://hooks.example.com/y", scope: "all", bot_id: null })).status).toBe(200);
		await t.api("DELETE", `/webhooks/${created.id}`);
	});

	it("a viewer (no webhooks:write, no webhooks:read): 403, nothing stored", async () => {
		const before = await webhookCount();
		expectApiError(await t.api("POST", "/webhooks", { url: "https://hooks.example.com/v", scope: "all" }, viewer.token), 403, "FORBIDDEN");
		expectApiError(await t.api("GET", "/webhooks", undefined, viewer.token), 403, "FORBIDDEN");
		expect(await webhookCount()).toBe(before);
	});

	it("an operator sees and changes only its own webhooks (another's is 404); an admin sees every one", async () => {
		const mine = await createWebhook(t, { url: "https://hooks.example.com/op", scope: "all" }, operator.token);
		const theirs = await createWebhook(t, { url: "https://hooks.example.com/other", scope: "all" }, otherOperator.token);
		const list = await t.api<{ data: WebhookBody[] }>("GET", "/webhooks", undefined, operator.token);
		expect(list.body.data.map((w) => w.id)).toEqual([mine.id]);
		for (const [method, path, body] of [
			["GET", `/webhooks/${theirs.id}`],
			["PATCH", `/webhooks/${theirs.id}`, { url: "https://evil.example.com/" }],
			["PUT", `/webhooks/${theirs.id}`, { url: "https://evil.example.com/", scope: "all" }],
			["DELETE", `/webhooks/${theirs.id}`],
			["GET", `/webhooks/${theirs.id}/deliveries`],
			["POST", `/webhooks/${theirs.id}/rotate-secret`],
			["POST", `/webhooks/${theirs.id}/test`],
			["POST", `/webhooks/${theirs.id}/replay`, { since_seq: 0 }],
		] as Array<[string, string, Body?]>) {
			expectApiError(await t.api(method, path, body, operator.token), 404, "NOT_FOUND");
		}
		const untouched = await t.api<WebhookBody>("GET", `/webhooks/${theirs.id}`, undefined, otherOperator.token);
		expect(untouched.body).toMatchObject({ url: "https://hooks.example.com/other", is_active: true });
		const all = await t.api<{ data: WebhookBody[] }>("GET", "/webhooks?limit=200");
		expect(all.body.data.map((w) => w.id)).toEqual(expect.arrayContaining([mine.id, theirs.id]));
		expect((await t.api("GET", `/webhooks/${mine.id}`)).status).toBe(200);
	});

	it("a chat-scoped webhook on a chat its creator cannot read: 403, nothing stored; with can_read it is created", async () => {
		const before = await webhookCount();
		for (const scope of ["chat", "reply"]) {
			const res = await t.api("POST", "/webhooks", { url: "https://hooks.example.com/c", scope, chat_ids: [chatId], ...(scope === "reply" ? { reply_to_message_id: 1 } : {}) }, operator.token);
			expectApiError(res, 403, "FORBIDDEN");
		}
		expect(await webhookCount()).toBe(before);
		const granted = await t.api("PUT", `/chats/${chatId}/permissions`, { user_id: operator.id, can_read: true });
		expect([200, 201]).toContain(granted.status);
		const created = await createWebhook(t, { url: "https://hooks.example.com/c", scope: "chat", chat_ids: [chatId] }, operator.token);
		expect(created).toMatchObject({ scope: "chat", chat_ids: [chatId] });
	});

	it("a chat that does not exist is refused like one the creator cannot read (403), so chat ids cannot be probed; an admin is told it does not exist (400)", async () => {
		const before = await webhookCount();
		const missing = 987_654_321;
		const asOperator = await t.api("POST", "/webhooks", { url: "https://hooks.example.com/c", scope: "chat", chat_ids: [missing] }, operator.token);
		expectApiError(asOperator, 403, "FORBIDDEN");
		expect((asOperator.body as { error: { message: string } }).error.message).toBe(`Needs can_read on chat ${missing}`);
		const asAdmin = await t.api("POST", "/webhooks", { url: "https://hooks.example.com/c", scope: "chat", chat_ids: [chatId, missing] });
		expectApiError(asAdmin, 400, "VALIDATION_ERROR");
		expect(errorFields(asAdmin)).toEqual(["chat_ids"]);
		expect(await webhookCount()).toBe(before);
	});

	it("an API key whose scopes leave out messages:read cannot get message content through a webhook: 403, and none is sent for one made before", async () => {
		const r = await receiver();
		const chat = await newChat();
		const key = await createKey(t.baseUrl, operator.token, { scopes: ["webhooks:read", "webhooks:write"] });
		expect([200, 201]).toContain((await t.api("PUT", `/chats/${chat}/permissions`, { api_key_id: key.id, can_read: true })).status);
		expectApiError(await t.api("GET", `/chats/${chat}/messages`, undefined, key.key), 403, "FORBIDDEN");
		const before = await webhookCount();
		expectApiError(await t.api("POST", "/webhooks", { url: r.url, scope: "chat", chat_ids: [chat] }, key.key), 403, "FORBIDDEN");
		expect(await webhookCount()).toBe(before);
		// A webhook such a key made before this was refused (written as it would have been) reads nothing.
		const made = await createWebhook(t, { url: r.url, scope: "chat", chat_ids: [chat] });
		await t.gw.runtime.db.models.Webhook.update({ owner_user_id: null, owner_api_key_id: key.id }, { where: { id: made.id } });
		await t.gw.broker.broadcast("webhooks.changed", { id: made.id });
		const delivery = t.gw.broker.getLocalService("delivery") as unknown as { audienceOf(row: unknown): Promise<{ access: { all: boolean; chats: Set<number> } }> };
		const row = await t.gw.runtime.db.models.Webhook.findByPk(made.id);
		expect((await delivery.audienceOf(row)).access).toEqual({ all: false, chats: new Set() });
	});

	it("the list pages with limit and next_cursor", async () => {
		const ids = [];
		for (let i = 0; i < 3; i++) ids.push((await createWebhook(t, { url: `https://hooks.example.com/p${i}`, scope: "all" }, otherOperator.token)).id);
		const seen: number[] = [];
		let cursor: string | null = null;
		do {
			const query: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
			const page = await t.api<{ data: WebhookBody[]; next_cursor: string | null }>("GET", `/webhooks?limit=2${query}`, undefined, otherOperator.token);
			expect(page.status).toBe(200);
			expect(page.body.data.length).toBeLessThanOrEqual(2);
			seen.push(...page.body.data.map((w) => w.id));
			cursor = page.body.next_cursor;
		} while (cursor);
		expect(seen).toEqual(expect.arrayContaining(ids));
		expect(new Set(seen).size).toBe(seen.length);
	});

	it("PUT replaces the whole configuration; PATCH changes only what it names; DELETE removes it", async () => {
		const created = await createWebhook(t, { url: "https://hooks.example.com/a", scope: "bot", bot_id: bot.id, event_types: ["new_message"], ordered: true, max_concurrency: 3 });
		const put = await t.api<WebhookBody>("PUT", `/webhooks/${created.id}`, { url: "https://hooks.example.com/b", scope: "chat", chat_ids: [chatId] });
		expect(put.status).toBe(200);
		expect(put.body).toMatchObject({ url: "https://hooks.example.com/b", scope: "chat", chat_ids: [chatId], bot_id: null, event_types: null, ordered: false, max_concurrency: 8 });
		expect(put.text).not.toContain("whsec_");
		expectApiError(await t.api("PUT", `/webhooks/${created.id}`, { url: "https://hooks.example.com/c" }), 400, "VALIDATION_ERROR");

		const patched = await t.api<WebhookBody>("PATCH", `/webhooks/${created.id}`, { event_types: ["edited_message", "outgoing_message"], max_concurrency: 2 });
		expect(patched.status).toBe(200);
		expect(patched.body).toMatchObject({ url: "https://hooks.example.com/b", scope: "chat", chat_ids: [chatId], event_types: ["edited_message", "outgoing_message"], max_concurrency: 2 });

		const refused = await t.api("PATCH", `/webhooks/${created.id}`, { scope: "reply" });
		expectApiError(refused, 400, "VALIDATION_ERROR");
		expect(errorFields(refused)).toContain("reply_to_message_id");
		expect((await t.api<WebhookBody>("GET", `/webhooks/${created.id}`)).body).toMatchObject({ scope: "chat", max_concurrency: 2 });

		const off = await t.api<WebhookBody>("PATCH", `/webhooks/${created.id}`, { is_active: false });
		expect(off.body).toMatchObject({ is_active: false, disabled_reason: expect.any(String) });
		const on = await t.api<WebhookBody>("PATCH", `/webhooks/${created.id}`, { is_active: true });
		expect(on.body).toMatchObject({ is_active: true, disabled_reason: null });

		const deleted = await t.api("DELETE", `/webhooks/${created.id}`);
		expect(deleted.status).toBe(204);
		expectApiError(await t.api("GET", `/webhooks/${created.id}`), 404, "NOT_FOUND");
		expectApiError(await t.api("DELETE", `/webhooks/${created.id}`), 404, "NOT_FOUND");
	});

	it("rotate-secret: a new secret shown once; during the overlap deliveries verify with the old AND the new secret", async () => {
		const r = await receiver();
		const chat = await newChat();
		const chatTelegramId = nextChat;
		const created = await createWebhook(t, { url: r.url, scope: "chat", chat_ids: [chat] });
		const old = created.secret;
		t.telegram.userSends(bot.token, { chat_id: chatTelegramId, text: "before rotation" });
		await r.waitFor(() => r.withText("before rotation").length === 1);
		const before = r.withText("before rotation")[0]!;
		expect(String(before.headers["webhook-signature"]).split(" ")).toHaveLength(1);
		expect(verifies(old, before)).toBe(true);

		const rotated = await t.api<WebhookBody & { secret: string }>("POST", `/webhooks/${created.id}/rotate-secret`);
		expect(rotated.status).toBe(200);
		const fresh = rotated.body.secret;
		expect(fresh).toMatch(/^whsec_/);
		expect(fresh).not.toBe(old);
		// The answer is the webhook as stored, its updated_at moved on (it showed the old one).
		expect(Date.parse(rotated.body.updated_at)).toBeGreaterThan(Date.parse(created.updated_at));
		expect(rotated.body.updated_at).toBe((await t.api<WebhookBody>("GET", `/webhooks/${created.id}`)).body.updated_at);
		const expires = Date.parse(rotated.body.previous_secret_expires_at!);
		expect(Math.abs(expires - (Date.now() + 24 * 3_600_000))).toBeLessThan(60_000);
		const shown = await t.api("GET", `/webhooks/${created.id}`);
		expect(shown.text).not.toContain(fresh);
		expect(shown.text).not.toContain(old);

		t.telegram.userSends(bot.token, { chat_id: chatTelegramId, text: "during the overlap" });
		await r.waitFor(() => r.withText("during the overlap").length === 1);
		const during = r.withText("during the overlap")[0]!;
		expect(String(during.headers["webhook-signature"]).split(" ")).toHaveLength(2);
		expect(verifyWith(fresh, during)).toEqual(during.body);
		expect(verifyWith(old, during)).toEqual(during.body);
		expect(during.headers["x-webhook-signature"]).toBe(legacySignature(fresh, during.rawBody));

		const ping = await t.api<{ ok: boolean }>("POST", `/webhooks/${created.id}/test`);
		expect(ping.body.ok).toBe(true);
		const pinged = r.requests.find((q) => q.body?.event === "ping")!;
		expect(verifies(fresh, pinged) && verifies(old, pinged)).toBe(true);

		// Once the 24 h are over, only the new secret signs.
		await t.gw.runtime.db.sequelize.query("UPDATE webhooks SET previous_secret_expires_at = :past WHERE id = :id", { replacements: { past: new Date(Date.now() - 1000), id: created.id } });
		t.telegram.userSends(bot.token, { chat_id: chatTelegramId, text: "after the overlap" });
		await r.waitFor(() => r.withText("after the overlap").length === 1);
		const after = r.withText("after the overlap")[0]!;
		expect(String(after.headers["webhook-signature"]).split(" ")).toHaveLength(1);
		expect(verifies(fresh, after)).toBe(true);
		expect(verifies(old, after)).toBe(false);
	});

	it("a second rotation during the overlap is 409 (the first's old secret keeps its 24 h); with force it ends that secret at once", async () => {
		const r = await receiver();
		const created = await createWebhook(t, { url: r.url, scope: "all" });
		const first = await t.api<WebhookBody & { secret: string }>("POST", `/webhooks/${created.id}/rotate-secret`);
		expect(first.status).toBe(200);
		const again = await t.api("POST", `/webhooks/${created.id}/rotate-secret`);
		const refusal = expectApiError(again, 409, "CONFLICT");
		expect(refusal.details).toEqual({ previous_secret_expires_at: first.body.previous_secret_expires_at });
		expect(refusal.message).toMatch(/still signs until .*"force": true/);
		expect((await t.api<{ ok: boolean }>("POST", `/webhooks/${created.id}/test`)).body.ok).toBe(true);
		const ping = r.requests.find((q) => q.body?.event === "ping")!;
		expect(verifies(created.secret, ping) && verifies(first.body.secret, ping)).toBe(true);

		const forced = await t.api<WebhookBody & { secret: string }>("POST", `/webhooks/${created.id}/rotate-secret`, { force: true });
		expect(forced.status).toBe(200);
		expect((await t.api<{ ok: boolean }>("POST", `/webhooks/${created.id}/test`)).body.ok).toBe(true);
		const pings = r.requests.filter((q) => q.body?.event === "ping");
		const last = pings[pings.length - 1]!;
		expect([verifies(forced.body.secret, last), verifies(first.body.secret, last), verifies(created.secret, last)]).toEqual([true, true, false]);
	});

	it("two rotate-secret requests at once: every secret handed out with a 200 signs the next ping; a rotation that lost the race is 409", async () => {
		for (let round = 0; round < 3; round++) {
			const r = await receiver();
			const created = await createWebhook(t, { url: r.url, scope: "all" });
			const answers = await Promise.all([1, 2].map(() => t.api<WebhookBody & { secret: string }>("POST", `/webhooks/${created.id}/rotate-secret`)));
			expect(answers.map((a) => a.status).sort()).toEqual(expect.arrayContaining([200]));
			for (const refused of answers.filter((a) => a.status !== 200)) expectApiError(refused, 409, "CONFLICT");
			expect((await t.api<{ ok: boolean }>("POST", `/webhooks/${created.id}/test`)).body.ok).toBe(true);
			const pinged = r.requests.find((q) => q.body?.event === "ping")!;
			for (const answer of answers.filter((a) => a.status === 200)) expect(verifies(answer.body.secret, pinged)).toBe(true);
		}
	});

	it("POST /webhooks/:id/test: a signed ping reaches the receiver; the answer says how it went", async () => {
		const r = await receiver();
		const created = await createWebhook(t, { url: r.url, scope: "all" });
		const res = await t.api<Body>("POST", `/webhooks/${created.id}/test`);
		expect(res.status).toBe(200);
		expect(res.body).toMatchObject({ ok: true, status_code: 200, error: null, duration_ms: expect.any(Number) });
		expect(r.requests).toHaveLength(1);
		const [ping] = r.requests;
		expect(ping!.body).toMatchObject({ event: "ping", event_id: expect.any(String), timestamp: expect.stringMatching(ISO) });
		expect(ping!.headers["x-webhook-event"]).toBe("ping");
		expect(ping!.headers["webhook-id"]).toBe(ping!.body!.event_id);
		expect(verifyWith(created.secret, ping!)).toEqual(ping!.body);
		expect(ping!.headers["x-webhook-signature"]).toBe(legacySignature(created.secret, ping!.rawBody));

		const failing = await receiver(() => ({ status: 503, body: "down for maintenance" }));
		const other = await createWebhook(t, { url: failing.url, scope: "all" });
		const bad = await t.api<Body>("POST", `/webhooks/${other.id}/test`);
		expect(bad.status).toBe(200);
		expect(bad.body).toMatchObject({ ok: false, status_code: 503, response_excerpt: "down for maintenance" });
	});

	it("replay {since_seq} and {since}: earlier events again, with the same webhook-id as the originals", async () => {
		const r = await receiver();
		const chat = await newChat();
		const chatTelegramId = nextChat;
		const created = await createWebhook(t, { url: r.url, scope: "chat", chat_ids: [chat] });
		for (const text of ["replay one", "replay two"]) t.telegram.userSends(bot.token, { chat_id: chatTelegramId, text });
		await r.waitForCount(2);
		await waitForDeliveries(t, created.id, (log) => log.length === 2 && log.every((d) => d.status === "succeeded"));
		const originals = new Map(r.requests.map((q) => [q.body!.message!.text, q.headers["webhook-id"]]));

		const res = await t.api<{ scheduled: number; complete: boolean; last_seq: number }>("POST", `/webhooks/${created.id}/replay`, { since_seq: 0 });
		expect(res.status).toBe(202);
		// The chat's first message came before the webhook existed: replay includes it too.
		expect(res.body).toEqual({ scheduled: 3, complete: true, last_seq: expect.any(Number) });
		await r.waitForCount(5);
		for (const text of ["replay one", "replay two"]) {
			const copies = r.withText(text);
			expect(copies).toHaveLength(2);
			expect(copies.map((q) => q.headers["webhook-id"])).toEqual([originals.get(text), originals.get(text)]);
			expect(copies[1]!.rawBody).toBe(copies[0]!.rawBody);
			expect(verifies(created.secret, copies[1]!)).toBe(true);
		}
		expect(r.withText(`hello from ${chatTelegramId}`)).toHaveLength(1);

		const since = r.withText("replay two")[0]!.body!.timestamp;
		const bySince = await t.api<{ scheduled: number }>("POST", `/webhooks/${created.id}/replay`, { since });
		expect(bySince.status).toBe(202);
		expect(bySince.body.scheduled).toBe(1);
		await r.waitFor(() => r.withText("replay two").length === 3);
		expect(r.withText("replay one")).toHaveLength(2);
		expect(new Set(r.withText("replay two").map((q) => q.headers["webhook-id"])).size).toBe(1);

		// Only ISO 8601 times: new Date() read "1", "2026" and "December 7, 2026", and moved February 30th to March.
		for (const body of [{}, { since, since_seq: 0 }, { since: "last tuesday" }, { since_seq: -1 }, { since: "1" }, { since: "2026" }, { since: "December 7, 2026" }, { since: "2026-02-30T00:00:00Z" }, { since: 1_700_000_000_000 }]) {
			expectApiError(await t.api("POST", `/webhooks/${created.id}/replay`, body), 400, "VALIDATION_ERROR");
		}
	});

	it("deleting a bot deactivates its bot-scoped webhooks", async () => {
		const added = await t.addBot({ username: "short_lived_bot" });
		const scoped = await createWebhook(t, { url: "https://hooks.example.com/bot", scope: "bot", bot_id: added.bot.id });
		const unrelated = await createWebhook(t, { url: "https://hooks.example.com/bot2", scope: "bot", bot_id: bot.id });
		expect((await t.api("DELETE", `/bots/${added.bot.id}`)).status).toBe(204);
		const after = await t.api<WebhookBody>("GET", `/webhooks/${scoped.id}`);
		expect(after.body).toMatchObject({ is_active: false, disabled_reason: expect.stringMatching(/bot/) });
		expect((await t.api<WebhookBody>("GET", `/webhooks/${unrelated.id}`)).body.is_active).toBe(true);
		// A new webhook cannot name the deleted bot.
		const refused = await t.api("POST", "/webhooks", { url: "https://hooks.example.com/bot", scope: "bot", bot_id: added.bot.id });
		expectApiError(refused, 400, "VALIDATION_ERROR");
		expect(errorFields(refused)).toContain("bot_id");
	});
});

describe("webhooks: private addresses refused (WEBHOOK_ALLOW_PRIVATE=false)", () => {
	let t: TelegramGateway;
	let r: Receiver;
	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "webhook", env: { ...WEBHOOK_TEST_ENV, WEBHOOK_ALLOW_PRIVATE: "false" } });
		r = await startReceiver();
	}, 60_000);
	afterAll(async () => {
		await r.close();
		await t.stop();
	});

	it.each([
		"http://127.0.0.1:8080/hook",
		"http://localhost:8080/hook",
		"http://10.0.0.7/hook",
		"http://172.16.5.4/hook",
		"http://192.168.1.10/hook",
		"http://169.254.169.254/latest/meta-data/",
		"http://100.64.1.1/hook",
		"http://0.0.0.0/hook",
		"http://[::1]:8080/hook",
		"http://[fd00::1]/hook",
		"http://[fe80::1]/hook",
		"http://[::ffff:127.0.0.1]/hook",
		"http://2130706433/hook",
	])("%s: 400 naming url, nothing stored", async (url) => {
		const before = await t.gw.runtime.db.models.Webhook.count();
		const res = await t.api("POST", "/webhooks", { url, scope: "all" });
		expectApiError(res, 400, "VALIDATION_ERROR");
		expect(errorFields(res)).toEqual(["url"]);
		expect(await t.gw.runtime.db.models.Webhook.count()).toBe(before);
	});

	it("a public address is accepted; changing it to a private one is refused; if it points inward anyway, nothing is sent", async () => {
		const created = await createWebhook(t, { url: "http://8.8.8.8/hook", scope: "all" });
		const patch = await t.api("PATCH", `/webhooks/${created.id}`, { url: r.url });
		expectApiError(patch, 400, "VALIDATION_ERROR");
		expect(errorFields(patch)).toEqual(["url"]);

		// As if DNS had changed under a saved name: the URL now leads to loopback.
		for (const url of [r.url, r.url.replace("127.0.0.1", "localhost")]) {
			await t.gw.runtime.db.sequelize.query("UPDATE webhooks SET url = :url WHERE id = :id", { replacements: { url, id: created.id } });
			const ping = await t.api<Body>("POST", `/webhooks/${created.id}/test`);
			expect(ping.status).toBe(200);
			expect(ping.body).toMatchObject({ ok: false, status_code: null, error: expect.any(String) });
		}
		const added = await t.addBot();
		t.telegram.userSends(added.token, { chat_id: 9100, text: "must not leave" });
		const log = await waitForDeliveries(t, created.id, (l) => l.length === 1 && l[0]!.log.length >= 1, 10_000, "a refused attempt");
		expect(log[0]!.log[0]).toMatchObject({ status_code: null, error: expect.any(String) });
		expect(log[0]!.status).not.toBe("succeeded");
		expect(r.requests).toHaveLength(0);
		expect((await deliveriesOf(t, created.id)).every((d) => d.status !== "succeeded")).toBe(true);
	});
});
