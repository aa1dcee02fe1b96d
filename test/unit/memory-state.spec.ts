import type { SharedState } from "../../lib/state";
import { createMemoryState } from "../../lib/state/memory";

/** One window of takeSlots, as most of these tests take. */
const slot = (state: SharedState, key: string, limit: number, windowMs: number, log?: string) => state.takeSlots([{ key, limit, windowMs, ...(log === undefined ? {} : { log }) }]);
const logMoment = (state: SharedState, key: string, keep: number, ttlMs: number) => state.logMoments([{ key, keep, ttlMs }]);

describe("memory shared state", () => {
	let clock = 0;
	const state = createMemoryState(() => clock);
	afterAll(() => state.close());

	it("token bucket: burst, refusal with retry time, refill", async () => {
		clock = 1_000;
		for (let i = 0; i < 3; i++) expect((await state.takeToken("b", 1, 3)).allowed).toBe(true);
		const refused = await state.takeToken("b", 1, 3);
		expect(refused).toMatchObject({ allowed: false, remaining: 0, retryAfterMs: 1_000 });
		clock += 1_000;
		expect((await state.takeToken("b", 1, 3)).allowed).toBe(true);
	});

	it("sliding window: at most N in any window, and when the oldest frees", async () => {
		clock = 50_000;
		for (let i = 0; i < 3; i++) {
			expect((await slot(state, "s", 3, 1_000)).allowed).toBe(true);
			clock += 100;
		}
		expect(await slot(state, "s", 3, 1_000)).toEqual({ allowed: false, retryAfterMs: 700, pausedMs: 0 });
		clock = 51_001;
		expect((await slot(state, "s", 3, 1_000)).allowed).toBe(true);
		expect((await slot(state, "s", 3, 1_000)).allowed).toBe(false);
	});

	it("a sliding window may also count from a log of moments (logMoments): refused, nothing taken, while the log has `limit` in the window", async () => {
		clock = 60_000;
		await logMoment(state, "answered", 3, 2_000);
		clock += 300;
		await logMoment(state, "answered", 3, 2_000);
		clock += 300;
		// Two moments in the last second: a limit of 2 waits for the older one to leave it; 3 does not.
		expect(await slot(state, "after", 2, 1_000, "answered")).toEqual({ allowed: false, retryAfterMs: 400, pausedMs: 0 });
		expect(await slot(state, "after", 3, 1_000, "answered")).toEqual({ allowed: true, retryAfterMs: 0, pausedMs: 0 });
		// Limit 1: the newest moment decides.
		expect(await slot(state, "after-one", 1, 1_000, "answered")).toEqual({ allowed: false, retryAfterMs: 700, pausedMs: 0 });
		clock += 700;
		expect(await slot(state, "after-one", 1, 1_000, "answered")).toEqual({ allowed: true, retryAfterMs: 0, pausedMs: 0 });
		// The log keeps its last `keep` moments only, each for its TTL.
		for (let i = 0; i < 5; i++) await logMoment(state, "answered", 3, 2_000);
		expect(await slot(state, "after-keep", 4, 1_000, "answered")).toEqual({ allowed: true, retryAfterMs: 0, pausedMs: 0 });
		clock += 2_000;
		expect(await slot(state, "after-ttl", 1, 10_000, "answered")).toEqual({ allowed: true, retryAfterMs: 0, pausedMs: 0 });
	});

	it("several windows at once: all or none, refused until every one has room; a pause key holds them all", async () => {
		clock = 70_000;
		const pair = [
			{ key: "narrow", limit: 1, windowMs: 1_000 },
			{ key: "wide", limit: 2, windowMs: 5_000 },
		];
		expect(await state.takeSlots(pair)).toEqual({ allowed: true, retryAfterMs: 0, pausedMs: 0 });
		clock += 1_000;
		expect(await state.takeSlots(pair)).toEqual({ allowed: true, retryAfterMs: 0, pausedMs: 0 });
		clock += 1_000;
		// "narrow" has room, "wide" has not until its first slot leaves: nothing is taken, not even "narrow".
		expect(await state.takeSlots(pair)).toEqual({ allowed: false, retryAfterMs: 3_000, pausedMs: 0 });
		expect(await slot(state, "narrow", 1, 1_000)).toEqual({ allowed: true, retryAfterMs: 0, pausedMs: 0 });
		// Refused by both: the longer wait is the answer.
		expect((await state.takeSlots(pair)).retryAfterMs).toBe(3_000);
		await state.set("paused", "1", 500);
		expect(await state.takeSlots(pair, "paused")).toEqual({ allowed: false, retryAfterMs: 0, pausedMs: 500 });
		expect(await state.takeSlots([{ key: "elsewhere", limit: 1, windowMs: 1_000 }], "paused")).toMatchObject({ allowed: false, pausedMs: 500 });
		clock += 500;
		expect(await state.takeSlots([{ key: "elsewhere", limit: 1, windowMs: 1_000 }], "paused")).toEqual({ allowed: true, retryAfterMs: 0, pausedMs: 0 });
	});

	it("fixed window counts hits and resets", async () => {
		clock = 10_000;
		expect(await state.hit("w", 60_000)).toEqual({ count: 1, resetMs: 60_000 });
		expect((await state.hit("w", 60_000)).count).toBe(2);
		expect((await state.peekWindow("w")).count).toBe(2);
		clock += 60_000;
		expect((await state.hit("w", 60_000)).count).toBe(1);
	});

	it("leases: one holder, renewal, expiry hands it over, release only by the holder", async () => {
		clock = 100_000;
		expect(await state.acquireLease("l", "a", 1_000)).toBe(true);
		expect(await state.acquireLease("l", "b", 1_000)).toBe(false);
		expect(await state.renewLeases(["l"], "a", 1_000)).toEqual([true]);
		expect(await state.renewLeases(["l"], "b", 1_000)).toEqual([false]);
		await state.releaseLease("l", "b");
		expect(await state.acquireLease("l", "b", 1_000)).toBe(false);
		clock += 1_001;
		expect(await state.acquireLease("l", "b", 1_000)).toBe(true);
		expect(await state.renewLeases(["l"], "a", 1_000)).toEqual([false]);
	});

	it("lease holders: many read at once, null where free or expired", async () => {
		clock = 150_000;
		await state.acquireLease("h1", "a", 1_000);
		await state.acquireLease("h2", "b", 2_000);
		await state.set("h3", "a value, not a lease");
		expect(await state.leaseHolders(["h1", "h2", "h3", "h4"])).toEqual(["a", "b", null, null]);
		clock += 1_000;
		await state.releaseLease("h2", "b");
		expect(await state.leaseHolders(["h1", "h2"])).toEqual([null, null]);
		expect(await state.leaseHolders([])).toEqual([]);
	});

	it("values expire", async () => {
		clock = 200_000;
		await state.set("k", "v", 500);
		expect(await state.get("k")).toBe("v");
		clock += 500;
		expect(await state.get("k")).toBeNull();
	});
});
