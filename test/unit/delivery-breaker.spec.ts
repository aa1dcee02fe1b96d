/**
 * The per-endpoint circuit breaker (services/delivery/breaker.ts) on the shared state: 5 consecutive
 * failures open it for 60 s; then it is half-open and one node holds the probe; the probe's success
 * closes it, its failure opens it again. Failures of one endpoint never touch another's breaker.
 */
import { BREAKER, admission, breakerState, recordFailure, recordSuccess } from "../../services/delivery/breaker";
import { createMemoryState } from "../../lib/state/memory";

describe("breaker", () => {
	const state = createMemoryState();
	const mayAttempt = async (id: number, owner: string) => (await admission(state, id, owner)) !== null;
	afterAll(() => state.close());

	it("the documented thresholds", () => {
		expect(BREAKER.failureThreshold).toBe(5);
		expect(BREAKER.openMs).toBe(60_000);
	});

	it("closed at first; 4 failures keep it closed, the 5th opens it for about 60 s", async () => {
		expect(await breakerState(state, 1)).toEqual({ state: "closed", openUntil: null });
		for (let i = 0; i < 4; i++) expect(await recordFailure(state, 1, "node-a")).toBe(false);
		expect((await breakerState(state, 1)).state).toBe("closed");
		expect(await mayAttempt(1, "node-a")).toBe(true);
		const before = Date.now();
		expect(await recordFailure(state, 1, "node-a")).toBe(true);
		const open = await breakerState(state, 1);
		expect(open.state).toBe("open");
		expect(open.openUntil!).toBeGreaterThanOrEqual(before + 60_000);
		expect(open.openUntil!).toBeLessThanOrEqual(Date.now() + 60_000);
		expect(await mayAttempt(1, "node-a")).toBe(false);
		expect(await mayAttempt(1, "node-b")).toBe(false);
		// Another endpoint is untouched.
		expect((await breakerState(state, 2)).state).toBe("closed");
		expect(await mayAttempt(2, "node-a")).toBe(true);
	});

	it("a success between failures resets the count: failures must be consecutive", async () => {
		for (let i = 0; i < 4; i++) await recordFailure(state, 3, "node-a");
		await recordSuccess(state, 3, "node-a");
		for (let i = 0; i < 4; i++) expect(await recordFailure(state, 3, "node-a")).toBe(false);
		expect((await breakerState(state, 3)).state).toBe("closed");
	});

	it("after the open period: half-open, one node holds the probe; its failure opens it again", async () => {
		for (let i = 0; i < 5; i++) await recordFailure(state, 4, "node-a");
		await state.set("breaker:4:open_until", String(Date.now() - 1), 60_000);
		expect((await breakerState(state, 4)).state).toBe("half_open");
		expect(await admission(state, 4, "node-a")).toBe("probe");
		expect(await mayAttempt(4, "node-b")).toBe(false);
		expect(await recordFailure(state, 4, "node-a")).toBe(true);
		expect((await breakerState(state, 4)).state).toBe("open");
		expect(await mayAttempt(4, "node-b")).toBe(false);
	});

	it("the probe's success closes it for every node", async () => {
		for (let i = 0; i < 5; i++) await recordFailure(state, 5, "node-a");
		await state.set("breaker:5:open_until", String(Date.now() - 1), 60_000);
		expect(await mayAttempt(5, "node-b")).toBe(true);
		await recordSuccess(state, 5, "node-b");
		expect(await breakerState(state, 5)).toEqual({ state: "closed", openUntil: null });
		expect(await mayAttempt(5, "node-a")).toBe(true);
		expect(await mayAttempt(5, "node-b")).toBe(true);
		// Closed again means counting from zero: 4 failures do not reopen it.
		for (let i = 0; i < 4; i++) expect(await recordFailure(state, 5, "node-a")).toBe(false);
	});
});
