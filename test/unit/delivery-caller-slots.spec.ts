/**
 * A caller's own slots for webhook test pings and replays (services/delivery/caller-slots.ts): a
 * few at once per user, an API key's calls counted as its user's, 429 with Retry-After beyond them,
 * and every slot given back when its call ends, however it ends.
 */
import { GatewayError, toApiError } from "../../lib/errors";
import { createMemoryState } from "../../lib/state/memory";
import type { Principal } from "../../services/auth/principal";
import { callerOf, inCallerSlot, REPLAY_SLOTS, TEST_SLOTS } from "../../services/delivery/caller-slots";

/** A call that runs until it is let go. */
function heldCall() {
	let release!: () => void;
	const released = new Promise<void>((resolve) => (release = resolve));
	let started!: () => void;
	const running = new Promise<void>((resolve) => (started = resolve));
	const work = async () => {
		started();
		await released;
		return "done";
	};
	return { work, running, release };
}

describe("inCallerSlot", () => {
	const state = createMemoryState();
	afterAll(() => state.close());

	it("two test pings per caller at once; the third is refused (429, Retry-After) without running; others are not affected", async () => {
		const calls = [heldCall(), heldCall()];
		const results = calls.map((c) => inCallerSlot(state, TEST_SLOTS, "user:1", c.work));
		await Promise.all(calls.map((c) => c.running));
		const ran = jest.fn(async () => "ran");
		const refusal = await inCallerSlot(state, TEST_SLOTS, "user:1", ran).catch((err: unknown) => err);
		expect(refusal).toBeInstanceOf(GatewayError);
		expect(toApiError(refusal)).toMatchObject({ status: 429, retryAfter: TEST_SLOTS.retryAfterSeconds, body: { error: { code: "RATE_LIMITED" } } });
		expect(ran).not.toHaveBeenCalled();
		expect(await inCallerSlot(state, TEST_SLOTS, "user:2", async () => "other")).toBe("other");
		for (const c of calls) c.release();
		expect(await Promise.all(results)).toEqual(["done", "done"]);
		expect(await inCallerSlot(state, TEST_SLOTS, "user:1", async () => "again")).toBe("again");
	});

	it("one replay per caller at once; a failed call gives its slot back", async () => {
		const call = heldCall();
		const result = inCallerSlot(state, REPLAY_SLOTS, "user:3", call.work);
		await call.running;
		await expect(inCallerSlot(state, REPLAY_SLOTS, "user:3", async () => "second")).rejects.toMatchObject({ code: 429, type: "RATE_LIMITED" });
		call.release();
		await result;
		await expect(inCallerSlot(state, REPLAY_SLOTS, "user:3", async () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
		expect(await inCallerSlot(state, REPLAY_SLOTS, "user:3", async () => "free")).toBe("free");
	});

	it("a slot whose node died frees when its lease runs out; a running call keeps renewing its own", async () => {
		jest.useFakeTimers({ doNotFake: ["nextTick", "setImmediate"] });
		try {
			let now = 0;
			const clocked = createMemoryState(() => now);
			const call = heldCall();
			const result = inCallerSlot(clocked, REPLAY_SLOTS, "user:4", call.work, 3_000);
			await call.running;
			// Renewed every second: still held 10 s on.
			for (let i = 0; i < 10; i++) {
				now += 1_000;
				jest.advanceTimersByTime(1_000);
				await Promise.resolve();
			}
			await expect(inCallerSlot(clocked, REPLAY_SLOTS, "user:4", async () => "x", 3_000)).rejects.toMatchObject({ type: "RATE_LIMITED" });
			call.release();
			await result;
			// A holder that never gives it back (its node died): free once the lease ran out.
			expect(await clocked.acquireLease("webhook-replay:user:5:0", "dead node", 3_000)).toBe(true);
			await expect(inCallerSlot(clocked, REPLAY_SLOTS, "user:5", async () => "x", 3_000)).rejects.toMatchObject({ type: "RATE_LIMITED" });
			now += 3_001;
			expect(await inCallerSlot(clocked, REPLAY_SLOTS, "user:5", async () => "after", 3_000)).toBe("after");
			await clocked.close();
		} finally {
			jest.useRealTimers();
		}
	});

	it("an API key's calls are its user's", () => {
		const base = { roles: [], permissions: [], rate_limit: 1, is_admin: false };
		expect(callerOf({ ...base, type: "api_key", id: 9, user_id: 4 } as Principal)).toBe(callerOf({ ...base, type: "user", id: 4, user_id: 4 } as Principal));
		expect(callerOf({ ...base, type: "system", id: 0, user_id: 0 } as Principal)).toBe("system");
	});
});
