/**
 * Group commits (lib/db/group-commit.ts): the database away fails a batch's items at once; any other
 * failure, a lock conflict included, is written again item by item.
 */
import type { Database } from "../../lib/db/connection";
import { DatabaseUnavailableError } from "../../lib/db/raw";
import { groupCommitPer } from "../../lib/db/group-commit";

const deadlock = () => Object.assign(new Error("Deadlock found when trying to get lock"), { code: "ER_LOCK_DEADLOCK" });

describe("groupCommitPer", () => {
	it("a batch that loses a deadlock is written again item by item: every item succeeds", async () => {
		const batches: number[][] = [];
		const writerOf = groupCommitPer(async (_db, items: number[]) => {
			batches.push(items);
			if (items.length > 1) throw deadlock();
			return items.map((item) => item * 10);
		});
		const writer = writerOf({} as Database);
		expect(await Promise.all([1, 2, 3, 4].map((item) => writer.submit(item)))).toEqual([10, 20, 30, 40]);
		// The first goes alone, the three that waited share a batch that fails, then go one by one.
		expect(batches).toEqual([[1], [2, 3, 4], [2], [3], [4]]);
	});

	it("the database away fails every item of the batch at once, without a try per item", async () => {
		const batches: number[][] = [];
		const writerOf = groupCommitPer(async (_db, items: number[]) => {
			batches.push(items);
			if (items.length > 1) throw new DatabaseUnavailableError(new Error("connect ECONNREFUSED"));
			return items;
		});
		const writer = writerOf({} as Database);
		const results = await Promise.allSettled([1, 2, 3].map((item) => writer.submit(item)));
		expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "rejected"]);
		expect(batches).toEqual([[1], [2, 3]]);
	});

	it("one batcher per database", () => {
		const writerOf = groupCommitPer(async (_db, items: number[]) => items);
		const [a, b] = [{} as Database, {} as Database];
		expect(writerOf(a)).toBe(writerOf(a));
		expect(writerOf(a)).not.toBe(writerOf(b));
	});
});
