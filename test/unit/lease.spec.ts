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

describe("LeaseRunner renewals", () => {
	it("renews every held lease in one call per tick; a lease lost to another owner aborts only its own work", async () => {
		let clock = 1_000_000;
		const state = createMemoryState(() => clock);
		const runner = new LeaseRunner(state, "node-a:1", { ttlMs: 300, renewEveryMs: 20 });
		const calls: string[][] = [];
		const renew = state.renewLeases.bind(state);
		state.renewLeases = async (keys, owner, ttlMs) => {
			calls.push([...keys]);
			return renew(keys, owner, ttlMs);
		};
		const signals = new Map<string, AbortSignal>();
		const stops = new Map<string, () => void>();
		const runs = ["poller:1", "poller:2", "poller:3"].map((key) =>
			runner.run(key, (signal) => {
				signals.set(key, signal);
				return new Promise<void>((resolve) => {
					stops.set(key, resolve);
					signal.addEventListener("abort", () => resolve());
				});
			}),
		);
		await new Promise((r) => setTimeout(r, 50));
		expect(calls.length).toBeGreaterThanOrEqual(1);
		expect(calls.every((keys) => keys.length === 3)).toBe(true);

		// poller:2's lease runs out and another node takes it: the next renewal aborts that work alone.
		await state.releaseLease("poller:2", "node-a:1");
		expect(await state.acquireLease("poller:2", "node-b:1", 300)).toBe(true);
		await new Promise((r) => setTimeout(r, 50));
		expect(signals.get("poller:2")!.aborted).toBe(true);
		expect(signals.get("poller:1")!.aborted).toBe(false);
		expect(signals.get("poller:3")!.aborted).toBe(false);
		expect(await runs[1]).toBe(true);

		// Renewed all along, poller:1 and poller:3 outlive their first TTL.
		clock += 250;
		await new Promise((r) => setTimeout(r, 50));
		clock += 250;
		expect(await state.leaseHolders(["poller:1", "poller:3"])).toEqual(["node-a:1", "node-a:1"]);
		stops.get("poller:1")!();
		stops.get("poller:3")!();
		expect(await Promise.all([runs[0], runs[2]])).toEqual([true, true]);
		// Nothing held: no more renewal calls.
		const made = calls.length;
		await new Promise((r) => setTimeout(r, 60));
		expect(calls.length).toBe(made);
		await state.close();
	});
});
