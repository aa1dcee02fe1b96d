import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { TelegramDouble, type Message, type TelegramDoubleOptions, type Update, type User } from "../support/telegram-double";

interface Answer<T = unknown> {
	status: number;
	body: { ok: boolean; result?: T; error_code?: number; description?: string; parameters?: { retry_after: number } };
}

let telegram: TelegramDouble;
let root: string;
let token: string;
const receivers: Receiver[] = [];

async function startDouble(options: TelegramDoubleOptions = {}): Promise<void> {
	telegram = new TelegramDouble({ redeliveryDelayMs: 20, maxRedeliveryDelayMs: 100, ...options });
	root = await telegram.start();
	token = telegram.addBot({ id: 5_000_000_001, username: "shop_bot", first_name: "Shop" });
}

/** POST JSON to a Bot API method of the test bot (or of `as`). */
async function call<T = unknown>(method: string, params: Record<string, unknown> = {}, as = token, init: RequestInit = {}): Promise<Answer<T>> {
	const response = await fetch(`${root}/bot${as}/${method}`, {
		method: "POST",
		headers: { "content-type": "application/json" },
		body: JSON.stringify(params),
		...init,
	});
	return { status: response.status, body: (await response.json()) as Answer<T>["body"] };
}

async function get<T = unknown>(path: string): Promise<Answer<T>> {
	const response = await fetch(`${root}${path}`);
	return { status: response.status, body: (await response.json()) as Answer<T>["body"] };
}

interface Receiver {
	url: string;
	received: Array<{ update: Update; secret: string | undefined }>;
	maxActive: number;
	close(): Promise<void>;
}

/** A webhook receiver on loopback; `respond` picks the status for each push (it may take its time). */
async function startReceiver(respond: (update: Update, attempt: number) => number | Promise<number> = () => 200): Promise<Receiver> {
	let active = 0;
	const receiver: Receiver = { url: "", received: [], maxActive: 0, close: () => Promise.resolve() };
	const server: Server = createServer((req, res) => {
		let body = "";
		req.on("data", (chunk: Buffer) => (body += chunk.toString()));
		req.on("end", () => {
			active++;
			receiver.maxActive = Math.max(receiver.maxActive, active);
			const update = JSON.parse(body) as Update;
			const secret = req.headers["x-telegram-bot-api-secret-token"];
			receiver.received.push({ update, secret: typeof secret === "string" ? secret : undefined });
			void Promise.resolve(respond(update, receiver.received.length)).then((status) => {
				active--;
				res.writeHead(status).end();
			});
		});
	});
	await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
	receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
	receiver.close = () =>
		new Promise<void>((resolve) => {
			server.close(() => resolve());
			server.closeAllConnections();
		});
	receivers.push(receiver);
	return receiver;
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

afterEach(async () => {
	await telegram.stop();
	await Promise.all(receivers.splice(0).map((receiver) => receiver.close()));
});

describe("Telegram double: routing, auth and request bodies", () => {
	beforeEach(() => startDouble());

	it("answers an unknown token with 401, a malformed path with 404, an unknown method with 404", async () => {
		expect(await call("getMe", {}, "12345:wrongwrongwrongwrongwrongwrongwrong")).toEqual({ status: 401, body: { ok: false, error_code: 401, description: "Unauthorized" } });
		expect(await get(`/botnotatoken/getMe`)).toEqual({ status: 404, body: { ok: false, error_code: 404, description: "Not Found" } });
		expect(await get(`/nothing`)).toMatchObject({ status: 404 });
		expect(await call("getMeNow")).toEqual({ status: 404, body: { ok: false, error_code: 404, description: "Not Found: method not found" } });
		expect(telegram.calls).toMatchObject({ getMe: 2, getMeNow: 1 }); // every call received counts, refused ones too
	});

	it("counts calls of methods named after Object.prototype members like any other", async () => {
		for (const method of ["constructor", "constructor", "toString", "__proto__"]) expect((await call(method)).status).toBe(404);
		expect({ ...telegram.calls }).toEqual({ constructor: 2, toString: 1, ["__proto__"]: 1 });
	});

	it("getMe answers the bot User, by GET or POST, with the method name in any case", async () => {
		const me = { id: 5_000_000_001, is_bot: true, first_name: "Shop", username: "shop_bot", can_join_groups: true, can_read_all_group_messages: false, supports_inline_queries: false };
		expect(await call("getMe")).toEqual({ status: 200, body: { ok: true, result: expect.objectContaining(me) } });
		expect((await get(`/bot${token}/GETME`)).body.result).toMatchObject(me);
		expect(telegram.calls.getMe).toBe(2);
		expect(token).toMatch(/^5000000001:[\w-]{35}$/);
		expect(telegram.addBot()).toMatch(/^\d+:[\w-]{35}$/);
	});

	it("reads query strings, JSON bodies and urlencoded forms (JSON-looking form values are parsed)", async () => {
		const receiver = await startReceiver();
		const form = new URLSearchParams({ url: receiver.url, allowed_updates: JSON.stringify(["message", "chat_member"]), max_connections: "7" });
		const answer = await fetch(`${root}/bot${token}/setWebhook`, { method: "POST", body: form });
		expect(answer.headers.get("content-type")).toBe("application/json");
		expect(await answer.json()).toEqual({ ok: true, result: true, description: "Webhook was set" });
		expect((await get(`/bot${token}/getWebhookInfo`)).body.result).toMatchObject({ url: receiver.url, max_connections: 7, allowed_updates: ["message", "chat_member"] });
		expect((await call("sendMessage", { chat_id: 42, text: "json" })).body.result).toMatchObject({ text: "json" });
		expect((await get(`/bot${token}/sendMessage?chat_id=42&text=query`)).body.result).toMatchObject({ text: "query", chat: { id: 42 } });
	});

	it("refuses malformed JSON with 400 and a body over 1 MB with 413", async () => {
		const bad = await fetch(`${root}/bot${token}/sendMessage`, { method: "POST", headers: { "content-type": "application/json" }, body: "{nope" });
		expect(bad.status).toBe(400);
		expect(await bad.json()).toMatchObject({ ok: false, error_code: 400, description: expect.stringMatching(/^Bad Request: /) });
		const huge = await call("sendMessage", { chat_id: 42, text: "x".repeat(1024 * 1024) });
		expect(huge).toMatchObject({ status: 413, body: { ok: false, error_code: 413 } });
		expect(telegram.sent).toHaveLength(0);
	});
});

describe("Telegram double: webhooks", () => {
	beforeEach(() => startDouble());

	it("validates setWebhook and reports it in getWebhookInfo; deleteWebhook clears it", async () => {
		expect(await call("getWebhookInfo")).toEqual({ status: 200, body: { ok: true, result: { url: "", has_custom_certificate: false, pending_update_count: 0 } } });
		expect(await call("setWebhook", { url: "ftp://example.com/hook" })).toMatchObject({ status: 400, body: { ok: false, error_code: 400 } });
		expect(await call("setWebhook", { url: "not a url" })).toMatchObject({ status: 400 });
		expect(await call("setWebhook", { url: "https://example.com/hook", secret_token: "has spaces" })).toEqual({
			status: 400,
			body: { ok: false, error_code: 400, description: "Bad Request: secret token contains unallowed characters" },
		});
		expect(await call("setWebhook", { url: "https://example.com/hook", secret_token: "x".repeat(257) })).toMatchObject({ status: 400 });
		telegram.failNext("setWebhook", { status: 500 });
		const receiver = await startReceiver();
		expect((await call("setWebhook", { url: receiver.url })).status).toBe(500);
		expect(await call("setWebhook", { url: receiver.url, secret_token: "s3cr3t_-" })).toEqual({ status: 200, body: { ok: true, result: true, description: "Webhook was set" } });
		expect((await call("getWebhookInfo")).body.result).toEqual({ url: receiver.url, has_custom_certificate: false, pending_update_count: 0, max_connections: 40 });
		expect(await call("deleteWebhook")).toEqual({ status: 200, body: { ok: true, result: true, description: "Webhook was deleted" } });
		expect((await call("deleteWebhook")).body).toMatchObject({ description: "Webhook is already deleted" });
		expect((await call("getWebhookInfo")).body.result).toMatchObject({ url: "" });
	});

	it("pushes each pending update with the secret header and forgets it after a 2xx", async () => {
		const receiver = await startReceiver();
		const first = telegram.userSends(token, { chat_id: 42, text: "/start" });
		await call("setWebhook", { url: receiver.url, secret_token: "topsecret" });
		const second = telegram.userSends(token, { chat_id: -100123, text: "hello group", from: { id: 7, first_name: "Ann" } });
		await telegram.waitFor(() => telegram.pendingUpdates(token).length === 0);
		expect(receiver.received.map((r) => r.update)).toEqual([first, second]);
		expect(receiver.received.every((r) => r.secret === "topsecret")).toBe(true);
		expect(first).toEqual({
			update_id: expect.any(Number),
			message: {
				message_id: 1,
				from: { id: 42, is_bot: false, first_name: "Test", last_name: "User42", username: "user42", language_code: "en" },
				chat: { id: 42, type: "private", first_name: "Test", last_name: "User42", username: "user42" },
				date: expect.any(Number),
				text: "/start",
				entities: [{ type: "bot_command", offset: 0, length: 6 }],
			},
		});
		expect(second.update_id).toBe(first.update_id + 1);
		expect(second.message).toMatchObject({ chat: { id: -100123, type: "supergroup", title: expect.any(String) }, from: { id: 7, first_name: "Ann", is_bot: false } });
		expect(telegram.pushLog(token)).toEqual([
			{ update_id: first.update_id, url: receiver.url, status: 200, at: expect.any(Number) },
			{ update_id: second.update_id, url: receiver.url, status: 200, at: expect.any(Number) },
		]);
		expect((await call("getWebhookInfo")).body.result).toMatchObject({ pending_update_count: 0 });
	});

	it("never has more than max_connections pushes in flight, and keeps update_id order with max_connections 1", async () => {
		const slow = await startReceiver(async () => {
			await delay(60);
			return 200;
		});
		await call("setWebhook", { url: slow.url, max_connections: 3 });
		for (let i = 0; i < 9; i++) telegram.userSends(token, { chat_id: 42, text: `m${i}` });
		await telegram.waitFor(() => slow.received.length === 9);
		expect(slow.maxActive).toBe(3);
		await telegram.waitFor(() => telegram.pendingUpdates(token).length === 0);

		const ordered = await startReceiver(async (_update, attempt) => {
			await delay(5);
			return attempt === 2 ? 500 : 200; // one failure must not let the next update overtake
		});
		await call("setWebhook", { url: ordered.url, max_connections: 1 });
		const sent = Array.from({ length: 5 }, (_, i) => telegram.userSends(token, { chat_id: 43, text: `n${i}` }).update_id);
		await telegram.waitFor(() => telegram.pendingUpdates(token).length === 0);
		expect(ordered.maxActive).toBe(1);
		expect(ordered.received.map((r) => r.update.update_id)).toEqual([sent[0], sent[1], sent[1], sent[2], sent[3], sent[4]]);
	});

	it("redelivers after a 500 or a network error, with growing delays, until a 2xx; getWebhookInfo shows the last error", async () => {
		const flaky = await startReceiver((_update, attempt) => (attempt <= 3 ? 500 : 200));
		await call("setWebhook", { url: flaky.url });
		const update = telegram.userSends(token, { chat_id: 42, text: "again?" });
		await telegram.waitFor(() => telegram.pendingUpdates(token).length === 0);
		const log = telegram.pushLog(token);
		expect(log.map((entry) => entry.status)).toEqual([500, 500, 500, 200]);
		expect(log.every((entry) => entry.update_id === update.update_id)).toBe(true);
		const gaps = log.slice(1).map((entry, i) => entry.at - log[i]!.at);
		expect(gaps[0]).toBeGreaterThanOrEqual(15); // 20 ms, then 40, then 80 (capped at 100)
		expect(gaps[2]).toBeGreaterThan(gaps[0]!);
		await delay(150);
		expect(flaky.received).toHaveLength(4);
		expect((await call("getWebhookInfo")).body.result).toMatchObject({
			last_error_date: expect.any(Number),
			last_error_message: "Wrong response from the webhook: 500 Internal Server Error",
		});

		const down = await startReceiver();
		await down.close();
		await call("setWebhook", { url: down.url });
		telegram.userSends(token, { chat_id: 42, text: "anyone?" });
		await telegram.waitFor(() => telegram.pushLog(token).filter((entry) => entry.error).length >= 2);
		expect(telegram.pushLog(token).at(-1)).toMatchObject({ error: "Connection refused", url: down.url });
		expect((await call("getWebhookInfo")).body.result).toMatchObject({ pending_update_count: 1, last_error_message: "Connection refused" });
	});

	it("leaves out chat_member, message_reaction and message_reaction_count unless allowed_updates lists them", async () => {
		const receiver = await startReceiver();
		await call("setWebhook", { url: receiver.url });
		const joined = telegram.memberJoins(token, { chat_id: -100555, user_id: 77 });
		telegram.enqueueUpdate(token, { message_reaction: { chat: { id: -100555, type: "supergroup" }, message_id: 1, date: 1, old_reaction: [], new_reaction: [] } });
		const message = telegram.userSends(token, { chat_id: -100555, text: "hi" });
		const future = telegram.enqueueUpdate(token, { new_update_kind: { whatever: true } });
		await telegram.waitFor(() => telegram.pendingUpdates(token).length === 0);
		expect(receiver.received.map((r) => r.update.update_id)).toEqual([message.update_id, future.update_id]);
		expect(telegram.skippedUpdates(token).map((update) => update.update_id)).toEqual([joined.update_id, joined.update_id + 1]);
		expect(joined.chat_member).toMatchObject({ chat: { id: -100555 }, old_chat_member: { status: "left", user: { id: 77 } }, new_chat_member: { status: "member", user: { id: 77 } } });

		await call("setWebhook", { url: receiver.url, allowed_updates: ["chat_member"] });
		const again = telegram.memberJoins(token, { chat_id: -100555, user_id: 78 });
		telegram.userSends(token, { chat_id: -100555, text: "not wanted now" });
		await telegram.waitFor(() => telegram.pendingUpdates(token).length === 0);
		expect(receiver.received.at(-1)!.update.update_id).toBe(again.update_id);
		expect(receiver.received).toHaveLength(3);
	});

	it("keeps a given update_id, so a duplicate is delivered twice; drop_pending_updates forgets the queue", async () => {
		const receiver = await startReceiver();
		const original = telegram.userSends(token, { chat_id: 42, text: "once" });
		telegram.enqueueUpdate(token, original);
		expect(telegram.pendingUpdates(token).map((u) => u.update_id)).toEqual([original.update_id, original.update_id]);
		expect(telegram.userSends(token, { chat_id: 42, text: "next" }).update_id).toBe(original.update_id + 1);
		await call("setWebhook", { url: receiver.url, drop_pending_updates: true });
		expect(telegram.pendingUpdates(token)).toEqual([]);
		telegram.enqueueUpdate(token, original);
		telegram.enqueueUpdate(token, original);
		await telegram.waitFor(() => receiver.received.length === 2);
		expect(receiver.received.map((r) => r.update)).toEqual([original, original]);
	});
});

describe("Telegram double: getUpdates", () => {
	beforeEach(() => startDouble());

	it("answers 409 while a webhook is set", async () => {
		await call("setWebhook", { url: "http://127.0.0.1:9/hook" });
		expect(await call("getUpdates")).toEqual({
			status: 409,
			body: { ok: false, error_code: 409, description: "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first" },
		});
		await call("deleteWebhook");
		expect((await call("getUpdates")).body).toEqual({ ok: true, result: [] });
	});

	it("long poll: returns as soon as a user writes, or [] at the timeout", async () => {
		const started = Date.now();
		const poll = call<Update[]>("getUpdates", { timeout: 5 });
		await telegram.waitFor(() => telegram.bot(token).poller !== null);
		await delay(50);
		const update = telegram.userSends(token, { chat_id: 42, text: "wake up" });
		expect((await poll).body.result).toEqual([update]);
		expect(Date.now() - started).toBeLessThan(2000);

		const quiet = Date.now();
		expect((await call("getUpdates", { offset: update.update_id + 1, timeout: 1 })).body.result).toEqual([]);
		expect(Date.now() - quiet).toBeGreaterThanOrEqual(900);
		expect(telegram.getUpdatesCalls.map((c) => c.timeout)).toEqual([5, 1]);
	});

	it("offset confirms every update below it; limit caps the answer; a negative offset keeps the last ones", async () => {
		const ids = Array.from({ length: 5 }, (_, i) => telegram.userSends(token, { chat_id: 42, text: `m${i}` }).update_id);
		const page = await call<Update[]>("getUpdates", { limit: 2 });
		expect(page.body.result!.map((u) => u.update_id)).toEqual(ids.slice(0, 2));
		expect((await call<Update[]>("getUpdates")).body.result!.map((u) => u.update_id)).toEqual(ids); // nothing confirmed yet
		expect((await call<Update[]>("getUpdates", { offset: ids[2] })).body.result!.map((u) => u.update_id)).toEqual(ids.slice(2));
		expect(telegram.pendingUpdates(token).map((u) => u.update_id)).toEqual(ids.slice(2));
		expect((await call<Update[]>("getUpdates", { offset: -1 })).body.result!.map((u) => u.update_id)).toEqual([ids[4]]);
		expect((await call<Update[]>("getUpdates", { offset: ids[4]! + 1 })).body.result).toEqual([]);
		expect(telegram.pendingUpdates(token)).toEqual([]);
	});

	it("a second getUpdates ends the one waiting with 409, as Telegram does; the newer one is answered", async () => {
		const first = call<Update[]>("getUpdates", { timeout: 5 });
		await telegram.waitFor(() => telegram.bot(token).poller !== null);
		const second = call<Update[]>("getUpdates", { timeout: 5 });
		expect(await first).toEqual({
			status: 409,
			body: { ok: false, error_code: 409, description: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running" },
		});
		await telegram.waitFor(() => telegram.bot(token).poller !== null);
		const update = telegram.userSends(token, { chat_id: 42, text: "for the second" });
		expect((await second).body.result).toEqual([update]);
	});

	it("revokeToken: the old token answers 401 everywhere (a waiting poll too); the bot, its webhook and pending updates live on under the new one", async () => {
		const waiting = call("getUpdates", { timeout: 30 });
		await telegram.waitFor(() => telegram.bot(token).poller !== null);
		const fresh = telegram.revokeToken(token);
		const pending = telegram.userSends(fresh, { chat_id: 42, text: "kept" });
		expect(await waiting).toEqual({ status: 401, body: { ok: false, error_code: 401, description: "Unauthorized" } });
		for (const method of ["getMe", "getWebhookInfo", "sendMessage", "getUpdates"]) expect((await call(method, { chat_id: 42, text: "x" })).status).toBe(401);
		expect(fresh.split(":")[0]).toBe(token.split(":")[0]);
		expect((await call<User>("getMe", {}, fresh)).body.result!.id).toBe(5_000_000_001);
		expect(telegram.pendingUpdates(fresh).map((u) => u.update_id)).toContain(pending.update_id);
		await call("setWebhook", { url: "http://127.0.0.1:9/hook" }, fresh);
		const again = telegram.revokeToken(fresh);
		expect((await call<{ url: string }>("getWebhookInfo", {}, again)).body.result!.url).toBe("http://127.0.0.1:9/hook");
	});

	it("a client that gives up frees the poll; setWebhook ends a waiting poll with 409", async () => {
		await expect(call("getUpdates", { timeout: 30 }, token, { signal: AbortSignal.timeout(100) })).rejects.toMatchObject({ name: "TimeoutError" });
		await telegram.waitFor(() => telegram.bot(token).poller === null);
		const waiting = call("getUpdates", { timeout: 30 });
		await telegram.waitFor(() => telegram.bot(token).poller !== null);
		await call("setWebhook", { url: "http://127.0.0.1:9/hook" });
		expect((await waiting).body).toEqual({ ok: false, error_code: 409, description: "Conflict: terminated by setWebhook request" });
	});

	it("applies allowed_updates (and keeps it for the next calls)", async () => {
		telegram.memberJoins(token, { chat_id: -100777, user_id: 5 });
		const message = telegram.userSends(token, { chat_id: -100777, text: "hi" });
		expect((await call<Update[]>("getUpdates")).body.result).toEqual([message]);
		const joined = telegram.memberJoins(token, { chat_id: -100777, user_id: 6 });
		telegram.userSends(token, { chat_id: -100777, text: "ignored" });
		const form = new URLSearchParams({ offset: String(message.update_id + 1), allowed_updates: '["chat_member"]' });
		const answer = (await (await fetch(`${root}/bot${token}/getUpdates?${form.toString()}`)).json()) as { result: Update[] };
		expect(answer.result).toEqual([joined]);
		expect(telegram.getUpdatesCalls.at(-1)).toMatchObject({ allowed_updates: ["chat_member"], offset: message.update_id + 1 });
	});
});

describe("Telegram double: sending", () => {
	beforeEach(() => startDouble());

	it("sendMessage answers a Message and records it", async () => {
		const user = telegram.userSends(token, { chat_id: 42, text: "hi" });
		const answer = await call<Message>("sendMessage", { chat_id: 42, text: "Hello, see https://example.com/x.", reply_to_message_id: user.message!.message_id });
		const bot: User = { id: 5_000_000_001, is_bot: true, first_name: "Shop", username: "shop_bot" };
		expect(answer).toEqual({
			status: 200,
			body: {
				ok: true,
				result: {
					message_id: 2,
					from: bot,
					chat: { id: 42, type: "private", first_name: "Test", last_name: "User42", username: "user42" },
					date: expect.any(Number),
					reply_to_message: user.message,
					text: "Hello, see https://example.com/x.",
					entities: [{ type: "url", offset: 11, length: 21 }],
				},
			},
		});
		expect(Math.abs(answer.body.result!.date - Date.now() / 1000)).toBeLessThan(5);
		const group = (await call<Message>("sendMessage", { chat_id: "-1001234", text: "group", message_thread_id: 9 })).body.result!;
		expect(group).toMatchObject({ message_id: 1, chat: { id: -1001234, type: "supergroup" }, message_thread_id: 9 });
		expect(telegram.sent).toEqual([
			{ token, method: "sendMessage", chat_id: 42, text: "Hello, see https://example.com/x.", at: expect.any(Number), message_id: 2, params: expect.objectContaining({ chat_id: 42 }), message: answer.body.result },
			expect.objectContaining({ chat_id: -1001234, text: "group", message_id: 1 }),
		]);
	});

	it("refuses what Telegram refuses", async () => {
		const refusal = (status: number, description: string) => ({ status, body: { ok: false, error_code: status, description } });
		expect(await call("sendMessage", { text: "no chat" })).toEqual(refusal(400, "Bad Request: chat_id is empty"));
		expect(await call("sendMessage", { chat_id: 42 })).toEqual(refusal(400, "Bad Request: message text is empty"));
		expect(await call("sendMessage", { chat_id: 42, text: " \n " })).toEqual(refusal(400, "Bad Request: message text is empty"));
		expect(await call("sendMessage", { chat_id: 42, text: "x".repeat(4097) })).toEqual(refusal(400, "Bad Request: message is too long"));
		expect((await call("sendMessage", { chat_id: 42, text: "x".repeat(4096) })).status).toBe(200);
		expect(await call("sendMessage", { chat_id: "@nobody_here", text: "hi" })).toEqual(refusal(400, "Bad Request: chat not found"));
		expect(await call("sendMessage", { chat_id: 42, text: "hi", reply_to_message_id: 999 })).toEqual(refusal(400, "Bad Request: message to be replied not found"));
		telegram.markChatMissing(-100404);
		expect(await call("sendMessage", { chat_id: -100404, text: "hi" })).toEqual(refusal(400, "Bad Request: chat not found"));
		telegram.markBotBlocked(43);
		expect(await call("sendMessage", { chat_id: 43, text: "hi" })).toEqual(refusal(403, "Forbidden: bot was blocked by the user"));
		expect(await call("sendMessage", { chat_id: 42, text: "<b>open", parse_mode: "HTML" })).toEqual(
			refusal(400, 'Bad Request: can\'t parse entities: Can\'t find end tag corresponding to start tag "b"'),
		);
		expect(await call("sendMessage", { chat_id: 42, text: "v1.2", parse_mode: "MarkdownV2" })).toEqual(
			refusal(400, "Bad Request: can't parse entities: Character '.' is reserved and must be escaped with the preceding '\\'"),
		);
		expect(telegram.sent).toHaveLength(1);
	});

	it("applies parse_mode and resolves @username chats", async () => {
		const html = await call<Message>("sendMessage", { chat_id: 42, text: '<b>Hi</b> &amp; <a href="https://t.me">link</a>', parse_mode: "HTML" });
		expect(html.body.result).toMatchObject({ text: "Hi & link", entities: [{ type: "bold", offset: 0, length: 2 }, { type: "text_link", offset: 5, length: 4, url: "https://t.me" }] });
		const md = await call<Message>("sendMessage", { chat_id: 42, text: "*bold* _it_ `code` v1\\.2", parse_mode: "MarkdownV2" });
		expect(md.body.result).toMatchObject({ text: "bold it code v1.2", entities: [{ type: "bold", offset: 0, length: 4 }, { type: "italic", offset: 5, length: 2 }, { type: "code", offset: 8, length: 4 }] });
		telegram.addChat({ id: -1009876, type: "channel", title: "News", username: "news_channel" });
		expect((await call<Message>("sendMessage", { chat_id: "@news_channel", text: "hi" })).body.result!.chat).toEqual({ id: -1009876, type: "channel", title: "News", username: "news_channel" });
	});

	it("sendPhoto and sendDocument take a file_id or URL and a caption", async () => {
		const photo = await call<Message>("sendPhoto", { chat_id: 42, photo: "https://example.com/cat.jpg", caption: "<i>cat</i>", parse_mode: "HTML" });
		expect(photo.body.result).toMatchObject({ message_id: 1, caption: "cat", caption_entities: [{ type: "italic", offset: 0, length: 3 }] });
		expect(photo.body.result!.photo).toHaveLength(3);
		expect(photo.body.result!.photo![2]).toEqual({ file_id: expect.any(String), file_unique_id: expect.any(String), width: 800, height: 600, file_size: expect.any(Number) });
		const doc = await call<Message>("sendDocument", { chat_id: 42, document: "https://example.com/files/report.pdf" });
		expect(doc.body.result!.document).toMatchObject({ file_name: "report.pdf", mime_type: "application/pdf" });
		const again = await call<Message>("sendDocument", { chat_id: 42, document: doc.body.result!.document!.file_id });
		expect(again.body.result!.document!.file_id).toBe(doc.body.result!.document!.file_id);
		expect(await call("sendPhoto", { chat_id: 42 })).toMatchObject({ status: 400, body: { description: "Bad Request: there is no photo in the request" } });
		expect(await call("sendPhoto", { chat_id: 42, photo: "x", caption: "c".repeat(1025) })).toMatchObject({ status: 400, body: { description: "Bad Request: message caption is too long" } });
		expect(telegram.sent.map((s) => [s.method, s.text])).toEqual([["sendPhoto", "cat"], ["sendDocument", undefined], ["sendDocument", undefined]]);
	});
});

describe("Telegram double: flood limits", () => {
	beforeEach(() => startDouble({ floodLimits: true }));

	it("allows 1 message per second in a private chat, 20 per minute in a group, 30 per second per bot", async () => {
		expect((await call("sendMessage", { chat_id: 42, text: "one" })).status).toBe(200);
		expect(await call("sendMessage", { chat_id: 42, text: "two" })).toEqual({
			status: 429,
			body: { ok: false, error_code: 429, description: "Too Many Requests: retry after 1", parameters: { retry_after: 1 } },
		});
		for (let i = 0; i < 20; i++) expect((await call("sendMessage", { chat_id: -100200, text: `g${i}` })).status).toBe(200);
		const group = await call("sendMessage", { chat_id: -100200, text: "one too many" });
		expect(group.status).toBe(429);
		expect(group.body.parameters!.retry_after).toBeGreaterThan(50);

		await delay(1100);
		const burst = await Promise.all(Array.from({ length: 31 }, (_, i) => call("sendMessage", { chat_id: 1000 + i, text: "burst" })));
		expect(burst.filter((a) => a.status === 200)).toHaveLength(30);
		expect(burst.filter((a) => a.status === 429)).toHaveLength(1);
		expect(telegram.floodRefusals.map((r) => r.scope)).toEqual(["private", "group", "bot"]);
		expect(telegram.floodRefusals[0]).toEqual({ token, method: "sendMessage", chat_id: 42, scope: "private", retry_after: 1, at: expect.any(Number) });
		await delay(1000);
		expect((await call("sendMessage", { chat_id: 42, text: "later" })).status).toBe(200);
	});
});

describe("Telegram double: injected faults", () => {
	beforeEach(() => startDouble());

	it("429 with retry_after, 500 as JSON, 502 as nginx HTML, each for the given number of calls", async () => {
		telegram.failNext("SENDMESSAGE", { status: 429, retry_after: 7 }, 2);
		for (let i = 0; i < 2; i++) {
			expect(await call("sendMessage", { chat_id: 42, text: "hi" })).toEqual({
				status: 429,
				body: { ok: false, error_code: 429, description: "Too Many Requests: retry after 7", parameters: { retry_after: 7 } },
			});
		}
		expect((await call("sendMessage", { chat_id: 42, text: "hi" })).status).toBe(200);
		telegram.failNext("*", { status: 500 });
		expect(await call("getMe")).toEqual({ status: 500, body: { ok: false, error_code: 500, description: "Internal Server Error" } });
		telegram.failNext("getMe", { status: 502 });
		const gateway = await fetch(`${root}/bot${token}/getMe`);
		expect(gateway.status).toBe(502);
		expect(gateway.headers.get("content-type")).toBe("text/html");
		expect(await gateway.text()).toContain("502 Bad Gateway");
		expect(telegram.calls).toMatchObject({ sendMessage: 3, getMe: 2 });
		expect(telegram.sent).toHaveLength(1);
	});

	it("delays one call, or every call with setLatency", async () => {
		telegram.failNext("getMe", { delayMs: 300 });
		let started = Date.now();
		expect((await call("getMe")).status).toBe(200);
		expect(Date.now() - started).toBeGreaterThanOrEqual(280);
		started = Date.now();
		await call("getMe");
		expect(Date.now() - started).toBeLessThan(250);
		telegram.setLatency(150);
		started = Date.now();
		await call("getWebhookInfo");
		expect(Date.now() - started).toBeGreaterThanOrEqual(140);
	});

	it("hangs a call until the client gives up; stop() cuts hung calls and waiting polls", async () => {
		telegram.failNext("sendMessage", { hang: true });
		await expect(call("sendMessage", { chat_id: 42, text: "lost" }, token, { signal: AbortSignal.timeout(200) })).rejects.toMatchObject({ name: "TimeoutError" });
		expect(telegram.sent).toHaveLength(0);
		expect((await call("sendMessage", { chat_id: 42, text: "fine" })).status).toBe(200);

		telegram.failNext("getMe", { hang: true });
		const hung = call("getMe");
		const poll = call("getUpdates", { timeout: 60 });
		await telegram.waitFor(() => telegram.bot(token).poller !== null && telegram.calls.getMe === 1);
		const cut = Promise.all([expect(hung).rejects.toThrow("fetch failed"), expect(poll).rejects.toThrow("fetch failed")]);
		const started = Date.now();
		await telegram.stop();
		await cut;
		expect(Date.now() - started).toBeLessThan(1000);
	});
});

describe("Telegram double: playing users", () => {
	beforeEach(() => startDouble({ maxPendingUpdates: 3 }));

	it("edits, button presses, and a bounded queue that drops the oldest", async () => {
		const sent = (await call<Message>("sendMessage", { chat_id: 42, text: "Pick", reply_markup: { inline_keyboard: [[{ text: "A", callback_data: "a" }]] } })).body.result!;
		const click = telegram.userClicks(token, { chat_id: 42, message_id: sent.message_id, data: "a" });
		expect(click.callback_query).toEqual({ id: expect.stringMatching(/^\d+$/), from: expect.objectContaining({ id: 42, is_bot: false }), message: sent, chat_instance: expect.stringMatching(/^-?\d+$/), data: "a" });
		const said = telegram.userSends(token, { chat_id: 42, text: "tpyo" });
		expect(said.message!.message_id).toBe(2); // one counter per chat for both sides
		const edit = telegram.userEdits(token, { chat_id: 42, message_id: 2, text: "typo" });
		expect(edit.edited_message).toMatchObject({ message_id: 2, text: "typo", date: said.message!.date, edit_date: expect.any(Number), from: { id: 42 } });
		telegram.userSends(token, { chat_id: 42, text: "fourth" });
		expect(telegram.pendingUpdates(token).map((u) => u.update_id)).toEqual([said.update_id, edit.update_id, edit.update_id + 1]);
		expect(telegram.bot(token).dropped).toBe(1);
	});
});

describe("Telegram double: HTTP control surface and autoCreateBots", () => {
	beforeEach(() => startDouble({ autoCreateBots: true }));

	it("plays a user, lists the sent messages and the bots over HTTP", async () => {
		const response = await fetch(`${root}/_double/bot${token}/userSends`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ chat_id: 42, text: "by hand" }) });
		const update = ((await response.json()) as { result: Update }).result;
		expect(update.message).toMatchObject({ text: "by hand", chat: { id: 42 } });
		expect(telegram.pendingUpdates(token)).toEqual([update]);
		await call("sendMessage", { chat_id: 42, text: "answer" });
		expect((await get<Array<{ text: string }>>(`/_double/bot${token}/sent`)).body.result!.map((s) => s.text)).toEqual(["answer"]);
		expect((await get(`/_double/bots`)).body.result).toEqual([{ token, user: expect.objectContaining({ username: "shop_bot" }), webhook_url: "", pending_update_count: 1, sent_count: 1 }]);
		expect((await fetch(`${root}/_double/bot${token}/userSends`, { method: "POST", body: "{}", headers: { "content-type": "application/json" } })).status).toBe(400);
	});

	it("creates a bot for any well-formed token on first use", async () => {
		const fresh = "987654321:AAHfreshFreshFreshFreshFreshFresh12";
		expect((await call<User>("getMe", {}, fresh)).body.result).toMatchObject({ id: 987654321, is_bot: true });
		expect((await call("getMe", {}, "987654321:short")).status).toBe(401);
		telegram.userSends(fresh, { chat_id: 1, text: "hi" });
		expect(telegram.pendingUpdates(fresh)).toHaveLength(1);
	});
});
