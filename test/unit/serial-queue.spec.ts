import { SerialQueue } from "../../lib/async";
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
