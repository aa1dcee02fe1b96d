/**
 * An api node without ingest of its own queues Telegram pushes for its calls to ingest. Anyone can
 * add to that queue (the secret is checked by ingest), so made-up paths are answered at once and the
 * queue has a cap past which a push is answered 503 with Retry-After (Telegram redelivers).
 * Two real brokers on Moleculer's Fake transporter; ingest's receiveBatch is held until released.
 */
import { ServiceBroker } from "moleculer";
import { GatewayError } from "../../lib/errors";
import { metricsOf } from "../../lib/metrics";
import { answerOf, telegramPushes } from "../../services/api/telegram-pushes";
import type { PushOutcome, TelegramPush } from "../../services/ingest/types";

const PATH = "a".repeat(64);

describe("Telegram pushes from an api node to ingest on another node", () => {
	const namespace = `pushes-${process.pid}-${Date.now()}`;
	const api = new ServiceBroker({ namespace, nodeID: "api", transporter: "Fake", logger: false });
	const ingest = new ServiceBroker({ namespace, nodeID: "ingest", transporter: "Fake", logger: false });
	const calls: TelegramPush[][] = [];
	const held: Array<() => void> = [];

	beforeAll(async () => {
		ingest.createService({
			name: "ingest",
			actions: {
				async receiveBatch(ctx): Promise<PushOutcome[]> {
					const { pushes } = ctx.params as { pushes: TelegramPush[] };
					calls.push(pushes);
					await new Promise<void>((release) => held.push(release));
					return pushes.map(() => ({ ok: true }));
				},
			},
		});
		await Promise.all([api.start(), ingest.start()]);
		await api.waitForServices("ingest");
	});
	afterAll(() => Promise.all([api.stop(), ingest.stop()]));

	const releaseAll = async () => {
		for (let i = 0; i < 50 && (held.length > 0 || i < 5); i++) {
			held.splice(0).forEach((release) => release());
			await new Promise((r) => setTimeout(r, 5));
		}
	};
	const refusal = (err: unknown) => {
		if (!(err instanceof GatewayError)) throw err;
		return { code: err.type, message: err.message, details: err.data as unknown };
	};

	it("answers a path no bot can have 404 without a call to ingest", async () => {
		const pushes = telegramPushes(api);
		calls.length = 0;
		await expect(pushes.submit({ path: "../../health", body: { update_id: 1 }, bytes: 20 }).catch(refusal)).resolves.toEqual({
			code: "NOT_FOUND",
			message: "Webhook not found",
			details: undefined,
		});
		expect(calls).toEqual([]);
	});

	it("refuses pushes past the waiting cap with UNAVAILABLE and retry_after, and takes pushes again once calls return", async () => {
		const pushes = telegramPushes(api, { items: 3, bytes: 1024 * 1024 });
		const overloaded = async () => (await metricsOf(api).updatesRejected.get()).values.find((v) => v.labels.reason === "overloaded")?.value ?? 0;
		const overloadedBefore = await overloaded();
		calls.length = 0;
		const answers = Array.from({ length: 7 }, (_, i) => pushes.submit({ path: PATH, body: { update_id: i }, bytes: 30 }).then(answerOf, refusal));
		// Two calls in flight (one push each), three waiting, two refused.
		await new Promise((r) => setTimeout(r, 50));
		expect(calls.map((c) => c.length)).toEqual([1, 1]);
		await releaseAll();
		const settled = await Promise.all(answers);
		expect(settled.filter((a) => "ok" in a)).toHaveLength(5);
		expect(settled.slice(5)).toEqual([
			{ code: "UNAVAILABLE", message: "Ingest is unavailable, try again later", details: { retry_after: 1 } },
			{ code: "UNAVAILABLE", message: "Ingest is unavailable, try again later", details: { retry_after: 1 } },
		]);
		expect((await overloaded()) - overloadedBefore).toBe(2);
		const again = pushes.submit({ path: PATH, body: { update_id: 8 }, bytes: 30 });
		await releaseAll();
		expect(await again).toEqual({ ok: true });
	});

	it("refuses a push that would take the waiting bytes past the cap", async () => {
		const pushes = telegramPushes(api, { items: 100, bytes: 1_000 });
		const sizes = [10, 10, 600, 300, 200];
		const answers = sizes.map((bytes, i) => pushes.submit({ path: PATH, body: { update_id: i }, bytes }).then(answerOf, refusal));
		await releaseAll();
		const settled = await Promise.all(answers);
		// 10 and 10 go at once; 600 and 300 wait (900); 200 would make 1,100.
		expect(settled.map((a) => ("ok" in a ? "ok" : a.code))).toEqual(["ok", "ok", "ok", "ok", "UNAVAILABLE"]);
	});
});
