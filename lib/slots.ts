/**
 * A count of slots, one per connection of an undici pool: a call takes one before it is handed to
 * undici, so undici never queues a request inside, where the wait would count against the call's
 * deadline and could not be told apart from a request Telegram got.
 *
 * Waiters are served in turn by key (a bot's token), oldest first within a key: one bot whose
 * Telegram answers slowly, or one tenant with many bots, fills the queue with its own calls, and
 * first come first served made every other bot wait behind all of them (20 slow bots held each
 * other bot's sends for seconds). A freed slot goes to the next key in turn instead.
 */
export class Slots {
	private free: number;
	/** Callers waiting, by key, in turn order; within a key oldest first (a Set drops an aborted one at once). */
	private readonly waiting = new Map<string, Set<() => void>>();
	private waitingCount = 0;

	constructor(readonly size: number) {
		if (!Number.isSafeInteger(size) || size < 1) throw new RangeError(`slots must be a positive integer, got ${size}`);
		this.free = size;
	}

	/** Callers waiting for a slot. */
	get queued(): number {
		return this.waitingCount;
	}

	/**
	 * Resolves with the slot's release once one is free; rejects with the signal's reason if it aborts
	 * first, the caller's place given up. Release is idempotent: a second call gives nothing back.
	 */
	acquire(signal?: AbortSignal, key = ""): Promise<() => void> {
		if (signal?.aborted) return Promise.reject(signal.reason as Error);
		if (this.free > 0) {
			this.free -= 1;
			return Promise.resolve(this.release());
		}
		return new Promise((resolve, reject) => {
			const grant = () => {
				signal?.removeEventListener("abort", onAbort);
				resolve(this.release());
			};
			const onAbort = () => {
				const queue = this.waiting.get(key);
				if (queue?.delete(grant)) this.waitingCount -= 1;
				if (queue?.size === 0) this.waiting.delete(key);
				reject(signal?.reason as Error);
			};
			let queue = this.waiting.get(key);
			if (!queue) this.waiting.set(key, (queue = new Set()));
			queue.add(grant);
			this.waitingCount += 1;
			signal?.addEventListener("abort", onAbort, { once: true });
		});
	}

	private release(): () => void {
		let released = false;
		return () => {
			if (released) return;
			released = true;
			// Handed straight to a waiter, so a newcomer never takes it first: the oldest of the key
			// whose turn it is, and that key goes to the back of the turn.
			const turn = this.waiting.entries().next();
			if (turn.done) {
				this.free += 1;
				return;
			}
			const [key, queue] = turn.value;
			const grant = queue.values().next().value!;
			queue.delete(grant);
			this.waitingCount -= 1;
			this.waiting.delete(key);
			if (queue.size > 0) this.waiting.set(key, queue);
			grant();
		};
	}
}
