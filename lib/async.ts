/** Waits `ms`, or less if `signal` aborts first; never rejects, and leaves no listener behind. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
	return new Promise<void>((resolve) => {
		if (signal?.aborted) return resolve();
		const done = () => {
			clearTimeout(timer);
			signal?.removeEventListener("abort", done);
			resolve();
		};
		const timer = setTimeout(done, ms);
		signal?.addEventListener("abort", done, { once: true });
	});
}

/**
 * A loop's doorbell: `wait(ms)` sleeps until `ring()` or `ms`; a ring while nobody waits is kept,
 * so the next wait returns at once instead of missing it.
 */
export class Doorbell {
	private waiters = new Set<() => void>();
	private rung = false;

	ring(): void {
		if (this.waiters.size === 0) {
			this.rung = true;
			return;
		}
		const waiters = [...this.waiters];
		this.waiters.clear();
		for (const wake of waiters) wake();
	}

	wait(ms: number): Promise<void> {
		if (this.rung) {
			this.rung = false;
			return Promise.resolve();
		}
		return new Promise((resolve) => {
			const done = () => {
				clearTimeout(timer);
				this.waiters.delete(done);
				resolve();
			};
			const timer = setTimeout(done, ms);
			this.waiters.add(done);
		});
	}
}

/**
 * Runs async work one piece at a time, in the order it was queued, each after the previous one
 * settled. The waiting work is an array, not a chain of `.then`s: V8 walks a chain of pending
 * promises on every exception thrown while it stands, so with N queued a throw costs O(N) and
 * draining the queue O(N²) (20,000 frames queued by one socket client cost 13 s of CPU).
 */
export class SerialQueue {
	/** Taken work is cleared from its slot, so what it holds (a client's frame) is not kept until the next compaction. */
	private waiting: Array<(() => Promise<void>) | undefined> = [];
	private head = 0;
	private running = false;
	private unfinished = 0;

	/** Work queued and not finished, the running one included. */
	get size(): number {
		return this.unfinished;
	}

	run<T>(work: () => Promise<T>): Promise<T> {
		this.unfinished += 1;
		return new Promise<T>((resolve, reject) => {
			this.waiting.push(async () => {
				try {
					resolve(await work());
				} catch (err) {
					reject(err);
				} finally {
					this.unfinished -= 1;
				}
			});
			if (!this.running) {
				this.running = true;
				// Work starts on a later tick, never inside run(); a promise job, not queueMicrotask, which
				// Jest's fake timers replace.
				void Promise.resolve().then(() => this.drain());
			}
		});
	}

	private async drain(): Promise<void> {
		while (this.head < this.waiting.length) {
			const next = this.waiting[this.head]!;
			this.waiting[this.head] = undefined;
			this.head += 1;
			await next();
			if (this.head >= 1_024 && this.head * 2 >= this.waiting.length) {
				this.waiting = this.waiting.slice(this.head);
				this.head = 0;
			}
		}
		this.waiting = [];
		this.head = 0;
		this.running = false;
	}
}

/** A piece of work that waited `waitMs` for a turn and was given up without running. */
export class WaitedTooLong extends Error {
	constructor(waitMs: number) {
		super(`no turn came within ${waitMs} ms`);
		this.name = "WaitedTooLong";
	}
}

interface Waiter {
	start(): void;
	timer?: NodeJS.Timeout;
}

/**
 * At most `max` pieces of work at once, `maxWaiting` more waiting their turn in order; `run` answers
 * null, starting nothing, when that many already wait (the caller refuses the work). With `waitMs`,
 * work still waiting after that long is given up: its promise rejects with WaitedTooLong.
 */
export class BoundedConcurrency {
	private running = 0;
	private readonly waiting: Waiter[] = [];

	constructor(
		private readonly max: number,
		private readonly maxWaiting: number,
		private readonly waitMs?: number,
	) {}

	run<T>(work: () => Promise<T>): Promise<T> | null {
		if (this.running >= this.max && this.waiting.length >= this.maxWaiting) return null;
		return this.take().then(async () => {
			try {
				return await work();
			} finally {
				// A slot passes straight to the next in line, so nobody jumps the queue.
				const next = this.waiting.shift();
				if (next) {
					clearTimeout(next.timer);
					next.start();
				} else this.running -= 1;
			}
		});
	}

	private take(): Promise<void> {
		if (this.running < this.max) {
			this.running += 1;
			return Promise.resolve();
		}
		return new Promise((resolve, reject) => {
			const waiter: Waiter = { start: resolve };
			const { waitMs } = this;
			if (waitMs !== undefined) {
				waiter.timer = setTimeout(() => {
					this.waiting.splice(this.waiting.indexOf(waiter), 1);
					reject(new WaitedTooLong(waitMs));
				}, waitMs);
			}
			this.waiting.push(waiter);
		});
	}
}
