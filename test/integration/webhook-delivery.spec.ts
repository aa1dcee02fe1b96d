/**
 * Webhook delivery, one attempt at a time: API.md's body and headers (Standard Webhooks verified with
 * the standardwebhooks package, the older X-Webhook-Signature), which webhook gets which event
 * (scopes, event types, the owner's chat grants, a webhook created while the dispatcher rebuilds its
 * view of the webhooks), retries on the schedule with the delivery log of every attempt, Retry-After,
 * 410 Gone, the 10 s timeout, a closed port, redirects not followed, and the response excerpt capped
 * at 1 KB.
 */
import { createUser, type TestUser } from "../support/auth";
import { ISO, MESSAGE_FIELDS, waitForEvent } from "../support/chat-helpers";
import {
	always,
	closedPortUrl,
	createWebhook,
	deliveriesOf,
	eventually,
	failTimes,
	fastForward,
	gone,
	hang,
	legacySignature,
	ok,
	redirectTo,
	retryAfter,
	trickle,
	verifyWith,
	waitForDeliveries,
	WEBHOOK_TEST_ENV,
	type DeliveryRecord,
	type Receiver,
	type WebhookBody,
	WebhookScene,
} from "../support/receivers";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("webhook delivery", () => {
	let t: TelegramGateway;
	let bot: { id: number; token: string };
	let otherBot: { id: number; token: string };
	let operator: TestUser;
	const scene = new WebhookScene(7100);


	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "webhook", env: WEBHOOK_TEST_ENV });
		const added = await t.addBot({ username: "delivery_bot" });
		bot = { id: added.bot.id, token: added.token };
		Object.assign(scene, { t, bot });
		const other = await t.addBot({ username: "other_delivery_bot" });
		otherBot = { id: other.bot.id, token: other.token };
		operator = await createUser(t.gw, t.adminToken, ["operator"]);
	}, 60_000);
	afterEach(() => scene.reset());
	afterAll(() => t.stop());

	it("a webhook whose signing secret cannot be read (its key left TOKEN_ENCRYPTION_KEYS): deliveries fail saying so, its test ping is 503, the node goes on (it crashed)", async () => {
		const r = await scene.receiver();
		const { telegramId, chatId } = await scene.newChat();
		const hook = await createWebhook(t, { url: r.url, scope: "chat", chat_ids: [chatId] });
		// Sealed under a key this node does not hold (updated_at moves: the node reads the row afresh).
		await t.gw.runtime.db.models.Webhook.update({ key_id: "retired-key" }, { where: { id: hook.id } });
		await t.gw.broker.broadcast("webhooks.changed", { id: hook.id });
		t.telegram.userSends(bot.token, { chat_id: telegramId, text: "cannot be signed" });
		const [delivery] = await waitForDeliveries(t, hook.id, (log) => log.some((d) => d.attempts > 0), 10_000, "a failed attempt");
		expect(delivery).toMatchObject({ status: "failed", last_status_code: null, last_error: expect.stringContaining('TOKEN_ENCRYPTION_KEYS must hold the key "retired-key"') });
		expect(r.requests).toHaveLength(0);
		const ping = await t.api("POST", `/webhooks/${hook.id}/test`);
		expect(ping.status).toBe(503);
		expect(JSON.stringify(ping.body)).toContain("signing secret cannot be read");
		// The node still serves, and still delivers for the others.
		expect((await t.api("GET", "/auth/me")).status).toBe(200);
	});

	it("a user's message reaches a scope-all receiver: API.md's body, Standard Webhooks and legacy headers", async () => {
		const r = await scene.receiver();
		const { telegramId, chatId } = await scene.newChat();
		const hook = await createWebhook(t, { url: r.url, scope: "all" });
		t.telegram.userSends(bot.token, { chat_id: telegramId, text: "to the webhook" });
		await r.waitFor(() => r.withText("to the webhook").length === 1);
		const event = await waitForEvent(t, (e) => e.type === "new_message" && e.message?.text === "to the webhook");
		const [req] = r.withText("to the webhook");
		expect(req!.method).toBe("POST");
		expect(req!.path).toBe("/hook");
		expect(req!.headers["content-type"]).toMatch(/^application\/json/);

		const body = req!.body!;
		expect(Object.keys(body).sort()).toEqual(["bot_id", "chat_id", "event", "event_id", "message", "seq", "timestamp"]);
		expect(body).toMatchObject({ event: "new_message", seq: event.seq, bot_id: bot.id, chat_id: chatId });
		expect(body.event_id).toEqual(expect.any(String));
		expect(body.timestamp).toMatch(ISO);
		expect(body.message).toEqual(event.message);
		expect(Object.keys(body.message!).sort()).toEqual(expect.arrayContaining([...MESSAGE_FIELDS].sort()));
		expect(body.message).toMatchObject({ text: "to the webhook", direction: "incoming", chat_id: chatId, seq: event.seq });

		expect(req!.headers["webhook-id"]).toBe(body.event_id);
		const stamp = Number(req!.headers["webhook-timestamp"]);
		expect(Math.abs(stamp - Math.floor(req!.at / 1000))).toBeLessThanOrEqual(2);
		expect(String(req!.headers["webhook-signature"])).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
		expect(verifyWith(hook.secret, req!)).toEqual(body);
		expect(req!.headers["x-webhook-signature"]).toBe(legacySignature(hook.secret, req!.rawBody));
		expect(req!.headers["x-webhook-event"]).toBe("new_message");

		const log = await waitForDeliveries(t, hook.id, (l) => l.length === 1 && l[0]!.status === "succeeded");
		expect(log[0]).toMatchObject({ event_id: body.event_id, event_seq: event.seq, event: "new_message", chat_id: chatId, attempts: 1, next_attempt_at: null });
		expect(log[0]!.delivered_at).toMatch(ISO);
		expect(req!.headers["x-webhook-delivery"]).toBe(String(log[0]!.id));
		expect(log[0]!.log).toEqual([{ attempt: 1, at: expect.stringMatching(ISO), status_code: 200, duration_ms: expect.any(Number), error: null, response_excerpt: "ok" }]);
		// The first message of the chat came before the webhook existed: not its.
		expect(r.withText(`hello from ${telegramId}`)).toHaveLength(0);
	});

	it("an event stored after the webhook was created is its, whatever the clocks of the nodes say", async () => {
		const r = await scene.receiver();
		const { telegramId } = await scene.newChat();
		const hook = await createWebhook(t, { url: r.url, scope: "all" });
		// The node that created it had its clock an hour ahead (or an ingest batch waited for the log's lock):
		// its created_at is later than the next event's stored time. The log's seq decides, not the clocks.
		await t.gw.runtime.db.models.Webhook.update({ created_at: new Date(Date.now() + 3_600_000) } as never, { where: { id: hook.id } });
		await t.gw.broker.broadcast("webhooks.changed", { id: hook.id });
		t.telegram.userSends(bot.token, { chat_id: telegramId, text: "after the webhook, by seq" });
		await r.waitFor(() => r.withText("after the webhook, by seq").length === 1);
	});

	it("scope bot / chat / reply and event_types deliver only the events they match", async () => {
		const a = await scene.newChat();
		const b = await scene.newChat();
		const firstOfA = a.first.telegram_message_id!;
		const firstOfB = b.first.telegram_message_id!;
		const o = await scene.newChat(otherBot);
		const [all, byBot, byChat, byReply, edits, outgoing] = await Promise.all([1, 2, 3, 4, 5, 6].map(() => scene.receiver()));
		const hooks = {
			all: await createWebhook(t, { url: all!.url, scope: "all" }),
			bot: await createWebhook(t, { url: byBot!.url, scope: "bot", bot_id: otherBot.id }),
			chat: await createWebhook(t, { url: byChat!.url, scope: "chat", chat_ids: [b.chatId] }),
			reply: await createWebhook(t, { url: byReply!.url, scope: "reply", chat_ids: [a.chatId], reply_to_message_id: firstOfA }),
			edits: await createWebhook(t, { url: edits!.url, scope: "all", event_types: ["edited_message"] }),
			outgoing: await createWebhook(t, { url: outgoing!.url, scope: "chat", chat_ids: [a.chatId, b.chatId], event_types: ["outgoing_message"] }),
		};
		const replyTo = (chat: typeof a, messageId: number) => ({ message_id: messageId, date: Math.floor(Date.now() / 1000), chat: { id: chat.telegramId, type: "private" } });
		t.telegram.userSends(bot.token, { chat_id: a.telegramId, text: "a: plain" });
		t.telegram.userSends(bot.token, { chat_id: a.telegramId, text: "a: the reply", reply_to_message: replyTo(a, firstOfA) });
		t.telegram.userSends(bot.token, { chat_id: a.telegramId, text: "a: reply to another", reply_to_message: replyTo(a, firstOfA + 1000) });
		t.telegram.userSends(bot.token, { chat_id: b.telegramId, text: "b: plain" });
		t.telegram.userSends(otherBot.token, { chat_id: o.telegramId, text: "o: plain" });
		t.telegram.userEdits(bot.token, { chat_id: b.telegramId, message_id: firstOfB, text: "b: edited" });
		const sent = await t.api<{ id: number }>("POST", `/chats/${a.chatId}/messages`, { text: "a: from the gateway" });
		expect(sent.status).toBe(201);

		await all!.waitForCount(7);
		expect(all!.bodies.map((x) => x.message?.text).sort()).toEqual(["a: from the gateway", "a: plain", "a: reply to another", "a: the reply", "b: edited", "b: plain", "o: plain"]);
		// Every delivery of these events exists once the scope-all receiver has them: wait until all are done.
		for (const hook of Object.values(hooks)) await waitForDeliveries(t, hook.id, (l) => l.every((d) => d.status === "succeeded"));
		const texts = (x: Receiver) => x.bodies.map((body) => `${body.event}:${body.message?.text}`).sort();
		expect(texts(byBot!)).toEqual(["new_message:o: plain"]);
		expect(texts(byChat!)).toEqual(["edited_message:b: edited", "new_message:b: plain"]);
		expect(texts(byReply!)).toEqual(["new_message:a: the reply"]);
		expect(texts(edits!)).toEqual(["edited_message:b: edited"]);
		expect(texts(outgoing!)).toEqual(["outgoing_message:a: from the gateway"]);
		expect(all!.requests.find((q) => q.body?.event === "edited_message")!.headers["x-webhook-event"]).toBe("edited_message");
		expect(outgoing!.requests[0]!.headers["x-webhook-event"]).toBe("outgoing_message");
	});

	it("a webhook acts for its owner: an operator's scope-all webhook gets only the chats it can read", async () => {
		const readable = await scene.newChat();
		const hidden = await scene.newChat();
		const granted = await t.api("PUT", `/chats/${readable.chatId}/permissions`, { user_id: operator.id, can_read: true });
		expect([200, 201]).toContain(granted.status);
		const [mine, admins] = [await scene.receiver(), await scene.receiver()];
		const hook = await createWebhook(t, { url: mine.url, scope: "all" }, operator.token);
		await createWebhook(t, { url: admins.url, scope: "all" });
		t.telegram.userSends(bot.token, { chat_id: hidden.telegramId, text: "hidden 1" });
		t.telegram.userSends(bot.token, { chat_id: readable.telegramId, text: "readable 1" });
		t.telegram.userSends(bot.token, { chat_id: hidden.telegramId, text: "hidden 2" });
		await admins.waitForCount(3);
		await waitForDeliveries(t, hook.id, (l) => l.length >= 1 && l.every((d) => d.status === "succeeded"));
		expect(mine.bodies.map((x) => x.message?.text)).toEqual(["readable 1"]);
		expect((await deliveriesOf(t, hook.id)).map((d) => d.chat_id)).toEqual([readable.chatId]);

		// The grant revoked: from then on the webhook gets nothing of that chat either.
		const grantId = (granted.body as { id: number }).id;
		expect((await t.api("DELETE", `/chats/${readable.chatId}/permissions/${grantId}`)).status).toBe(204);
		t.telegram.userSends(bot.token, { chat_id: readable.telegramId, text: "readable 2" });
		await admins.waitForCount(4);
		await sleep(300);
		expect(mine.bodies.map((x) => x.message?.text)).toEqual(["readable 1"]);
		expect(await deliveriesOf(t, hook.id)).toHaveLength(1);
	});

	it("an owner demoted to viewer (no webhooks:* left, so it can no longer see or stop its webhook) is sent nothing more", async () => {
		const chat = await scene.newChat();
		const owner = await createUser(t.gw, t.adminToken, ["operator"]);
		expect([200, 201]).toContain((await t.api("PUT", `/chats/${chat.chatId}/permissions`, { user_id: owner.id, can_read: true })).status);
		const [mine, admins] = [await scene.receiver(), await scene.receiver()];
		const hook = await createWebhook(t, { url: mine.url, scope: "chat", chat_ids: [chat.chatId] }, owner.token);
		await createWebhook(t, { url: admins.url, scope: "chat", chat_ids: [chat.chatId] });
		t.telegram.userSends(bot.token, { chat_id: chat.telegramId, text: "before the demotion" });
		await mine.waitForCount(1);
		expect((await t.api("PATCH", `/users/${owner.id}`, { roles: ["viewer"] })).status).toBe(200);
		expect((await t.api("GET", "/webhooks", undefined, owner.token)).status).toBe(403);
		t.telegram.userSends(bot.token, { chat_id: chat.telegramId, text: "after the demotion" });
		await admins.waitForCount(2);
		await sleep(300);
		expect(mine.bodies.map((x) => x.message?.text)).toEqual(["before the demotion"]);
		expect((await deliveriesOf(t, hook.id)).filter((d) => d.status === "succeeded")).toHaveLength(1);
	});

	it("nothing of a chat its owner may no longer read is sent: not a waiting delivery (dead, saying why), not a retry by hand (403); the owner can still switch it off", async () => {
		const chat = await scene.newChat();
		const granted = await t.api<{ id: number }>("PUT", `/chats/${chat.chatId}/permissions`, { user_id: operator.id, can_read: true });
		expect([200, 201]).toContain(granted.status);
		// "two" fails its first attempt, so it waits for a retry when the grant goes.
		const receiver = await scene.receiver((request) => (request.body?.message?.text === "two" ? { status: 500, body: "not now" } : { status: 200, body: "ok" }));
		const hook = await createWebhook(t, { url: receiver.url, scope: "chat", chat_ids: [chat.chatId] }, operator.token);
		scene.say(chat.telegramId, "one");
		await waitForDeliveries(t, hook.id, (l) => l.length === 1 && l[0]!.status === "succeeded");
		scene.say(chat.telegramId, "two");
		const log = await waitForDeliveries(t, hook.id, (l) => l.length === 2 && l[0]!.status === "failed");
		const [waiting, delivered] = log as [DeliveryRecord, DeliveryRecord];

		expect((await t.api("DELETE", `/chats/${chat.chatId}/permissions/${granted.body.id}`)).status).toBe(204);
		const retried = await t.api("POST", `/webhooks/${hook.id}/deliveries/${delivered.id}/retry`, undefined, operator.token);
		expect(retried.status).toBe(403);
		expect(retried.text).toContain(`chat ${chat.chatId}`);
		receiver.behaviour = ok();
		await fastForward(t, hook.id);
		const after = await waitForDeliveries(t, hook.id, (l) => l.find((d) => d.id === waiting.id)!.status === "dead");
		expect(after.find((d) => d.id === waiting.id)).toMatchObject({ attempts: 2, last_error: expect.stringContaining("no longer read") });
		expect(after.find((d) => d.id === delivered.id)).toMatchObject({ status: "succeeded", attempts: 1 });
		await sleep(200);
		expect(receiver.bodies.map((b) => b.message?.text)).toEqual(["one", "two"]);

		const off = await t.api<WebhookBody>("PATCH", `/webhooks/${hook.id}`, { is_active: false }, operator.token);
		expect(off.status).toBe(200);
		expect(off.body.is_active).toBe(false);
		// Switching it back on is a new subscription: the owner must be able to read the chat again.
		expect((await t.api("PATCH", `/webhooks/${hook.id}`, { is_active: true }, operator.token)).status).toBe(403);
	});

	it("callers asking for the webhooks' audiences at once share one build, which asks each owner's access once", async () => {
		const receiver = await scene.receiver();
		// Three webhooks of one owner: their access is asked for once, not three times.
		for (let i = 0; i < 3; i++) await createWebhook(t, { url: receiver.url, scope: "all" });
		await sleep(300); // the dispatcher's own rebuild after the creation is over
		const service = t.gw.broker.getLocalService("delivery") as unknown as { ownerAccess(row: { id: number }): Promise<unknown>; audiences(): Promise<unknown>; invalidateAudiences(): void };
		const spy = jest.spyOn(service, "ownerAccess");
		try {
			service.invalidateAudiences();
			const lists = await Promise.all(Array.from({ length: 50 }, () => service.audiences()));
			expect(new Set(lists).size).toBe(1);
			// One lookup per owner of active webhooks; a second round if the dispatcher invalidated the
			// list meanwhile (a build that raced an invalidation is done again). Unshared, it was 50 rounds;
			// per webhook, one per active webhook.
			const { Webhook } = t.gw.runtime.db.models;
			const active = await Webhook.findAll({ where: { is_active: true }, attributes: ["owner_user_id", "owner_api_key_id"], raw: true });
			const owners = new Set(active.map((w) => `${w.owner_api_key_id}:${w.owner_user_id}`)).size;
			expect(active.length).toBeGreaterThan(owners);
			expect(spy.mock.calls.length).toBeGreaterThanOrEqual(owners);
			expect(spy.mock.calls.length).toBeLessThanOrEqual(2 * owners);
		} finally {
			spy.mockRestore();
		}
	});

	it("a webhook created while the dispatcher rebuilds its view of the webhooks still gets every later event", async () => {
		// Rebuilding the dispatcher's view costs two auth calls per owner: with many owners, or auth
		// on another node, it takes a while. Here each owner's part takes 150 ms.
		const service = t.gw.broker.getLocalService("delivery") as unknown as { ownerAccess(row: { id: number }): Promise<unknown> };
		const original = service.ownerAccess.bind(service);
		const lookups: number[] = [];
		const spy = jest.spyOn(service, "ownerAccess").mockImplementation(async (row) => {
			lookups.push(Date.now());
			await sleep(150);
			return original(row);
		});
		try {
			const [first, second] = [await scene.receiver(), await scene.receiver()];
			const { telegramId } = await scene.newChat();
			await createWebhook(t, { url: first.url, scope: "all" });
			const createdAt = Date.now();
			// The rebuild prompted by the first webhook (its lookups start after the rows are read) is under way when the second is created.
			await eventually(() => lookups.some((at) => at >= createdAt), 5_000, "a rebuild that knows the first webhook");
			const b = await createWebhook(t, { url: second.url, scope: "all" });
			t.telegram.userSends(bot.token, { chat_id: telegramId, text: "for both of them" });
			const event = await waitForEvent(t, (e) => e.message?.text === "for both of them");
			// Stored after both webhooks existed: both must get it.
			expect(Date.parse((event as unknown as { created_at: string }).created_at)).toBeGreaterThanOrEqual(Date.parse(b.created_at));
			await first.waitFor(() => first.withText("for both of them").length === 1, 5_000, "the first webhook's delivery");
			await waitForDeliveries(t, b.id, (l) => l.some((d) => d.event_seq === event.seq), 5_000, `a delivery of seq ${event.seq} for the second webhook`);
			await second.waitFor(() => second.withText("for both of them").length === 1, 5_000, "the second webhook's delivery");
		} finally {
			spy.mockRestore();
		}
	});

	it("fails twice, then 200: three attempts (the second about 1 s after the first), one webhook-id, every attempt logged", async () => {
		const r = await scene.receiver(failTimes(2));
		const { telegramId } = await scene.newChat();
		const hook = await createWebhook(t, { url: r.url, scope: "all" });
		t.telegram.userSends(bot.token, { chat_id: telegramId, text: "third time lucky" });
		await r.waitForCount(2, 5_000);
		const gap = r.requests[1]!.at - r.requests[0]!.at;
		expect(gap).toBeGreaterThanOrEqual(700);
		expect(gap).toBeLessThan(3_000);
		// The next retry is ~10 s away: move it forward instead of waiting.
		await waitForDeliveries(t, hook.id, (l) => l[0]?.status === "failed" && l[0].attempts === 2);
		const pending = (await deliveriesOf(t, hook.id))[0]!;
		const wait = Date.parse(pending.next_attempt_at!) - Date.parse(pending.log[1]!.at);
		expect(wait).toBeGreaterThanOrEqual(8_000 - 50);
		expect(wait).toBeLessThanOrEqual(12_000 + 2_000);
		await fastForward(t, hook.id);
		await r.waitForCount(3, 5_000);
		const log = await waitForDeliveries(t, hook.id, (l) => l[0]?.status === "succeeded");
		expect(log[0]).toMatchObject({ status: "succeeded", attempts: 3, last_status_code: 200, next_attempt_at: null });
		expect(log[0]!.log.map((a) => [a.attempt, a.status_code, a.error, a.response_excerpt])).toEqual([
			[1, 500, "HTTP 500", "failure 1"],
			[2, 500, "HTTP 500", "failure 2"],
			[3, 200, null, "ok"],
		]);
		for (const attempt of log[0]!.log) {
			expect(attempt.at).toMatch(ISO);
			expect(attempt.duration_ms).toBeGreaterThanOrEqual(0);
			expect(attempt.duration_ms).toBeLessThan(5_000);
		}
		expect(new Set(r.requests.map((q) => q.headers["webhook-id"])).size).toBe(1);
		expect(new Set(r.requests.map((q) => q.headers["x-webhook-delivery"]))).toEqual(new Set([String(log[0]!.id)]));
		expect(new Set(r.requests.map((q) => q.rawBody)).size).toBe(1);
		for (const q of r.requests) expect(verifyWith(hook.secret, q)).toEqual(q.body);
		// Each attempt signs its own time.
		expect(Number(r.requests[2]!.headers["webhook-timestamp"])).toBeGreaterThanOrEqual(Number(r.requests[0]!.headers["webhook-timestamp"]));
	});

	it("the response excerpt in the log is capped at 1 KB even when the receiver answers 100 KB", async () => {
		const big = "x".repeat(100 * 1024);
		const r = await scene.receiver((_q, i) => (i === 0 ? { status: 500, body: big } : { status: 200, body: big }));
		const { telegramId } = await scene.newChat();
		const hook = await createWebhook(t, { url: r.url, scope: "all" });
		t.telegram.userSends(bot.token, { chat_id: telegramId, text: "big answers" });
		const log = await waitForDeliveries(t, hook.id, (l) => l[0]?.status === "succeeded", 10_000);
		expect(log[0]!.log.map((a) => a.status_code)).toEqual([500, 200]);
		for (const attempt of log[0]!.log) {
			expect(Buffer.byteLength(attempt.response_excerpt ?? "")).toBeLessThanOrEqual(1024);
			expect(attempt.response_excerpt).toBe("x".repeat(1024));
		}
	});

	it("429 with Retry-After: 3 — the next attempt is scheduled at least ~3 s later, and comes then", async () => {
		const r = await scene.receiver(retryAfter("3"));
		const { telegramId } = await scene.newChat();
		const hook = await createWebhook(t, { url: r.url, scope: "all" });
		t.telegram.userSends(bot.token, { chat_id: telegramId, text: "slow down please" });
		const log = await waitForDeliveries(t, hook.id, (l) => l[0]?.attempts === 1 && l[0].status === "failed");
		const first = log[0]!.log[0]!;
		expect(first).toMatchObject({ status_code: 429, error: expect.stringContaining("429") });
		expect(Date.parse(log[0]!.next_attempt_at!) - Date.parse(first.at)).toBeGreaterThanOrEqual(2_950);
		await r.waitForCount(2, 8_000);
		expect(r.requests[1]!.at - r.requests[0]!.at).toBeGreaterThanOrEqual(2_900);
		await waitForDeliveries(t, hook.id, (l) => l[0]?.status === "succeeded");
	});

	it("410 Gone disables the webhook (is_active false, disabled_reason) and nothing more is sent", async () => {
		const r = await scene.receiver(gone());
		const { telegramId } = await scene.newChat();
		const hook = await createWebhook(t, { url: r.url, scope: "all" });
		t.telegram.userSends(bot.token, { chat_id: telegramId, text: "are you there?" });
		await r.waitForCount(1);
		let view: WebhookBody | undefined;
		await eventually(async () => {
			view = (await t.api<WebhookBody>("GET", `/webhooks/${hook.id}`)).body;
			return view.is_active === false;
		}, 10_000, "the webhook disabled");
		expect(view!.disabled_reason).toEqual(expect.stringContaining("410"));
		const log = await deliveriesOf(t, hook.id);
		expect(log[0]).toMatchObject({ last_status_code: 410 });
		expect(log[0]!.status).not.toBe("succeeded");
		expect(log[0]!.log).toHaveLength(1);
		t.telegram.userSends(bot.token, { chat_id: telegramId, text: "still there?" });
		await waitForEvent(t, (e) => e.message?.text === "still there?");
		await sleep(1_500);
		expect(r.requests).toHaveLength(1);
		expect(await deliveriesOf(t, hook.id)).toHaveLength(1);
	});

	it("a receiver that never answers: the attempt fails with a timeout after about 10 s", async () => {
		const r = await scene.receiver(hang());
		const { telegramId } = await scene.newChat();
		const hook = await createWebhook(t, { url: r.url, scope: "all" });
		t.telegram.userSends(bot.token, { chat_id: telegramId, text: "hello? anyone?" });
		await r.waitForCount(1);
		const log = await waitForDeliveries(t, hook.id, (l) => (l[0]?.log.length ?? 0) >= 1, 15_000, "the timed-out attempt");
		const attempt = log[0]!.log[0]!;
		expect(attempt.status_code).toBeNull();
		expect(attempt.error).toMatch(/10 s|time/i);
		expect(attempt.duration_ms).toBeGreaterThanOrEqual(9_900);
		expect(attempt.duration_ms).toBeLessThan(12_000);
		expect(log[0]!.status).not.toBe("succeeded");
	}, 30_000);

	it("a receiver that answers 200 at once and never ends its body: succeeded (the status is the answer), the cut-off body noted in the log, not retried", async () => {
		const r = await scene.receiver(trickle(200));
		const { telegramId } = await scene.newChat();
		const hook = await createWebhook(t, { url: r.url, scope: "all" });
		t.telegram.userSends(bot.token, { chat_id: telegramId, text: "a slow goodbye" });
		const log = await waitForDeliveries(t, hook.id, (l) => l[0]?.status === "succeeded", 20_000, "the delivery");
		expect(log[0]!.log).toHaveLength(1);
		expect(log[0]!.log[0]).toMatchObject({ status_code: 200, error: "the response's body did not end within 10 s" });
		await new Promise((resolve) => setTimeout(resolve, 1_500));
		expect(r.requests).toHaveLength(1);
	}, 30_000);

	it("a closed port: the connection error is recorded and the delivery retried", async () => {
		const { telegramId } = await scene.newChat();
		const hook = await createWebhook(t, { url: await closedPortUrl(), scope: "all" });
		t.telegram.userSends(bot.token, { chat_id: telegramId, text: "nobody home" });
		const log = await waitForDeliveries(t, hook.id, (l) => (l[0]?.log.length ?? 0) >= 1);
		expect(log[0]!.log[0]).toMatchObject({ status_code: null, error: expect.stringMatching(/ECONNREFUSED|connect/i) });
		expect(["failed", "pending", "in_flight"]).toContain(log[0]!.status);
		expect(log[0]!.last_error).toEqual(expect.stringMatching(/ECONNREFUSED|connect/i));
	});

	it("no redirect is followed: a 302 to another receiver is a failed attempt, and the other gets nothing", async () => {
		const target = await scene.receiver();
		const r = await scene.receiver(redirectTo(target.url));
		const { telegramId } = await scene.newChat();
		const hook = await createWebhook(t, { url: r.url, scope: "all" });
		t.telegram.userSends(bot.token, { chat_id: telegramId, text: "follow me" });
		const log = await waitForDeliveries(t, hook.id, (l) => (l[0]?.log.length ?? 0) >= 1);
		expect(log[0]!.log[0]).toMatchObject({ status_code: 302, error: expect.stringContaining("302") });
		expect(log[0]!.status).toBe("failed");
		await sleep(500);
		expect(target.requests).toHaveLength(0);
		expect(r.requests.length).toBeGreaterThanOrEqual(1);
	});

	it("a 4xx other than 410 is retried, not fatal", async () => {
		const r = await scene.receiver((_q, i) => (i === 0 ? { status: 404, body: "no such hook" } : { status: 200, body: "ok" }));
		const { telegramId } = await scene.newChat();
		const hook = await createWebhook(t, { url: r.url, scope: "all" });
		t.telegram.userSends(bot.token, { chat_id: telegramId, text: "lost and found" });
		const log = await waitForDeliveries(t, hook.id, (l) => l[0]?.status === "succeeded", 8_000);
		expect(log[0]!.log.map((a) => a.status_code)).toEqual([404, 200]);
		expect((await t.api<WebhookBody>("GET", `/webhooks/${hook.id}`)).body.is_active).toBe(true);
	});

	it("any 2xx is success", async () => {
		const r = await scene.receiver(always(204));
		const { telegramId } = await scene.newChat();
		const hook = await createWebhook(t, { url: r.url, scope: "all" });
		t.telegram.userSends(bot.token, { chat_id: telegramId, text: "no content" });
		const log = await waitForDeliveries(t, hook.id, (l) => l[0]?.status === "succeeded");
		expect(log[0]!.log).toHaveLength(1);
		expect(log[0]!.log[0]).toMatchObject({ status_code: 204, error: null });
	});
});
