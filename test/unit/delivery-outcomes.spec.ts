/**
 * What an attempt means for its delivery (services/delivery/outcomes.ts judge): any 2xx succeeds,
 * 410 Gone disables the endpoint, everything else (3xx included: redirects are not followed,
 * timeouts, refused connections) is retried on the schedule, honouring Retry-After, until the 6th
 * attempt, after which the delivery is dead.
 */
import type { AttemptResult } from "../../services/delivery/attempt";
import type { Claimed } from "../../services/delivery/claims";
import { judge } from "../../services/delivery/outcomes";

const startedAt = new Date("2024-05-01T10:00:00.000Z");

/** A delivery that has had `attempts` attempts before this one, `scheduleBase` of them before a retry by hand. */
const delivery = (attempts = 0, scheduleBase = 0): Claimed => ({ id: 1, webhook_id: 2, event_seq: 3, event_type: "new_message", chat_id: 4, attempts, schedule_base: scheduleBase });

const result = (fields: Partial<AttemptResult> = {}): AttemptResult => ({ statusCode: 500, error: "HTTP 500", excerpt: null, durationMs: 120, retryAfterMs: null, startedAt, ...fields });

const mid = () => 0.5;
const at = (ms: number) => new Date(startedAt.getTime() + ms);

describe("judge", () => {
	it.each([200, 201, 202, 204, 299])("%d: succeeded, nothing more scheduled", (statusCode) => {
		expect(judge(delivery(), result({ statusCode, error: null }), mid)).toEqual({ verdict: "succeeded", nextAttemptAt: null });
		expect(judge(delivery(5), result({ statusCode, error: null }), mid)).toEqual({ verdict: "succeeded", nextAttemptAt: null });
	});

	it("410 Gone: the endpoint is gone, at any attempt", () => {
		expect(judge(delivery(), result({ statusCode: 410 }), mid)).toEqual({ verdict: "gone", nextAttemptAt: null });
		expect(judge(delivery(5), result({ statusCode: 410 }), mid)).toEqual({ verdict: "gone", nextAttemptAt: null });
	});

	it.each([
		["a 500", { statusCode: 500 }],
		["a 503", { statusCode: 503 }],
		["a 404", { statusCode: 404 }],
		["a 400", { statusCode: 400 }],
		["a 302 (redirects are not followed)", { statusCode: 302 }],
		["a 301", { statusCode: 301 }],
		["a 304", { statusCode: 304 }],
		["a 1xx", { statusCode: 100 }],
		["no answer within 10 s", { statusCode: null, error: "no answer within 10 s" }],
		["a refused connection", { statusCode: null, error: "connection failed: ECONNREFUSED" }],
	])("%s: retried about 1 s after the attempt ended", (_name, fields) => {
		expect(judge(delivery(), result(fields), mid)).toEqual({ verdict: "retry", nextAttemptAt: at(120 + 1_000) });
	});

	it("the schedule after each failed attempt: ~1 s, 10 s, 1 min, 5 min, 30 min, then dead", () => {
		const next = [0, 1, 2, 3, 4, 5].map((before) => judge(delivery(before), result(), mid));
		expect(next.map((o) => o.verdict)).toEqual(["retry", "retry", "retry", "retry", "retry", "dead"]);
		expect(next.map((o) => (o.nextAttemptAt ? o.nextAttemptAt.getTime() - startedAt.getTime() - 120 : null))).toEqual([1_000, 10_000, 60_000, 300_000, 1_800_000, null]);
	});

	it("jitter stays within ±20 %", () => {
		expect(judge(delivery(1), result(), () => 0).nextAttemptAt).toEqual(at(120 + 8_000));
		const high = judge(delivery(1), result(), () => 0.999999).nextAttemptAt!.getTime() - startedAt.getTime() - 120;
		expect(high).toBeLessThanOrEqual(12_000);
		expect(high).toBeGreaterThan(11_900);
	});

	it("a 429 with Retry-After: the next attempt no sooner than it says", () => {
		expect(judge(delivery(), result({ statusCode: 429, retryAfterMs: 3_000 }), mid)).toEqual({ verdict: "retry", nextAttemptAt: at(120 + 3_000) });
		// A Retry-After shorter than the schedule does not shorten it.
		expect(judge(delivery(2), result({ statusCode: 429, retryAfterMs: 3_000 }), mid)).toEqual({ verdict: "retry", nextAttemptAt: at(120 + 60_000) });
		// Retry-After on a 503 is honoured too.
		expect(judge(delivery(), result({ statusCode: 503, retryAfterMs: 20_000 }), mid)).toEqual({ verdict: "retry", nextAttemptAt: at(120 + 20_000) });
	});

	it("the 6th attempt failing makes the delivery dead, even with a Retry-After", () => {
		expect(judge(delivery(5), result({ statusCode: 429, retryAfterMs: 1_000 }), mid)).toEqual({ verdict: "dead", nextAttemptAt: null });
		expect(judge(delivery(5), result({ statusCode: null, error: "no answer within 10 s" }), mid)).toEqual({ verdict: "dead", nextAttemptAt: null });
	});

	it("after a retry by hand the schedule starts again, counted from the attempts made before it", () => {
		const next = [6, 7, 8, 9, 10, 11].map((before) => judge(delivery(before, 6), result(), mid));
		expect(next.map((o) => o.verdict)).toEqual(["retry", "retry", "retry", "retry", "retry", "dead"]);
		expect(next[0]!.nextAttemptAt).toEqual(at(120 + 1_000));
	});
});
