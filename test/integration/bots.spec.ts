import { QueryTypes } from "sequelize";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

type BotView = { id: number; username: string; telegram_id: number; mode: string; webhook_url: string | null; is_active: boolean; display_name: string };

describe("bots: registration in webhook mode", () => {
	let t: TelegramGateway;
	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "webhook" });
	});
	afterAll(() => t.stop());

	const botRows = async () => Number((await t.gw.runtime.db.sequelize.query<{ n: number }>("SELECT COUNT(*) AS n FROM bots", { type: QueryTypes.SELECT }))[0]!.n);

	it("checks the token with getMe, sets the webhook with a secret and every update kind, and never returns the token", async () => {
		const token = t.telegram.addBot({ username: "shop_bot", first_name: "Shop" });
		const res = await t.api<BotView>("POST", "/bots", { token, description: "orders" });
		expect(res.status).toBe(201);
		expect(res.headers.get("location")).toBe(`/api/v1/bots/${res.body.id}`);
		expect(res.body).toMatchObject({ username: "shop_bot", display_name: "Shop", mode: "webhook", is_active: true });
		expect(res.body.webhook_url).toMatch(new RegExp(`^${t.baseUrl}/api/v1/telegram/webhook/[0-9a-f]{64}$`));
		expect(res.text).not.toContain(token);
		expect(res.text).not.toContain(token.split(":")[1]);

		const webhook = t.telegram.bot(token).webhook!;
		expect(webhook.url).toBe(res.body.webhook_url);
		expect(webhook.secret_token).toMatch(/^[0-9a-f]{64}$/);
		expect(t.telegram.bot(token).allowedUpdates).toEqual(expect.arrayContaining(["chat_member", "message_reaction", "message_reaction_count", "callback_query", "guest_message", "managed_bot"]));

		// At rest: sealed, not the token.
		const row = await t.gw.runtime.db.models.Bot.findByPk(res.body.id, { raw: true });
		expect(row!.token_ciphertext).not.toContain(token.split(":")[1]);
		expect(JSON.stringify(row)).not.toContain(webhook.secret_token);
		expect((await t.api("GET", `/bots/${res.body.id}`)).text).not.toContain(token.split(":")[1]);
	});

	it("refuses a malformed token with 400 naming the field, without asking Telegram", async () => {
		const before = await botRows();
		const calls = t.telegram.calls.getme ?? t.telegram.calls.getMe ?? 0;
		const res = await t.api("POST", "/bots", { token: "not-a-token" });
		expect(res.status).toBe(400);
		expect(res.body).toMatchObject({ error: { code: "VALIDATION_ERROR", details: { fields: [expect.objectContaining({ field: "token" })] } } });
		expect(t.telegram.calls.getme ?? t.telegram.calls.getMe ?? 0).toBe(calls);
		expect(await botRows()).toBe(before);
	});

	it("refuses a token Telegram rejects with a 400 that says so", async () => {
		const before = await botRows();
		const res = await t.api("POST", "/bots", { token: "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghi" });
		expect(res.status).toBe(400);
		expect(res.body).toMatchObject({ error: { code: "VALIDATION_ERROR", details: { fields: [{ field: "token", message: expect.stringMatching(/Telegram rejected this token/) }] } } });
		expect(await botRows()).toBe(before);
	});

	it("a bot registered twice is a 409, and nothing changes", async () => {
		const { token, bot } = await t.addBot();
		const res = await t.api("POST", "/bots", { token });
		expect(res.status).toBe(409);
		expect(res.body).toMatchObject({ error: { code: "CONFLICT", message: expect.stringContaining(`bot ${bot.id}`) } });
	});

	it("a 429 from Telegram (getMe or setWebhook) is 503 with Retry-After from its retry_after, not a rejected token, and no bot is kept", async () => {
		for (const method of ["getMe", "setWebhook"]) {
			const token = t.telegram.addBot();
			t.telegram.failNext(method, { status: 429, retry_after: 7 });
			const before = await botRows();
			const res = await t.api("POST", "/bots", { token });
			expect({ method, status: res.status, retryAfter: res.headers.get("retry-after") }).toEqual({ method, status: 503, retryAfter: "7" });
			expect(res.body).toMatchObject({ error: { code: "UNAVAILABLE", details: { retry_after: 7 } } });
			expect(await botRows()).toBe(before);
		}
	});

	it("when Telegram refuses the webhook, the bot is not kept", async () => {
		const token = t.telegram.addBot();
		t.telegram.failNext("setWebhook", { status: 500 });
		const before = await botRows();
		const res = await t.api("POST", "/bots", { token });
		expect(res.status).toBe(503);
		expect(res.body).toMatchObject({ error: { code: "UNAVAILABLE" } });
		expect(await botRows()).toBe(before);
	});

	it("until Telegram has taken the webhook the bot is not registered: it is stored inactive, and a second POST meanwhile is 409", async () => {
		const token = t.telegram.addBot({ username: "slow_hook_bot" });
		const hooks = t.telegram.calls.setWebhook ?? 0;
		t.telegram.failNext("setWebhook", { delayMs: 1_500 });
		const first = t.api<BotView>("POST", "/bots", { token });
		for (const deadline = Date.now() + 5_000; (t.telegram.calls.setWebhook ?? 0) === hooks; ) {
			if (Date.now() > deadline) throw new Error("setWebhook never came");
			await new Promise((r) => setTimeout(r, 20));
		}
		const pending = await t.gw.runtime.db.models.Bot.findOne({ where: { username: "slow_hook_bot" }, raw: true });
		expect(Boolean(pending!.is_active)).toBe(false);
		const second = await t.api("POST", "/bots", { token });
		expect(second.status).toBe(409);
		const res = await first;
		expect(res.status).toBe(201);
		expect(res.body).toMatchObject({ id: pending!.id, is_active: true });
		expect(t.telegram.bot(token).webhook!.url).toBe(res.body.webhook_url);
	});

	it("lists, reads and renames bots; needs bots:read / bots:write", async () => {
		const { bot } = await t.addBot();
		const list = await t.api<{ data: BotView[]; next_cursor: string | null }>("GET", "/bots?limit=1");
		expect(list.status).toBe(200);
		expect(list.body.data).toHaveLength(1);
		expect(list.body.next_cursor).not.toBeNull();
		const patched = await t.api<BotView>("PATCH", `/bots/${bot.id}`, { display_name: "Renamed" });
		expect(patched.body.display_name).toBe("Renamed");
		expect((await t.api("GET", "/bots/99999")).status).toBe(404);
		const viewer = await t.api<{ id: number }>("POST", "/users", { username: "botviewer", password: "viewer-password", roles: ["viewer"] });
		const login = await t.gw.broker.call<{ access_token: string }, Record<string, string>>(
			"auth.login",
			{ username: "botviewer", password: "viewer-password" },
			{ meta: { clientIp: "10.8.8.8" } },
		);
		expect(viewer.status).toBe(201);
		expect((await t.api("GET", "/bots", undefined, login.access_token)).status).toBe(403);
	});

	it("DELETE deactivates: Telegram's webhook is removed, pushes get 404, history stays; registering again reactivates the same bot", async () => {
		const { token, bot } = await t.addBot();
		const path = bot.webhook_url!.split("/").pop()!;
		const secret = t.telegram.bot(token).webhook!.secret_token!;
		t.telegram.userSends(token, { chat_id: 4242, text: "before delete" });
		await t.telegram.waitFor(() => t.telegram.pendingUpdates(token).length === 0, 5_000);

		expect((await t.api("DELETE", `/bots/${bot.id}`)).status).toBe(204);
		expect(t.telegram.bot(token).webhook).toBeNull();
		const push = await fetch(`${t.baseUrl}/api/v1/telegram/webhook/${path}`, {
			method: "POST",
			headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": secret },
			body: JSON.stringify({ update_id: 1, message: { message_id: 1, date: 1, chat: { id: 1, type: "private" }, text: "x" } }),
		});
		expect(push.status).toBe(404);
		// Deleted: no webhook at Telegram, and none shown.
		expect((await t.api<BotView>("GET", `/bots/${bot.id}`)).body).toMatchObject({ is_active: false, webhook_url: null });
		const chats = await t.api<{ data: Array<{ id: number }> }>("GET", `/chats?bot_id=${bot.id}`);
		expect(chats.body.data).toHaveLength(1);

		const again = await t.api<BotView>("POST", "/bots", { token });
		expect(again.status).toBe(201);
		expect(again.body.id).toBe(bot.id);
		expect(again.body.webhook_url).not.toBe(bot.webhook_url); // a fresh path and secret
		expect((await t.api<{ data: unknown[] }>("GET", `/chats?bot_id=${bot.id}`)).body.data).toHaveLength(1);
	});
});

describe("bots: polling mode (no PUBLIC_URL)", () => {
	let t: TelegramGateway;
	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "polling" });
	});
	afterAll(() => t.stop());

	it("registers without a webhook (removing one left behind) and polls", async () => {
		const token = t.telegram.addBot();
		await fetch(`${t.telegram.url}/bot${token}/setWebhook`, {
			method: "POST",
			headers: { "content-type": "application/json" },
			body: JSON.stringify({ url: "http://127.0.0.1:9/elsewhere" }),
		});
		const res = await t.api<BotView>("POST", "/bots", { token });
		expect(res.status).toBe(201);
		expect(res.body).toMatchObject({ mode: "polling", webhook_url: null });
		expect(t.telegram.bot(token).webhook).toBeNull();
		t.telegram.userSends(token, { chat_id: 77, text: "polled" });
		await t.telegram.waitFor(() => t.events.some((e) => (e.message as { text?: string } | undefined)?.text === "polled"), 10_000);
	});
});
