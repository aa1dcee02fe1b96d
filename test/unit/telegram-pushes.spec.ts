/**
 * An api node without ingest of its own queues Telegram pushes for its calls to ingest. Anyone can
 * add to that queue (the secret is checked by ingest), so made-up paths are answered at once and the
 * queue has a cap past which a push is answered 503 with Retry-After (Telegram redelivers).
 * Two real brokers on Moleculer's Fake transporter; ingest's receiveBatch is held until released.
 * Before a push's body is read, verify() asks ingest.checkPush about its path and secret.
 */
import { ServiceBroker } from "moleculer";
import { GatewayError, toApiError } from "../../lib/errors";
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

describe("verify(): a push's path and secret, asked of ingest before the body is read", () => {
	const namespace = `verify-${process.pid}-${Date.now()}`;
	const api = new ServiceBroker({ namespace, nodeID: "api", transporter: "Fake", logger: false });
	const ingest = new ServiceBroker({ namespace, nodeID: "ingest", transporter: "Fake", logger: false });
	const asked: Array<{ path: string; secret?: string }> = [];
	const SECRET = "s".repeat(64);

	beforeAll(async () => {
		// What ingest.checkPush answers, for one bot: 404 for another path, 401 for another secret.
		ingest.createService({
			name: "ingest",
			actions: {
				checkPush(ctx) {
					const push = ctx.params as { path: string; secret?: string };
					asked.push(push);
					if (push.path !== PATH) throw new GatewayError("NOT_FOUND", "Webhook not found");
					if (push.secret !== SECRET) throw new GatewayError("UNAUTHORIZED", "Missing or wrong X-Telegram-Bot-Api-Secret-Token");
					return { ok: true };
				},
				receiveBatch: () => [],
			},
		});
		await Promise.all([api.start(), ingest.start()]);
		await api.waitForServices("ingest");
	});
	afterAll(() => Promise.all([api.stop(), ingest.stop()]));

	const outcome = (p: Promise<void>) => p.then(() => "taken", (err: GatewayError) => err.type);

	it("refuses what ingest refuses, keeps what it took until forget(), and asks nothing for a path no bot can have", async () => {
		const pushes = telegramPushes(api);
		asked.length = 0;
		expect(await outcome(pushes.verify("../../health", SECRET))).toBe("NOT_FOUND");
		expect(asked).toEqual([]);
		expect(await outcome(pushes.verify("b".repeat(64), SECRET))).toBe("NOT_FOUND");
		expect(await outcome(pushes.verify(PATH, undefined))).toBe("UNAUTHORIZED");
		expect(await outcome(pushes.verify(PATH, "wrong"))).toBe("UNAUTHORIZED");
		// Refusals are asked again each time; what was taken is not.
		expect(await outcome(pushes.verify(PATH, "wrong"))).toBe("UNAUTHORIZED");
		expect(await Promise.all([pushes.verify(PATH, SECRET), pushes.verify(PATH, SECRET)].map(outcome))).toEqual(["taken", "taken"]);
		expect(await outcome(pushes.verify(PATH, SECRET))).toBe("taken");
		expect(asked).toEqual([{ path: "b".repeat(64), secret: SECRET }, { path: PATH }, { path: PATH, secret: "wrong" }, { path: PATH, secret: "wrong" }, { path: PATH, secret: SECRET }]);
		pushes.forget();
		expect(await outcome(pushes.verify(PATH, SECRET))).toBe("taken");
		expect(asked).toHaveLength(6);
	});

	it("with only ingest nodes of an earlier version (no checkPush), pushes go on to be read and checked as before; with no ingest at all, 503", async () => {
		const older = new ServiceBroker({ namespace: `${namespace}-old`, nodeID: "api-old", transporter: "Fake", logger: false });
		const olderIngest = new ServiceBroker({ namespace: `${namespace}-old`, nodeID: "ingest-old", transporter: "Fake", logger: false });
		olderIngest.createService({ name: "ingest", actions: { receiveBatch: () => [] } });
		const alone = new ServiceBroker({ nodeID: "api-alone", logger: false });
		await Promise.all([older.start(), olderIngest.start(), alone.start()]);
		try {
			await older.waitForServices("ingest");
			expect(await outcome(telegramPushes(older).verify(PATH, "anything"))).toBe("taken");
			const error = await telegramPushes(alone).verify(PATH, SECRET).catch((err: unknown) => err);
			expect(answerStatus(error)).toBe(503);
		} finally {
			await Promise.all([older.stop(), olderIngest.stop(), alone.stop()]);
		}
	});
});

function answerStatus(err: unknown): number {
	return toApiError(err).status;
}
