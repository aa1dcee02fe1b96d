/**
 * The services' retention jobs in a running gateway: ingest prunes telegram_updates, auth
 * security_events and refresh_tokens, broker (opt-in) events, each under a lease of its own; and a
 * webhook delivery whose event was pruned while it waited ends dead, saying why, instead of
 * waiting for ever. Rows are backdated; nothing waits for the hourly timer.
 */
import { QueryTypes } from "sequelize";
import type { ServiceBroker } from "moleculer";
import type { RetentionThis } from "../../mixins/retention.mixin";
import { startTestGateway, type TestGateway } from "../support/harness";
import { createWebhook, waitForDeliveries, fastForward, ok, WEBHOOK_TEST_ENV, WebhookScene } from "../support/receivers";
import { expectedMessagesUpdates, keptRows, messagesUpdates, SCENARIO_ENV, seedAgedRows, storedRows } from "../support/table-retention";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

const DAY_MS = 24 * 60 * 60_000;

const pruneExpired = (broker: ServiceBroker, service: string) => (broker.getLocalService(service) as unknown as RetentionThis).pruneExpired();

describe("retention in a running gateway", () => {
	let gw: TestGateway | undefined;
	afterEach(async () => {
		await gw?.stop();
		gw = undefined;
	});

	const start = async (env: Record<string, string> = {}) => {
		gw = await startTestGateway({ env: { SERVICES: "auth,ingest,broker", ...SCENARIO_ENV, ...env } });
		return gw;
	};

	it("each service prunes the tables it owns: what is past its retention goes, the rest stays", async () => {
		const { broker, runtime } = await start();
		const seeded = await seedAgedRows(runtime.db);
		await Promise.all(["ingest", "auth", "broker"].map((service) => pruneExpired(broker, service)));
		expect(await storedRows(runtime.db, seeded)).toEqual(keptRows(seeded));
		expect(await messagesUpdates(runtime.db, seeded)).toEqual(expectedMessagesUpdates(seeded));
	});

	it("0 days keeps security events and the event log; updates and spent refresh tokens still go", async () => {
		const { broker, runtime } = await start({ SECURITY_EVENT_RETENTION_DAYS: "0", EVENT_RETENTION_DAYS: "0" });
		const seeded = await seedAgedRows(runtime.db);
		await Promise.all(["ingest", "auth", "broker"].map((service) => pruneExpired(broker, service)));
		const kept = keptRows(seeded);
		expect(await storedRows(runtime.db, seeded)).toEqual({ ...kept, security_events: seeded.rows.security_events.all, events: seeded.rows.events.all });
	});

	it("a table whose lease another node holds is left to that node; the service's other tables are pruned", async () => {
		const { broker, runtime } = await start();
		const seeded = await seedAgedRows(runtime.db);
		expect(await runtime.state.acquireLease("retention:security_events", "another-node", 60_000)).toBe(true);
		await pruneExpired(broker, "auth");
		const stored = await storedRows(runtime.db, seeded);
		expect(stored.security_events).toEqual(seeded.rows.security_events.all);
		expect(stored.refresh_tokens).toEqual(seeded.rows.refresh_tokens.kept);
	});
});

describe("a webhook delivery whose event was pruned while it waited", () => {
	let t: TelegramGateway;
	const scene = new WebhookScene(8100);

	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "webhook", env: { ...WEBHOOK_TEST_ENV, EVENT_RETENTION_DAYS: "1" } });
		const added = await t.addBot({ username: "retention_bot" });
		Object.assign(scene, { t, bot: { id: added.bot.id, token: added.token } });
	}, 60_000);
	afterAll(async () => {
		await scene.reset();
		await t.stop();
	});

	it("ends dead with the reason in last_error, and nothing more is sent", async () => {
		const chat = await scene.newChat();
		const receiver = await scene.receiver((request) => (request.index === 0 ? { status: 500, body: "not now" } : { status: 200, body: "ok" }));
		const hook = await createWebhook(t, { url: receiver.url, scope: "chat", chat_ids: [chat.chatId] });
		scene.say(chat.telegramId, "kept waiting");
		const [waiting] = await waitForDeliveries(t, hook.id, (log) => log.length === 1 && log[0]!.status === "failed");
		// Two days pass while it waits for its retry; the event log keeps a day.
		const { db } = t.gw.runtime;
		await db.sequelize.query("UPDATE events SET created_at = ? WHERE seq = ?", { replacements: [new Date(Date.now() - 2 * DAY_MS), waiting!.event_seq] });
		await pruneExpired(t.gw.broker, "broker");
		const left = await db.sequelize.query("SELECT seq FROM events WHERE seq = ?", { replacements: [waiting!.event_seq], type: QueryTypes.SELECT });
		expect(left).toEqual([]);

		receiver.behaviour = ok();
		await fastForward(t, hook.id);
		const [dead] = await waitForDeliveries(t, hook.id, (log) => log[0]!.status === "dead");
		expect(dead).toMatchObject({ id: waiting!.id, attempts: 2, last_error: `Not sent: event ${waiting!.event_seq} is no longer in the event log (removed by EVENT_RETENTION_DAYS)` });
		expect(receiver.requests).toHaveLength(1);
	});
});
