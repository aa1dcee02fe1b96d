/**
 * Flood pacing in the Redis shared state, across a handover of the sender lease: the reservation
 * (one Lua script) also counts from when Telegram answered the sends before, whichever node made them.
 * Two clients ("nodes") on the cluster suite's Redis, in a namespace of their own; real time (the
 * server's clock), so the waits are checked within a tolerance.
 */
import { randomBytes } from "node:crypto";
import type { SharedState } from "../../lib/state";
import { createRedisState } from "../../lib/state/redis";
import { noteAnswered, reserveSend } from "../../services/bots/flood";
import { REDIS_URL } from "./support/cluster";

/** One window of takeSlots, as most of these tests take. */
const slot = (state: SharedState, key: string, limit: number, windowMs: number, log?: string) => state.takeSlots([{ key, limit, windowMs, ...(log === undefined ? {} : { log }) }]);
const logMoment = (state: SharedState, key: string, keep: number, ttlMs: number) => state.logMoments([{ key, keep, ttlMs }]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Timers and round trips: a wait measured here may be this much shorter than the exact one. */
const SLACK_MS = 120;

describe("Redis flood state: answers counted across nodes", () => {
	let a: SharedState;
	let b: SharedState;

	beforeAll(async () => {
		const prefix = `test-flood-${randomBytes(4).toString("hex")}:`;
		a = await createRedisState(REDIS_URL, prefix);
		b = await createRedisState(REDIS_URL, prefix);
	});
	afterAll(async () => {
		await a.close();
		await b.close();
	});

	it("logMoments and takeSlots with a log: refused, nothing taken, while the log has `limit` moments in the window", async () => {
		await logMoment(a, "answered", 3, 2_000);
		await sleep(300);
		await logMoment(a, "answered", 3, 2_000);
		const refused = await slot(b, "after", 2, 1_000, "answered");
		expect(refused.allowed).toBe(false);
		expect(refused.retryAfterMs).toBeGreaterThan(700 - SLACK_MS);
		expect(refused.retryAfterMs).toBeLessThanOrEqual(700);
		expect(await slot(b, "after", 3, 1_000, "answered")).toEqual({ allowed: true, retryAfterMs: 0, pausedMs: 0 });
		// Nothing was taken by the refusal: the slot log holds the one allowed take only.
		expect(await slot(b, "after", 2, 1_000)).toEqual({ allowed: true, retryAfterMs: 0, pausedMs: 0 });
		expect((await slot(b, "after", 2, 1_000)).allowed).toBe(false);
		// The log keeps its last `keep` moments only.
		for (let i = 0; i < 5; i++) await logMoment(a, "answered", 3, 2_000);
		expect((await slot(b, "after-keep", 4, 1_000, "answered")).allowed).toBe(true);
		expect((await slot(b, "after-keep-3", 3, 1_000, "answered")).allowed).toBe(false);
	});

	it("takeSlots: all or none across windows and nodes, and a pause key (a value with a ttl) holds them all", async () => {
		const pair = [
			{ key: "narrow", limit: 1, windowMs: 1_000 },
			{ key: "wide", limit: 1, windowMs: 3_000 },
		];
		expect(await a.takeSlots(pair)).toEqual({ allowed: true, retryAfterMs: 0, pausedMs: 0 });
		await sleep(1_100);
		const refused = await b.takeSlots(pair);
		expect(refused).toMatchObject({ allowed: false, pausedMs: 0 });
		expect(refused.retryAfterMs).toBeGreaterThan(1_900 - SLACK_MS);
		expect(refused.retryAfterMs).toBeLessThanOrEqual(1_900);
		// The refusal took nothing in "narrow", which had room.
		expect((await slot(a, "narrow", 1, 1_000)).allowed).toBe(true);
		await b.set("paused", "1", 400);
		const paused = await a.takeSlots([{ key: "other", limit: 1, windowMs: 1_000 }], "paused");
		expect(paused).toMatchObject({ allowed: false, retryAfterMs: 0 });
		expect(paused.pausedMs).toBeGreaterThan(400 - SLACK_MS);
		expect(paused.pausedMs).toBeLessThanOrEqual(400);
		await sleep(450);
		expect(await a.takeSlots([{ key: "other", limit: 1, windowMs: 1_000 }], "paused")).toEqual({ allowed: true, retryAfterMs: 0, pausedMs: 0 });
		// Several logs in one call: each keeps its own `keep`.
		await a.logMoments([
			{ key: "log-1", keep: 1, ttlMs: 2_000 },
			{ key: "log-2", keep: 2, ttlMs: 2_000 },
		]);
		await a.logMoments([
			{ key: "log-1", keep: 1, ttlMs: 2_000 },
			{ key: "log-2", keep: 2, ttlMs: 2_000 },
		]);
		expect((await slot(b, "after-log-1", 2, 1_000, "log-1")).allowed).toBe(true);
		expect((await slot(b, "after-log-2", 2, 1_000, "log-2")).allowed).toBe(false);
	});

	it("a private chat: node B's send waits a second (and the margin) after node A's late answer, not after A's reservation", async () => {
		const started = Date.now();
		expect(await reserveSend(a, 1, 10, "private")).toEqual({ waitMs: 0, pausedMs: 0 });
		await sleep(700);
		await noteAnswered(a, 1, 10, "private");
		await sleep(1_200 - (Date.now() - started));
		// A's slot has left its window; A's answer is about 500 ms old.
		const { waitMs: wait } = await reserveSend(b, 1, 10, "private");
		expect(wait).toBeGreaterThan(650 - SLACK_MS);
		expect(wait).toBeLessThanOrEqual(650 + SLACK_MS);
		await sleep(wait + 20);
		expect((await reserveSend(b, 1, 10, "private")).waitMs).toBe(0);
	});

	it("the bot's 30 a second: node B waits for the window counted from A's answers", async () => {
		const started = Date.now();
		for (let chat = 100; chat < 130; chat++) expect((await reserveSend(a, 2, chat, "private")).waitMs).toBe(0);
		await sleep(700 - (Date.now() - started));
		await Promise.all(Array.from({ length: 30 }, (_, i) => noteAnswered(a, 2, 100 + i, "private")));
		await sleep(1_200 - (Date.now() - started));
		const { waitMs: wait } = await reserveSend(b, 2, 999, "private");
		expect(wait).toBeGreaterThan(650 - SLACK_MS);
		expect(wait).toBeLessThanOrEqual(650 + SLACK_MS);
		await sleep(wait + 20);
		expect((await reserveSend(b, 2, 1_000, "private")).waitMs).toBe(0);
	});
});
