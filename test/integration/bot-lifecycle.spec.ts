/**
 * A bot's Telegram side after registration: the reconciler (services/bots/reconciler.ts) sets it
 * again as configured (a webhook changed by another tool, stale allowed_updates, PUBLIC_URL removed
 * or set across a restart); a token revoked at BotFather is said in last_error, refuses sends with
 * 503 `bot_token_refused` without a Telegram call each, and is replaced with PATCH /bots/:id {token};
 * the poller names what a 409 means and clears last_error once polling works again.
 */
import { ALL_UPDATE_KINDS } from "../../lib/telegram/client";
import { SYSTEM_PRINCIPAL } from "../../services/auth/principal";
import { TOKEN_REFUSED } from "../../services/bots/token-refusal";
import { OVER_LIMIT_AT_RETURN_REASON, reviveBotWebhooks } from "../../services/bots/token-replacement";
import { createUser } from "../support/auth";
import { http, startTestGateway, tempDir, type TestGateway } from "../support/harness";
import { freePort } from "../support/processes";
import { ApiError, TelegramDouble } from "../support/telegram-double";
import { ADMIN_PASSWORD, startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

type Event = { type: string; chat_id?: number; message?: { text: string | null } };
type BotView = { id: number; mode: string; is_active: boolean; last_error: string | null; webhook_url: string | null };

const texts = (events: Array<Record<string, unknown>>) => (events as unknown as Event[]).filter((e) => e.type === "new_message").map((e) => e.message!.text);
const asSystem = { meta: { principal: SYSTEM_PRINCIPAL } };

/** A Bot API call from another program holding the bot's token. */
async function callTelegram(root: string, token: string, method: string, params: Record<string, unknown> = {}) {
	const res = await fetch(`${root}/bot${token}/${method}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(params) });
	return (await res.json()) as { ok: boolean; result?: unknown };
}

describe("webhook mode: Telegram's side reconciled, a refused token", () => {
	let t: TelegramGateway;
	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "webhook" });
	});
	afterAll(() => t.stop());

	const reconcile = () => t.gw.broker.call("bots.reconcile", {}, asSystem) as Promise<{ outcomes: Record<number, string> }>;
	const botView = async (id: number) => (await t.api<BotView>("GET", `/bots/${id}`)).body;

	it("a webhook another tool changed is set back by the reconciler, pending updates kept, and last_error says so until all is well", async () => {
		const { token, bot } = await t.addBot();
		expect(await callTelegram(t.telegram.url, token, "setWebhook", { url: "http://127.0.0.1:9/other" })).toMatchObject({ ok: true });
		t.telegram.userSends(token, { chat_id: 2101, text: "while elsewhere" });
		expect((await reconcile()).outcomes[bot.id]).toBe("fixed");
		expect(t.telegram.bot(token).webhook?.url).toBe(bot.webhook_url);
		await t.telegram.waitFor(() => texts(t.events).includes("while elsewhere"), 10_000);
		expect((await botView(bot.id)).last_error).toMatch(/changed outside the gateway \(it pointed to 127\.0\.0\.1:9/);
		expect((await reconcile()).outcomes[bot.id]).toBe("ok");
		expect((await botView(bot.id)).last_error).toBeNull();
	});

	it("the bot's own webhook under the previous PUBLIC_URL (the operator changed it) is set to the new one without blaming another tool", async () => {
		const { token, bot } = await t.addBot();
		const previous = bot.webhook_url!.replace(/^http:\/\/127\.0\.0\.1:\d+/, "http://localhost:9");
		expect(await callTelegram(t.telegram.url, token, "setWebhook", { url: previous })).toMatchObject({ ok: true });
		expect((await reconcile()).outcomes[bot.id]).toBe("fixed");
		expect(t.telegram.bot(token).webhook?.url).toBe(bot.webhook_url);
		expect((await botView(bot.id)).last_error).toBeNull();
	});

	it("allowed_updates missing kinds this build receives (set by an earlier version) and another max_connections are set again", async () => {
		const { token, bot } = await t.addBot();
		const state = t.telegram.bot(token);
		state.allowedUpdates = ALL_UPDATE_KINDS.filter((kind) => kind !== "managed_bot" && kind !== "guest_message");
		state.webhook = { ...state.webhook!, max_connections: 5 };
		const setBefore = t.telegram.calls.setWebhook ?? 0;
		expect((await reconcile()).outcomes[bot.id]).toBe("fixed");
		expect(t.telegram.calls.setWebhook).toBe(setBefore + 1);
		expect(state.allowedUpdates).toEqual([...ALL_UPDATE_KINDS]);
		expect(state.webhook?.max_connections).toBe(40);
		// Nothing differs now: no setWebhook at all.
		expect((await reconcile()).outcomes[bot.id]).toBe("ok");
		expect(t.telegram.calls.setWebhook).toBe(setBefore + 1);
	});

	it("a revoked token: the send says the gateway's credential is refused (503 bot_token_refused), last_error says so, later sends make no Telegram call", async () => {
		const { token, bot } = await t.addBot();
		t.telegram.userSends(token, { chat_id: 2201, text: "before revoke" });
		await t.telegram.waitFor(() => texts(t.events).includes("before revoke"), 10_000);
		const chatId = (t.events as unknown as Event[]).find((e) => e.message?.text === "before revoke")!.chat_id!;
		t.telegram.revokeToken(token);

		const first = await t.api<{ error: { code: string; details: Record<string, unknown> } }>("POST", `/chats/${chatId}/messages`, { text: "one" });
		expect(first.status).toBe(503);
		expect(first.body.error).toMatchObject({ code: "UNAVAILABLE", details: { bot_token_refused: true, may_have_been_delivered: false, telegram_error_code: 401 } });
		expect((await botView(bot.id)).last_error).toBe(TOKEN_REFUSED);

		const calls = t.telegram.calls.sendMessage ?? 0;
		for (const text of ["two", "three"]) {
			const again = await t.api<{ error: { code: string; details: Record<string, unknown> } }>("POST", `/chats/${chatId}/messages`, { text });
			expect([again.status, again.body.error.code, again.body.error.details.bot_token_refused]).toEqual([503, "UNAVAILABLE", true]);
		}
		expect(t.telegram.calls.sendMessage ?? 0).toBe(calls);

		// The reconciler records the refusal and does not ask again every round (the other bots' calls aside).
		const infoCalls = () => t.telegram.calls.getWebhookInfo ?? 0;
		let before = infoCalls();
		expect((await reconcile()).outcomes[bot.id]).toBe("token_refused");
		const firstRound = infoCalls() - before;
		before = infoCalls();
		expect((await reconcile()).outcomes[bot.id]).toBe("skipped");
		expect(infoCalls() - before).toBe(firstRound - 1);
		expect((await botView(bot.id)).last_error).toBe(TOKEN_REFUSED);
	});

	it("an Idempotency-Key retry of a sent message gets it back after its token is refused and after its bot is deleted (not a refusal that reads as not sent)", async () => {
		const { token, bot } = await t.addBot();
		t.telegram.userSends(token, { chat_id: 2231, text: "before the retries" });
		await t.telegram.waitFor(() => texts(t.events).includes("before the retries"), 10_000);
		const chatId = (t.events as unknown as Event[]).find((e) => e.message?.text === "before the retries")!.chat_id!;
		type Sent = { id: number; status: string; error?: { code: string } };
		const send = (key: string, text: string) => t.api<Sent>("POST", `/chats/${chatId}/messages`, { text }, t.adminToken, { "idempotency-key": key });
		const first = await send("retry-after-revoke", "sent once");
		expect([first.status, first.body.status]).toEqual([201, "sent"]);

		t.telegram.revokeToken(token);
		expect((await send("new-after-revoke", "refused")).status).toBe(503);
		const afterRevoke = await send("retry-after-revoke", "sent once");
		expect([afterRevoke.status, afterRevoke.body.id, afterRevoke.body.status]).toEqual([201, first.body.id, "sent"]);

		expect((await t.api("DELETE", `/bots/${bot.id}`)).status).toBe(204);
		expect((await send("new-after-delete", "refused")).status).toBe(409);
		const afterDelete = await send("retry-after-revoke", "sent once");
		expect([afterDelete.status, afterDelete.body.id, afterDelete.body.status]).toEqual([201, first.body.id, "sent"]);
		expect(t.telegram.sent.filter((r) => r.text === "sent once")).toHaveLength(1);
	});

	it("one bot's refused sends are its own: dozens of 503s for a revoked token do not refuse another bot's sends (the circuit breaker counts endpoint failures only)", async () => {
		const chatOf = async (token: string, telegramChat: number, text: string) => {
			t.telegram.userSends(token, { chat_id: telegramChat, text });
			await t.telegram.waitFor(() => texts(t.events).includes(text), 10_000);
			return (t.events as unknown as Event[]).find((e) => e.message?.text === text)!.chat_id!;
		};
		const broken = await t.addBot();
		const healthy = await t.addBot();
		const brokenChat = await chatOf(broken.token, 2251, "broken bot's chat");
		const healthyChat = await chatOf(healthy.token, 2252, "healthy bot's chat");
		t.telegram.revokeToken(broken.token);
		// Past the breaker's minimum of 20 calls in its window, every one a failure.
		for (let i = 0; i < 30; i++) {
			expect((await t.api("POST", `/chats/${brokenChat}/messages`, { text: `refused ${i}` })).status).toBe(503);
		}
		const other = await t.api<{ status: string }>("POST", `/chats/${healthyChat}/messages`, { text: "still sent" });
		expect(other.status).toBe(201);
		expect(other.body.status).toBe("sent");
	});

	it("PATCH /bots/:id {token} installs the new token of the same bot: webhook set again, last_error cleared, sends go with it, subscriptions kept", async () => {
		const { token, bot } = await t.addBot();
		const webhook = await t.api<{ id: number }>("POST", "/webhooks", { url: "http://127.0.0.1:9/hook", scope: "bot", bot_id: bot.id });
		expect(webhook.status).toBe(201);
		t.telegram.userSends(token, { chat_id: 2301, text: "hello" });
		await t.telegram.waitFor(() => texts(t.events).includes("hello"), 10_000);
		const chatId = (t.events as unknown as Event[]).find((e) => e.message?.text === "hello")!.chat_id!;
		const fresh = t.telegram.revokeToken(token);
		expect((await t.api("POST", `/chats/${chatId}/messages`, { text: "refused" })).status).toBe(503);

		const other = t.telegram.addBot();
		const wrong = await t.api<{ error: { code: string } }>("PATCH", `/bots/${bot.id}`, { token: other });
		expect([wrong.status, wrong.body.error.code]).toEqual([400, "VALIDATION_ERROR"]);

		const setBefore = t.telegram.calls.setWebhook ?? 0;
		const patched = await t.api<BotView>("PATCH", `/bots/${bot.id}`, { token: fresh });
		expect(patched.status).toBe(200);
		expect(patched.body).toMatchObject({ id: bot.id, is_active: true, mode: "webhook", last_error: null });
		expect(t.telegram.calls.setWebhook).toBe(setBefore + 1);
		const sent = await t.api<{ status: string }>("POST", `/chats/${chatId}/messages`, { text: "with the new token" });
		expect([sent.status, sent.body.status]).toEqual([201, "sent"]);
		expect(t.telegram.sent.find((r) => r.text === "with the new token")?.token).toBe(fresh);
		t.telegram.userSends(fresh, { chat_id: 2301, text: "after the new token" });
		await t.telegram.waitFor(() => texts(t.events).includes("after the new token"), 10_000);
		expect((await t.api<{ is_active: boolean }>("GET", `/webhooks/${webhook.body.id}`)).body.is_active).toBe(true);
	});

	it("registering a deleted bot again turns its bot-scoped webhooks back on", async () => {
		const { token, bot } = await t.addBot();
		const webhook = await t.api<{ id: number }>("POST", "/webhooks", { url: "http://127.0.0.1:9/hook", scope: "bot", bot_id: bot.id });
		expect((await t.api("DELETE", `/bots/${bot.id}`)).status).toBe(204);
		expect((await t.api<{ is_active: boolean; disabled_reason: string }>("GET", `/webhooks/${webhook.body.id}`)).body).toMatchObject({ is_active: false, disabled_reason: "bot deleted" });
		expect((await t.api("POST", "/bots", { token })).status).toBe(201);
		expect((await t.api<{ is_active: boolean; disabled_reason: string | null }>("GET", `/webhooks/${webhook.body.id}`)).body).toMatchObject({ is_active: true, disabled_reason: null });
	});

	it("the webhooks a returning bot switches on again count against their owner's WEBHOOKS_PER_USER_MAX: those over it stay off, saying why", async () => {
		const { token, bot } = await t.addBot();
		const owner = await createUser(t.gw, t.adminToken, ["operator"]);
		const made: number[] = [];
		for (let i = 0; i < 3; i++) {
			const res = await t.api<{ id: number }>("POST", "/webhooks", { url: `http://127.0.0.1:9/hook-${i}`, scope: "bot", bot_id: bot.id }, owner.token);
			expect(res.status).toBe(201);
			made.push(res.body.id);
		}
		expect((await t.api("DELETE", `/bots/${bot.id}`)).status).toBe(204);
		// Made while the bot was away: the owner holds one active webhook.
		expect((await t.api("POST", "/webhooks", { url: "http://127.0.0.1:9/meanwhile", scope: "all" }, owner.token)).status).toBe(201);
		// With a cap of 2, the oldest of the three comes back; the other two stay off.
		expect(await reviveBotWebhooks(t.gw.runtime.db, bot.id, 2)).toBe(1);
		const states = await Promise.all(made.map(async (id) => (await t.api<{ is_active: boolean; disabled_reason: string | null }>("GET", `/webhooks/${id}`)).body));
		expect(states).toEqual([
			expect.objectContaining({ is_active: true, disabled_reason: null }),
			expect.objectContaining({ is_active: false, disabled_reason: OVER_LIMIT_AT_RETURN_REASON }),
			expect.objectContaining({ is_active: false, disabled_reason: OVER_LIMIT_AT_RETURN_REASON }),
		]);
		// Registering it again (the gateway's own cap, 100) changes nothing more: those two are no longer "bot deleted".
		expect((await t.api("POST", "/bots", { token })).status).toBe(201);
		expect((await t.api<{ is_active: boolean }>("GET", `/webhooks/${made[1]}`)).body.is_active).toBe(false);
	});

	it("registering a deleted bot again keeps the name and description it was given, unless new ones are", async () => {
		const { token, bot } = await t.addBot();
		type Named = { display_name: string; description: string | null };
		expect((await t.api("PATCH", `/bots/${bot.id}`, { display_name: "Support desk", description: "Answers customers" })).status).toBe(200);
		expect((await t.api("DELETE", `/bots/${bot.id}`)).status).toBe(204);
		const again = await t.api<Named>("POST", "/bots", { token });
		expect([again.status, again.body.display_name, again.body.description]).toEqual([201, "Support desk", "Answers customers"]);
		expect((await t.api("DELETE", `/bots/${bot.id}`)).status).toBe(204);
		const renamed = await t.api<Named>("POST", "/bots", { token, display_name: "Sales desk" });
		expect([renamed.status, renamed.body.display_name, renamed.body.description]).toEqual([201, "Sales desk", "Answers customers"]);
	});
});

describe("polling mode: what a 409 means, and last_error once polling works", () => {
	let t: TelegramGateway;
	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "polling" });
	});
	afterAll(() => t.stop());

	const lastError = async (id: number) => (await t.api<BotView>("GET", `/bots/${id}`)).body.last_error;

	it("a webhook set by another tool: last_error names it; once it is gone, polling resumes and last_error is cleared", async () => {
		const { token, bot } = await t.addBot();
		await t.telegram.waitFor(() => t.telegram.bot(token).poller !== null, 5_000);
		await callTelegram(t.telegram.url, token, "setWebhook", { url: "http://127.0.0.1:9/other" });
		await t.telegram.waitFor(async () => /webhook to 127\.0\.0\.1:9 was set for the bot outside the gateway/.test((await lastError(bot.id)) ?? ""), 10_000);
		// The reconciler removes it (the bot is the gateway's to poll); the poller's next try works.
		const round = (await t.gw.broker.call("bots.reconcile", {}, asSystem)) as { outcomes: Record<number, string> };
		expect(round.outcomes[bot.id]).toBe("fixed");
		expect(t.telegram.bot(token).webhook).toBeNull();
		(t.gw.broker.getLocalService("ingest") as unknown as { leases: { abort(key: string): void } }).leases.abort(`poller:bot:${bot.id}`);
		t.telegram.userSends(token, { chat_id: 3101, text: "polled again" });
		await t.telegram.waitFor(() => texts(t.events).includes("polled again"), 15_000);
		await t.telegram.waitFor(async () => (await lastError(bot.id)) === null, 5_000);
	});

	it("another getUpdates consumer (its newer request ends ours with 409): last_error names it", async () => {
		const { token, bot } = await t.addBot();
		await t.telegram.waitFor(() => t.telegram.bot(token).poller !== null, 5_000);
		void callTelegram(t.telegram.url, token, "getUpdates", { timeout: 2 });
		await t.telegram.waitFor(async () => /another program polls with the bot's token/.test((await lastError(bot.id)) ?? ""), 10_000);
	});

	it("a refused token in getUpdates is recorded, and cleared by the first getUpdates that works", async () => {
		const { token, bot } = await t.addBot();
		await t.telegram.waitFor(() => t.telegram.bot(token).poller !== null, 5_000);
		t.telegram.bot(token).poller!.cancel(new ApiError(401, "Unauthorized"));
		await t.telegram.waitFor(async () => (await lastError(bot.id)) === TOKEN_REFUSED, 5_000);
		// Its minute's pause cut short: the lease handed on, the poller starts again.
		(t.gw.broker.getLocalService("ingest") as unknown as { leases: { abort(key: string): void } }).leases.abort(`poller:bot:${bot.id}`);
		t.telegram.userSends(token, { chat_id: 4101, text: "ok again" });
		await t.telegram.waitFor(() => texts(t.events).includes("ok again"), 15_000);
		await t.telegram.waitFor(async () => (await lastError(bot.id)) === null, 5_000);
	});
});

describe("PUBLIC_URL removed, then set again, across restarts", () => {
	it("at start the reconciler switches the bot to polling (pending updates kept), and back to webhook mode", async () => {
		const telegram = new TelegramDouble({ redeliveryDelayMs: 50 });
		await telegram.start();
		const dataDir = tempDir();
		const start = async (withPublicUrl: boolean) => {
			const port = await freePort();
			const events: Array<Record<string, unknown>> = [];
			const gw: TestGateway = await startTestGateway({
				services: [{ name: "spy", events: { "gateway.events"(ctx: { params: { events: Array<Record<string, unknown>> } }) { events.push(...ctx.params.events); } } }],
				env: {
					ADMIN_PASSWORD,
					DATA_DIR: dataDir,
					TELEGRAM_API_ROOT: telegram.url,
					PORT: String(port),
					RATE_LIMIT_DEFAULT: "100000",
					...(withPublicUrl ? { PUBLIC_URL: `http://127.0.0.1:${port}` } : {}),
				},
			});
			const login = await gw.broker.call<{ access_token: string }, Record<string, string>>("auth.login", { username: "admin", password: ADMIN_PASSWORD }, { meta: { clientIp: "10.9.9.9" } });
			const api = <T>(method: string, path: string, body?: unknown) => http<T>(gw.baseUrl, method, `/api/v1${path}`, { body, headers: { authorization: `Bearer ${login.access_token}` } });
			return { gw, events, api };
		};
		try {
			let g = await start(true);
			const token = telegram.addBot();
			const registered = await g.api<BotView>("POST", "/bots", { token });
			expect(registered.body.mode).toBe("webhook");
			await g.gw.stop();
			telegram.userSends(token, { chat_id: 5101, text: "while down" });

			g = await start(false);
			telegram.userSends(token, { chat_id: 5101, text: "after PUBLIC_URL went" });
			await telegram.waitFor(() => texts(g.events).includes("while down") && texts(g.events).includes("after PUBLIC_URL went"), 15_000);
			expect(telegram.bot(token).webhook).toBeNull();
			expect((await g.api<BotView>("GET", `/bots/${registered.body.id}`)).body).toMatchObject({ mode: "polling", webhook_url: null });
			await g.gw.stop();

			g = await start(true);
			await telegram.waitFor(async () => (await g.api<BotView>("GET", `/bots/${registered.body.id}`)).body.mode === "webhook", 10_000);
			telegram.userSends(token, { chat_id: 5101, text: "pushed again" });
			await telegram.waitFor(() => texts(g.events).includes("pushed again"), 10_000);
			expect(telegram.bot(token).webhook?.url).toBe((await g.api<BotView>("GET", `/bots/${registered.body.id}`)).body.webhook_url);
			await g.gw.stop();
		} finally {
			await telegram.stop();
		}
	});
});
