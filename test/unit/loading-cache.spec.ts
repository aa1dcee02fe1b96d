import { LoadingCache } from "../../lib/loading-cache";

/** A load that resolves when the test says so, counting how often it was started. */
function controlledLoader<V>() {
	const pending: Array<{ resolve: (v: V) => void; reject: (e: unknown) => void }> = [];
	const load = () => new Promise<V>((resolve, reject) => pending.push({ resolve, reject }));
	return { load, pending };
}

describe("LoadingCache", () => {
	it("concurrent misses for one key share one load, and the value is kept", async () => {
		const cache = new LoadingCache<string, number>({ max: 10, ttlMs: 60_000 });
		const { load, pending } = controlledLoader<number>();
		const waiting = Array.from({ length: 64 }, () => cache.get("k", load));
		expect(pending).toHaveLength(1);
		pending[0]!.resolve(7);
		expect(await Promise.all(waiting)).toEqual(Array(64).fill(7));
		expect(await cache.get("k", () => Promise.reject(new Error("must not load again")))).toBe(7);
	});

	it("different keys load separately", async () => {
		const cache = new LoadingCache<string, string>({ max: 10, ttlMs: 60_000 });
		const loads: string[] = [];
		const got = await Promise.all(["a", "b", "a"].map((k) => cache.get(k, async () => (loads.push(k), k.toUpperCase()))));
		expect(got).toEqual(["A", "B", "A"]);
		expect(loads).toEqual(["a", "b"]);
	});

	it("a load overtaken by delete answers its callers but is not kept; the next get loads afresh", async () => {
		const cache = new LoadingCache<string, number>({ max: 10, ttlMs: 60_000 });
		const { load, pending } = controlledLoader<number>();
		const before = cache.get("k", load);
		cache.delete("k");
		const after = cache.get("k", load);
		expect(pending).toHaveLength(2);
		pending[0]!.resolve(1); // read before the change
		pending[1]!.resolve(2); // read after it
		expect([await before, await after]).toEqual([1, 2]);
		expect(cache.peek("k")).toBe(2);
	});

	it("a load overtaken by clear is not kept either, even when it finishes last", async () => {
		const cache = new LoadingCache<string, number>({ max: 10, ttlMs: 60_000 });
		const { load, pending } = controlledLoader<number>();
		const stale = cache.get("k", load);
		cache.clear();
		pending[0]!.resolve(1);
		expect(await stale).toBe(1);
		expect(cache.peek("k")).toBeUndefined();
	});

	it("a failed load reaches every waiter, is not kept, and the next get tries again", async () => {
		const cache = new LoadingCache<string, number>({ max: 10, ttlMs: 60_000 });
		const { load, pending } = controlledLoader<number>();
		const waiting = [cache.get("k", load), cache.get("k", load)];
		pending[0]!.reject(new Error("db down"));
		for (const w of waiting) await expect(w).rejects.toThrow("db down");
		expect(await cache.get("k", async () => 3)).toBe(3);
	});

	it("keeps a value no longer than ttlOf says, and not at all when that is not positive", async () => {
		const cache = new LoadingCache<string, number>({ max: 10, ttlMs: 60_000, ttlOf: (v) => v });
		await cache.get("short", async () => 30);
		await cache.get("expired", async () => 0);
		expect(cache.peek("short")).toBe(30);
		expect(cache.peek("expired")).toBeUndefined();
		await new Promise((r) => setTimeout(r, 60));
		expect(cache.peek("short")).toBeUndefined();
	});

	it("null is a value like any other (a user that is gone is cached as gone)", async () => {
		const cache = new LoadingCache<number, string | null>({ max: 10, ttlMs: 60_000 });
		let loads = 0;
		const load = async () => (loads++, null);
		expect(await cache.get(1, load)).toBeNull();
		expect(await cache.get(1, load)).toBeNull();
		expect(loads).toBe(1);
	});
});
