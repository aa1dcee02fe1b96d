/**
 * What one tenant may take of the webhook machinery, so it cannot crowd the others out: active
 * webhooks per user (WEBHOOKS_PER_USER_MAX, an API key's counting against its user; 409 beyond it,
 * racing creates included), its share of a delivery node's attempts in flight (64 per owning user,
 * whatever its endpoints' caps), and test pings and replays running at once per caller (429 with
 * Retry-After while another tenant's calls go through).
 */
import { createKey, createUser, expectApiError, type TestUser } from "../support/auth";
import { eventually, Gate, heldAt, WEBHOOK_TEST_ENV, WebhookScene, type Receiver } from "../support/receivers";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";
import { OWNER_SHARE_PER_NODE } from "../../services/delivery/node-share";

const LIMIT = 6;

describe("webhook limits per tenant", () => {
	let t: TelegramGateway;
	const scene = new WebhookScene(7300);

	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "webhook", env: { ...WEBHOOK_TEST_ENV, WEBHOOKS_PER_USER_MAX: String(LIMIT) } });
		const added = await t.addBot({ username: "webhook_limits_bot" });
		Object.assign(scene, { t, bot: { id: added.bot.id, token: added.token } });
	}, 60_000);
	afterEach(() => scene.reset());
	afterAll(() => t.stop());

	const operator = () => createUser(t.gw, t.adminToken, ["operator"]);
	const grantRead = async (chatId: number, user: TestUser) => {
		const res = await t.api("PUT", `/chats/${chatId}/permissions`, { user_id: user.id, can_read: true });
		expect(res.status).toBeLessThan(300);
	};
	const create = (token: string, url: string, extra: Record<string, unknown> = {}) => t.api("POST", "/webhooks", { url, scope: "all", ...extra }, token);
	const webhooksOf = (userId: number) => t.gw.runtime.db.models.Webhook.count({ where: { owner_user_id: userId } });

	it("WEBHOOKS_PER_USER_MAX: an API key's webhooks count against its user; past the cap 409 naming the limit, nothing stored", async () => {
		const r = await scene.receiver();
		const user = await operator();
		const key = await createKey(t.baseUrl, user.token, { scopes: ["webhooks:read", "webhooks:write", "messages:read"] });
		for (let i = 0; i < LIMIT - 2; i++) expect((await create(user.token, r.url)).status).toBe(201);
		for (let i = 0; i < 2; i++) expect((await create(key.key, r.url)).status).toBe(201);

		for (const credential of [user.token, key.key]) {
			const refused = await create(credential, r.url);
			const error = expectApiError(refused, 409, "CONFLICT");
			expect(error.details).toEqual({ field: "webhooks", limit: LIMIT });
			expect(error.message).toMatch(/WEBHOOKS_PER_USER_MAX/);
		}
		expect(await webhooksOf(user.id)).toBe(LIMIT - 2);
		expect(await t.gw.runtime.db.models.Webhook.count({ where: { owner_api_key_id: key.id } })).toBe(2);

		// Another user is not affected.
		expect((await create((await operator()).token, r.url)).status).toBe(201);
	});

	it("WEBHOOKS_PER_USER_MAX: only active webhooks count, and switching one on again counts as creating it", async () => {
		const r = await scene.receiver();
		const user = await operator();
		const ids: number[] = [];
		for (let i = 0; i < LIMIT; i++) ids.push(Number((await create(user.token, r.url)).body.id));
		expect((await t.api("PATCH", `/webhooks/${ids[0]}`, { is_active: false }, user.token)).status).toBe(200);
		expect((await create(user.token, r.url)).status).toBe(201);

		const reenabled = await t.api("PATCH", `/webhooks/${ids[0]}`, { is_active: true }, user.token);
		expect(expectApiError(reenabled, 409, "CONFLICT").details).toEqual({ field: "is_active", limit: LIMIT });
		const replaced = await t.api("PUT", `/webhooks/${ids[0]}`, { url: r.url, scope: "all", is_active: true }, user.token);
		expectApiError(replaced, 409, "CONFLICT");
		expect((await t.api<{ is_active: boolean }>("GET", `/webhooks/${ids[0]}`, undefined, user.token)).body.is_active).toBe(false);
		// Changing an active one is not creating one.
		expect((await t.api("PATCH", `/webhooks/${ids[1]}`, { max_concurrency: 2 }, user.token)).status).toBe(200);
	});

	it("WEBHOOKS_PER_USER_MAX holds for creates racing each other", async () => {
		const r = await scene.receiver();
		const user = await operator();
		const statuses = await Promise.all(Array.from({ length: LIMIT * 3 }, () => create(user.token, r.url).then((res) => res.status)));
		expect(statuses.filter((s) => s === 201)).toHaveLength(LIMIT);
		expect(statuses.filter((s) => s === 409)).toHaveLength(LIMIT * 2);
		expect(await webhooksOf(user.id)).toBe(LIMIT);
	});

	it("one owner's slow endpoints take at most its share of the node; another tenant's deliveries still go out meanwhile", async () => {
		const gate = new Gate();
		const held: Receiver[] = [];
		let mostHeldAtOnce = 0;
		const holding = heldAt(gate);
		for (let i = 0; i < 5; i++) {
			held.push(
				await scene.receiver((request, index) => {
					mostHeldAtOnce = Math.max(mostHeldAtOnce, held.reduce((sum, r) => sum + r.inFlight, 0));
					return holding(request, index);
				}),
			);
		}
		const fast = await scene.receiver();
		const busy = await scene.newChat();
		const quiet = await scene.newChat();
		const [a, b] = [await operator(), await operator()];
		await grantRead(busy.chatId, a);
		await grantRead(quiet.chatId, b);
		try {
			for (const r of held) expect((await create(a.token, r.url, { scope: "chat", chat_ids: [busy.chatId], max_concurrency: 64 })).status).toBe(201);
			expect((await create(b.token, fast.url, { scope: "chat", chat_ids: [quiet.chatId] })).status).toBe(201);
			// 5 endpoints x 64 = 320 attempts wanted at once, more than a node's 256.
			scene.say(busy.telegramId, ...Array.from({ length: 70 }, (_, i) => `busy ${i}`));
			await eventually(() => held.reduce((sum, r) => sum + r.inFlight, 0) >= OWNER_SHARE_PER_NODE, 8_000, "the owner's share held at its endpoints");

			scene.say(quiet.telegramId, "through");
			await fast.waitFor((requests) => requests.some((q) => q.body?.message?.text === "through"), 8_000, "the other tenant's delivery");
			expect(held.every((r) => r.requests.every((q) => q.answered === null))).toBe(true);
			expect(mostHeldAtOnce).toBe(OWNER_SHARE_PER_NODE);
		} finally {
			gate.open();
		}
	}, 60_000);

	it("test pings: two per caller at once, then 429 with Retry-After; another tenant's go through", async () => {
		const gate = new Gate();
		const slow = await scene.receiver(heldAt(gate));
		const fast = await scene.receiver();
		const [a, b] = [await operator(), await operator()];
		const hookA = (await create(a.token, slow.url)).body.id;
		const hookB = (await create(b.token, fast.url)).body.id;
		try {
			const running = [0, 1].map(() => t.api("POST", `/webhooks/${hookA}/test`, undefined, a.token));
			await slow.waitForCount(2);
			const refused = await t.api("POST", `/webhooks/${hookA}/test`, undefined, a.token);
			expectApiError(refused, 429, "RATE_LIMITED");
			expect(refused.headers.get("retry-after")).toBe("1");
			expect((await t.api<{ ok: boolean }>("POST", `/webhooks/${hookB}/test`, undefined, b.token)).body.ok).toBe(true);
			gate.open();
			expect((await Promise.all(running)).map((res) => res.status)).toEqual([200, 200]);
			// Finished calls give their slots back.
			expect((await t.api("POST", `/webhooks/${hookA}/test`, undefined, a.token)).status).toBe(200);
		} finally {
			gate.open();
		}
	});

	it("replays: one per caller at once (an API key's calls count as its user's), then 429 with Retry-After; another tenant's go through", async () => {
		const r = await scene.receiver();
		const [a, b] = [await operator(), await operator()];
		const key = await createKey(t.baseUrl, a.token, { scopes: ["webhooks:read", "webhooks:write", "messages:read"] });
		const hookA = (await create(a.token, r.url)).body.id;
		const hookKey = (await create(key.key, r.url)).body.id;
		const hookB = (await create(b.token, r.url)).body.id;
		// A replay of a's holds its slot (the lease a running replay takes, taken here as a long one would).
		const { state } = t.gw.runtime;
		expect(await state.acquireLease(`webhook-replay:user:${a.id}:0`, "a running replay", 30_000)).toBe(true);
		try {
			for (const [hook, credential] of [[hookA, a.token], [hookKey, key.key]] as const) {
				const refused = await t.api("POST", `/webhooks/${hook}/replay`, { since_seq: 0 }, credential);
				expectApiError(refused, 429, "RATE_LIMITED");
				expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
			}
			expect((await t.api("POST", `/webhooks/${hookB}/replay`, { since_seq: 0 }, b.token)).status).toBe(202);
		} finally {
			await state.releaseLease(`webhook-replay:user:${a.id}:0`, "a running replay");
		}
		expect((await t.api("POST", `/webhooks/${hookA}/replay`, { since_seq: 0 }, a.token)).status).toBe(202);
	});
});
