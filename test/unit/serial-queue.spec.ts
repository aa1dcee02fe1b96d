import { BoundedConcurrency, SerialQueue, WaitedTooLong } from "../../lib/async";
import { requestQueue, SLOW_CLIENT } from "../../services/realtime/protocol";

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe("SerialQueue", () => {
	it("runs work one at a time, in the order it was queued, and hands each caller its own result", async () => {
		const queue = new SerialQueue();
		const log: string[] = [];
		let running = 0;
		const job = (name: string, ms: number) =>
			queue.run(async () => {
				running += 1;
				expect(running).toBe(1);
				log.push(`start ${name}`);
				await new Promise((resolve) => setTimeout(resolve, ms));
				log.push(`end ${name}`);
				running -= 1;
				return name.toUpperCase();
			});
		const answers = await Promise.all([job("a", 20), job("b", 1), job("c", 5)]);
		expect(answers).toEqual(["A", "B", "C"]);
		expect(log).toEqual(["start a", "end a", "start b", "end b", "start c", "end c"]);
	});

	it("a failure rejects its own caller only; the work behind it still runs", async () => {
		const queue = new SerialQueue();
		const failing = queue.run(async () => {
			throw new Error("boom");
		});
		const thrownSync = queue.run((() => {
			throw new Error("sync boom");
		}) as () => Promise<never>);
		const after = queue.run(async () => "still ran");
		await expect(failing).rejects.toThrow("boom");
		await expect(thrownSync).rejects.toThrow("sync boom");
		await expect(after).resolves.toBe("still ran");
	});

	it("starts work on a later tick, never inside run()", async () => {
		const queue = new SerialQueue();
		let started = false;
		const done = queue.run(async () => {
			started = true;
		});
		expect(started).toBe(false);
		await done;
		expect(started).toBe(true);
	});

	it("counts what is queued and unfinished, the running work included", async () => {
		const queue = new SerialQueue();
		let release!: () => void;
		const blocker = queue.run(() => new Promise<void>((resolve) => (release = resolve)));
		const rest = Array.from({ length: 3 }, () => queue.run(async () => undefined));
		expect(queue.size).toBe(4);
		await tick();
		expect(queue.size).toBe(4);
		release();
		await Promise.all([blocker, ...rest]);
		expect(queue.size).toBe(0);
		// Idle again: new work starts as before.
		await expect(queue.run(async () => 7)).resolves.toBe(7);
	});

	it("keeps the order across many more entries than it compacts at", async () => {
		const queue = new SerialQueue();
		const seen: number[] = [];
		await Promise.all(Array.from({ length: 5_000 }, (_, i) => queue.run(async () => void seen.push(i))));
		expect(seen).toEqual(Array.from({ length: 5_000 }, (_, i) => i));
	});
});

describe("a connection's request queue", () => {
	it("takes requests until maxWaitingRequests wait unanswered, then refuses (false) without queueing", async () => {
		const failed = jest.fn();
		const enqueue = requestQueue(failed);
		let release!: () => void;
		const gate = new Promise<void>((resolve) => (release = resolve));
		let ran = 0;
		const accepted = Array.from({ length: SLOW_CLIENT.maxWaitingRequests + 5 }, () =>
			enqueue(async () => {
				await gate;
				ran += 1;
			}),
		);
		expect(accepted.filter(Boolean)).toHaveLength(SLOW_CLIENT.maxWaitingRequests);
		expect(accepted.slice(SLOW_CLIENT.maxWaitingRequests)).toEqual([false, false, false, false, false]);
		release();
		await new Promise((resolve) => setTimeout(resolve, 20));
		expect(ran).toBe(SLOW_CLIENT.maxWaitingRequests);
		// Answered: room again.
		expect(enqueue(async () => undefined)).toBe(true);
		expect(failed).not.toHaveBeenCalled();
	});

	it("a request that throws is reported and does not stop the ones behind it", async () => {
		const failed = jest.fn();
		const enqueue = requestQueue(failed);
		const order: number[] = [];
		enqueue(async () => {
			order.push(1);
			throw new Error("bad frame");
		});
		enqueue(async () => void order.push(2));
		await new Promise((resolve) => setTimeout(resolve, 10));
		expect(order).toEqual([1, 2]);
		expect(failed).toHaveBeenCalledWith(expect.objectContaining({ message: "bad frame" }));
	});
});

describe("BoundedConcurrency", () => {
	it("runs at most `max` at once, lets `maxWaiting` wait in order, and refuses (null) past that without starting the work", async () => {
		const limiter = new BoundedConcurrency(2, 2);
		const gates: Array<() => void> = [];
		const started: number[] = [];
		let running = 0;
		let most = 0;
		const job = (i: number) =>
			limiter.run(async () => {
				started.push(i);
				running += 1;
				most = Math.max(most, running);
				await new Promise<void>((resolve) => gates.push(resolve));
				running -= 1;
				return i;
			});
		const accepted = [job(0), job(1), job(2), job(3)];
		expect(accepted.every((p) => p !== null)).toBe(true);
		expect(job(4)).toBeNull();
		await new Promise((resolve) => setImmediate(resolve));
		expect(started).toEqual([0, 1]);
		gates.shift()!();
		await new Promise((resolve) => setImmediate(resolve));
		expect(started).toEqual([0, 1, 2]);
		// One waits now: there is room for one more.
		const late = job(5);
		expect(late).not.toBeNull();
		while (started.length < 5 || gates.length > 0) {
			gates.shift()?.();
			await new Promise((resolve) => setImmediate(resolve));
		}
		expect(await Promise.all([...accepted, late])).toEqual([0, 1, 2, 3, 5]);
		expect(started).toEqual([0, 1, 2, 3, 5]);
		expect(most).toBe(2);
	});

	it("a failure frees its slot for the next in line", async () => {
		const limiter = new BoundedConcurrency(1, 5);
		const failing = limiter.run(async () => {
			throw new Error("boom");
		});
		const next = limiter.run(async () => "ran");
		await expect(failing).rejects.toThrow("boom");
		await expect(next).resolves.toBe("ran");
		await expect(limiter.run(async () => "idle again")).resolves.toBe("idle again");
	});

	it("with waitMs, gives up work that waited that long without running it, and the queue goes on", async () => {
		const limiter = new BoundedConcurrency(1, 5, 30);
		let release!: () => void;
		const holding = limiter.run(() => new Promise<string>((resolve) => (release = () => resolve("held"))));
		let ran = false;
		const waited = limiter.run(async () => {
			ran = true;
		});
		await expect(waited).rejects.toBeInstanceOf(WaitedTooLong);
		expect(ran).toBe(false);
		const next = limiter.run(async () => "next");
		release();
		await expect(holding).resolves.toBe("held");
		await expect(next).resolves.toBe("next");
	});
});
