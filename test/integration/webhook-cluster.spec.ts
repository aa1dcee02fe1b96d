/**
 * Webhook delivery across nodes and restarts. Two delivery nodes (Moleculer's Fake transporter, one
 * database, one shared state): every delivery is sent once, the per-endpoint breaker is shared (open
 * on one node is open on all), and an endpoint's max_concurrency holds for the endpoint, not per node.
 * Durability: events stored while no delivery node runs, and deliveries that failed before a restart,
 * are delivered by the next gateway on the same data.
 */
import { rmSync } from "node:fs";
import { ALL_SERVICES, type ServiceName } from "../../lib/config";
import { ADMIN_PASSWORD } from "../support/auth";
import { userWrites } from "../support/chat-helpers";
import { startTestGateway, tempDir, type TestGateway } from "../support/harness";
import {
	always,
	createWebhook,
	deliveriesOf,
	eventually,
	fastForward,
	Gate,
	heldAt,
	ok,
	startReceiver,
	waitForDeliveries,
	WEBHOOK_TEST_ENV,
	type WebhookBody,
	WebhookScene,
} from "../support/receivers";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("webhook delivery on two delivery nodes", () => {
	let t: TelegramGateway;
	let bot: { id: number; token: string };
	const scene = new WebhookScene(5100);

	/** The nodes holding leases on a webhook's deliveries right now. */
	const leaseNodes = async (webhookId: number) => {
		const rows = await t.gw.runtime.db.models.WebhookDelivery.findAll({ where: { webhook_id: webhookId, status: "in_flight" }, attributes: ["lease_owner"], raw: true });
		return new Set(rows.map((row) => String(row.lease_owner).split(":")[0]));
	};

	beforeAll(async () => {
		const first = ALL_SERVICES.filter((s) => s !== "grpc") as ServiceName[];
		t = await startTelegramGateway({ mode: "webhook", env: WEBHOOK_TEST_ENV, nodes: [first, ["delivery"]] });
		const added = await t.addBot({ username: "cluster_delivery_bot" });
		bot = { id: added.bot.id, token: added.token };
		Object.assign(scene, { t, bot });
	}, 60_000);
	afterEach(() => scene.reset());
	afterAll(() => t.stop());

	it("every event is delivered exactly once, whichever node sends it", async () => {
		const r = await scene.receiver();
		const { chatId, telegramId } = await scene.newChat();
		const hook = await createWebhook(t, { url: r.url, scope: "chat", chat_ids: [chatId] });
		const texts = Array.from({ length: 20 }, (_, i) => `once ${i}`);
		scene.say(telegramId, ...texts);
		await waitForDeliveries(t, hook.id, (l) => l.length === 20 && l.every((d) => d.status === "succeeded"), 15_000, "20 delivered");
		await sleep(500);
		expect(r.requests.map((q) => q.body?.message?.text).sort()).toEqual([...texts].sort());
	});

	it("the breaker is shared: once open, neither node sends to the endpoint", async () => {
		const r = await scene.receiver(always(500));
		const { chatId, telegramId } = await scene.newChat();
		const hook = await createWebhook(t, { url: r.url, scope: "chat", chat_ids: [chatId] });
		scene.say(telegramId, "s1", "s2", "s3", "s4", "s5", "s6");
		await eventually(async () => (await t.api<WebhookBody>("GET", `/webhooks/${hook.id}`)).body.breaker?.state === "open", 10_000, "the breaker open");
		await sleep(300);
		const sent = r.requests.length;
		await fastForward(t, hook.id);
		await sleep(2_000);
		expect(r.requests).toHaveLength(sent);
		expect((await deliveriesOf(t, hook.id)).every((d) => d.status === "pending" || d.status === "failed")).toBe(true);
	});

	it("max_concurrency caps the endpoint, not each node: a receiver holding requests sees at most that many", async () => {
		const gate = new Gate();
		const r = await scene.receiver(heldAt(gate));
		const { chatId, telegramId } = await scene.newChat();
		const hook = await createWebhook(t, { url: r.url, scope: "chat", chat_ids: [chatId], max_concurrency: 2 });
		scene.say(telegramId, "k1", "k2", "k3", "k4", "k5", "k6");
		await r.waitForCount(2, 5_000);
		await sleep(1_500);
		const nodes = await leaseNodes(hook.id);
		const seen = r.maxInFlight;
		gate.open();
		await waitForDeliveries(t, hook.id, (l) => l.length === 6 && l.every((d) => d.status === "succeeded"), 15_000, "all 6 delivered");
		// leaseHolders is there to say which nodes were sending when this fails.
		const leaseHolders = [...nodes].sort();
		expect({ maxInFlight: seen, leaseHolders }).toEqual({ maxInFlight: 2, leaseHolders });
	}, 30_000);
});

describe("webhook delivery survives restarts", () => {
	it("a failed delivery, and an event stored while no delivery node ran, are delivered by the next gateway", async () => {
		const dataDir = tempDir("tgw-webhook-restart-");
		const r = await startReceiver(always(500));
		const first = await startTelegramGateway({ mode: "webhook", env: { ...WEBHOOK_TEST_ENV, DATA_DIR: dataDir } });
		const later: TestGateway[] = [];
		const next = async (services: string) => {
			const gw = await startTestGateway({
				env: {
					ADMIN_PASSWORD,
					DATA_DIR: dataDir,
					SERVICES: services,
					TELEGRAM_API_ROOT: first.telegram.url,
					PUBLIC_URL: first.baseUrl,
					PORT: new URL(first.baseUrl).port,
					RATE_LIMIT_DEFAULT: "100000",
				},
			});
			later.push(gw);
			return gw;
		};
		let firstRunning = true;
		try {
			const added = await first.addBot();
			const { chatId } = await userWrites(first, added.token, added.bot.id, { chat_id: 4001, text: "hello" });
			const hook = await createWebhook(first, { url: r.url, scope: "chat", chat_ids: [chatId] });
			first.telegram.userSends(added.token, { chat_id: 4001, text: "failed before the restart" });
			await waitForDeliveries(first, hook.id, (l) => l.length === 1 && l[0]!.status === "failed", 10_000, "a failed attempt");
			const failedId = r.requests[0]!.headers["webhook-id"];
			await first.gw.stop();
			firstRunning = false;

			// No delivery service anywhere while this event is stored.
			const withoutDelivery = await next(ALL_SERVICES.filter((s) => s !== "grpc" && s !== "delivery").join(","));
			first.telegram.userSends(added.token, { chat_id: 4001, text: "stored while delivery was down" });
			await eventually(async () => (await withoutDelivery.runtime.db.models.Message.count({ where: { text: "stored while delivery was down" } })) === 1, 10_000, "the message stored");
			later.splice(later.indexOf(withoutDelivery), 1);
			await withoutDelivery.stop();

			r.behaviour = ok();
			const again = await next(WEBHOOK_TEST_ENV.SERVICES);
			await r.waitFor((q) => q.some((x) => x.body?.message?.text === "stored while delivery was down" && x.answered === 200), 10_000, "the stored event delivered");
			await r.waitFor((q) => q.some((x) => x.body?.message?.text === "failed before the restart" && x.answered === 200), 15_000, "the failed delivery retried");
			const retried = r.requests.filter((x) => x.body?.message?.text === "failed before the restart");
			expect(new Set(retried.map((x) => x.headers["webhook-id"]))).toEqual(new Set([failedId]));
			expect(r.requests.filter((x) => x.body?.message?.text === "stored while delivery was down")).toHaveLength(1);
			await eventually(async () => (await again.runtime.db.models.WebhookDelivery.count({ where: { webhook_id: hook.id, status: "succeeded" } })) === 2, 5_000, "both succeeded");
		} finally {
			if (firstRunning) await first.gw.stop();
			for (const gw of later) await gw.stop();
			await first.telegram.stop();
			await r.close();
			rmSync(dataDir, { recursive: true, force: true });
		}
	}, 60_000);
});
