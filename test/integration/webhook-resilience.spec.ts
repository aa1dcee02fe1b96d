/**
 * Webhook delivery under failure: dead after 6 attempts and retried by hand, the per-endpoint circuit
 * breaker (opens after 5 consecutive failures, holds deliveries without dropping them, one probe after
 * the open period), one failing or hanging endpoint never delaying a healthy one, the per-endpoint
 * concurrency cap, and in-order delivery per chat. The schedule and the breaker are moved forward as
 * an operator's clock would (fastForward, expireBreaker), never slept through.
 */
import {
	always,
	createWebhook,
	deliveriesOf,
	eventually,
	expireBreaker,
	fastForward,
	Gate,
	hang,
	heldAt,
	ok,
	waitForDeliveries,
	WEBHOOK_TEST_ENV,
	type Behaviour,
	type DeliveryRecord,
	type Receiver,
	type WebhookBody,
	WebhookScene,
} from "../support/receivers";
import { createUser } from "../support/auth";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("webhook delivery under failure", () => {
	let t: TelegramGateway;
	let bot: { id: number; token: string };
	const scene = new WebhookScene(6100);

	const breakerOf = async (id: number) => (await t.api<WebhookBody>("GET", `/webhooks/${id}`)).body.breaker!;
	const succeededTexts = (r: Receiver) => r.requests.filter((q) => q.answered !== null && q.answered < 300).map((q) => q.body?.message?.text);

	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "webhook", env: WEBHOOK_TEST_ENV });
		const added = await t.addBot({ username: "resilience_bot" });
		bot = { id: added.bot.id, token: added.token };
		Object.assign(scene, { t, bot });
	}, 60_000);
	afterEach(() => scene.reset());
	afterAll(() => t.stop());

	it("dead after the 6th failed attempt, listed under ?status=dead; POST .../retry (202) delivers it", async () => {
		const r = await scene.receiver(always(500, "still broken"));
		const { chatId, telegramId } = await scene.newChat();
		const hook = await createWebhook(t, { url: r.url, scope: "chat", chat_ids: [chatId] });
		scene.say(telegramId, "doomed");
		for (let n = 1; n <= 6; n++) {
			const log = await waitForDeliveries(t, hook.id, (l) => l[0]?.attempts === n && ["failed", "dead"].includes(l[0].status), 10_000, `attempt ${n} recorded`);
			if (n === 6) break;
			expect(log[0]!.status).toBe("failed");
			expect(log[0]!.next_attempt_at).not.toBeNull();
			if (n === 5) expect((await breakerOf(hook.id)).state).toBe("open");
			await fastForward(t, hook.id);
			if ((await breakerOf(hook.id)).state === "open") await expireBreaker(t, hook.id);
		}
		const [dead] = await deliveriesOf(t, hook.id, "status=dead");
		expect(dead).toMatchObject({ status: "dead", attempts: 6, next_attempt_at: null, last_status_code: 500, delivered_at: null });
		expect(dead!.log.map((a) => a.attempt)).toEqual([1, 2, 3, 4, 5, 6]);
		expect(dead!.log.every((a) => a.status_code === 500 && a.error === "HTTP 500" && a.response_excerpt === "still broken")).toBe(true);
		expect(await deliveriesOf(t, hook.id, "status=succeeded")).toEqual([]);
		expect(r.requests).toHaveLength(6);
		// Dead means no more attempts, even with time moved on.
		await fastForward(t, hook.id);
		await expireBreaker(t, hook.id);
		await sleep(1_000);
		expect(r.requests).toHaveLength(6);

		r.behaviour = ok();
		const retried = await t.api<DeliveryRecord>("POST", `/webhooks/${hook.id}/deliveries/${dead!.id}/retry`);
		expect(retried.status).toBe(202);
		expect(retried.body).toMatchObject({ id: dead!.id, status: "pending" });
		// With its log so far, as GET .../deliveries shows it.
		expect((retried.body as unknown as { log: unknown[] }).log).toHaveLength(6);
		// The breaker reopened on the 6th failure; an operator's clock moves past it.
		if ((await breakerOf(hook.id)).state === "open") await expireBreaker(t, hook.id);
		const done = await waitForDeliveries(t, hook.id, (l) => l[0]?.status === "succeeded", 10_000, "the retried delivery succeeded");
		expect(done[0]!.log.map((a) => a.status_code)).toEqual([500, 500, 500, 500, 500, 500, 200]);
		// The log keeps counting across the retry by hand.
		expect(done[0]!.log.map((a) => a.attempt)).toEqual([1, 2, 3, 4, 5, 6, 7]);
		expect(done[0]!.attempts).toBe(7);
		expect(r.requests).toHaveLength(7);
		expect(new Set(r.requests.map((q) => q.headers["webhook-id"])).size).toBe(1);
		expect((await breakerOf(hook.id)).state).toBe("closed");
		expect((await t.api("POST", `/webhooks/${hook.id}/deliveries/999999/retry`)).status).toBe(404);
	}, 60_000);

	it("POST .../retry of a succeeded delivery sends it again: pending without delivered_at until that attempt succeeds", async () => {
		const r = await scene.receiver(ok());
		const { chatId, telegramId } = await scene.newChat();
		const hook = await createWebhook(t, { url: r.url, scope: "chat", chat_ids: [chatId] });
		scene.say(telegramId, "send me twice");
		const [first] = await waitForDeliveries(t, hook.id, (l) => l[0]?.status === "succeeded", 10_000, "the first delivery");
		expect(first!.delivered_at).not.toBeNull();
		r.behaviour = always(500, "not now");
		const retried = await t.api<DeliveryRecord>("POST", `/webhooks/${hook.id}/deliveries/${first!.id}/retry`);
		expect(retried.status).toBe(202);
		expect(retried.body).toMatchObject({ status: "pending", delivered_at: null });
		const failed = await waitForDeliveries(t, hook.id, (l) => l[0]?.status === "failed", 10_000, "the second attempt failed");
		expect(failed[0]).toMatchObject({ delivered_at: null, last_status_code: 500 });
		r.behaviour = ok();
		await fastForward(t, hook.id);
		const again = await waitForDeliveries(t, hook.id, (l) => l[0]?.status === "succeeded", 10_000, "delivered again");
		expect(again[0]!.delivered_at).not.toBeNull();
		expect(Date.parse(again[0]!.delivered_at!)).toBeGreaterThan(Date.parse(first!.delivered_at!));
	}, 60_000);

	it("POST .../retry of a delivery on the wire is 409 CONFLICT and leaves its attempt alone: it is delivered once", async () => {
		const gate = new Gate();
		const r = await scene.receiver(heldAt(gate));
		const { chatId, telegramId } = await scene.newChat();
		const hook = await createWebhook(t, { url: r.url, scope: "chat", chat_ids: [chatId] });
		scene.say(telegramId, "on the wire");
		await r.waitForCount(1, 5_000);
		const [attempting] = await deliveriesOf(t, hook.id);
		expect(attempting).toMatchObject({ status: "in_flight" });
		const retried = await t.api("POST", `/webhooks/${hook.id}/deliveries/${attempting!.id}/retry`);
		expect(retried.status).toBe(409);
		expect((await deliveriesOf(t, hook.id))[0]).toMatchObject({ id: attempting!.id, status: "in_flight", attempts: 0 });
		gate.open();
		const done = await waitForDeliveries(t, hook.id, (l) => l[0]?.status === "succeeded", 10_000, "delivered");
		expect(done[0]).toMatchObject({ attempts: 1 });
		await sleep(500);
		expect(r.requests).toHaveLength(1);
	}, 30_000);

	it("breaker: 5 consecutive failures open it; while open nothing is sent and nothing dropped; one probe; success closes it and the backlog drains", async () => {
		const r = await scene.receiver(always(500));
		const { chatId, telegramId } = await scene.newChat();
		const hook = await createWebhook(t, { url: r.url, scope: "chat", chat_ids: [chatId] });
		scene.say(telegramId, "b1", "b2", "b3", "b4", "b5", "b6");
		await eventually(async () => (await breakerOf(hook.id)).state === "open", 10_000, "the breaker open");
		const open = await breakerOf(hook.id);
		expect(Date.parse(open.open_until!) - Date.now()).toBeGreaterThan(50_000);
		expect(Date.parse(open.open_until!) - Date.now()).toBeLessThanOrEqual(60_000);
		await sleep(300);
		const whileOpen = r.requests.length;
		expect(whileOpen).toBeGreaterThanOrEqual(5);

		// Open: new events and due retries wait; nothing goes out, nothing is dead.
		scene.say(telegramId, "b7");
		await waitForDeliveries(t, hook.id, (l) => l.length === 7, 10_000, "7 deliveries");
		await fastForward(t, hook.id);
		await sleep(2_000);
		expect(r.requests).toHaveLength(whileOpen);
		let log = await deliveriesOf(t, hook.id);
		expect(log).toHaveLength(7);
		expect(log.every((d) => d.status === "pending" || d.status === "failed")).toBe(true);

		// After the open period: one probe; it fails, so the breaker opens again.
		await fastForward(t, hook.id);
		await expireBreaker(t, hook.id);
		await r.waitForCount(whileOpen + 1, 5_000);
		await sleep(1_000);
		expect(r.requests).toHaveLength(whileOpen + 1);
		expect((await breakerOf(hook.id)).state).toBe("open");

		// The next probe succeeds: closed, and every held delivery is delivered.
		r.behaviour = ok();
		await fastForward(t, hook.id);
		await expireBreaker(t, hook.id);
		log = await waitForDeliveries(t, hook.id, (l) => l.length === 7 && l.every((d) => d.status === "succeeded"), 15_000, "the backlog drained");
		expect((await breakerOf(hook.id)).state).toBe("closed");
		expect(new Set(succeededTexts(r))).toEqual(new Set(["b1", "b2", "b3", "b4", "b5", "b6", "b7"]));
		expect(log.every((d) => d.attempts >= 1 && d.log.length === d.attempts)).toBe(true);
	}, 60_000);

	it("half-open means exactly one probe: while it is in flight no other delivery goes to the endpoint", async () => {
		const r = await scene.receiver(always(500));
		const { chatId, telegramId } = await scene.newChat();
		const hook = await createWebhook(t, { url: r.url, scope: "chat", chat_ids: [chatId] });
		scene.say(telegramId, "p1", "p2", "p3", "p4", "p5", "p6");
		await eventually(async () => (await breakerOf(hook.id)).state === "open", 10_000, "the breaker open");
		await sleep(300);
		const before = r.requests.length;
		// The probe takes a second to answer 200.
		r.behaviour = () => ({ status: 200, body: "ok", delayMs: 1_000 });
		await fastForward(t, hook.id);
		await expireBreaker(t, hook.id);
		await r.waitForCount(before + 1, 5_000);
		await sleep(600);
		expect(r.requests.length - before).toBe(1);
		expect(r.inFlight).toBe(1);
		await waitForDeliveries(t, hook.id, (l) => l.length === 6 && l.every((d) => d.status === "succeeded"), 15_000, "the backlog drained");
	}, 30_000);

	it("a probe its owner may no longer read ends dead unsent, and the next probe goes: the endpoint is not left half-open for good", async () => {
		const r = await scene.receiver(always(500));
		const operator = await createUser(t.gw, t.adminToken, ["operator"]);
		const lost = await scene.newChat();
		const kept = await scene.newChat();
		const grant = await t.api<{ id: number }>("PUT", `/chats/${lost.chatId}/permissions`, { user_id: operator.id, can_read: true });
		expect((await t.api("PUT", `/chats/${kept.chatId}/permissions`, { user_id: operator.id, can_read: true })).status).toBeLessThan(300);
		const hook = await createWebhook(t, { url: r.url, scope: "all" }, operator.token);
		scene.say(lost.telegramId, "l1", "l2", "l3", "l4", "l5");
		await eventually(async () => (await breakerOf(hook.id)).state === "open", 10_000, "the breaker open");
		// The owner loses the chat whose deliveries are waiting; the endpoint recovers.
		expect((await t.api("DELETE", `/chats/${lost.chatId}/permissions/${grant.body.id}`)).status).toBe(204);
		r.behaviour = ok();
		scene.say(kept.telegramId, "k1");
		await waitForDeliveries(t, hook.id, (l) => l.length === 6, 10_000, "6 deliveries");
		await fastForward(t, hook.id);
		await expireBreaker(t, hook.id);
		const log = await waitForDeliveries(t, hook.id, (l) => l.some((d) => d.chat_id === kept.chatId && d.status === "succeeded"), 15_000, "k1 delivered");
		expect(r.withText("k1")).toHaveLength(1);
		expect(log.filter((d) => d.status === "dead").every((d) => /may no longer read/.test(d.last_error ?? ""))).toBe(true);
		expect((await breakerOf(hook.id)).state).toBe("closed");
	}, 40_000);

	it("a hanging endpoint and a failing one do not delay a healthy one", async () => {
		const [stuck, failing, healthy] = [await scene.receiver(hang()), await scene.receiver(always(503)), await scene.receiver()];
		const { chatId, telegramId } = await scene.newChat();
		for (const r of [stuck, failing, healthy]) await createWebhook(t, { url: r.url, scope: "chat", chat_ids: [chatId], max_concurrency: 2 });
		const sentAt = new Map<string, number>();
		const batch = (prefix: string) => {
			for (let i = 1; i <= 5; i++) {
				sentAt.set(`${prefix} ${i}`, Date.now());
				scene.say(telegramId, `${prefix} ${i}`);
			}
		};
		batch("first");
		await healthy.waitForCount(5, 5_000);
		// Now the stuck endpoint holds its connections and the failing one is retrying (or open).
		await sleep(1_500);
		expect(stuck.requests.length).toBeGreaterThanOrEqual(1);
		expect(failing.requests.length).toBeGreaterThanOrEqual(5);
		batch("second");
		await healthy.waitForCount(10, 5_000);
		for (const q of healthy.requests) {
			const text = q.body!.message!.text!;
			expect({ text, late: q.at - sentAt.get(text)! }).toEqual({ text, late: expect.any(Number) });
			expect(q.at - sentAt.get(text)!).toBeLessThan(3_000);
		}
		expect(healthy.requests.map((q) => q.answered)).toEqual(Array(10).fill(200));
	}, 30_000);

	it("max_concurrency: a receiver that holds requests open never sees more than that many at once", async () => {
		const gate = new Gate();
		const r = await scene.receiver(heldAt(gate));
		const { chatId, telegramId } = await scene.newChat();
		const hook = await createWebhook(t, { url: r.url, scope: "chat", chat_ids: [chatId], max_concurrency: 2 });
		expect(hook.max_concurrency).toBe(2);
		scene.say(telegramId, "c1", "c2", "c3", "c4", "c5", "c6");
		await r.waitForCount(2, 5_000);
		await sleep(1_200);
		expect(r.requests).toHaveLength(2);
		expect(r.inFlight).toBe(2);
		gate.open();
		await waitForDeliveries(t, hook.id, (l) => l.length === 6 && l.every((d) => d.status === "succeeded"), 15_000, "all 6 delivered");
		expect(r.maxInFlight).toBe(2);
		expect(new Set(succeededTexts(r))).toEqual(new Set(["c1", "c2", "c3", "c4", "c5", "c6"]));
	}, 30_000);

	it("ordered: true delivers a chat's events strictly in seq order even when the first fails; unordered lets later ones overtake", async () => {
		// Both receivers fail the first attempt of "o1" and accept everything else.
		const failFirstO1 = (): Behaviour => {
			let failed = false;
			return (q) => {
				if (q.body?.message?.text === "o1" && !failed) {
					failed = true;
					return { status: 500, body: "not yet" };
				}
				return { status: 200, body: "ok" };
			};
		};
		const [inOrder, anyOrder] = [await scene.receiver(failFirstO1()), await scene.receiver(failFirstO1())];
		const { chatId, telegramId } = await scene.newChat();
		const ordered = await createWebhook(t, { url: inOrder.url, scope: "chat", chat_ids: [chatId], ordered: true });
		const unordered = await createWebhook(t, { url: anyOrder.url, scope: "chat", chat_ids: [chatId] });
		expect([ordered.ordered, unordered.ordered]).toEqual([true, false]);
		scene.say(telegramId, "o1", "o2", "o3");
		for (const hook of [ordered, unordered]) {
			await waitForDeliveries(t, hook.id, (l) => l.length === 3 && l.every((d) => d.status === "succeeded"), 10_000, "3 delivered");
		}
		const seqs = inOrder.requests.map((q) => q.body!.seq);
		expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
		expect(inOrder.requests.map((q) => [q.body!.message!.text, q.answered])).toEqual([
			["o1", 500],
			["o1", 200],
			["o2", 200],
			["o3", 200],
		]);
		// Without ordering, o2 and o3 do not wait for o1's retry.
		const o1Success = anyOrder.requests.findIndex((q) => q.body?.message?.text === "o1" && q.answered === 200);
		const o2 = anyOrder.requests.findIndex((q) => q.body?.message?.text === "o2");
		expect(o2).toBeLessThan(o1Success);
		expect(anyOrder.requests).toHaveLength(4);
	}, 30_000);

	it("deliveries left behind by 500 disabled webhooks do not starve an active one", async () => {
		const { models } = t.gw.runtime.db;
		const { chatId, telegramId } = await scene.newChat();
		const seq = Number(await models.EventRecord.max("seq")) || 1;
		const now = Date.now();
		// Webhooks turned off (by their owners, by a 410, by a deleted bot) keep their undelivered backlog.
		const disabled = await models.Webhook.bulkCreate(
			Array.from({ length: 500 }, (_, i) => ({
				owner_user_id: null,
				owner_api_key_id: null,
				url: `http://127.0.0.1:9/disabled-${i}`,
				scope: "all" as const,
				bot_id: null,
				chat_ids: null,
				reply_to_message_id: null,
				event_types: null,
				secret_ciphertext: "unused",
				previous_secret_ciphertext: null,
				previous_secret_expires_at: null,
				key_id: "unused",
				is_active: false,
				disabled_reason: "the endpoint answered 410 Gone",
			})),
		);
		const ids = disabled.map((w) => Number(w.id));
		try {
			await models.WebhookDelivery.bulkCreate(
				ids.map((id, i) => ({
					webhook_id: id,
					event_seq: seq,
					event_type: "new_message",
					chat_id: null,
					status: "pending" as const,
					next_attempt_at: new Date(now - 60_000 + i),
					lease_owner: null,
					lease_until: null,
					last_status_code: null,
					last_error: null,
					delivered_at: null,
				})),
			);
			const r = await scene.receiver();
			const hook = await createWebhook(t, { url: r.url, scope: "chat", chat_ids: [chatId] });
			const sent = Date.now();
			scene.say(telegramId, "not starved");
			// Its delivery is created at once; what matters is whether a worker ever takes it.
			await waitForDeliveries(t, hook.id, (l) => l.length === 1, 5_000, "the delivery created");
			await r.waitForCount(1, 5_000);
			expect(r.requests[0]!.at - sent).toBeLessThan(3_000);
		} finally {
			await models.WebhookDelivery.destroy({ where: { webhook_id: ids } });
			await models.Webhook.destroy({ where: { id: ids } });
		}
	}, 30_000);
});
