/**
 * Recording attempts: the attempt row for the delivery log, and the delivery's new state
 * (succeeded, failed with its next attempt, or dead), many at once in one transaction. A 410 Gone
 * disables the endpoint. Rows are only changed while this node still holds their lease. A delivery
 * removed meanwhile (its webhook deleted) is left out: its attempt row would fail the whole batch
 * on the foreign key, and the other deliveries of the batch, unrecorded, would be sent again.
 */
import type { Database } from "../../lib/db/connection";
import { retryingConflicts } from "../../lib/db/conflicts";
import { all, inIds, insertRows, run } from "../../lib/db/raw";
import type { AttemptResult } from "./attempt";
import type { Claimed } from "./claims";
import { nextDelayMs } from "./schedule";

export type Verdict = "succeeded" | "retry" | "dead" | "gone";

export interface Outcome {
	delivery: Claimed;
	result: AttemptResult;
	verdict: Verdict;
	nextAttemptAt: Date | null;
}

/** What an attempt means for its delivery. */
export function judge(delivery: Claimed, result: AttemptResult, random?: () => number): Omit<Outcome, "delivery" | "result"> {
	const code = result.statusCode;
	if (code !== null && code >= 200 && code < 300) return { verdict: "succeeded", nextAttemptAt: null };
	if (code === 410) return { verdict: "gone", nextAttemptAt: null };
	const delay = nextDelayMs(delivery.attempts - delivery.schedule_base + 1, result.retryAfterMs, random);
	if (delay === null) return { verdict: "dead", nextAttemptAt: null };
	return { verdict: "retry", nextAttemptAt: new Date(result.startedAt.getTime() + result.durationMs + delay) };
}

const ATTEMPT_COLUMNS = ["delivery_id", "attempt", "started_at", "duration_ms", "status_code", "error", "response_excerpt"] as const;

export async function recordOutcomes(db: Database, owner: string, given: Outcome[]): Promise<void> {
	if (given.length === 0) return;
	const now = new Date();
	// A deadlock with another node's claim (MySQL) would leave the delivery in flight until its lease
	// ran out, and then send it again: done again instead. Read committed: only matching rows are locked.
	await retryingConflicts(() => db.rawTransaction(async (t) => {
		// Locked on MySQL (in id order), so a webhook's deletion waits for this record or comes before it.
		const ids = inIds(db, [...new Set(given.map((o) => o.delivery.id))].sort((a, b) => a - b));
		const present = await all<{ id: number | string }>(db, t, `SELECT id FROM webhook_deliveries WHERE id ${ids.sql} ORDER BY id${db.dialect === "mysql" ? " FOR UPDATE" : ""}`, ids.values);
		const kept = new Set(present.map((row) => Number(row.id)));
		const outcomes = given.filter((o) => kept.has(o.delivery.id));
		if (outcomes.length === 0) return;
		await insertRows(
			db,
			t,
			"webhook_attempts",
			ATTEMPT_COLUMNS,
			outcomes.map(({ delivery, result }) => [
				delivery.id,
				delivery.attempts + 1,
				result.startedAt,
				result.durationMs,
				result.statusCode,
				result.error?.slice(0, 1024) ?? null,
				result.excerpt,
			]),
		);
		// Successes, the common case, in one statement per status code; the rest one by one.
		const succeeded = new Map<number, number[]>();
		for (const { delivery, result, verdict } of outcomes) {
			if (verdict === "succeeded") succeeded.set(result.statusCode!, [...(succeeded.get(result.statusCode!) ?? []), delivery.id]);
		}
		for (const [statusCode, ids] of succeeded) {
			await run(
				db,
				t,
				`UPDATE webhook_deliveries SET status = 'succeeded', attempts = attempts + 1, lease_owner = NULL, lease_until = NULL,
				        last_status_code = ?, last_error = NULL, delivered_at = ?, updated_at = ? WHERE lease_owner = ? AND id IN (${ids.map(() => "?").join(", ")})`,
				[statusCode, now, now, owner, ...ids],
			);
		}
		for (const { delivery, result, verdict, nextAttemptAt } of outcomes) {
			if (verdict === "succeeded") continue;
			const status = verdict === "retry" ? "failed" : "dead";
			const error = verdict === "gone" ? "410 Gone: the endpoint is disabled" : result.error;
			await run(
				db,
				t,
				`UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt_at = ?, lease_owner = NULL, lease_until = NULL,
				        last_status_code = ?, last_error = ?, updated_at = ? WHERE id = ? AND lease_owner = ?`,
				[status, delivery.attempts + 1, nextAttemptAt ?? now, result.statusCode, error?.slice(0, 1024) ?? null, now, delivery.id, owner],
			);
			if (verdict === "gone") {
				await run(db, t, "UPDATE webhooks SET is_active = ?, disabled_reason = ?, updated_at = ? WHERE id = ?", [
					false,
					"the endpoint answered 410 Gone",
					now,
					delivery.webhook_id,
				]);
			}
		}
	}, { readCommitted: true }));
}
