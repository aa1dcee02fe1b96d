import { Batcher } from "../../lib/batcher";

/** A Batcher whose writes wait until released, recording each batch. */
function recording(
	options: { maxBatch?: number; concurrency?: number; maxWeight?: number; maxQueued?: { items: number; weight?: number }; fail?: (items: number[]) => Error | null; unavailable?: boolean } = {},
) {
	const batches: number[][] = [];
	const waiting: Array<() => void> = [];
	const batcher = new Batcher<number, string>({
		write: async (items) => {
			batches.push(items);
			await new Promise<void>((release) => waiting.push(release));
			const err = options.fail?.(items);
			if (err) throw err;
			return items.map((n) => `stored ${n}`);
		},
		maxBatch: options.maxBatch ?? 100,
		concurrency: options.concurrency ?? 1,
		...(options.maxWeight !== undefined || options.maxQueued?.weight !== undefined ? { weight: (n: number) => n } : {}),
		...(options.maxWeight !== undefined ? { maxWeight: options.maxWeight } : {}),
		...(options.maxQueued ? { maxQueued: { ...options.maxQueued, full: () => new Error("queue full") } } : {}),
		isUnavailable: () => options.unavailable ?? false,
	});
	const releaseAll = async () => {
		for (let i = 0; i < 20 && (waiting.length > 0 || i < 2); i++) {
			waiting.splice(0).forEach((release) => release());
			await new Promise((r) => setImmediate(r));
		}
	};
	return { batcher, batches, releaseAll };
}

describe("Batcher", () => {
	it("sends the first item at once and those that arrive meanwhile together in the next batch", async () => {
		const { batcher, batches, releaseAll } = recording();
		const results = [1, 2, 3, 4].map((n) => batcher.submit(n));
		expect(batches).toEqual([[1]]);
		await releaseAll();
		expect(await Promise.all(results)).toEqual(["stored 1", "stored 2", "stored 3", "stored 4"]);
		expect(batches).toEqual([[1], [2, 3, 4]]);
	});

	it("keeps to maxBatch items and to the batches in flight it may have", async () => {
		const { batcher, batches, releaseAll } = recording({ maxBatch: 2, concurrency: 2 });
		const results = [1, 2, 3, 4, 5, 6, 7].map((n) => batcher.submit(n));
		expect(batches).toEqual([[1], [2]]);
		await releaseAll();
		await Promise.all(results);
		expect(batches).toEqual([[1], [2], [3, 4], [5, 6], [7]]);
	});

	it("stops a batch before its weight passes maxWeight, and sends an item heavier than that alone", async () => {
		const { batcher, batches, releaseAll } = recording({ maxWeight: 10 });
		const results = [1, 4, 5, 2, 30, 3].map((n) => batcher.submit(n));
		await releaseAll();
		await Promise.all(results);
		expect(batches).toEqual([[1], [4, 5], [2], [30], [3]]);
	});

	it("retries a failed batch one item at a time, so only the bad item fails", async () => {
		const { batcher, batches, releaseAll } = recording({ fail: (items) => (items.includes(3) ? new Error("bad item 3") : null) });
		const results = [1, 2, 3, 4].map((n) => batcher.submit(n).catch((err: Error) => err.message));
		await releaseAll();
		expect(await Promise.all(results)).toEqual(["stored 1", "stored 2", "bad item 3", "stored 4"]);
		expect(batches).toEqual([[1], [2, 3, 4], [2], [3], [4]]);
	});

	it("fails every item of the batch at once when the failure says the other side is away", async () => {
		const { batcher, batches, releaseAll } = recording({ unavailable: true, fail: (items) => (items.length > 1 ? new Error("away") : null) });
		const results = [1, 2, 3].map((n) => batcher.submit(n).catch((err: Error) => err.message));
		await releaseAll();
		expect(await Promise.all(results)).toEqual(["stored 1", "away", "away"]);
		expect(batches).toEqual([[1], [2, 3]]);
	});

	it("refuses items past maxQueued.items waiting (those in flight do not count), and takes them again once batches leave", async () => {
		const { batcher, batches, releaseAll } = recording({ maxQueued: { items: 2 } });
		const results = [1, 2, 3, 4, 5].map((n) => batcher.submit(n).catch((err: Error) => err.message));
		expect(batches).toEqual([[1]]);
		expect(batcher.depth).toBe(2);
		await releaseAll();
		expect(await Promise.all(results)).toEqual(["stored 1", "stored 2", "stored 3", "queue full", "queue full"]);
		const again = batcher.submit(6);
		await releaseAll();
		expect(await again).toBe("stored 6");
	});

	it("refuses an item that would take the waiting weight past maxQueued.weight, but always queues one", async () => {
		const { batcher, releaseAll } = recording({ maxQueued: { items: 100, weight: 10 } });
		const results = [1, 50, 6, 5, 4].map((n) => batcher.submit(n).catch((err: Error) => err.message));
		await releaseAll();
		// 1 goes at once; 50 waits alone (heavier than the cap, but the queue was empty); 6 would make 56.
		expect(await Promise.all(results)).toEqual(["stored 1", "stored 50", "queue full", "queue full", "queue full"]);
		// 6 goes at once (in flight, not waiting); 4 waits; 7 would make 11.
		const later = [6, 4, 7].map((n) => batcher.submit(n).catch((err: Error) => err.message));
		await releaseAll();
		expect(await Promise.all(later)).toEqual(["stored 6", "stored 4", "queue full"]);
	});
});
