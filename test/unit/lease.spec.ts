/** LeaseRunner (lib/lease.ts): which leases a runner could take, read before trying any. */
import { LeaseRunner } from "../../lib/lease";
import { createMemoryState } from "../../lib/state/memory";

describe("LeaseRunner.available", () => {
	const state = createMemoryState();
	afterAll(() => state.close());

	it("free leases and ours not running are available; another owner's and ours running are not", async () => {
		const mine = new LeaseRunner(state, "node-a:1", { ttlMs: 10_000 });
		await state.acquireLease("theirs", "node-b:1", 10_000);
		// Ours in the store, not running here: a release that failed, to be taken again.
		await state.acquireLease("stale", "node-a:1", 10_000);
		let stop!: () => void;
		const running = mine.run("running", () => new Promise<void>((resolve) => (stop = resolve)));
		await new Promise((r) => setImmediate(r));
		expect(mine.isRunning("running")).toBe(true);

		expect(await mine.available(["free", "theirs", "stale", "running"])).toEqual([true, false, true, false]);

		stop();
		expect(await running).toBe(true);
		expect(await mine.available(["running"])).toEqual([true]);
	});
});
