/**
 * The retry schedule (services/delivery/schedule.ts): about 1 s, 10 s, 1 min, 5 min and 30 min with
 * ±20 % jitter, a receiver's Retry-After (seconds or an HTTP date) honoured, and dead after the 6th
 * attempt.
 */
import { MAX_ATTEMPTS, nextDelayMs, parseRetryAfter, RETRY_DELAYS_MS } from "../../services/delivery/schedule";

const BASES = [1_000, 10_000, 60_000, 300_000, 1_800_000];

describe("nextDelayMs", () => {
	it("the documented schedule: 1 s, 10 s, 1 min, 5 min, 30 min; six attempts in all", () => {
		expect([...RETRY_DELAYS_MS]).toEqual(BASES);
		expect(MAX_ATTEMPTS).toBe(6);
		expect(BASES.map((_, i) => nextDelayMs(i + 1, null, () => 0.5))).toEqual(BASES);
	});

	it.each(BASES.map((base, i) => [i + 1, base]))("after failed attempt %d: %d ms ±20 %%", (attempts, base) => {
		expect(nextDelayMs(attempts, null, () => 0)).toBe(Math.round(base * 0.8));
		expect(nextDelayMs(attempts, null, () => 0.999999)).toBeLessThanOrEqual(Math.round(base * 1.2));
		expect(nextDelayMs(attempts, null, () => 0.999999)).toBeGreaterThan(Math.round(base * 1.19));
		for (let i = 0; i < 200; i++) {
			const delay = nextDelayMs(attempts, null)!;
			expect(delay).toBeGreaterThanOrEqual(base * 0.8);
			expect(delay).toBeLessThanOrEqual(base * 1.2);
		}
	});

	it("jitter spreads a failed batch: not every retry lands on the same millisecond", () => {
		const delays = new Set(Array.from({ length: 50 }, () => nextDelayMs(1, null)));
		expect(delays.size).toBeGreaterThan(10);
	});

	it("dead after the 6th attempt: no delay after it (or later)", () => {
		expect(nextDelayMs(5, null)).not.toBeNull();
		expect(nextDelayMs(6, null)).toBeNull();
		expect(nextDelayMs(7, null)).toBeNull();
		expect(nextDelayMs(6, 1_000)).toBeNull();
	});

	it("a longer Retry-After wins over the schedule; a shorter one does not shorten it", () => {
		expect(nextDelayMs(1, 3_000, () => 0.5)).toBe(3_000);
		expect(nextDelayMs(1, 120_000, () => 0.5)).toBe(120_000);
		expect(nextDelayMs(2, 3_000, () => 0.5)).toBe(10_000);
		expect(nextDelayMs(1, 0, () => 0.5)).toBe(1_000);
	});
});

describe("parseRetryAfter", () => {
	const now = Date.parse("Wed, 21 Oct 2015 07:28:00 GMT");

	it("seconds", () => {
		expect(parseRetryAfter("3", now)).toBe(3_000);
		expect(parseRetryAfter("0", now)).toBe(0);
		expect(parseRetryAfter(" 120 ", now)).toBe(120_000);
	});

	it("an HTTP date: the time until it", () => {
		expect(parseRetryAfter("Wed, 21 Oct 2015 07:28:30 GMT", now)).toBe(30_000);
		expect(parseRetryAfter(new Date(now + 5 * 60_000).toUTCString(), now)).toBe(300_000);
	});

	it("negative, fractional or otherwise malformed numbers are unreadable, not a date", () => {
		for (const text of ["-5", "1.5", "+3", "1e3", "-1 day"]) expect(parseRetryAfter(text, now)).toBeNull();
	});

	it("an HTTP date in the past: now", () => {
		expect(parseRetryAfter("Wed, 21 Oct 2015 07:27:00 GMT", now)).toBe(0);
	});

	it("at most an hour", () => {
		expect(parseRetryAfter("86400", now)).toBe(3_600_000);
		expect(parseRetryAfter("Thu, 22 Oct 2015 07:28:00 GMT", now)).toBe(3_600_000);
	});

	it("absent or unreadable: null", () => {
		expect(parseRetryAfter(undefined, now)).toBeNull();
		expect(parseRetryAfter("", now)).toBeNull();
		expect(parseRetryAfter("soon", now)).toBeNull();
	});

	it("a malformed value never delays beyond the schedule", () => {
		expect([null, 0]).toContain(parseRetryAfter("-5", now));
		expect(nextDelayMs(1, parseRetryAfter("-5", now), () => 0.5)).toBe(1_000);
	});

	it("a repeated header: the first value", () => {
		expect(parseRetryAfter(["7", "100"], now)).toBe(7_000);
	});
});
