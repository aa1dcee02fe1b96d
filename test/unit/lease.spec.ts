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

describe("LeaseRunner.abortAll (shutdown)", () => {
	const state = createMemoryState();
	afterAll(() => state.close());

	it("work whose lease was still being taken does not start, and its lease is let go; nothing starts afterwards", async () => {
		const runner = new LeaseRunner(state, "node-a:1", { ttlMs: 10_000 });
		const acquire = state.acquireLease.bind(state);
		let taken!: () => void;
		const slowStore = new Promise<void>((resolve) => (taken = resolve));
		// A store that answers late (Redis): the lease is granted after the shutdown began.
		state.acquireLease = async (key, owner, ttlMs) => {
			await slowStore;
			return acquire(key, owner, ttlMs);
		};
		const started: string[] = [];
		const pending = runner.run("poller:bot:1", async () => {
			started.push("poller:bot:1");
		});
		runner.abortAll();
		taken();
		expect(await pending).toBe(false);
		expect(started).toEqual([]);
		expect(await state.leaseHolders(["poller:bot:1"])).toEqual([null]);
		state.acquireLease = acquire;
		expect(await runner.run("poller:bot:2", async () => void started.push("poller:bot:2"))).toBe(false);
		expect(started).toEqual([]);
	});
});
