/**
 * A first-come-first-served count of slots, one per connection of an undici pool: a call takes one
 * before it is handed to undici, so undici never queues a request inside, where the wait would
 * count against the call's deadline and could not be told apart from a request Telegram got.
 */
export class Slots {
	private free: number;
	/** Callers waiting, oldest first (a Set keeps insertion order and drops an aborted one at once). */
	private readonly waiting = new Set<() => void>();

	constructor(readonly size: number) {
		if (!Number.isSafeInteger(size) || size < 1) throw new RangeError(`slots must be a positive integer, got ${size}`);
		this.free = size;
	}

	/** Callers waiting for a slot. */
	get queued(): number {
		return this.waiting.size;
	}

	/**
	 * Resolves with the slot's release once one is free; rejects with the signal's reason if it aborts
	 * first, the caller's place given up. Release is idempotent: a second call gives nothing back.
	 */
	acquire(signal?: AbortSignal): Promise<() => void> {
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
				this.waiting.delete(grant);
				reject(signal?.reason as Error);
			};
			this.waiting.add(grant);
			signal?.addEventListener("abort", onAbort, { once: true });
		});
	}

	private release(): () => void {
		let released = false;
		return () => {
			if (released) return;
			released = true;
			// Handed straight to the oldest waiter, so a newcomer never takes it first.
			const next = this.waiting.values().next();
			if (next.done) this.free += 1;
			else {
				this.waiting.delete(next.value);
				next.value();
			}
		};
	}
}
