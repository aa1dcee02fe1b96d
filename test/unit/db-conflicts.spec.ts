/**
 * A transaction MySQL rolled back as a deadlock (or a lock wait timeout) is done again: a delivery's
 * outcome lost that way stayed in flight until its lease ran out, and was then sent a second time.
 */
import type { Database } from "../../lib/db/connection";
import { CONFLICT_ATTEMPTS, retryingConflicts } from "../../lib/db/conflicts";
import { claimDeliveries } from "../../services/delivery/claims";
import { recordOutcomes } from "../../services/delivery/outcomes";
import { migratedDatabase } from "../support/database";

const deadlock = () => Object.assign(new Error("Deadlock found when trying to get lock; try restarting transaction"), { code: "ER_LOCK_DEADLOCK" });

describe("retryingConflicts", () => {
	it("runs the work again after a deadlock or lock wait timeout, up to its attempts", async () => {
		let runs = 0;
		await expect(retryingConflicts(async () => (++runs < CONFLICT_ATTEMPTS ? Promise.reject(deadlock()) : "done"))).resolves.toBe("done");
		expect(runs).toBe(CONFLICT_ATTEMPTS);
		runs = 0;
		await expect(retryingConflicts(async () => (++runs, Promise.reject(deadlock())))).rejects.toThrow(/Deadlock/);
		expect(runs).toBe(CONFLICT_ATTEMPTS);
	});

	it("does not run again after any other failure", async () => {
		let runs = 0;
		await expect(retryingConflicts(async () => (++runs, Promise.reject(Object.assign(new Error("dup"), { code: "ER_DUP_ENTRY" }))))).rejects.toThrow("dup");
		expect(runs).toBe(1);
	});
});

describe("delivery claims and outcomes meet a deadlock", () => {
	let db: Database;
	let realTransaction: Database["rawTransaction"];
	let deadlocksToThrow = 0;

	beforeAll(async () => {
		db = await migratedDatabase();
		realTransaction = db.rawTransaction.bind(db);
		db.rawTransaction = ((work, options) => {
			if (deadlocksToThrow > 0) {
				deadlocksToThrow--;
				return Promise.reject(deadlock());
			}
			return realTransaction(work, options);
		}) as Database["rawTransaction"];
		const hook = await db.models.Webhook.create({ owner_user_id: null, owner_api_key_id: null, url: "https://example.com/hook", scope: "all", secret_ciphertext: "x", key_id: "x" } as never);
		await db.models.WebhookDelivery.create({
			webhook_id: hook.id,
			event_seq: 1,
			event_type: "new_message",
			chat_id: null,
			status: "pending",
			next_attempt_at: new Date(Date.now() - 1_000),
		} as never);
	});
	afterAll(() => db.close());

	it("claims, and records the outcome, once the deadlock has passed", async () => {
		deadlocksToThrow = 1;
		const [claimed] = await claimDeliveries(db, [{ id: 1, ordered: false, count: 1, maxConcurrency: 1 }], "node-a", 30_000);
		expect(claimed).toMatchObject({ event_seq: 1 });

		deadlocksToThrow = 2;
		const result = { statusCode: 200, error: null, excerpt: null, durationMs: 5, retryAfterMs: null, startedAt: new Date() };
		await recordOutcomes(db, "node-a", [{ delivery: claimed!, result, verdict: "succeeded", nextAttemptAt: null }]);
		expect(await db.models.WebhookDelivery.findOne({ where: { event_seq: 1 }, raw: true })).toMatchObject({ status: "succeeded", attempts: 1, lease_owner: null });
		expect(await db.models.WebhookAttempt.count()).toBe(1);
	});
});
